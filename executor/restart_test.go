package executor_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kailash-gateway/kgw/executor"
	"github.com/kailash-gateway/kgw/store"
)

// nodeStarts returns the attempt numbers of node's NodeStarted events in
// the journal, in order.
func nodeStarts(t *testing.T, st store.Store, id, node string) []int32 {
	t.Helper()
	evs, err := st.ListEvents(t.Context(), id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []int32
	for _, ev := range evs {
		if ev.Kind == store.EventNodeStarted && ev.NodeID == node {
			out = append(out, ev.Attempt)
		}
	}
	return out
}

// An execution whose node is interrupted by crashes more often than
// MaxNodeRestarts allows is failed at the next recovery with
// RESTART_LIMIT, naming the node; a graceful Close in between does not
// count, and each run of the node has a higher attempt number than the one
// before.
func TestRestartLimit(t *testing.T) {
	st := openStore(t)
	tr := newTracker()
	w := register(t, st, chainWorkflow("crashy"))
	const limit = 2

	first := newCrashable(t, executor.Config{Store: st, Resources: tr, MaxNodeRestarts: limit})
	id := startBlocked(t, first, tr, w, "")
	first.Crash() // restart 1

	lastAttempt := int32(1)
	// resumeBlocked recovers the execution in a new executor and waits
	// until node c is blocked in it again, its start journalled.
	resumeBlocked := func() *executor.Executor {
		t.Helper()
		e := newCrashable(t, executor.Config{Store: st, Resources: tr, RecoverAllOnStart: true, MaxNodeRestarts: limit})
		sub, err := e.Subscribe(t.Context(), id, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		if n, err := e.Recover(t.Context()); err != nil || n != 1 {
			t.Fatalf("Recover = %d, %v; want 1 execution resumed", n, err)
		}
		waitFor(t, sub, func(ev *store.Event) bool {
			if ev.Kind != store.EventNodeStarted || ev.NodeID != "c" || ev.Attempt <= lastAttempt {
				return false
			}
			lastAttempt = ev.Attempt
			return true
		})
		tr.waitEntered(t, t.Context(), "c")
		return e
	}
	drained := resumeBlocked()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := drained.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close = %v, want context.Canceled", err)
	}
	x, err := st.GetExecution(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if x.Restarts != 1 || x.Owner != "" {
		t.Fatalf("after a graceful close: restarts %d, owner %q; want 1 and released", x.Restarts, x.Owner)
	}
	resumeBlocked().Crash() // not counted before: restarts stays 1, now 2
	resumeBlocked().Crash() // restarts 3 > limit

	last := newExecutor(t, executor.Config{Store: st, Resources: tr, RecoverAllOnStart: true, MaxNodeRestarts: limit})
	if n, err := last.Recover(t.Context()); err != nil || n != 0 {
		t.Fatalf("Recover past the limit = %d, %v; want 0 resumed and no error", n, err)
	}
	checkRestartLimitReached(t, st, tr, last, id)
}

// checkRestartLimitReached checks execution id after its third crash with
// --max-node-restarts 2: FAILED with RESTART_LIMIT on node c, the rest
// skipped, node c run four times with attempts 1 to 4, and still readable
// through the executor.
func checkRestartLimitReached(t *testing.T, st store.Store, tr *tracker, last *executor.Executor, id string) {
	t.Helper()
	x, err := st.GetExecution(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, x, store.ExecutionFailed)
	if x.Error == nil || x.Error.Code != executor.CodeRestartLimit || x.Error.NodeID != "c" ||
		!strings.Contains(x.Error.Message, "crashed or was killed 3 times") ||
		!strings.Contains(x.Error.Message, "more than the 2 restarts allowed (--max-node-restarts)") ||
		!strings.Contains(x.Error.Message, "node 'c' was running") {
		t.Errorf("error = %+v, want RESTART_LIMIT on node c saying it crashed 3 times, more than 2 allowed", x.Error)
	}
	if s := nodeState(t, x, "c"); s.Status != store.NodeFailed || s.Error == nil || s.Error.Code != executor.CodeRestartLimit {
		t.Errorf("node c = %v with %+v, want FAILED with RESTART_LIMIT", s.Status, s.Error)
	}
	if s := nodeState(t, x, "d"); s.Status != store.NodeSkipped {
		t.Errorf("node d = %v, want SKIPPED", s.Status)
	}
	evs, err := st.ListEvents(t.Context(), id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if lastEv := evs[len(evs)-1]; lastEv.Kind != store.EventExecutionFailed || lastEv.Execution == nil ||
		lastEv.Execution.Error.Code != executor.CodeRestartLimit {
		t.Errorf("last event = %v, want ExecutionFailed carrying RESTART_LIMIT", lastEv.Kind)
	}
	if got := tr.counts()["c"]; got != 4 {
		t.Errorf("node c ran %d times, want 4 (first run and three resumes)", got)
	}
	if d := cmp.Diff([]int32{1, 2, 3, 4}, nodeStarts(t, st, id, "c")); d != "" {
		t.Errorf("attempts of node c's starts (-want +got):\n%s", d)
	}
	if _, err := last.Get(t.Context(), id); err != nil {
		t.Errorf("Get of the failed execution: %v", err)
	}
}

// A negative MaxNodeRestarts resumes whatever the count.
func TestRestartLimitDisabled(t *testing.T) {
	st := openStore(t)
	tr := newTracker()
	w := register(t, st, chainWorkflow("unlimited"))
	first := newCrashable(t, executor.Config{Store: st, Resources: tr})
	id := startBlocked(t, first, tr, w, "")
	first.Crash()
	var e *executor.Executor
	for range 4 {
		if e != nil {
			e.Crash()
		}
		e = newCrashable(t, executor.Config{Store: st, Resources: tr, RecoverAllOnStart: true, MaxNodeRestarts: -1})
		if n, err := e.Recover(t.Context()); err != nil || n != 1 {
			t.Fatalf("Recover = %d, %v; want 1 execution resumed", n, err)
		}
		tr.waitEntered(t, t.Context(), "c")
	}
	tr.unblock("c")
	sub, err := e.Subscribe(t.Context(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	evs := readAll(t, sub)
	wantStatus(t, evs[len(evs)-1].Execution, store.ExecutionCompleted)
	if x := evs[len(evs)-1].Execution; x.Restarts != 4 || x.Epoch != 5 {
		t.Errorf("restarts %d, epoch %d; want 4 and 5", x.Restarts, x.Epoch)
	}
}

// A node that failed once and was then interrupted by a crash runs again
// with an attempt number above both, and the interrupted attempt does not
// use up its retry budget (max_attempts counts failed attempts).
func TestAttemptAfterRetryAndCrash(t *testing.T) {
	st := openStore(t)
	tr := newTracker()
	n := codeNode("r", `
if execution.attempt == 1:
    fail("first attempt fails")
get_resource("track")("r")
result = {"attempt": execution.attempt}
`)
	n.RequiredResources = []string{"track"}
	n.Retry = store.RetryPolicy{MaxAttempts: 2, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond, Multiplier: 1}
	w := register(t, st, &store.Workflow{Name: "retry_crash", Nodes: []store.Node{n}})

	tr.block("r")
	a := newCrashable(t, executor.Config{Store: st, Resources: tr})
	id, err := a.Start(t.Context(), &executor.Request{Workflow: w})
	if err != nil {
		t.Fatal(err)
	}
	tr.waitEntered(t, t.Context(), "r") // attempt 2, after the journalled retry
	a.Crash()
	tr.unblock("r")

	x := resumeElsewhere(t, st, tr, id)
	wantStatus(t, x, store.ExecutionCompleted)
	if got := num(t, executor.Results(x)["r"].(map[string]any)["attempt"]); got != 3 {
		t.Errorf("attempt of the run after the crash = %v, want 3 (epoch 2 + 1 failed attempt)", got)
	}
	// Attempt 2 may have run without its start being journalled before
	// the crash: what the journal holds must still only grow.
	starts := nodeStarts(t, st, id, "r")
	if len(starts) < 2 || starts[0] != 1 || starts[len(starts)-1] != 3 {
		t.Errorf("attempts of node r's starts = %v, want 1, maybe 2, then 3", starts)
	}
}
