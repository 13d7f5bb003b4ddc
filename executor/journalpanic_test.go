package executor_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/kailash-gateway/kgw/executor"
	"github.com/kailash-gateway/kgw/store"
)

// panickyStore is a real store whose journal writes panic, as a bug in a
// store would, when they create an execution of workflow boom.
type panickyStore struct {
	store.Store
	boom string
}

func (s *panickyStore) WriteJournal(ctx context.Context, b *store.JournalBatch) error {
	for _, c := range b.Creates {
		if c.Workflow == s.boom {
			panic("store bug (test)")
		}
	}
	return s.Store.WriteJournal(ctx, b)
}

// A panic in a journal write fails the executions of that write, not the
// process: executions journalled with it complete, and later ones too.
func TestJournalWritePanicFailsOnlyItsExecution(t *testing.T) {
	e := newExecutor(t, executor.Config{Store: &panickyStore{Store: openStore(t), boom: "boom"}})
	fine := workflow("fine", []store.Node{codeNode("n", "result = {}")})
	boom := workflow("boom", []store.Node{codeNode("n", "result = {}")})
	const n, bad = 8, 3
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			w := fine
			if i == bad {
				w = boom
			}
			var x *store.Execution
			x, errs[i] = e.Execute(t.Context(), &executor.Request{Workflow: w})
			if errs[i] == nil && x.Status != store.ExecutionCompleted {
				errs[i] = fmt.Errorf("status %v", x.Status)
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		switch {
		case i == bad && (err == nil || !strings.Contains(err.Error(), "journal write panicked")):
			t.Errorf("execution of boom: err = %v, want the journal write's panic", err)
		case i != bad && err != nil:
			t.Errorf("execution %d of fine: %v", i, err)
		}
	}
	x, err := e.Execute(t.Context(), &executor.Request{Workflow: fine})
	if err != nil || x.Status != store.ExecutionCompleted {
		t.Fatalf("execution after the panic: %v, %v", x, err)
	}
}
