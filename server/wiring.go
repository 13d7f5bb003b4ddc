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

// NewRedactor returns an empty *secrets.Redactor: executor.Config's
// NewRedactor, with which the broker (ExecutorResources) teaches each
// execution's redactor the secrets it resolves.
func NewRedactor() *secrets.Redactor { return secrets.NewRedactor() }

// ExecutorResources adapts b to executor.ResourceBroker (executor.Config's
// Resources).
func ExecutorResources(b *resources.Broker) executor.ResourceBroker {
	return brokerAdapter{b}
}

type brokerAdapter struct{ b *resources.Broker }

func (a brokerAdapter) Session(_ string, specs map[string]store.ResourceSpec, redact *secrets.Redactor) executor.AttemptResources {
	return brokerSession{a.b.Session(specs, redact)}
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
