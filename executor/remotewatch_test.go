package executor_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kailash-gateway/kgw/executor"
	"github.com/kailash-gateway/kgw/store"
)

// endsBetweenReadsStore is a real store whose next GetExecution, once
// armed, first runs beforeGet: the test uses it to let the execution end
// (its last events and its terminal status committed together, by another
// replica) between a watcher's read of the events and its read of the
// status.
type endsBetweenReadsStore struct {
	store.Store
	armed     atomic.Bool
	beforeGet func(ctx context.Context)
}

func (s *endsBetweenReadsStore) GetExecution(ctx context.Context, id string) (*store.Execution, error) {
	if s.armed.CompareAndSwap(true, false) {
		s.beforeGet(ctx)
	}
	return s.Store.GetExecution(ctx, id)
}

// A watcher on a replica that does not run the execution reads its events
// from the store, and when there are none, reads the execution to know
// whether it ended. If the execution ends between the two reads, the
// events committed with its end must still be delivered: the watcher gets
// the whole history, up to the terminal event, not a stream that stops
// early without an error (seen under load by make bench-cluster: B's
// stream ended after 16 of 22 events).
func TestRemoteWatcherGetsEventsCommittedWithTheEnd(t *testing.T) {
	st, dsn := openPostgres(t)
	tr := newTracker()
	w := chainWorkflow("endrace")
	w.Timeout = time.Hour
	w = register(t, st, w)
	a := newExecutor(t, executor.Config{Store: st, Resources: tr})
	id := startBlocked(t, a, tr, w, "") // blocked in node c
	defer tr.unblock("c")

	racy := &endsBetweenReadsStore{Store: openPostgresDSN(t, dsn)}
	racy.beforeGet = func(ctx context.Context) {
		// The watcher found no event after c's start; now c and the rest
		// of the chain run to the end on A.
		tr.unblock("c")
		deadline := time.Now().Add(30 * time.Second)
		for {
			x, err := st.GetExecution(ctx, id)
			if err == nil && x.Status.Terminal() {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("execution %s did not end on A: %v, %v", id, x, err)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	b := newExecutor(t, executor.Config{Store: racy, Resources: tr})
	sub, err := b.Subscribe(t.Context(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	racy.armed.Store(true)
	got := readAll(t, sub)

	want, err := st.ListEvents(t.Context(), id, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) == 0 || !want[len(want)-1].Kind.Terminal() {
		t.Fatalf("the journal of %s has no terminal event: %d events", id, len(want))
	}
	if racy.armed.Load() {
		t.Fatal("the watcher never read the execution after running out of events: the race was not reproduced")
	}
	if len(got) != len(want) {
		t.Fatalf("the watcher on B got %d events, the journal has %d (last delivered: seq %d)", len(got), len(want), lastSeq(got))
	}
	for i, ev := range got {
		if ev.Seq != want[i].Seq || ev.Kind != want[i].Kind {
			t.Fatalf("event %d: got seq %d %v, want seq %d %v", i, ev.Seq, ev.Kind, want[i].Seq, want[i].Kind)
		}
	}
}

func lastSeq(evs []*store.Event) int64 {
	if len(evs) == 0 {
		return 0
	}
	return evs[len(evs)-1].Seq
}
