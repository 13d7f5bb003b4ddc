package executor_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kailash-gateway/kgw/executor"
	"github.com/kailash-gateway/kgw/store"
)

// The tests of this file cover the paths that exist for speed: runs on
// the caller's goroutine, cached plans, and a workflow deadline enforced
// without a timer of the run's own.

// Execute with a context that cannot end runs the workflow on the calling
// goroutine; results, failures, journal and idempotency are the same.
func TestExecuteWithBackgroundContext(t *testing.T) {
	broker := &testBroker{}
	e := newExecutor(t, executor.Config{Resources: broker})
	ctx := context.Background()
	w := workflow("inline", []store.Node{
		codeNode("a", `result = {"v": 1}`),
		codeNode("b", `result = {"v": v + 1}`),
	}, conn("a", "v", "b", "v"))
	x, err := e.Execute(ctx, &executor.Request{Workflow: w})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, x, store.ExecutionCompleted)
	if got := num(t, executor.Results(x)["b"].(map[string]any)["v"]); got != 2 {
		t.Errorf("b.v = %v, want 2", got)
	}
	stored, err := e.Get(ctx, x.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, stored, store.ExecutionCompleted)

	bad := workflow("inline-fails", []store.Node{codeNode("bad", `fail("no")`)})
	x, err = e.Execute(ctx, &executor.Request{Workflow: bad})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, x, store.ExecutionFailed)

	n := codeNode("once", `result = {"run": get_resource("counter")}`)
	n.RequiredResources = []string{"counter"}
	req := &executor.Request{Workflow: workflow("inline-idem", []store.Node{n}), IdempotencyKey: "k", Caller: "svc"}
	var wg sync.WaitGroup
	xs := make([]*store.Execution, 4)
	errs := make([]error, 4)
	for i := range xs {
		wg.Go(func() { xs[i], errs[i] = e.Execute(ctx, req) })
	}
	wg.Wait()
	for i := range xs {
		if errs[i] != nil {
			t.Fatalf("Execute %d: %v", i, errs[i])
		}
		wantStatus(t, xs[i], store.ExecutionCompleted)
		if xs[i].ID != xs[0].ID {
			t.Errorf("Execute %d ran execution %s, want %s", i, xs[i].ID, xs[0].ID)
		}
	}
	if got := broker.count.Load(); got != 1 {
		t.Errorf("the workflow ran %d times, want once", got)
	}
}

// A workflow name and version reused for another definition (possible
// without a store, or by changing the caller's value in place) runs the
// definition it is given, not a plan cached for the earlier one.
func TestPlanFollowsDefinition(t *testing.T) {
	e := newExecutor(t, executor.Config{})
	w := workflow("same", []store.Node{codeNode("n", `result = {"v": 1}`)})
	run := func(want float64) {
		t.Helper()
		x := execute(t, e, &executor.Request{Workflow: w})
		wantStatus(t, x, store.ExecutionCompleted)
		if got := num(t, executor.Results(x)["n"].(map[string]any)["v"]); got != want {
			t.Errorf("v = %v, want %v", got, want)
		}
	}
	run(1)
	w.Nodes[0].Code = `result = {"v": 2}` // changed in place
	run(2)
	w = workflow("same", []store.Node{
		codeNode("n", `result = {"v": 3}`),
		codeNode("m", `result = {"v": v * 10}`),
	}, conn("n", "v", "m", ""))
	run(3)
	x := execute(t, e, &executor.Request{Workflow: w})
	if got := num(t, executor.Results(x)["m"].(map[string]any)["v"]); got != 30 {
		t.Errorf("m.v = %v, want 30", got)
	}
	w.Connections[0].FromOutput = "missing" // changed in place
	x = execute(t, e, &executor.Request{Workflow: w})
	wantStatus(t, x, store.ExecutionFailed)
	if x.Error == nil || x.Error.Code != executor.CodeMissingOutput {
		t.Errorf("error = %+v, want MISSING_OUTPUT", x.Error)
	}
}

