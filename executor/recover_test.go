package executor_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.starlark.net/starlark"

	"github.com/kailash-gateway/kgw/executor"
	"github.com/kailash-gateway/kgw/internal/testenv"
	"github.com/kailash-gateway/kgw/secrets"
	"github.com/kailash-gateway/kgw/store"
	"github.com/kailash-gateway/kgw/store/postgres"
)

// tracker is a test resource shared by the executors of one test, as an
// external system would be: `get_resource("track")(node)` records a run of
// node and, while the node is blocked, waits until the attempt is
// cancelled (by a crash) or the node is unblocked.
type tracker struct {
	mu      sync.Mutex
	runs    map[string]int
	blocked map[string]chan struct{} // closed when unblocked
	deaf    map[string]bool          // blocked nodes that ignore cancellation
	entered chan string              // receives each blocked node that started waiting
	left    chan string              // receives each blocked node that stopped waiting
}

func newTracker() *tracker {
	return &tracker{runs: make(map[string]int), blocked: make(map[string]chan struct{}), deaf: make(map[string]bool),
		entered: make(chan string, 16), left: make(chan string, 16)}
}

// blockDeaf blocks node like block, but the node does not notice its
// attempt's cancellation: like an external call that completes anyway, it
// returns only once unblocked.
func (t *tracker) blockDeaf(node string) {
	t.block(node)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.deaf[node] = true
}

func (t *tracker) block(node string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.blocked[node] = make(chan struct{})
}

func (t *tracker) unblock(node string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ch := t.blocked[node]; ch != nil {
		close(ch)
		delete(t.blocked, node)
	}
}

func (t *tracker) counts() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]int, len(t.runs))
	for k, v := range t.runs {
		out[k] = v
	}
	return out
}

// waitEntered waits until node is blocked inside an attempt.
func (t *tracker) waitEntered(tb testing.TB, ctx context.Context, node string) {
	tb.Helper()
	for {
		select {
		case n := <-t.entered:
			if n == node {
				return
			}
		case <-ctx.Done():
			tb.Fatalf("node %s never started: %v", node, ctx.Err())
		}
	}
}

func (t *tracker) Session(string, map[string]store.ResourceSpec, *secrets.Redactor) executor.AttemptResources {
	return trackSession{t}
}

type trackSession struct{ t *tracker }

func (s trackSession) Open(ctx context.Context, name string) (starlark.Value, error) {
	if name != "track" {
		return nil, fmt.Errorf("resource '%s' was not provided in the request", name)
	}
	t := s.t
	return starlark.NewBuiltin("track", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var node string
		if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &node); err != nil {
			return nil, err
		}
		t.mu.Lock()
		t.runs[node]++
		ch, deaf := t.blocked[node], t.deaf[node]
		t.mu.Unlock()
		if ch != nil {
			t.entered <- node
			defer func() { t.left <- node }()
			if deaf {
				<-ch
				return starlark.None, nil
			}
			select {
			case <-ch:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return starlark.None, nil
	}), nil
}

func (trackSession) Close() {}

// chainWorkflow is a five-node pass-all chain; every node records its run.
// With base = 1 the last node's total is 2 + 20 + 22 + 23 = 67, which needs
// the outputs of a, b and c to flow down the chain.
func chainWorkflow(name string) *store.Workflow {
	node := func(id, code string) store.Node {
		n := codeNode(id, `get_resource("track")("`+id+`")`+"\n"+code)
		n.RequiredResources = []string{"track"}
		return n
	}
	return &store.Workflow{
		Name: name,
		Nodes: []store.Node{
			node("a", `result = {"from_a": base + 1}`),
			node("b", `result = {"from_b": from_a * 10}`),
			node("c", `result = {"from_c": from_b + from_a}`),
			node("d", `result = {"from_d": from_c + 1}`),
			node("e", `result = {"total": from_a + from_b + from_c + from_d, "attempt": execution.attempt}`),
		},
		Connections: []store.Connection{
			{FromNode: "a", ToNode: "b"}, {FromNode: "b", ToNode: "c"},
			{FromNode: "c", ToNode: "d"}, {FromNode: "d", ToNode: "e"},
		},
	}
}

