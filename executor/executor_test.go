package executor_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.starlark.net/starlark"

	"github.com/kailash-gateway/kgw/executor"
	"github.com/kailash-gateway/kgw/secrets"
	"github.com/kailash-gateway/kgw/store"
)

// newExecutor returns an Executor journalling to a fresh SQLite store (unless
// cfg.Store is set), closed when the test ends.
func newExecutor(t testing.TB, cfg executor.Config) *executor.Executor {
	t.Helper()
	if cfg.Store == nil {
		cfg.Store = openStore(t)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := executor.New(cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := e.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

func workflow(name string, nodes []store.Node, conns ...store.Connection) *store.Workflow {
	return &store.Workflow{Name: name, Version: 1, Nodes: nodes, Connections: conns}
}

func codeNode(id, code string) store.Node { return store.Node{ID: id, Code: code} }

func conn(from, out, to, in string) store.Connection {
	return store.Connection{FromNode: from, FromOutput: out, ToNode: to, ToInput: in}
}

// num returns a JSON number as float64 (the store may return int64 or float64).
func num(t *testing.T, v any) float64 {
	t.Helper()
	switch x := v.(type) {
	case int64:
		return float64(x)
	case int:
		return float64(x)
	case float64:
		return x
	}
	t.Fatalf("%v (%T) is not a number", v, v)
	return 0
}

func nodeState(t *testing.T, x *store.Execution, id string) *store.NodeState {
	t.Helper()
	for _, n := range x.Nodes {
		if n.NodeID == id {
			return n
		}
	}
	t.Fatalf("execution has no node %q", id)
	return nil
}

func execute(t *testing.T, e *executor.Executor, req *executor.Request) *store.Execution {
	t.Helper()
	x, err := e.Execute(t.Context(), req)
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	return x
}

func wantStatus(t *testing.T, x *store.Execution, want store.ExecutionStatus) {
	t.Helper()
	if x.Status != want {
		t.Fatalf("status = %v (error %+v), want %v", x.Status, x.Error, want)
	}
}

// readAll reads a subscription to its end.
func readAll(t *testing.T, s *executor.Subscription) []*store.Event {
	t.Helper()
	var evs []*store.Event
	for {
		ev, err := s.Next(t.Context())
		if errors.Is(err, io.EOF) {
			return evs
		}
		if err != nil {
			t.Fatalf("Next after %d events: %v", len(evs), err)
		}
		evs = append(evs, ev)
	}
}

func TestNamedOutputMappedToInput(t *testing.T) {
	e := newExecutor(t, executor.Config{})
	w := workflow("named", []store.Node{
		codeNode("fetch", `result = {"rows": [1, 2, 3], "other": "x"}`),
		codeNode("count", `result = {"n": len(data), "keys": sorted(inputs.keys())}`),
	}, conn("fetch", "rows", "count", "data"))
	x := execute(t, e, &executor.Request{Workflow: w})
	wantStatus(t, x, store.ExecutionCompleted)
	res := executor.Results(x)
	count := res["count"].(map[string]any)
	if got := num(t, count["n"]); got != 3 {
		t.Errorf(`result["count"]["n"] = %v, want 3`, got)
	}
	if diff := cmp.Diff([]any{"data"}, count["keys"]); diff != "" {
		t.Errorf("inputs of count (-want +got):\n%s", diff)
	}
}

func TestNamedOutputDefaultsToSameName(t *testing.T) {
	e := newExecutor(t, executor.Config{})
	w := workflow("samename", []store.Node{
		codeNode("a", `result = {"msg": "hi"}`),
		codeNode("b", `result = {"echo": msg}`),
	}, conn("a", "msg", "b", ""))
	x := execute(t, e, &executor.Request{Workflow: w})
	wantStatus(t, x, store.ExecutionCompleted)
	if got := executor.Results(x)["b"].(map[string]any)["echo"]; got != "hi" {
		t.Errorf("echo = %v, want hi", got)
	}
}

func TestPassAll(t *testing.T) {
	e := newExecutor(t, executor.Config{})
	w := workflow("passall", []store.Node{
		codeNode("a", `result = {"x": 2, "y": 3}`),
		codeNode("b", `result = {"product": x * y}`),
	}, conn("a", "", "b", ""))
	x := execute(t, e, &executor.Request{Workflow: w})
	wantStatus(t, x, store.ExecutionCompleted)
	if got := num(t, executor.Results(x)["b"].(map[string]any)["product"]); got != 6 {
		t.Errorf("product = %v, want 6", got)
	}
}

// The Python SDK's three-step pipeline: the last node reads the first
// node's outputs through two pass-all connections; nearer nodes win.
func TestPassAllChainPropagates(t *testing.T) {
	e := newExecutor(t, executor.Config{})
	w := workflow("chain3", []store.Node{
		codeNode("load", `result = {"items": [1, 2, 3], "stage": "load"}`),
		codeNode("transform", `result = {"doubled": [i * 2 for i in items], "stage": "transform"}`),
		codeNode("report", `def sum_(l):
    t = 0
    for v in l:
        t += v
    return t
result = {"n": len(items), "sum": sum_(doubled), "stage": stage}
`),
	}, conn("load", "", "transform", ""), conn("transform", "", "report", ""))
	x := execute(t, e, &executor.Request{Workflow: w})
	wantStatus(t, x, store.ExecutionCompleted)
	rep := executor.Results(x)["report"].(map[string]any)
	if got := num(t, rep["n"]); got != 3 {
		t.Errorf("n = %v, want 3", got)
	}
	if got := num(t, rep["sum"]); got != 12 {
		t.Errorf("sum = %v, want 12", got)
	}
	if got := rep["stage"]; got != "transform" {
		t.Errorf("stage = %v, want transform (the nearer node wins)", got)
	}
}

func TestInputsShadowParameters(t *testing.T) {
	e := newExecutor(t, executor.Config{})
	w := workflow("precedence", []store.Node{
		codeNode("a", `result = {"x": "from a"}`),
		codeNode("b", `result = {"x": x, "param": parameters["x"], "y": y}`),
	}, conn("a", "x", "b", ""))
	x := execute(t, e, &executor.Request{Workflow: w, Parameters: map[string]any{"x": "param", "y": "only param"}})
	wantStatus(t, x, store.ExecutionCompleted)
	want := map[string]any{"x": "from a", "param": "param", "y": "only param"}
	if diff := cmp.Diff(want, executor.Results(x)["b"]); diff != "" {
		t.Errorf("result of b (-want +got):\n%s", diff)
	}
}

func TestMissingOutputKey(t *testing.T) {
	e := newExecutor(t, executor.Config{})
	w := workflow("missing", []store.Node{
		codeNode("a", `result = {"x": 1}`),
		codeNode("b", `result = {"v": v}`),
	}, conn("a", "nope", "b", "v"))
	x := execute(t, e, &executor.Request{Workflow: w})
	wantStatus(t, x, store.ExecutionFailed)
	if x.Error == nil || x.Error.Code != executor.CodeMissingOutput || x.Error.NodeID != "b" {
		t.Fatalf("error = %+v, want MISSING_OUTPUT on node b", x.Error)
	}
	for _, s := range []string{"'a'", "'b'", "'nope'"} {
		if !strings.Contains(x.Error.Message, s) {
			t.Errorf("error message %q does not name %s", x.Error.Message, s)
		}
	}
	if got := nodeState(t, x, "b").Status; got != store.NodeFailed {
		t.Errorf("node b status = %v, want FAILED", got)
	}
}

// barrier releases its callers once want of them have arrived.
type barrier struct {
	mu      sync.Mutex
	arrived int
	want    int
	open    chan struct{}
}

func newBarrier(want int) *barrier { return &barrier{want: want, open: make(chan struct{})} }

func (b *barrier) arrive(ctx context.Context) error {
	b.mu.Lock()
	b.arrived++
	if b.arrived == b.want {
		close(b.open)
	}
	b.mu.Unlock()
	select {
	case <-b.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// testBroker provides test resources: "barrier" (opening it waits at a
// barrier), "counter" (opening it counts) and "vault" (a secret value).
type testBroker struct {
	barrier  *barrier
	count    atomic.Int64
	sessions atomic.Int64
	closed   atomic.Int64
}

func (b *testBroker) Session(string, map[string]store.ResourceSpec, *secrets.Redactor) executor.AttemptResources {
	b.sessions.Add(1)
	return testSession{b}
}

type testSession struct{ b *testBroker }

func (s testSession) Open(ctx context.Context, name string) (starlark.Value, error) {
	switch name {
	case "barrier":
		if err := s.b.barrier.arrive(ctx); err != nil {
			return nil, err
		}
		return starlark.True, nil
	case "counter":
		return starlark.MakeInt64(s.b.count.Add(1)), nil
	case "vault":
		return starlark.String(vaultSecret), nil
	}
	return nil, fmt.Errorf("resource '%s' was not provided in the request", name)
}

func (s testSession) Close() { s.b.closed.Add(1) }

// Two independent branches must run at the same time: each waits at a
// two-party barrier, so a sequential executor would never finish them.
func TestParallelBranchesOverlap(t *testing.T) {
	broker := &testBroker{barrier: newBarrier(2)}
	e := newExecutor(t, executor.Config{Resources: broker})
	branch := func(id string) store.Node {
		n := codeNode(id, `ok = get_resource("barrier")
result = {"ok": ok}`)
		n.RequiredResources = []string{"barrier"}
		return n
	}
	w := workflow("diamond", []store.Node{
		codeNode("root", `result = {"v": 1}`),
		branch("left"),
		branch("right"),
		codeNode("join", `result = {"both": left_ok and right_ok}`),
	},
		conn("root", "", "left", ""), conn("root", "", "right", ""),
		conn("left", "ok", "join", "left_ok"), conn("right", "ok", "join", "right_ok"))
	x := execute(t, e, &executor.Request{Workflow: w})
	wantStatus(t, x, store.ExecutionCompleted)
	if got := executor.Results(x)["join"].(map[string]any)["both"]; got != true {
		t.Errorf("both = %v, want true", got)
	}
	if s, c := broker.sessions.Load(), broker.closed.Load(); s != 2 || c != 2 {
		t.Errorf("resource sessions opened %d, closed %d; want 2 and 2", s, c)
	}
}

func TestRetryThenSucceed(t *testing.T) {
	e := newExecutor(t, executor.Config{})
	n := codeNode("flaky", `if execution.attempt < 3:
    fail("flaky failure")
result = {"attempt": execution.attempt}`)
	n.Retry = store.RetryPolicy{MaxAttempts: 3, InitialBackoff: time.Millisecond, Multiplier: 2}
	x := execute(t, e, &executor.Request{Workflow: workflow("retry", []store.Node{n})})
	wantStatus(t, x, store.ExecutionCompleted)
	st := nodeState(t, x, "flaky")
	if st.Attempts != 3 {
		t.Errorf("attempts = %d, want 3", st.Attempts)
	}
	if got := num(t, st.Result["attempt"]); got != 3 {
		t.Errorf("execution.attempt seen by code = %v, want 3", got)
	}
	sub, err := e.Subscribe(t.Context(), x.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var retries []*store.Event
	for _, ev := range readAll(t, sub) {
		if ev.Kind == store.EventNodeRetrying {
			retries = append(retries, ev)
		}
	}
	if len(retries) != 2 {
		t.Fatalf("got %d NodeRetrying events, want 2", len(retries))
	}
	for k, ev := range retries {
		if ev.Attempt != int32(k+1) || ev.Backoff != time.Millisecond<<k || ev.Error == nil ||
			!strings.Contains(ev.Error.Message, "flaky failure") {
			t.Errorf("retry event %d = attempt %d backoff %v error %+v; want attempt %d backoff %v and the failure",
				k, ev.Attempt, ev.Backoff, ev.Error, k+1, time.Millisecond<<k)
		}
	}
}

func TestErrorNamesNodeLineAndCause(t *testing.T) {
	e := newExecutor(t, executor.Config{})
	n := codeNode("bad", "x = 1\ny = x // 0\nresult = {}\n")
	n.Retry = store.RetryPolicy{MaxAttempts: 2, InitialBackoff: time.Millisecond}
	x := execute(t, e, &executor.Request{Workflow: workflow("fails", []store.Node{n})})
	wantStatus(t, x, store.ExecutionFailed)
	xe := x.Error
	if xe == nil || xe.NodeID != "bad" || xe.Code == "" || xe.Traceback == "" {
		t.Fatalf("error = %+v, want node id, code and traceback", xe)
	}
	if !strings.Contains(xe.Message, "'bad'") || !strings.Contains(xe.Message, "2:") ||
		!strings.Contains(xe.Message, "division by zero") {
		t.Errorf("message %q should name the node, line 2 and the cause", xe.Message)
	}
	if got := nodeState(t, x, "bad").Attempts; got != 2 {
		t.Errorf("attempts = %d, want 2", got)
	}
}

func TestNodeTimeout(t *testing.T) {
	e := newExecutor(t, executor.Config{})
	n := codeNode("slow", "time.sleep(3600)\nresult = {}")
	n.Timeout = 20 * time.Millisecond
	w := workflow("nodetimeout", []store.Node{n, codeNode("after", "result = {}")}, conn("slow", "", "after", ""))
	x := execute(t, e, &executor.Request{Workflow: w})
	wantStatus(t, x, store.ExecutionTimedOut)
	if x.Error == nil || x.Error.Code != executor.CodeTimeout || x.Error.NodeID != "slow" {
		t.Errorf("error = %+v, want TIMEOUT on node slow", x.Error)
	}
	if got := nodeState(t, x, "slow").Status; got != store.NodeTimedOut {
		t.Errorf("slow status = %v, want TIMED_OUT", got)
	}
	if got := nodeState(t, x, "after").Status; got != store.NodeSkipped {
		t.Errorf("after status = %v, want SKIPPED", got)
	}
}

func TestWorkflowTimeout(t *testing.T) {
	e := newExecutor(t, executor.Config{})
	w := workflow("wftimeout", []store.Node{codeNode("slow", "time.sleep(3600)\nresult = {}")})
	w.Timeout = time.Hour // the request overrides it
	x := execute(t, e, &executor.Request{Workflow: w, Timeout: 20 * time.Millisecond})
	wantStatus(t, x, store.ExecutionTimedOut)
	if x.Error == nil || x.Error.Code != executor.CodeTimeout {
		t.Errorf("error = %+v, want TIMEOUT", x.Error)
	}
	if got := nodeState(t, x, "slow").Status; got != store.NodeTimedOut {
		t.Errorf("slow status = %v, want TIMED_OUT", got)
	}
}

// waitFor reads s until an event matching ok arrives.
func waitFor(t *testing.T, s *executor.Subscription, ok func(*store.Event) bool) {
	t.Helper()
	for {
		ev, err := s.Next(t.Context())
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if ok(ev) {
			return
		}
	}
}

// interruptWait bounds the wait for a run whose node sleeps for an hour
// to end once it is cancelled: well within the default node timeout, which
// would end the sleep too.
const interruptWait = 10 * time.Second

func TestCancel(t *testing.T) {
	e := newExecutor(t, executor.Config{})
	w := workflow("cancel", []store.Node{
		codeNode("slow", "time.sleep(3600)\nresult = {}"),
		codeNode("after", "result = {}"),
	}, conn("slow", "", "after", ""))
	id, err := e.Start(t.Context(), &executor.Request{Workflow: w})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := e.Subscribe(t.Context(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	waitFor(t, sub, func(ev *store.Event) bool { return ev.Kind == store.EventNodeStarted && ev.NodeID == "slow" })
	// Cancel returns once the run has ended, which takes the running
	// attempt being interrupted: without that, the node would sleep on.
	ctx, cancel := context.WithTimeout(t.Context(), interruptWait)
	defer cancel()
	x, err := e.Cancel(ctx, id)
	if err != nil {
		t.Fatalf("Cancel: %v (the running attempt was not interrupted)", err)
	}
	wantStatus(t, x, store.ExecutionCancelled)
	if got := nodeState(t, x, "slow").Status; got != store.NodeCancelled {
		t.Errorf("slow status = %v, want CANCELLED", got)
	}
	if got := nodeState(t, x, "after").Status; got != store.NodeSkipped {
		t.Errorf("after status = %v, want SKIPPED", got)
	}
	rest := readAll(t, sub)
	if last := rest[len(rest)-1]; last.Kind != store.EventExecutionCancelled {
		t.Errorf("last event kind = %v, want ExecutionCancelled", last.Kind)
	}
	stored, err := openStoreOf(t, e, id)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Status != store.ExecutionCancelled {
		t.Errorf("journalled status = %v, want CANCELLED", stored.Status)
	}
}

// openStoreOf returns the execution as Get reports it.
func openStoreOf(t *testing.T, e *executor.Executor, id string) (*store.Execution, error) {
	t.Helper()
	return e.Get(t.Context(), id)
}

// The first failing node fails the execution: a node running beside it is
// cancelled and nodes that did not start are skipped.
func TestFailFast(t *testing.T) {
	broker := &testBroker{barrier: newBarrier(2)}
	e := newExecutor(t, executor.Config{Resources: broker})
	bad := codeNode("bad", "get_resource('barrier')\nfail('bad node')")
	bad.RequiredResources = []string{"barrier"}
	slow := codeNode("slow", "get_resource('barrier')\ntime.sleep(3600)\nresult = {}")
	slow.RequiredResources = []string{"barrier"}
	w := workflow("failfast", []store.Node{bad, slow, codeNode("after", "result = {}")}, conn("bad", "", "after", ""))
	ctx, cancel := context.WithTimeout(t.Context(), interruptWait)
	defer cancel()
	x, err := e.Execute(ctx, &executor.Request{Workflow: w})
	if err != nil {
		t.Fatalf("Execute: %v (node slow was not interrupted)", err)
	}
	wantStatus(t, x, store.ExecutionFailed)
	if x.Error == nil || x.Error.NodeID != "bad" || !strings.Contains(x.Error.Message, "bad node") {
		t.Errorf("error = %+v, want the failure of node bad", x.Error)
	}
	want := map[string]store.NodeStatus{"bad": store.NodeFailed, "slow": store.NodeCancelled, "after": store.NodeSkipped}
	for id, st := range want {
		if got := nodeState(t, x, id).Status; got != st {
			t.Errorf("node %s status = %v, want %v", id, got, st)
		}
	}
}

// Events are dense from 1, the first is ExecutionStarted, the last is the
// terminal event carrying the same Execution that Execute returned, and the
// journal in the store holds the same events.
func TestEventsDenseAndTerminal(t *testing.T) {
	st := openStore(t)
	e := newExecutor(t, executor.Config{Store: st})
	w := workflow("events", []store.Node{
		codeNode("a", `logger.info("hello", n = 1)
result = {"x": 1}`),
		codeNode("b", `result = {"y": x + 1}`),
	}, conn("a", "", "b", ""))
	x := execute(t, e, &executor.Request{Workflow: w, Parameters: map[string]any{"p": "q"}})
	wantStatus(t, x, store.ExecutionCompleted)

	sub, err := e.Subscribe(t.Context(), x.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	evs := readAll(t, sub)
	var kinds []store.EventKind
	for i, ev := range evs {
		if ev.Seq != int64(i+1) || ev.ExecutionID != x.ID {
			t.Errorf("event %d has seq %d execution %s, want seq %d execution %s", i, ev.Seq, ev.ExecutionID, i+1, x.ID)
		}
		kinds = append(kinds, ev.Kind)
	}
	wantKinds := []store.EventKind{
		store.EventExecutionStarted,
		store.EventNodeStarted, store.EventNodeLog, store.EventNodeCompleted,
		store.EventNodeStarted, store.EventNodeCompleted,
		store.EventExecutionCompleted,
	}
	if diff := cmp.Diff(wantKinds, kinds); diff != "" {
		t.Fatalf("event kinds (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(x, evs[len(evs)-1].Execution); diff != "" {
		t.Errorf("terminal event execution differs from Execute's (-want +got):\n%s", diff)
	}

	// The journal: the same events, readable by a process that did not run it.
	stored, err := st.ListEvents(t.Context(), x.ID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != len(evs) {
		t.Fatalf("journal has %d events, want %d", len(stored), len(evs))
	}
	for i := range stored {
		if stored[i].Seq != evs[i].Seq || stored[i].Kind != evs[i].Kind {
			t.Errorf("journal event %d = seq %d kind %v, want seq %d kind %v",
				i, stored[i].Seq, stored[i].Kind, evs[i].Seq, evs[i].Kind)
		}
	}
	jx, err := st.GetExecution(t.Context(), x.ID)
	if err != nil {
		t.Fatal(err)
	}
	if jx.Status != store.ExecutionCompleted || len(jx.Nodes) != 2 || num(t, jx.Nodes[1].Result["y"]) != 2 {
		t.Errorf("journalled execution = %+v, want COMPLETED with b's result", jx)
	}

	// Resume: another executor on the same store, after seq 3.
	other := newExecutor(t, executor.Config{Store: st})
	sub2, err := other.Subscribe(t.Context(), x.ID, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer sub2.Close()
	tail := readAll(t, sub2)
	if len(tail) != len(evs)-3 || tail[0].Seq != 4 || !tail[len(tail)-1].Kind.Terminal() {
		t.Errorf("resumed after seq 3: got %d events starting at seq %d, want %d starting at 4 ending terminal",
			len(tail), tail[0].Seq, len(evs)-3)
	}
}

// A subscriber that reads nothing does not block the execution: the run
// completes, and the subscriber is told where to resume, and resumes.
func TestIdleSubscriberDoesNotBlock(t *testing.T) {
	broker := &testBroker{barrier: newBarrier(2)}
	e := newExecutor(t, executor.Config{SubscriberBuffer: 4, Resources: broker})
	talk := codeNode("talk", `get_resource("barrier")
for i in range(50):
    logger.info("line", i = i)
result = {"done": True}`)
	talk.RequiredResources = []string{"barrier"}
	w := workflow("chatty", []store.Node{talk})
	req := &executor.Request{Workflow: w, IdempotencyKey: "k1", Caller: "tester"}
	id, err := e.Start(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	idle, err := e.Subscribe(t.Context(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	// The node logs only once the subscriber is registered.
	if err := broker.barrier.arrive(t.Context()); err != nil {
		t.Fatal(err)
	}
	x := execute(t, e, req) // same idempotency key: waits for the same run
	if x.ID != id {
		t.Fatalf("Execute with the same idempotency key ran execution %s, want %s", x.ID, id)
	}
	wantStatus(t, x, store.ExecutionCompleted)

	var last int64
	var lagErr *executor.LaggingError
	for {
		ev, err := idle.Next(t.Context())
		if err != nil {
			if !errors.As(err, &lagErr) || !errors.Is(err, executor.ErrLagging) {
				t.Fatalf("idle subscriber ended with %v, want ErrLagging", err)
			}
			break
		}
		last = ev.Seq
	}
	if lagErr.ResumeAfter != last {
		t.Errorf("ResumeAfter = %d, want the last seq received %d", lagErr.ResumeAfter, last)
	}
	again, err := e.Subscribe(t.Context(), id, lagErr.ResumeAfter)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	rest := readAll(t, again)
	if rest[0].Seq != last+1 || !rest[len(rest)-1].Kind.Terminal() {
		t.Errorf("resumed at seq %d ending with %v, want seq %d ending terminal", rest[0].Seq, rest[len(rest)-1].Kind, last+1)
	}
	for i := 1; i < len(rest); i++ {
		if rest[i].Seq != rest[i-1].Seq+1 {
			t.Fatalf("gap after resume: seq %d then %d", rest[i-1].Seq, rest[i].Seq)
		}
	}
}

func TestIdempotentConcurrentExecute(t *testing.T) {
	broker := &testBroker{}
	e := newExecutor(t, executor.Config{Resources: broker})
	n := codeNode("once", `result = {"run": get_resource("counter")}`)
	n.RequiredResources = []string{"counter"}
	req := &executor.Request{Workflow: workflow("idem", []store.Node{n}), IdempotencyKey: "order-1", Caller: "svc"}
	var wg sync.WaitGroup
	xs := make([]*store.Execution, 4)
	errs := make([]error, 4)
	for i := range xs {
		wg.Go(func() { xs[i], errs[i] = e.Execute(t.Context(), req) })
	}
	wg.Wait()
	for i := range xs {
		if errs[i] != nil {
			t.Fatalf("Execute %d: %v", i, errs[i])
		}
		if xs[i].ID != xs[0].ID {
			t.Errorf("Execute %d ran execution %s, want %s", i, xs[i].ID, xs[0].ID)
		}
	}
	if got := broker.count.Load(); got != 1 {
		t.Errorf("the workflow ran %d times, want once", got)
	}
}

// A run started with Start continues after the caller's context ends.
func TestStartOutlivesCallerContext(t *testing.T) {
	e := newExecutor(t, executor.Config{})
	w := workflow("outlive", []store.Node{codeNode("a", "time.sleep(0.05)\nresult = {\"ok\": True}")})
	ctx, cancel := context.WithCancel(t.Context())
	id, err := e.Start(ctx, &executor.Request{Workflow: w})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	sub, err := e.Subscribe(t.Context(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	evs := readAll(t, sub)
	if last := evs[len(evs)-1]; last.Kind != store.EventExecutionCompleted {
		t.Errorf("last event = %v (%+v), want ExecutionCompleted", last.Kind, last.Execution.Error)
	}
}

// vaultSecret is the value of the "vault" test resource.
const vaultSecret = "hunter2-secret"

// A secret that a resource hands to node code never reaches results, logs,
// events or errors, in memory or in the journal.
func TestRedaction(t *testing.T) {
	st := openStore(t)
	var serverLog lockedBuffer
	e := newExecutor(t, executor.Config{
		Store:     st,
		Logger:    slog.New(slog.NewJSONHandler(&serverLog, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Resources: &testBroker{},
		NewRedactor: func() *secrets.Redactor {
			r := secrets.NewRedactor()
			r.AddString(vaultSecret) // as the broker does for a secret it resolves
			return r
		},
	})
	leak := codeNode("leak", `pw = get_resource("vault")
logger.info("password is " + pw, pw = pw)
result = {"pw": pw, "nested": [{"pw": pw}]}`)
	leak.RequiredResources = []string{"vault"}
	fail := codeNode("fail", `pw = get_resource("vault")
fail("boom " + pw)`)
	fail.RequiredResources = []string{"vault"}
	w := workflow("leaky", []store.Node{leak, fail}, conn("leak", "", "fail", ""))
	x := execute(t, e, &executor.Request{Workflow: w})
	wantStatus(t, x, store.ExecutionFailed)
	evs, err := st.ListEvents(t.Context(), x.ID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	jx, err := st.GetExecution(t.Context(), x.ID)
	if err != nil {
		t.Fatal(err)
	}
	for what, v := range map[string]any{"execution": x, "events": evs, "journalled execution": jx} {
		if s := fmt.Sprintf("%+v", deref(v)); strings.Contains(s, vaultSecret) {
			t.Errorf("the secret appears in the %s: %s", what, s)
		}
	}
	if got := nodeState(t, x, "leak").Result["pw"]; got != "[REDACTED]" {
		t.Errorf("result pw = %v, want [REDACTED]", got)
	}
	if !strings.Contains(x.Error.Message, "boom [REDACTED]") {
		t.Errorf("error message %q, want the redacted failure", x.Error.Message)
	}
	var logs int
	for _, ev := range evs {
		if ev.Kind == store.EventNodeLog {
			logs++
			if ev.Message != "password is [REDACTED]" {
				t.Errorf("log message %q, want it redacted", ev.Message)
			}
		}
	}
	if logs != 1 {
		t.Errorf("got %d log events, want 1", logs)
	}
	// The server log has the node's line and the failed execution's
	// warning, both redacted.
	out := serverLog.String()
	if strings.Contains(out, vaultSecret) {
		t.Errorf("the secret appears in the server log: %s", out)
	}
	for _, want := range []string{`"msg":"password is [REDACTED]"`, `"pw":"[REDACTED]"`,
		`"msg":"execution did not complete"`, `"error":"node 'fail' failed`} {
		if !strings.Contains(out, want) {
			t.Errorf("server log lacks %s: %s", want, out)
		}
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// With NoNodeLogs, node lines stay out of the server log and are still
// events.
func TestNoNodeLogs(t *testing.T) {
	st := openStore(t)
	var serverLog lockedBuffer
	e := newExecutor(t, executor.Config{Store: st, NoNodeLogs: true,
		Logger: slog.New(slog.NewJSONHandler(&serverLog, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	x := execute(t, e, &executor.Request{Workflow: workflow("quiet", []store.Node{codeNode("a", `logger.error("node says hi")
result = {}`)})})
	wantStatus(t, x, store.ExecutionCompleted)
	if out := serverLog.String(); strings.Contains(out, "node says hi") {
		t.Errorf("the node's line is in the server log: %s", out)
	}
	evs, err := st.ListEvents(t.Context(), x.ID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ev := range evs {
		found = found || ev.Kind == store.EventNodeLog && ev.Message == "node says hi"
	}
	if !found {
		t.Error("the node's line is not an event")
	}
}

// deref renders pointers' contents for the leak check.
func deref(v any) any {
	switch x := v.(type) {
	case *store.Execution:
		out := []any{*x, x.Error}
		for _, n := range x.Nodes {
			out = append(out, *n, n.Error)
		}
		return out
	case []*store.Event:
		var out []any
		for _, ev := range x {
			out = append(out, *ev, ev.Error)
			if ev.Execution != nil {
				out = append(out, deref(ev.Execution))
			}
		}
		return out
	}
	return v
}

func TestEphemeralWorkflow(t *testing.T) {
	st := openStore(t)
	e := newExecutor(t, executor.Config{Store: st})
	w := workflow("fast", []store.Node{codeNode("a", `result = {"v": 1}`)})
	w.DisableJournal = true
	x := execute(t, e, &executor.Request{Workflow: w})
	wantStatus(t, x, store.ExecutionCompleted)
	if _, err := st.GetExecution(t.Context(), x.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("store.GetExecution of an ephemeral execution: %v, want ErrNotFound", err)
	}
	got, err := e.Get(t.Context(), x.ID)
	if err != nil {
		t.Fatalf("Get of a recent ephemeral execution: %v", err)
	}
	if diff := cmp.Diff(x, got); diff != "" {
		t.Errorf("Get (-Execute +Get):\n%s", diff)
	}
}

func TestInvalidWorkflow(t *testing.T) {
	e := newExecutor(t, executor.Config{})
	tests := []struct {
		name string
		w    *store.Workflow
	}{
		{"cycle", workflow("cyc", []store.Node{codeNode("a", "result = {}"), codeNode("b", "result = {}")},
			conn("a", "", "b", ""), conn("b", "", "a", ""))},
		{"unknown node", workflow("unk", []store.Node{codeNode("a", "result = {}")}, conn("a", "", "zz", ""))},
		{"syntax error", workflow("syn", []store.Node{codeNode("a", "result = {")})},
	}
	// The whole text of the syntax error: the node is named once.
	wantMsg := map[string]string{"syntax error": `start execution of syn v1: invalid workflow: node "a": 1:11: got end of file, want primary expression`}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.Execute(t.Context(), &executor.Request{Workflow: tt.w})
			if !errors.Is(err, executor.ErrInvalidWorkflow) {
				t.Errorf("Execute = %v, want ErrInvalidWorkflow", err)
			}
			if w, ok := wantMsg[tt.name]; ok && err.Error() != w {
				t.Errorf("Execute = %q, want %q", err, w)
			}
		})
	}
}

// Close interrupts durable runs without finishing them in the journal
// (recovery resumes them) and refuses new work.
func TestCloseLeavesDurableRunForRecovery(t *testing.T) {
	st := openStore(t)
	e := executor.New(executor.Config{Store: st, Logger: slog.New(slog.DiscardHandler)})
	w := workflow("interrupted", []store.Node{codeNode("slow", "time.sleep(3600)\nresult = {}")})
	id, err := e.Start(t.Context(), &executor.Request{Workflow: w})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := e.Subscribe(t.Context(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	waitFor(t, sub, func(ev *store.Event) bool { return ev.Kind == store.EventNodeStarted })
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // do not drain
	if err := e.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Close = %v, want context.Canceled (runs interrupted)", err)
	}
	if _, err := e.Start(t.Context(), &executor.Request{Workflow: w}); !errors.Is(err, executor.ErrClosed) {
		t.Errorf("Start after Close = %v, want ErrClosed", err)
	}
	if _, err := sub.Next(t.Context()); !errors.Is(err, executor.ErrClosed) {
		t.Errorf("subscriber after Close: %v, want ErrClosed", err)
	}
	x, err := st.GetExecution(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if x.Status != store.ExecutionRunning {
		t.Errorf("journalled status after Close = %v, want RUNNING (left for recovery)", x.Status)
	}
}

// 100 subscribers of one execution all receive every event, in order.
func TestManySubscribers(t *testing.T) {
	broker := &testBroker{barrier: newBarrier(2)}
	e := newExecutor(t, executor.Config{Resources: broker})
	n := codeNode("talk", `get_resource("barrier")
for i in range(20):
    logger.info("line", i = i)
result = {}`)
	n.RequiredResources = []string{"barrier"}
	id, err := e.Start(t.Context(), &executor.Request{Workflow: workflow("many", []store.Node{n})})
	if err != nil {
		t.Fatal(err)
	}
	const watchers = 100
	subs := make([]*executor.Subscription, watchers)
	for i := range subs {
		if subs[i], err = e.Subscribe(t.Context(), id, 0); err != nil {
			t.Fatal(err)
		}
		defer subs[i].Close()
	}
	if err := broker.barrier.arrive(t.Context()); err != nil {
		t.Fatal(err)
	}
	counts := make([]int, watchers)
	errs := make([]error, watchers)
	var wg sync.WaitGroup
	for i, s := range subs {
		wg.Go(func() {
			for {
				ev, err := s.Next(t.Context())
				if errors.Is(err, io.EOF) {
					return
				}
				if err != nil {
					errs[i] = err
					return
				}
				if ev.Seq != int64(counts[i]+1) {
					errs[i] = fmt.Errorf("got seq %d after %d events", ev.Seq, counts[i])
					return
				}
				counts[i]++
			}
		})
	}
	wg.Wait()
	// ExecutionStarted, NodeStarted, 20 logs, NodeCompleted, terminal.
	const want = 24
	for i := range counts {
		if errs[i] != nil || counts[i] != want {
			t.Errorf("subscriber %d: %d events, error %v; want %d events", i, counts[i], errs[i], want)
		}
	}
}

// TestSubscribeFromTheEnd: a subscriber that asks for events after the
// terminal seq (or beyond it) of a finished or still running execution ends
// with io.EOF instead of waiting forever.
func TestSubscribeFromTheEnd(t *testing.T) {
	broker := &testBroker{barrier: newBarrier(2)}
	e := newExecutor(t, executor.Config{Resources: broker})
	n := codeNode("wait", `get_resource("barrier")
result = {}`)
	n.RequiredResources = []string{"barrier"}
	req := &executor.Request{Workflow: workflow("ending", []store.Node{n})}
	id, err := e.Start(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	// Subscribed while running, asking past the end the run will reach.
	early, err := e.Subscribe(t.Context(), id, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close()
	if err := broker.barrier.arrive(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if ev, err := early.Next(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("Next after seq 100 while running = %v, %v; want io.EOF", ev, err)
	}

	// ExecutionStarted, NodeStarted, NodeCompleted, terminal.
	const last = 4
	for _, after := range []int64{last, last + 3} {
		s, err := e.Subscribe(t.Context(), id, after)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := s.Next(ctx)
		s.Close()
		if !errors.Is(err, io.EOF) {
			t.Errorf("Next after seq %d of a finished run = %v, %v; want io.EOF", after, ev, err)
		}
	}
}

// Each logger level of node code reaches the journal as the same level.
func TestNodeLogLevels(t *testing.T) {
	st := openStore(t)
	e := newExecutor(t, executor.Config{Store: st})
	w := workflow("levels", []store.Node{codeNode("n", `logger.debug("d")
logger.info("i")
print("p")
logger.warning("w")
logger.warn("w2")
logger.error("e")
result = {}`)})
	x, err := e.Execute(t.Context(), &executor.Request{Workflow: w})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, x, store.ExecutionCompleted)
	evs, err := st.ListEvents(t.Context(), x.ID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]store.LogLevel{}
	for _, ev := range evs {
		if ev.Kind == store.EventNodeLog {
			got[ev.Message] = ev.Level
		}
	}
	want := map[string]store.LogLevel{
		"d": store.LogDebug, "i": store.LogInfo, "p": store.LogInfo,
		"w": store.LogWarning, "w2": store.LogWarning, "e": store.LogError,
	}
	if !maps.Equal(got, want) {
		t.Errorf("journalled levels %v, want %v", got, want)
	}
}
