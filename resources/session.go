package resources

import (
	"context"
	"fmt"
	"sync"

	"go.starlark.net/starlark"

	"github.com/kailash-gateway/kgw/secrets"
	"github.com/kailash-gateway/kgw/store"
)

// A Session is the resources of one node attempt: the specs of the
// request, opened on demand. Open and Close are safe for concurrent use.
// Close must be called when the attempt ends, however it ends.
type Session struct {
	b        *Broker
	specs    map[string]store.ResourceSpec
	redactor *secrets.Redactor

	mu     sync.Mutex
	open   []opened // starts in openBuf; a node opens few resources
	closed bool

	openBuf [2]opened
}

type opened struct {
	name   string
	pool   *pool
	handle handle
	value  starlark.Value // handle as node code sees it (masked)
}

// Session starts a session over specs (the request's resources, by name).
// Secret values resolved for it are added to redactor (nil: none).
func (b *Broker) Session(specs map[string]store.ResourceSpec, redactor *secrets.Redactor) *Session {
	return &Session{b: b, specs: specs, redactor: redactor}
}

// Open returns the handle of the resource called name, opening its pool
// if needed; opening the same name again returns the same handle. With a
// redactor, whatever the handle returns to node code has every credential
// value of the redactor masked (see mask.go). A name
// the request lacks gives an error wrapping ErrNotProvided ("resource 'x'
// was not provided in the request").
func (s *Session) Open(ctx context.Context, name string) (starlark.Value, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("resource '%s': the node attempt has ended", name)
	}
	for _, o := range s.open {
		if o.name == name {
			return o.value, nil
		}
	}
	spec, ok := s.specs[name]
	if !ok {
		return nil, fmt.Errorf("resource '%s' was not provided in the request: %w", name, ErrNotProvided)
	}
	pl, err := s.b.plan(ctx, name, spec, s.redactor)
	if err != nil {
		return nil, s.maskError(err)
	}
	p, err := s.b.acquirePool(ctx, pl, spec.Ref)
	if err != nil {
		return nil, s.maskError(fmt.Errorf("resource '%s': %w", name, err))
	}
	h := p.backend.handle(name)
	if s.open == nil {
		s.open = s.openBuf[:0]
	}
	// Every value the handle gives node code has the execution's
	// credential values masked (mask.go).
	v := mask(h, s.redactor)
	s.open = append(s.open, opened{name: name, pool: p, handle: h, value: v})
	return v, nil
}

// maskError masks the session's credential values in err's message (node
// code sees it through catch).
func (s *Session) maskError(err error) error {
	if s.redactor == nil {
		return err
	}
	return maskError(err, s.redactor)
}

// Close gives back every connection the session's handles hold (rolling
// back open transactions) and releases its pools. It is idempotent.
func (s *Session) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	open := s.open
	s.open = nil
	s.mu.Unlock()
	// open may be s.openBuf: nothing writes it any more (closed is set).
	for _, o := range open {
		o.handle.Close()
		s.b.releasePool(o.pool)
	}
}
