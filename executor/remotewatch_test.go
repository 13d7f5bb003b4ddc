package executor_test

import (
	"context"
	"fmt"
	"sync"
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

// countingStore is a real store, listening for notifications, that counts
// the GetExecution calls of one execution and reports when it listens.
type countingStore struct {
	store.Store
	id        atomic.Pointer[string] // the execution whose reads are counted
	gets      atomic.Int32
	listening chan struct{} // closed once notifications are received
	once      sync.Once
}

func (s *countingStore) GetExecution(ctx context.Context, id string) (*store.Execution, error) {
	if p := s.id.Load(); p != nil && *p == id {
		s.gets.Add(1)
	}
	return s.Store.GetExecution(ctx, id)
}

func (s *countingStore) Listen(ctx context.Context, h store.Notifications) error {
	connected := h.Connected
	h.Connected = func(up bool) {
		if up {
			s.once.Do(func() { close(s.listening) })
		}
		if connected != nil {
			connected(up)
		}
	}
	return s.Store.(store.Listener).Listen(ctx, h)
}

// A watcher on a replica that does not run the execution, woken by the
// store's notifications, reads only the new events on each wake-up: it
// does not read the whole execution (every node state and result) after
// each of them to learn whether it ended, which put four more round trips
// to the database on the path of every event and made the cost of
// watching grow with the size of the execution. It reads the execution
// only when it starts and when no notification came for a poll interval.
func TestRemoteWatcherReadsOnlyEventsWhileNotified(t *testing.T) {
	st, dsn := openPostgres(t)
	const nodes = 12
	var ns []store.Node
	var cs []store.Connection
	for i := 1; i <= nodes; i++ {
		ns = append(ns, codeNode(fmt.Sprintf("n%d", i), "time.sleep(0.05)\nresult = {\"big\": \"x\" * 10000}"))
		if i > 1 {
			cs = append(cs, conn(fmt.Sprintf("n%d", i-1), "big", fmt.Sprintf("n%d", i), "prev"))
		}
	}
	w := register(t, st, workflow("notified", ns, cs...))
	a := newExecutor(t, executor.Config{Store: st})
	counting := &countingStore{Store: openPostgresDSN(t, dsn), listening: make(chan struct{})}
	b := newExecutor(t, executor.Config{Store: counting})
	select {
	case <-counting.listening:
	case <-time.After(10 * time.Second):
		t.Fatal("the second replica did not listen for notifications within 10 s")
	}
	id, err := a.Start(t.Context(), &executor.Request{Workflow: w})
	if err != nil {
		t.Fatal(err)
	}
	counting.id.Store(&id)
	sub, err := b.Subscribe(t.Context(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	got := readAll(t, sub)
	want, err := st.ListEvents(t.Context(), id, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || !got[len(got)-1].Kind.Terminal() {
		t.Fatalf("the watcher on B got %d events (last seq %d), the journal has %d", len(got), lastSeq(got), len(want))
	}
	// Subscribe checks that the execution exists and the first read that
	// finds no new event checks whether it ended; each poll interval (1 s
	// while listening) without notification, which a loaded machine may
	// cause, adds one more. Reading it after each of the 2×12 node events
	// (about 20 reads before the change) is what this guards against.
	if n := counting.gets.Load(); n > 6 {
		t.Errorf("B read execution %s %d times while watching %d events, want at most 6", id, n, len(got))
	}
}
