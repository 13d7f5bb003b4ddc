package executor_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.starlark.net/starlark"

	"github.com/kailash-gateway/kgw/executor"
	"github.com/kailash-gateway/kgw/secrets"
	"github.com/kailash-gateway/kgw/store"
)

// gate is a resource broker whose "gate" builtin blocks every node attempt
// until the gate opens, counting the attempts waiting at once.
type gate struct {
	mu      sync.Mutex
	waiting int
	most    int
	open    chan struct{}
}

func newGate() *gate { return &gate{open: make(chan struct{})} }

func (g *gate) now() (waiting, most int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waiting, g.most
}

func (g *gate) Session(string, map[string]store.ResourceSpec, *secrets.Redactor) executor.AttemptResources {
	return gateSession{g}
}

type gateSession struct{ g *gate }

func (s gateSession) Open(ctx context.Context, name string) (starlark.Value, error) {
	if name != "gate" {
		return nil, fmt.Errorf("resource '%s' was not provided in the request", name)
	}
	g := s.g
	return starlark.NewBuiltin("gate", func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
		g.mu.Lock()
		g.waiting++
		g.most = max(g.most, g.waiting)
		g.mu.Unlock()
		defer func() {
			g.mu.Lock()
			g.waiting--
			g.mu.Unlock()
		}()
		select {
		case <-g.open:
			return starlark.None, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}), nil
}

func (gateSession) Close() {}

func gatedWorkflow(name string) *store.Workflow {
	n := codeNode("wait", `get_resource("gate")()`+"\n"+`result = {"attempt": execution.attempt}`)
	n.RequiredResources = []string{"gate"}
	return &store.Workflow{Name: name, Nodes: []store.Node{n}, Timeout: time.Minute}
}

// eventually polls cond every 10 ms until it holds or d has passed.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitAllEnded waits until every execution of ids has ended in st and
// returns them.
func waitAllEnded(t *testing.T, st store.Store, ids []string) []*store.Execution {
	t.Helper()
	out := make([]*store.Execution, len(ids))
	eventually(t, 20*time.Second, "all executions ended", func() bool {
		for i, id := range ids {
			x, err := st.GetExecution(t.Context(), id)
			if err != nil {
				t.Fatalf("GetExecution: %v", err)
			}
			if !x.Status.Terminal() {
				return false
			}
			out[i] = x
		}
		return true
	})
	return out
}

