package executor_test

import (
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kailash-gateway/kgw/executor"
	"github.com/kailash-gateway/kgw/store"
)

// panickyObserver panics when told of an attempt of node boom, as a bug
// in the code around a node's attempts would.
type panickyObserver struct{}

func (panickyObserver) ExecutionStarted(string)                        {}
func (panickyObserver) ExecutionStopped(string, string, time.Duration) {}
func (panickyObserver) JournalCommit(int, time.Duration)               {}
func (panickyObserver) NodeAttempt(_, node, _ string, _ time.Duration) {
	if node == "boom" {
		panic("observer bug (test)")
	}
}

// A panic while running a node, outside its attempt, fails that node and
// its execution, as journalled, not the process: on the run's goroutine
// and on a node goroutine of its own (two roots run in parallel).
func TestNodePanicFailsTheExecution(t *testing.T) {
	st := openStore(t)
	e := newExecutor(t, executor.Config{Store: st, Observer: panickyObserver{}})
	for _, w := range []*store.Workflow{
		workflow("alone", []store.Node{codeNode("boom", "result = {}")}),
		workflow("parallel", []store.Node{codeNode("boom", "result = {}"), codeNode("ok", "result = {}")}),
	} {
		x, err := e.Execute(t.Context(), &executor.Request{Workflow: w})
		if err != nil {
			t.Fatalf("%s: Execute: %v", w.Name, err)
		}
		checkPanicked(t, w.Name, x)
		stored, err := st.GetExecution(t.Context(), x.ID)
		if err != nil {
			t.Fatalf("%s: GetExecution: %v", w.Name, err)
		}
		checkPanicked(t, w.Name+" (journalled)", stored)
	}
	x, err := e.Execute(t.Context(), &executor.Request{Workflow: workflow("fine", []store.Node{codeNode("n", "result = {}")})})
	if err != nil || x.Status != store.ExecutionCompleted {
		t.Fatalf("execution after the panics: %v, %v", x, err)
	}
}

// checkPanicked checks that x failed with node boom's panic.
func checkPanicked(t *testing.T, what string, x *store.Execution) {
	t.Helper()
	if x.Status != store.ExecutionFailed || x.Error == nil || x.Error.Code != executor.CodePanic || x.Error.NodeID != "boom" ||
		!strings.Contains(x.Error.Message, "observer bug (test)") {
		t.Fatalf("%s: status %v, error %+v; want FAILED with boom's panic", what, x.Status, x.Error)
	}
	for _, n := range x.Nodes {
		if n.NodeID == "boom" && n.Status != store.NodeFailed {
			t.Errorf("%s: node boom %v, want FAILED", what, n.Status)
		}
	}
}

// A panic while a node attempt holds its node slot (here in the clock, as
// the attempt starts) gives the slot back: with one slot, the next
// execution runs.
func TestNodePanicReleasesItsSlot(t *testing.T) {
	var armed atomic.Bool
	now := func() time.Time {
		if armed.Load() && calledFrom("(*run).nodeStarted") {
			armed.Store(false)
			panic("clock bug (test)")
		}
		return time.Now()
	}
	e := newExecutor(t, executor.Config{Store: openStore(t), Now: now, MaxConcurrentNodes: 1})
	armed.Store(true)
	x, err := e.Execute(t.Context(), &executor.Request{Workflow: workflow("boom", []store.Node{codeNode("boom", "result = {}")})})
	if err != nil || x.Status != store.ExecutionFailed || x.Error == nil || x.Error.Code != executor.CodePanic {
		t.Fatalf("execution whose node start panicked: %+v, %v; want FAILED with CodePanic", x, err)
	}
	w := workflow("fine", []store.Node{codeNode("n", "result = {}")})
	w.Timeout = 5 * time.Second
	x, err = e.Execute(t.Context(), &executor.Request{Workflow: w})
	if err != nil || x.Status != store.ExecutionCompleted {
		t.Fatalf("execution after the panic, one node slot: %+v, %v; want COMPLETED", x, err)
	}
}

// calledFrom reports whether a function whose name ends in fn is on the
// caller's stack.
func calledFrom(fn string) bool {
	pcs := make([]uintptr, 32)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs)])
	for {
		f, more := frames.Next()
		if strings.HasSuffix(f.Function, fn) {
			return true
		}
		if !more {
			return false
		}
	}
}