// register stores w in st and returns the stored version.
func register(t *testing.T, st store.Store, w *store.Workflow) *store.Workflow {
	t.Helper()
	stored, err := st.CreateWorkflowVersion(t.Context(), w)
	if err != nil {
		t.Fatalf("CreateWorkflowVersion: %v", err)
	}
	return stored
}

// newCrashable returns an Executor that the test crashes itself (or that
// is closed when the test ends).
func newCrashable(t *testing.T, cfg executor.Config) *executor.Executor {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := executor.New(cfg)
	t.Cleanup(func() { e.Crash() })
	return e
}

// startBlocked starts the chain on e and returns once node c is blocked
// in its first attempt and its NodeStarted event is journalled.
func startBlocked(t *testing.T, e *executor.Executor, tr *tracker, w *store.Workflow, key string) string {
	t.Helper()
	tr.block("c")
	id, err := e.Start(t.Context(), &executor.Request{
		Workflow: w, Parameters: map[string]any{"base": int64(1)}, IdempotencyKey: key, Caller: "svc",
	})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	sub, err := e.Subscribe(t.Context(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	waitFor(t, sub, func(ev *store.Event) bool { return ev.Kind == store.EventNodeStarted && ev.NodeID == "c" })
	tr.waitEntered(t, t.Context(), "c")
	return id
}

// resumeElsewhere recovers execution id in a new executor on st (the one
// unfinished execution there) and returns its final state, read from the
// terminal event of its history.
func resumeElsewhere(t *testing.T, st store.Store, tr *tracker, id string) *store.Execution {
	t.Helper()
	b := newExecutor(t, executor.Config{Store: st, Resources: tr, RecoverAllOnStart: true})
	if n, err := b.Recover(t.Context()); err != nil || n != 1 {
		t.Fatalf("Recover = %d, %v; want 1", n, err)
	}
	sub, err := b.Subscribe(t.Context(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	evs := readAll(t, sub)
	return evs[len(evs)-1].Execution
}

// checkResumedChain checks the end state of a chain resumed after node c
// was interrupted: everything ran once except c, which ran twice, the
// result is complete and the journal's events are dense and unique.
func checkResumedChain(t *testing.T, st store.Store, tr *tracker, x *store.Execution) []*store.Event {
	t.Helper()
	wantStatus(t, x, store.ExecutionCompleted)
	if d := cmp.Diff(map[string]int{"a": 1, "b": 1, "c": 2, "d": 1, "e": 1}, tr.counts()); d != "" {
		t.Errorf("node runs (-want +got):\n%s", d)
	}
	e := executor.Results(x)["e"].(map[string]any)
	if got := num(t, e["total"]); got != 67 {
		t.Errorf("total = %v, want 67 (the reloaded results of a and b flow down the chain)", got)
	}
	// Attempt numbers are the execution's epoch plus the node's failed
	// attempts: every node that runs after the claim (epoch 2) is numbered
	// at least 2, above anything that may have run before the crash.
	if got := num(t, e["attempt"]); got != 2 {
		t.Errorf("attempt of e = %v, want 2", got)
	}
	wantAttempts := map[string]int32{"a": 1, "b": 1, "c": 2, "d": 2, "e": 2}
	for id, want := range wantAttempts {
		if got := nodeState(t, x, id).Attempts; got != want {
			t.Errorf("node %s attempts = %d, want %d", id, got, want)
		}
	}
	evs, err := st.ListEvents(t.Context(), x.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var starts, cStarts []string
	for i, ev := range evs {
		if ev.Seq != int64(i+1) {
			t.Fatalf("journalled event %d has seq %d: not dense", i, ev.Seq)
		}
		switch {
		case ev.Kind == store.EventExecutionStarted:
			starts = append(starts, fmt.Sprintf("resumed=%v", ev.Resumed))
		case ev.Kind == store.EventNodeStarted && ev.NodeID == "c":
			cStarts = append(cStarts, fmt.Sprintf("attempt %d", ev.Attempt))
		case ev.Kind == store.EventNodeStarted && (ev.NodeID == "a" || ev.NodeID == "b") && ev.Attempt != 1:
			t.Errorf("node %s started again (attempt %d) after the resume", ev.NodeID, ev.Attempt)
		}
	}
	if d := cmp.Diff([]string{"resumed=false", "resumed=true"}, starts); d != "" {
		t.Errorf("ExecutionStarted events (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"attempt 1", "attempt 2"}, cStarts); d != "" {
		t.Errorf("NodeStarted events of c (-want +got):\n%s", d)
	}
	if last := evs[len(evs)-1]; last.Kind != store.EventExecutionCompleted {
		t.Errorf("last journalled event = %v, want ExecutionCompleted", last.Kind)
	}
	return evs
}

func seqKinds(evs []*store.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = fmt.Sprintf("%d:%d:%s", ev.Seq, ev.Kind, ev.NodeID)
	}
	return out
}

// A process crashes while node c of a five-node chain runs; the next
// process on the same SQLite store resumes the execution at start-up:
// a and b are not run again, c runs again, the events continue densely and
// a watcher of the new process sees the whole history, then the rest.
func TestResumeAfterCrash(t *testing.T) {
	st := openStore(t)
	tr := newTracker()
	w := register(t, st, chainWorkflow("chain5"))

	a := newCrashable(t, executor.Config{Store: st, Resources: tr})
	id := startBlocked(t, a, tr, w, "order-1")
	a.Crash()

	x, err := st.GetExecution(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, x, store.ExecutionRunning)
	for node, want := range map[string]store.NodeStatus{"a": store.NodeCompleted, "b": store.NodeCompleted, "c": store.NodeRunning, "d": store.NodePending} {
		if got := nodeState(t, x, node).Status; got != want {
			t.Errorf("after the crash node %s is %v, want %v", node, got, want)
		}
	}
	tr.unblock("c")

	b := newExecutor(t, executor.Config{Store: st, Resources: tr, RecoverAllOnStart: true})
	watcher, err := b.Subscribe(t.Context(), id, 0) // before the resume: reads the journal
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()
	n, err := b.Recover(t.Context())
	if err != nil || n != 1 {
		t.Fatalf("Recover = %d, %v; want 1 execution resumed", n, err)
	}
	seen := readAll(t, watcher)
	final := seen[len(seen)-1].Execution
	if final == nil {
		t.Fatalf("last event seen by the watcher is %v, without the final execution", seen[len(seen)-1].Kind)
	}
	journalled := checkResumedChain(t, st, tr, final)
	if d := cmp.Diff(seqKinds(journalled), seqKinds(seen)); d != "" {
		t.Errorf("watcher of the new process vs the journal (-journal +watcher):\n%s", d)
	}
	got, err := b.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Owner == x.Owner {
		t.Errorf("owner after the resume = %q, the crashed process's owner", got.Owner)
	}

	// A late watcher from the middle, and the same idempotency key after
	// the restart: attach, never run again.
	mid, err := b.Subscribe(t.Context(), id, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer mid.Close()
	if d := cmp.Diff(seqKinds(journalled[5:]), seqKinds(readAll(t, mid))); d != "" {
		t.Errorf("watcher after seq 5 (-journal +watcher):\n%s", d)
	}
	again := execute(t, b, &executor.Request{Workflow: w, Parameters: map[string]any{"base": int64(1)}, IdempotencyKey: "order-1", Caller: "svc"})
	if again.ID != id || again.Status != store.ExecutionCompleted {
		t.Errorf("same idempotency key after the restart: execution %s %v, want %s COMPLETED", again.ID, again.Status, id)
	}
	if got := tr.counts()["a"]; got != 1 {
		t.Errorf("node a ran %d times after the idempotent retry, want 1", got)
	}
}

// An execution whose process crashed after it was journalled but before
// its first node ran resumes from the first node.
func TestResumeBeforeFirstNode(t *testing.T) {
	st := openStore(t)
	tr := newTracker()
	w := register(t, st, chainWorkflow("chain-early"))
	tr.block("a")
	a := newCrashable(t, executor.Config{Store: st, Resources: tr})
	id, err := a.Start(t.Context(), &executor.Request{Workflow: w, Parameters: map[string]any{"base": int64(1)}})
	if err != nil {
		t.Fatal(err)
	}
	tr.waitEntered(t, t.Context(), "a")
	a.Crash()
	tr.unblock("a")

	b := newExecutor(t, executor.Config{Store: st, Resources: tr, RecoverAllOnStart: true})
	if n, err := b.Recover(t.Context()); err != nil || n != 1 {
		t.Fatalf("Recover = %d, %v; want 1", n, err)
	}
	sub, err := b.Subscribe(t.Context(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	evs := readAll(t, sub)
	x := evs[len(evs)-1].Execution
	wantStatus(t, x, store.ExecutionCompleted)
	// a ran before the crash (possibly before its NodeStarted was
	// journalled) and again after it; nothing else ran twice.
	if d := cmp.Diff(map[string]int{"a": 2, "b": 1, "c": 1, "d": 1, "e": 1}, tr.counts()); d != "" {
		t.Errorf("node runs (-want +got):\n%s", d)
	}
	for i, ev := range evs {
		if ev.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, ev.Seq)
		}
	}
}

// Without RecoverAllOnStart, executions of an owner that still heart-beats
// are not taken over; a workflow deleted while its execution waited for
// recovery fails that execution with a clear error.
func TestRecoverDeletedWorkflow(t *testing.T) {
	st := openStore(t)
	tr := newTracker()
	w := register(t, st, chainWorkflow("doomed"))
	a := newCrashable(t, executor.Config{Store: st, Resources: tr})
	id := startBlocked(t, a, tr, w, "")
	a.Crash()
	tr.unblock("c")
	if err := st.DeleteWorkflow(t.Context(), w.Name); err != nil {
		t.Fatal(err)
	}

	b := newExecutor(t, executor.Config{Store: st, Resources: tr})
	if n, err := b.Recover(t.Context()); err != nil || n != 0 {
		t.Fatalf("Recover without RecoverAllOnStart = %d, %v; want 0 (the owner heart-beat just now)", n, err)
	}
	c := newExecutor(t, executor.Config{Store: st, Resources: tr, RecoverAllOnStart: true})
	if n, err := c.Recover(t.Context()); err != nil || n != 0 {
		t.Fatalf("Recover = %d, %v; want 0 resumed", n, err)
	}
	x, err := st.GetExecution(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, x, store.ExecutionFailed)
	if x.Error == nil || !strings.Contains(x.Error.Message, "deleted") || !strings.Contains(x.Error.Message, "doomed") {
		t.Errorf("error = %+v, want one saying workflow doomed was deleted", x.Error)
	}
	evs, err := st.ListEvents(t.Context(), id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	last := evs[len(evs)-1]
	if last.Kind != store.EventExecutionFailed || last.Seq != int64(len(evs)) {
		t.Errorf("last event %v seq %d of %d, want ExecutionFailed continuing the seqs", last.Kind, last.Seq, len(evs))
	}
	if got := tr.counts()["c"]; got != 1 {
		t.Errorf("node c ran %d times, want 1 (not resumed)", got)
	}
}

// openPostgres opens a store on a fresh database of the shared PostgreSQL
// server and returns it with the database's DSN.
func openPostgres(t *testing.T) (store.Store, string) {
	t.Helper()
	dsn := testenv.Postgres(t).NewDatabase(t)
	return openPostgresDSN(t, dsn), dsn
}

func openPostgresDSN(t *testing.T, dsn string) store.Store {
	t.Helper()
	st, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("postgres.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return st
}

// Two live replicas share a PostgreSQL store with a replica that died an
// hour ago: both look for stale executions at once and exactly one takes
// over and finishes the dead replica's execution.
func TestReplicasClaimDeadOwnerOnce(t *testing.T) {
	st, dsn := openPostgres(t)
	tr := newTracker()
	w := chainWorkflow("shared")
	w.Timeout = 2 * time.Hour
	w = register(t, st, w)
	hourAgo := func() time.Time { return time.Now().Add(-time.Hour) }
	dead := newCrashable(t, executor.Config{Store: st, Resources: tr, Now: hourAgo})
	id := startBlocked(t, dead, tr, w, "")
	dead.Crash()
	tr.unblock("c")

	replicas := make([]*executor.Executor, 2)
	for i := range replicas {
		replicas[i] = newExecutor(t, executor.Config{Store: openPostgresDSN(t, dsn), Resources: tr})
	}
	resumed := make([]int, len(replicas))
	errs := make([]error, len(replicas))
	var wg sync.WaitGroup
	for i, r := range replicas {
		wg.Go(func() { resumed[i], errs[i] = r.Recover(t.Context()) })
	}
	wg.Wait()
	winner := -1
	for i := range replicas {
		if errs[i] != nil {
			t.Fatalf("replica %d: Recover: %v", i, errs[i])
		}
		if resumed[i] == 1 {
			winner = i
		}
	}
	if resumed[0]+resumed[1] != 1 {
		t.Fatalf("replicas resumed %v executions, want exactly one in total", resumed)
	}
	sub, err := replicas[winner].Subscribe(t.Context(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	evs := readAll(t, sub)
	checkResumedChain(t, st, tr, evs[len(evs)-1].Execution)

	// A later pass of the other replica finds nothing more to take.
	if n, err := replicas[1-winner].Recover(t.Context()); err != nil || n != 0 {
		t.Errorf("second pass of the other replica = %d, %v; want 0", n, err)
	}
}

// A request whose idempotency key names an execution that another live
// replica runs attaches to it: Start returns its id, Execute waits for its
// end, and the workflow runs once.
func TestIdempotencyAttachesAcrossReplicas(t *testing.T) {
	st, dsn := openPostgres(t)
	tr := newTracker()
	w := register(t, st, chainWorkflow("across"))
	owner := newExecutor(t, executor.Config{Store: st, Resources: tr})
	id := startBlocked(t, owner, tr, w, "pay-7")

	other := newExecutor(t, executor.Config{Store: openPostgresDSN(t, dsn), Resources: tr})
	req := &executor.Request{Workflow: w, Parameters: map[string]any{"base": int64(1)}, IdempotencyKey: "pay-7", Caller: "svc"}
	got, err := other.Start(t.Context(), req)
	if err != nil || got != id {
		t.Fatalf("Start with a used key on another replica = %q, %v; want %q", got, err, id)
	}
	done := make(chan struct{})
	var x *store.Execution
	go func() {
		defer close(done)
		x, err = other.Execute(t.Context(), req)
	}()
	tr.unblock("c")
	<-done
	if err != nil {
		t.Fatalf("Execute with a used key on another replica: %v", err)
	}
	if x.ID != id {
		t.Errorf("attached to %s, want %s", x.ID, id)
	}
	wantStatus(t, x, store.ExecutionCompleted)
	if d := cmp.Diff(map[string]int{"a": 1, "b": 1, "c": 1, "d": 1, "e": 1}, tr.counts()); d != "" {
		t.Errorf("node runs (-want +got):\n%s", d)
	}
}

// Retention deletes finished executions older than the period, with their
// events, and keeps recent and unfinished ones.
func TestRetentionDeletesOldFinished(t *testing.T) {
	st := openStore(t)
	tr := newTracker()
	w := register(t, st, chainWorkflow("kept"))
	req := &executor.Request{Workflow: w, Parameters: map[string]any{"base": int64(1)}}
	weekAgo := func() time.Time { return time.Now().Add(-8 * 24 * time.Hour) }
	past := newCrashable(t, executor.Config{Store: st, Resources: tr, Now: weekAgo})
	old := execute(t, past, req)
	unfinished := startBlocked(t, past, tr, w, "")
	past.Crash()
	tr.unblock("c")

	now := newExecutor(t, executor.Config{Store: st, Resources: tr})
	recent := execute(t, now, req)

	forever := newExecutor(t, executor.Config{Store: st, Retention: -1})
	if n, err := forever.DeleteExpired(t.Context()); err != nil || n != 0 {
		t.Errorf("DeleteExpired with negative retention = %d, %v; want 0", n, err)
	}
	if n, err := now.DeleteExpired(t.Context()); err != nil || n != 1 {
		t.Fatalf("DeleteExpired = %d, %v; want 1", n, err)
	}
	if _, err := st.GetExecution(t.Context(), old.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("old finished execution: %v, want ErrNotFound", err)
	}
	if evs, err := st.ListEvents(t.Context(), old.ID, 0, 0); err != nil || len(evs) != 0 {
		t.Errorf("events of the deleted execution: %d, %v; want none", len(evs), err)
	}
	for _, id := range []string{unfinished, recent.ID} {
		if _, err := st.GetExecution(t.Context(), id); err != nil {
			t.Errorf("execution %s was deleted: %v", id, err)
		}
	}
}

// Close leaves an interrupted durable execution without an owner, so that
// another replica takes it over at once, without waiting for staleness.
func TestCloseReleasesOwnership(t *testing.T) {
	st, dsn := openPostgres(t)
	tr := newTracker()
	w := register(t, st, chainWorkflow("handover"))
	a := executor.New(executor.Config{Store: st, Resources: tr, Logger: slog.New(slog.DiscardHandler)})
	id := startBlocked(t, a, tr, w, "")
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // interrupt at once
	if err := a.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close = %v, want context.Canceled", err)
	}
	tr.unblock("c")
	b := newExecutor(t, executor.Config{Store: openPostgresDSN(t, dsn), Resources: tr})
	if n, err := b.Recover(t.Context()); err != nil || n != 1 {
		t.Fatalf("Recover after the owner closed = %d, %v; want 1", n, err)
	}
	sub, err := b.Subscribe(t.Context(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	evs := readAll(t, sub)
	checkResumedChain(t, st, tr, evs[len(evs)-1].Execution)
}

// holdingStore is a real store whose journal writes that complete node
// hold wait until release is closed: the test sees what runs meanwhile.
type holdingStore struct {
	store.Store
	hold    string
	held    chan struct{} // closed when such a write starts waiting
	release chan struct{}
	once    sync.Once
}

func (s *holdingStore) WriteJournal(ctx context.Context, b *store.JournalBatch) error {
	for _, ev := range b.Events {
		if ev.Kind == store.EventNodeCompleted && ev.NodeID == s.hold {
			s.once.Do(func() { close(s.held) })
			<-s.release
			break
		}
	}
	return s.Store.WriteJournal(ctx, b)
}

// A node's downstream nodes start only once its completion is journalled,
// so that a crash between them never runs a completed node again (for
// Start and for Execute with an idempotency key; a synchronous Execute
// without one is journalled lazily: TestExecuteResumedAfterCrashMidChain).
func TestDownstreamWaitsForJournalledCompletion(t *testing.T) {
	st := &holdingStore{Store: openStore(t), hold: "a", held: make(chan struct{}), release: make(chan struct{})}
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(st.release) }) }
	tr := newTracker()
	tr.block("b")
	e := newExecutor(t, executor.Config{Store: st, Resources: tr})
	t.Cleanup(release) // runs before the executor's Close, which waits for the journal
	type result struct {
		x   *store.Execution
		err error
	}
	done := make(chan result, 1)
	go func() {
		x, err := e.Execute(t.Context(), &executor.Request{
			Workflow: chainWorkflow("held"), Parameters: map[string]any{"base": int64(1)}, IdempotencyKey: "held-1",
		})
		done <- result{x, err}
	}()
	<-st.held
	select {
	case n := <-tr.entered:
		tr.unblock(n)
		t.Fatalf("node %s started while the completion of a was not journalled", n)
	case <-time.After(200 * time.Millisecond):
	}
	release()
	tr.waitEntered(t, t.Context(), "b")
	tr.unblock("b")
	if r := <-done; r.err != nil || r.x.Status != store.ExecutionCompleted {
		t.Fatalf("Execute = %v, %v; want COMPLETED", r.x, r.err)
	}
	if d := cmp.Diff(map[string]int{"a": 1, "b": 1, "c": 1, "d": 1, "e": 1}, tr.counts()); d != "" {
		t.Errorf("runs (-want +got):\n%s", d)
	}
}