// A process limited to 2 concurrent executions that is asked to start 6
// runs 2 and queues 4 in the store (PENDING, no owner); it never runs more
// than 2 at once, and runs the queued ones as slots free up, each
// starting afresh (ExecutionStarted not marked resumed).
func TestMaxConcurrentExecutionsQueues(t *testing.T) {
	st := openStore(t)
	g := newGate()
	w := register(t, st, gatedWorkflow("limited"))
	e := newExecutor(t, executor.Config{Store: st, Resources: g, Owner: "solo",
		MaxConcurrentExecutions: 2, BacklogPollInterval: 20 * time.Millisecond})
	if _, err := e.Recover(t.Context()); err != nil { // starts the backlog loop
		t.Fatal(err)
	}
	var ids []string
	for range 6 {
		id, err := e.Start(t.Context(), &executor.Request{Workflow: w})
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		ids = append(ids, id)
	}
	eventually(t, 5*time.Second, "two executions waiting at the gate", func() bool { w, _ := g.now(); return w == 2 })
	time.Sleep(200 * time.Millisecond) // ten poll intervals: nothing more may start
	if waiting, most := g.now(); waiting != 2 || most != 2 {
		t.Fatalf("%d executions waiting at the gate (at most %d at once), want 2 with a limit of 2", waiting, most)
	}
	if n := e.Running(); n != 2 {
		t.Errorf("Running() = %d, want 2", n)
	}
	queued := 0
	for _, id := range ids {
		x, err := st.GetExecution(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if x.Status == store.ExecutionPending && x.Owner == "" {
			queued++
		}
	}
	if queued != 4 {
		t.Errorf("%d executions queued in the store, want 4", queued)
	}
	close(g.open)
	for _, x := range waitAllEnded(t, st, ids) {
		wantStatus(t, x, store.ExecutionCompleted)
		if x.Owner != "solo" {
			t.Errorf("%s ran on %q, want solo", x.ID, x.Owner)
		}
		// A queued execution's first run is attempt 1, as any first run.
		if a := num(t, nodeState(t, x, "wait").Result["attempt"]); a != 1 {
			t.Errorf("%s: first run of its node was attempt %v, want 1", x.ID, a)
		}
	}
	if _, most := g.now(); most > 2 {
		t.Errorf("%d executions ran at once, more than the limit of 2", most)
	}
	// The runs give their slots back just after their end is journalled.
	eventually(t, 5*time.Second, "Running() back to 0", func() bool { return e.Running() == 0 })
	for _, id := range ids {
		evs, err := st.ListEvents(t.Context(), id, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 || evs[0].Kind != store.EventExecutionStarted || evs[0].Resumed || evs[0].Seq != 1 {
			t.Errorf("%s: first event %+v, want ExecutionStarted seq 1, not resumed", id, evs[0])
		}
	}
}

// Two replicas on one PostgreSQL store: the one limited to 2 concurrent
// executions is asked to start 6; the other, idle, runs the 4 it queued at
// once (woken by the store's notification, not by its 1-minute poll).
func TestBacklogRunsOnIdleReplica(t *testing.T) {
	st, dsn := openPostgres(t)
	g := newGate()
	w := register(t, st, gatedWorkflow("shared-backlog"))
	busy := newExecutor(t, executor.Config{Store: st, Resources: g, Owner: "busy",
		MaxConcurrentExecutions: 2, BacklogPollInterval: time.Minute})
	idle := newExecutor(t, executor.Config{Store: openPostgresDSN(t, dsn), Resources: g, Owner: "idle",
		BacklogPollInterval: time.Minute})
	for _, e := range []*executor.Executor{busy, idle} {
		if _, err := e.Recover(t.Context()); err != nil { // starts the backlog loop
			t.Fatal(err)
		}
	}
	var ids []string
	for range 6 {
		id, err := busy.Start(t.Context(), &executor.Request{Workflow: w})
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		ids = append(ids, id)
	}
	eventually(t, 10*time.Second, "all six executions waiting at the gate", func() bool { w, _ := g.now(); return w == 6 })
	close(g.open)
	ran := map[string]int{}
	for _, x := range waitAllEnded(t, st, ids) {
		wantStatus(t, x, store.ExecutionCompleted)
		ran[x.Owner]++
	}
	if ran["busy"] != 2 || ran["idle"] != 4 {
		t.Errorf("executions per replica %v, want busy 2 and idle 4", ran)
	}
}

// Cancelling an execution that waits in the backlog ends it CANCELLED at
// once (its node skipped, one terminal event), though no process runs it,
// and it never runs afterwards; the running one is untouched.
func TestCancelQueuedExecution(t *testing.T) {
	st := openStore(t)
	g := newGate()
	w := register(t, st, gatedWorkflow("cancel-queued"))
	e := newExecutor(t, executor.Config{Store: st, Resources: g, MaxConcurrentExecutions: 1, BacklogPollInterval: 20 * time.Millisecond})
	if _, err := e.Recover(t.Context()); err != nil {
		t.Fatal(err)
	}
	running, err := e.Start(t.Context(), &executor.Request{Workflow: w})
	if err != nil {
		t.Fatal(err)
	}
	queued, err := e.Start(t.Context(), &executor.Request{Workflow: w})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the first execution at the gate", func() bool { n, _ := g.now(); return n == 1 })
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	x, err := e.Cancel(ctx, queued)
	if err != nil {
		t.Fatalf("Cancel of the queued execution: %v", err)
	}
	wantStatus(t, x, store.ExecutionCancelled)
	if s := nodeState(t, x, "wait").Status; s != store.NodeSkipped {
		t.Errorf("node of the cancelled queued execution: %v, want SKIPPED", s)
	}
	close(g.open)
	ended := waitAllEnded(t, st, []string{running, queued})
	wantStatus(t, ended[0], store.ExecutionCompleted)
	wantStatus(t, ended[1], store.ExecutionCancelled)
	time.Sleep(100 * time.Millisecond) // five poll intervals: it must not be claimed
	if _, most := g.now(); most != 1 {
		t.Errorf("%d node attempts ran at once; the cancelled execution must never run", most)
	}
	evs, err := st.ListEvents(t.Context(), queued, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Seq != 1 || evs[0].Kind != store.EventExecutionCancelled {
		t.Errorf("events of the cancelled queued execution: %d, first %+v; want one ExecutionCancelled at seq 1", len(evs), evs[0])
	}
}

// An execution queued for a workflow version deleted before a slot freed
// up fails with an error that says so (and that it was queued), instead of
// waiting forever.
func TestQueuedExecutionOfDeletedWorkflow(t *testing.T) {
	st := openStore(t)
	g := newGate()
	w := register(t, st, gatedWorkflow("going-away"))
	e := newExecutor(t, executor.Config{Store: st, Resources: g, MaxConcurrentExecutions: 1, BacklogPollInterval: 20 * time.Millisecond})
	if _, err := e.Recover(t.Context()); err != nil {
		t.Fatal(err)
	}
	first, err := e.Start(t.Context(), &executor.Request{Workflow: w})
	if err != nil {
		t.Fatal(err)
	}
	queued, err := e.Start(t.Context(), &executor.Request{Workflow: w})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the first execution at the gate", func() bool { n, _ := g.now(); return n == 1 })
	if err := st.DeleteWorkflow(t.Context(), w.Name); err != nil {
		t.Fatal(err)
	}
	close(g.open)
	ended := waitAllEnded(t, st, []string{first, queued})
	wantStatus(t, ended[0], store.ExecutionCompleted)
	wantStatus(t, ended[1], store.ExecutionFailed)
	if xe := ended[1].Error; xe == nil || !strings.Contains(xe.Message, "queued in the backlog") || !strings.Contains(xe.Message, "was deleted") {
		t.Errorf("error of the queued execution = %+v, want one saying its queued workflow was deleted", xe)
	}
}

// Of three processes on one PostgreSQL store exactly one is Leader at any
// time (sampled every 5 ms); when it crashes another takes over once its
// lease has run out, and when that one closes gracefully it gives the
// lease up and the last one leads at once, well before a lease timeout.
func TestHousekeepingLeaderElection(t *testing.T) {
	_, dsn := openPostgres(t)
	const beat, lease = 50 * time.Millisecond, 600 * time.Millisecond
	var procs []*executor.Executor
	for i := range 3 {
		procs = append(procs, newCrashable(t, executor.Config{Store: openPostgresDSN(t, dsn),
			Owner: fmt.Sprintf("p%d", i), HeartbeatInterval: beat, StaleAfter: lease}))
	}
	leaders := func(alive []*executor.Executor) []int {
		var out []int
		for i, e := range alive {
			if e.Leader() {
				out = append(out, i)
			}
		}
		return out
	}
	// watch samples alive for d, failing on two leaders, and returns the
	// index of the leader once one is found, if until says to stop there.
	watch := func(alive []*executor.Executor, d time.Duration, until bool) int {
		t.Helper()
		deadline := time.Now().Add(d)
		for time.Now().Before(deadline) {
			l := leaders(alive)
			if len(l) > 1 {
				t.Fatalf("processes %v lead at once", l)
			}
			if until && len(l) == 1 {
				return l[0]
			}
			time.Sleep(5 * time.Millisecond)
		}
		if l := leaders(alive); len(l) == 1 {
			return l[0]
		}
		return -1
	}
	first := watch(procs, 2*lease, true)
	if first < 0 {
		t.Fatal("no process became leader")
	}
	if again := watch(procs, 3*lease, false); again != first {
		t.Fatalf("leadership moved from %d to %d while %d was alive", first, again, first)
	}
	crashed := time.Now()
	procs[first].Crash()
	var rest []*executor.Executor
	for i, e := range procs {
		if i != first {
			rest = append(rest, e)
		}
	}
	next := watch(rest, lease+4*beat+200*time.Millisecond, true)
	if next < 0 {
		t.Fatalf("nobody took over within the lease timeout after the leader crashed")
	}
	t.Logf("took over %v after the crash", time.Since(crashed))
	closed := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := rest[next].Close(ctx); err != nil {
		t.Fatal(err)
	}
	last := rest[1-next]
	if watch([]*executor.Executor{last}, lease/2, true) != 0 {
		t.Fatalf("the last process did not lead within half a lease of the leader's graceful Close")
	}
	t.Logf("took over %v after a graceful close", time.Since(closed))
}

// On a store without notifications (SQLite) a queued execution starts as
// soon as a slot frees up, not at the next poll (here a minute away).
func TestQueuedRunsWhenSlotFrees(t *testing.T) {
	st := openStore(t)
	g := newGate()
	w := register(t, st, gatedWorkflow("next-in-line"))
	e := newExecutor(t, executor.Config{Store: st, Resources: g, MaxConcurrentExecutions: 1, BacklogPollInterval: time.Minute})
	if _, err := e.Recover(t.Context()); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 3 {
		id, err := e.Start(t.Context(), &executor.Request{Workflow: w})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	eventually(t, 5*time.Second, "the first execution at the gate", func() bool { n, _ := g.now(); return n == 1 })
	close(g.open)
	began := time.Now()
	for _, x := range waitAllEnded(t, st, ids) {
		wantStatus(t, x, store.ExecutionCompleted)
	}
	if d := time.Since(began); d > 10*time.Second {
		t.Errorf("the queued executions took %v to run after the slot freed", d)
	}
}
