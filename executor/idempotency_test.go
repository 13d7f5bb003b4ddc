package executor_test

import (
	"context"
	"errors"
	"testing"

	"github.com/kailash-gateway/kgw/executor"
	"github.com/kailash-gateway/kgw/store"
)

// A request whose idempotency key names an execution started by a
// request with another fingerprint is refused, whether that execution
// runs in this process or was found in the store (another process, or a
// restart); an equal request attaches.
func TestIdempotencyFingerprint(t *testing.T) {
	st := openStore(t)
	w := register(t, st, &store.Workflow{Name: "fp", Nodes: []store.Node{codeNode("n", `result = {"v": 1}`)}})
	req := func(fp string) *executor.Request {
		return &executor.Request{Workflow: w, IdempotencyKey: "k1", Caller: "svc", Fingerprint: fp}
	}
	a := newExecutor(t, executor.Config{Store: st})
	x := execute(t, a, req("fp-1"))

	b := newExecutor(t, executor.Config{Store: st}) // knows the key only from the store
	for _, e := range []*executor.Executor{a, b} {
		id, err := e.Start(t.Context(), req("fp-1"))
		if err != nil || id != x.ID {
			t.Errorf("Start with the same fingerprint = %s, %v; want %s", id, err, x.ID)
		}
		_, err = e.Start(t.Context(), req("fp-2"))
		var mm *executor.IdempotencyMismatchError
		if !errors.As(err, &mm) || !errors.Is(err, executor.ErrIdempotencyMismatch) || mm.Key != "k1" || mm.ExecutionID != x.ID {
			t.Errorf("Start with another fingerprint = %v, want an IdempotencyMismatchError for k1 and %s", err, x.ID)
		}
		if _, err := e.Execute(t.Context(), req("")); !errors.Is(err, executor.ErrIdempotencyMismatch) {
			t.Errorf("Execute without a fingerprint = %v, want ErrIdempotencyMismatch", err)
		}
		// A context that never ends runs the execution on the caller's
		// goroutine: the same check applies.
		if _, err := e.Execute(context.Background(), req("")); !errors.Is(err, executor.ErrIdempotencyMismatch) {
			t.Errorf("Execute without a fingerprint, context.Background = %v, want ErrIdempotencyMismatch", err)
		}
	}
	// Another caller's key is another key.
	other := req("fp-2")
	other.Caller = "svc-b"
	if id, err := b.Start(t.Context(), other); err != nil || id == x.ID {
		t.Errorf("Start by another caller = %s, %v; want a new execution", id, err)
	}
}