// The workflow deadline ends a run that waits for the backoff before a
// retry.
func TestWorkflowTimeoutDuringBackoff(t *testing.T) {
	e := newExecutor(t, executor.Config{})
	n := codeNode("flaky", `fail("always")`)
	n.Retry = store.RetryPolicy{MaxAttempts: 5, InitialBackoff: time.Hour}
	w := workflow("backoff", []store.Node{n, codeNode("after", "result = {}")}, conn("flaky", "", "after", ""))
	x := execute(t, e, &executor.Request{Workflow: w, Timeout: 30 * time.Millisecond})
	wantStatus(t, x, store.ExecutionTimedOut)
	if x.Error == nil || x.Error.Code != executor.CodeTimeout {
		t.Errorf("error = %+v, want TIMEOUT", x.Error)
	}
	st := nodeState(t, x, "flaky")
	if st.Status != store.NodeTimedOut || st.Attempts != 1 {
		t.Errorf("flaky: status %v after %d attempts, want TIMED_OUT after 1", st.Status, st.Attempts)
	}
	if got := nodeState(t, x, "after").Status; got != store.NodeSkipped {
		t.Errorf("after status = %v, want SKIPPED", got)
	}
}

// The workflow deadline ends a run whose node waits for one of the
// Executor's node slots, all taken by another execution.
func TestWorkflowTimeoutWaitingForSlot(t *testing.T) {
	e := newExecutor(t, executor.Config{MaxConcurrentNodes: 1})
	hog := workflow("hog", []store.Node{codeNode("hold", "time.sleep(3600)\nresult = {}")})
	id, err := e.Start(t.Context(), &executor.Request{Workflow: hog})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := e.Subscribe(t.Context(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	waitFor(t, sub, func(ev *store.Event) bool { return ev.Kind == store.EventNodeStarted })

	w := workflow("starved", []store.Node{codeNode("n", "result = {}")})
	x := execute(t, e, &executor.Request{Workflow: w, Timeout: 30 * time.Millisecond})
	wantStatus(t, x, store.ExecutionTimedOut)
	if got := nodeState(t, x, "n"); got.Status != store.NodeSkipped || got.Attempts != 0 {
		t.Errorf("n: status %v after %d attempts, want SKIPPED after 0", got.Status, got.Attempts)
	}
	if _, err := e.Cancel(t.Context(), id); err != nil {
		t.Fatal(err)
	}
}

// Execute with Request.OnCaller runs the workflow on the calling goroutine
// with a context that can end: results and journal are the same, and when
// the context ends first, Execute returns only once the run has ended (on
// a worker it returns at once) and the run completes as it would have.
func TestExecuteOnCaller(t *testing.T) {
	st := openStore(t)
	e := newExecutor(t, executor.Config{Store: st})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	w := workflow("oncaller", []store.Node{
		codeNode("a", `result = {"v": 1}`),
		codeNode("b", `result = {"v": v + 1}`),
	}, conn("a", "v", "b", "v"))
	x, err := e.Execute(ctx, &executor.Request{Workflow: w, OnCaller: true})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, x, store.ExecutionCompleted)
	if got := num(t, executor.Results(x)["b"].(map[string]any)["v"]); got != 2 {
		t.Errorf("b.v = %v, want 2", got)
	}
	stored, err := st.GetExecution(t.Context(), x.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, stored, store.ExecutionCompleted)

	const sleep = 200 * time.Millisecond
	slow := workflow("oncaller-slow", []store.Node{codeNode("s", "time.sleep(0.2)\nresult = {\"done\": True}")})
	for _, onCaller := range []bool{false, true} {
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(20*time.Millisecond, cancel)
		start := time.Now()
		x, err := e.Execute(ctx, &executor.Request{Workflow: slow, OnCaller: onCaller})
		took := time.Since(start)
		switch {
		case onCaller && took < sleep:
			t.Errorf("OnCaller: Execute returned after %v, before the node's %v sleep ended", took, sleep)
		case !onCaller && took >= sleep:
			t.Errorf("on a worker: Execute returned after %v, want at once when ctx ends", took)
		case err == nil:
			wantStatus(t, x, store.ExecutionCompleted)
		case !errors.Is(err, context.Canceled):
			t.Errorf("OnCaller %v: Execute error = %v, want a result or context.Canceled", onCaller, err)
		}
	}
	// Both runs completed, although their callers' contexts ended.
	deadline := time.Now().Add(10 * time.Second)
	for {
		xs, _, err := st.ListExecutions(t.Context(), store.ExecutionQuery{Workflow: "oncaller-slow"})
		if err != nil {
			t.Fatal(err)
		}
		done := 0
		for _, x := range xs {
			if x.Status == store.ExecutionCompleted {
				done++
			}
		}
		if done == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 2 executions completed after their callers left: %+v", done, xs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
