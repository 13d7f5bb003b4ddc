package executor_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kailash-gateway/kgw/executor"
	"github.com/kailash-gateway/kgw/store"
)

// A replica whose lease expired while its node ran (its heartbeats look an
// hour old) is taken over by another; when its node then completes, the
// store refuses its write (fencing), it stops the execution without
// running any further node and without reporting a result, and the new
// owner's history is the only one: c ran twice (once per owner), every
// other node once, one terminal event, dense seqs.
func TestFencedReplicaStopsAndReportsNothing(t *testing.T) {
	st, dsn := openPostgres(t)
	tr := newTracker()
	w := chainWorkflow("fenced")
	w.Timeout = 2 * time.Hour
	w = register(t, st, w)
	hourAgo := func() time.Time { return time.Now().Add(-time.Hour) }
	paused := newCrashable(t, executor.Config{Store: st, Resources: tr, Now: hourAgo})
	id := startBlocked(t, paused, tr, w, "")
	sub, err := paused.Subscribe(t.Context(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	other := newExecutor(t, executor.Config{Store: openPostgresDSN(t, dsn), Resources: tr})
	if n, err := other.Recover(t.Context()); err != nil || n != 1 {
		t.Fatalf("Recover on the other replica = %d, %v; want 1", n, err)
	}
	tr.unblock("c") // both attempts of c (the paused owner's and the new one's) complete

	// The paused replica's subscriber ends with ErrFenced, without a
	// terminal event.
	for {
		ev, err := sub.Next(t.Context())
		if err != nil {
			if !errors.Is(err, executor.ErrFenced) {
				t.Fatalf("paused replica's subscriber ended with %v, want ErrFenced", err)
			}
			break
		}
		if ev.Kind.Terminal() || (ev.Kind == store.EventNodeCompleted && ev.NodeID == "c") {
			t.Fatalf("paused replica published %v of %s after losing the execution", ev.Kind, ev.NodeID)
		}
	}

	osub, err := other.Subscribe(t.Context(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer osub.Close()
	evs := readAll(t, osub)
	final := evs[len(evs)-1].Execution
	checkResumedChain(t, st, tr, final) // a, b, d, e once; c twice; one terminal; dense seqs
	stored, err := st.GetExecution(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Status != store.ExecutionCompleted || stored.Epoch != 2 {
		t.Errorf("stored execution: status %v, epoch %d; want completed at epoch 2", stored.Status, stored.Epoch)
	}
	// The fenced run is gone from the paused replica: Get reads the store.
	got, err := paused.Get(t.Context(), id)
	if err != nil || got.Status != store.ExecutionCompleted {
		t.Errorf("Get on the paused replica = %v, %v; want the completed execution", got, err)
	}
}

// partitionedStore is a real store that, while cut, fails every heartbeat
// and journal write as an unreachable database would.
type partitionedStore struct {
	store.Store
	cut atomic.Bool
}

var errUnreachable = errors.New("store unreachable (test partition)")

func (s *partitionedStore) Heartbeat(ctx context.Context, owner string, now time.Time) error {
	if s.cut.Load() {
		return errUnreachable
	}
	return s.Store.Heartbeat(ctx, owner, now)
}

func (s *partitionedStore) WriteJournal(ctx context.Context, b *store.JournalBatch) error {
	if s.cut.Load() {
		return errUnreachable
	}
	return s.Store.WriteJournal(ctx, b)
}

// A replica that cannot renew its lease stops its executions itself
// (ErrFenced, before the lease could expire in the others' eyes) and is not
// ready; once the store answers again it is ready and has released them,
// so another replica resumes them at once.
func TestLeaseLossFencesItselfAndReleases(t *testing.T) {
	st, dsn := openPostgres(t)
	tr := newTracker()
	w := chainWorkflow("selffence")
	w.Timeout = time.Hour
	w = register(t, st, w)
	ps := &partitionedStore{Store: openPostgresDSN(t, dsn)}
	lease := 800 * time.Millisecond
	a := newCrashable(t, executor.Config{Store: ps, Resources: tr, StaleAfter: lease, HeartbeatInterval: 100 * time.Millisecond})
	id := startBlocked(t, a, tr, w, "")
	sub, err := a.Subscribe(t.Context(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if !a.Ready() {
		t.Fatal("Ready() = false before the partition")
	}

	cut := time.Now()
	ps.cut.Store(true)
	for {
		_, err := sub.Next(t.Context())
		if err == nil {
			continue
		}
		if !errors.Is(err, executor.ErrFenced) {
			t.Fatalf("subscriber ended with %v, want ErrFenced", err)
		}
		break
	}
	if took := time.Since(cut); took >= lease {
		t.Errorf("fenced itself %v after the partition, not before the lease (%v) ended", took, lease)
	}
	if a.Ready() {
		t.Error("Ready() = true while the lease cannot be renewed")
	}
	tr.unblock("c") // the interrupted attempt ends; its completion is not journalled

	ps.cut.Store(false)
	deadline := time.Now().Add(5 * time.Second)
	for !a.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("Ready() still false 5 s after the store came back")
		}
		time.Sleep(20 * time.Millisecond)
	}
	x, err := st.GetExecution(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if x.Owner != "" || x.Status.Terminal() {
		t.Fatalf("after the lease came back: owner %q, status %v; want released, unfinished", x.Owner, x.Status)
	}
	b := newExecutor(t, executor.Config{Store: openPostgresDSN(t, dsn), Resources: tr})
	if n, err := b.Recover(t.Context()); err != nil || n != 1 {
		t.Fatalf("Recover on another replica = %d, %v; want 1 at once", n, err)
	}
	bsub, err := b.Subscribe(t.Context(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer bsub.Close()
	evs := readAll(t, bsub)
	checkResumedChain(t, st, tr, evs[len(evs)-1].Execution)
}

// A node attempt of a replica that fenced itself may still finish (an
// external call the cancellation does not stop). What it reports is
// dropped: even once the store answers again and the execution is
// released under the same epoch, nothing of it is journalled, and the
// replica that resumes the execution runs the node again.
func TestFencedAttemptThatFinishesWritesNothing(t *testing.T) {
	st, dsn := openPostgres(t)
	tr := newTracker()
	w := chainWorkflow("deafnode")
	w.Timeout = time.Hour
	w = register(t, st, w)
	ps := &partitionedStore{Store: openPostgresDSN(t, dsn)}
	a := newCrashable(t, executor.Config{Store: ps, Resources: tr, StaleAfter: 800 * time.Millisecond, HeartbeatInterval: 100 * time.Millisecond})
	tr.blockDeaf("c")
	id := startBlocked(t, a, tr, w, "") // c's start is committed

	ps.cut.Store(true)
	waitUntil(t, 5*time.Second, "the replica fences itself", func() bool { return !a.Ready() })
	ps.cut.Store(false)
	waitUntil(t, 5*time.Second, "the replica is ready again", a.Ready)
	if x, err := st.GetExecution(t.Context(), id); err != nil || x.Owner != "" {
		t.Fatalf("after the store came back: %v, owner %q; want released", err, x.Owner)
	}
	tr.unblock("c") // the fenced attempt completes now
	<-tr.left
	waitUntil(t, 5*time.Second, "the fenced run ends", func() bool { return a.Running() == 0 })

	x, err := st.GetExecution(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range x.Nodes {
		if n.NodeID == "c" && n.Status == store.NodeCompleted {
			t.Fatalf("node c completed in the store by the fenced replica (result %v)", n.Result)
		}
	}
	b := newExecutor(t, executor.Config{Store: openPostgresDSN(t, dsn), Resources: tr})
	if n, err := b.Recover(t.Context()); err != nil || n != 1 {
		t.Fatalf("Recover on another replica = %d, %v; want 1", n, err)
	}
	sub, err := b.Subscribe(t.Context(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	evs := readAll(t, sub)
	checkResumedChain(t, st, tr, evs[len(evs)-1].Execution)
}

// waitUntil polls cond every 10 ms until it holds, failing the test after
// limit.
func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A replica restarted under the same owner name (--replica-name) takes its
// unfinished executions back at its first Recover, although its heartbeat
// is fresh: no wait for a lease.
func TestRestartUnderSameNameReclaimsAtOnce(t *testing.T) {
	st, dsn := openPostgres(t)
	tr := newTracker()
	w := chainWorkflow("samename")
	w.Timeout = time.Hour
	w = register(t, st, w)
	first := newCrashable(t, executor.Config{Store: st, Resources: tr, Owner: "replica-a"})
	id := startBlocked(t, first, tr, w, "")
	first.Crash()
	tr.unblock("c")

	again := newExecutor(t, executor.Config{Store: openPostgresDSN(t, dsn), Resources: tr, Owner: "replica-a"})
	began := time.Now()
	if n, err := again.Recover(t.Context()); err != nil || n != 1 {
		t.Fatalf("Recover under the same name = %d, %v; want 1", n, err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("Recover took %v", took)
	}
	sub, err := again.Subscribe(t.Context(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	evs := readAll(t, sub)
	x := evs[len(evs)-1].Execution
	checkResumedChain(t, st, tr, x)
	if x.Restarts != 1 || x.Epoch != 2 {
		t.Errorf("restarts %d, epoch %d; want 1, 2", x.Restarts, x.Epoch)
	}
}

// Cancel on a replica that does not run the execution cancels it on the
// replica that does (a cancel request relayed by PostgreSQL) and returns
// the CANCELLED execution within a second.
func TestCancelFromAnotherReplica(t *testing.T) {
	st, dsn := openPostgres(t)
	tr := newTracker()
	w := chainWorkflow("remotecancel")
	w.Timeout = time.Hour
	w = register(t, st, w)
	a := newExecutor(t, executor.Config{Store: st, Resources: tr})
	id := startBlocked(t, a, tr, w, "")
	defer tr.unblock("c")
	b := newExecutor(t, executor.Config{Store: openPostgresDSN(t, dsn), Resources: tr})
	began := time.Now()
	x, err := b.Cancel(t.Context(), id)
	if err != nil {
		t.Fatalf("Cancel on the other replica: %v", err)
	}
	if took := time.Since(began); took > time.Second {
		t.Errorf("Cancel took %v, want within a second", took)
	}
	if x.Status != store.ExecutionCancelled {
		t.Fatalf("status %v, want CANCELLED", x.Status)
	}
	// The run on A ended CANCELLED too: its own view agrees.
	if ax, err := a.Get(t.Context(), id); err != nil || ax.Status != store.ExecutionCancelled {
		t.Errorf("Get on the owner = %v, %v; want CANCELLED", ax, err)
	}
}
