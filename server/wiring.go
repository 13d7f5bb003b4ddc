package server

import (
	"context"
	"errors"

	"go.starlark.net/starlark"

	"github.com/kailash-gateway/kgw/executor"
	"github.com/kailash-gateway/kgw/executor/node"
	"github.com/kailash-gateway/kgw/resources"
	"github.com/kailash-gateway/kgw/secrets"
	"github.com/kailash-gateway/kgw/store"
)

// NewRedactor returns an empty *secrets.Redactor as an executor.Redactor.
// Use it as executor.Config.NewRedactor together with ExecutorResources, so
// that the broker teaches each execution's redactor the secrets it resolves.
func NewRedactor() executor.Redactor { return secrets.NewRedactor() }

// ExecutorResources adapts b to executor.ResourceBroker (executor.Config's
// Resources). The executor's redactors must come from NewRedactor: with any
// other redactor type, opening a resource fails rather than resolving
// secrets that could then not be redacted.
func ExecutorResources(b *resources.Broker) executor.ResourceBroker {
	return brokerAdapter{b}
}

type brokerAdapter struct{ b *resources.Broker }

func (a brokerAdapter) Session(_ string, specs map[string]store.ResourceSpec, redact executor.Redactor) executor.AttemptResources {
	red, ok := redact.(*secrets.Redactor)
	if !ok || red == nil {
		return refusedResources{}
	}
	return brokerSession{a.b.Session(specs, red)}
}

// brokerSession is where a broker error becomes the executor's: a name
// the request lacks (resources.ErrNotProvided) is node.ErrNotProvided,
// which the node runtime reports as "resource 'x' was not provided in the
// request".
type brokerSession struct{ *resources.Session }

func (s brokerSession) Open(ctx context.Context, name string) (starlark.Value, error) {
	v, err := s.Session.Open(ctx, name)
	if errors.Is(err, resources.ErrNotProvided) {
		return nil, node.ErrNotProvided
	}
	return v, err
}

// errNoSecretRedactor fails resource use when secrets could not be redacted.
var errNoSecretRedactor = errors.New("resources are unavailable: the executor's redactor is not a *secrets.Redactor (use server.NewRedactor)")

type refusedResources struct{}

func (refusedResources) Open(context.Context, string) (starlark.Value, error) {
	return nil, errNoSecretRedactor
}
func (refusedResources) Close() {}
