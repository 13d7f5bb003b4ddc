package executor_test

import (
	"errors"
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
