package executor_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/kailash-gateway/kgw/executor"
	"github.com/kailash-gateway/kgw/store"
)

func TestMaxRunsPerCaller(t *testing.T) {
	e := newExecutor(t, executor.Config{MaxRunsPerCaller: 1})
	ctx := t.Context()
	slow := workflow("slow", []store.Node{codeNode("n", "time.sleep(0.3)\nresult = {}")})
	id, err := e.Start(ctx, &executor.Request{Workflow: slow, Caller: "key:a"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Start(ctx, &executor.Request{Workflow: slow, Caller: "key:a"}); !errors.Is(err, executor.ErrCallerLimit) {
		t.Fatalf("second Start of key:a: err = %v, want ErrCallerLimit", err)
	}
	// Another caller is not limited by key:a's run.
	if _, err := e.Execute(ctx, &executor.Request{Workflow: workflow("quick", []store.Node{codeNode("n", "result = {}")}), Caller: "key:b"}); err != nil {
		t.Fatalf("Execute of key:b: %v", err)
	}
	// Once key:a's run ends, key:a may start again.
	sub, err := e.Subscribe(ctx, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := sub.Next(ctx); err != nil {
			break
		}
	}
	sub.Close()
	x, err := e.Execute(ctx, &executor.Request{Workflow: slow, Caller: "key:a"})
	if err != nil || x.Status != store.ExecutionCompleted {
		t.Fatalf("Execute of key:a after its first run ended: %v, %v", x, err)
	}
}

// TestResumeRefusedByAuthorization: an execution claimed after a crash is
// resumed only if Config.AuthorizeResume allows its caller; otherwise it
// fails with the refusal as its error and runs nothing more.
func TestResumeRefusedByAuthorization(t *testing.T) {
	st := openStore(t)
	tr := newTracker()
	w := register(t, st, chainWorkflow("chain_auth"))
	a := newCrashable(t, executor.Config{Store: st, Resources: tr})
	id := startBlocked(t, a, tr, w, "")
	a.Crash()
	tr.unblock("c")

	var asked []string
	b := newExecutor(t, executor.Config{Store: st, Resources: tr, RecoverAllOnStart: true,
		AuthorizeResume: func(_ context.Context, caller string, _ map[string]store.ResourceSpec) error {
			asked = append(asked, caller)
			return errors.New("permission denied: secret 'x' does not exist or is not granted to svc")
		}})
	if _, err := b.Recover(t.Context()); err != nil {
		t.Fatal(err)
	}
	x, err := st.GetExecution(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if x.Status != store.ExecutionFailed || x.Error == nil || !strings.Contains(x.Error.Message, "permission denied") {
		t.Fatalf("refused resume: status %v, error %+v; want FAILED with the refusal", x.Status, x.Error)
	}
	if len(asked) != 1 || asked[0] != "svc" {
		t.Errorf("AuthorizeResume asked for %v, want [svc]", asked)
	}
	if got := tr.counts()["d"]; got != 0 {
		t.Errorf("node d ran %d times after a refused resume", got)
	}
}

// A caller at its MaxRunsPerCaller limit on a process that is also at its
// MaxConcurrentExecutions limit is refused, not queued; another caller's
// start is queued.
func TestCallerLimitAtCapacityIsNotQueued(t *testing.T) {
	st := openStore(t)
	g := newGate()
	w := register(t, st, gatedWorkflow("capped"))
	e := newExecutor(t, executor.Config{Store: st, Resources: g, MaxRunsPerCaller: 1, MaxConcurrentExecutions: 1})
	ctx := t.Context()
	if _, err := e.Start(ctx, &executor.Request{Workflow: w, Caller: "key:a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Start(ctx, &executor.Request{Workflow: w, Caller: "key:a"}); !errors.Is(err, executor.ErrCallerLimit) {
		t.Fatalf("second Start of key:a at both limits: err = %v, want ErrCallerLimit", err)
	}
	id, err := e.Start(ctx, &executor.Request{Workflow: w, Caller: "key:b"})
	if err != nil {
		t.Fatalf("Start of key:b at the process limit: %v (want it queued)", err)
	}
	x, err := st.GetExecution(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if x.Status != store.ExecutionPending || x.Owner != "" {
		t.Errorf("key:b's execution: status %v owner %q, want queued", x.Status, x.Owner)
	}
	close(g.open)
}
