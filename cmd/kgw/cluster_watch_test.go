package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	kgw "github.com/kailash-gateway/kgw/clients/go"
)

// watchedEvent is what a watcher saw: the event and when it arrived.
type watchedEvent struct {
	seq  int64
	kind kgw.EventKind
	node string
	at   time.Time
}

// watchAll watches id through c from afterSeq until the stream ends and
// returns the events with their arrival times, and the time it ended.
func watchAll(ctx context.Context, c *kgw.Client, id string, afterSeq int64) ([]watchedEvent, time.Time, error) {
	var out []watchedEvent
	for ev, err := range c.Watch(ctx, id, afterSeq) {
		if err != nil {
			return out, time.Now(), err
		}
		out = append(out, watchedEvent{seq: ev.Seq, kind: ev.Kind, node: ev.NodeID, at: time.Now()})
	}
	return out, time.Now(), nil
}

// TestClusterWatch runs two real replicas on one PostgreSQL store. For each
// of several executions started on A, a watcher on B (where the execution
// does not run) gets exactly the events A's own watcher gets, in the same
// order, and its stream ends within 300 ms of A's: B is woken by the
// notification A's journal commit sends, not by its fallback poll (one
// second while notifications arrive). A third watcher that starts on B
// after A's watcher has seen some events, from that seq, gets exactly the
// rest.
func TestClusterWatch(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two gateways")
	}
	gws, _, _ := startCluster(t, 2)
	cs := dialAll(t, gws)
	const nodes = 5
	b := kgw.NewWorkflow("watch_chain")
	for i := 1; i <= nodes; i++ {
		b.AddCode(fmt.Sprintf("n%d", i), `
time.sleep(0.1)
result = {"node": execution.node}
`)
		if i > 1 {
			b.Connect(fmt.Sprintf("n%d", i-1), "node", fmt.Sprintf("n%d", i), "previous")
		}
	}
	wf, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs[0].Register(t.Context(), wf); err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		wctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		id, err := cs[0].Start(wctx, "watch_chain")
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		onA, onB, rest := watchOnBoth(wctx, cs, id)
		cancel()
		for name, r := range map[string]watchResult{"A": onA, "B": onB, "B resuming": rest} {
			if r.err != nil {
				t.Fatalf("round %d: watcher on %s: %v (A saw %+v)", round, name, r.err, onA.evs)
			}
		}
		if len(onA.evs) < 2*nodes+2 || !(&kgw.Event{Kind: onA.evs[len(onA.evs)-1].kind}).Terminal() {
			t.Fatalf("round %d: A's watcher saw %d events ending %v", round, len(onA.evs), onA.evs[len(onA.evs)-1].kind)
		}
		checkWatchedAlike(t, round, onA, onB, rest)
	}
}

// watchResult is what one watcher of an execution saw.
type watchResult struct {
	evs []watchedEvent
	end time.Time // when its stream ended
	err error
}

// watchOnBoth watches execution id from its start on replica A (cs[0]) and
// on replica B (cs[1]), and on B again from where A saw node n2 complete
// (rest), all at once, until the execution ends.
func watchOnBoth(ctx context.Context, cs []*kgw.Client, id string) (onA, onB, rest watchResult) {
	var wg sync.WaitGroup
	resumeAt := make(chan int64, 1)
	wg.Add(3)
	go func() {
		defer wg.Done()
		var sent bool
		for ev, err := range cs[0].Watch(ctx, id, 0) {
			if err != nil {
				onA.err = err
				break
			}
			onA.evs = append(onA.evs, watchedEvent{seq: ev.Seq, kind: ev.Kind, node: ev.NodeID, at: time.Now()})
			if !sent && ev.Kind == kgw.EventNodeCompleted && ev.NodeID == "n2" {
				resumeAt <- ev.Seq
				sent = true
			}
		}
		onA.end = time.Now()
		if !sent {
			close(resumeAt)
		}
	}()
	go func() {
		defer wg.Done()
		onB.evs, onB.end, onB.err = watchAll(ctx, cs[1], id, 0)
	}()
	go func() {
		defer wg.Done()
		after, ok := <-resumeAt
		if !ok {
			rest.err = fmt.Errorf("A's watcher never saw n2 complete")
			return
		}
		rest.evs, rest.end, rest.err = watchAll(ctx, cs[1], id, after)
	}()
	wg.Wait()
	return onA, onB, rest
}

// checkWatchedAlike checks that B's watchers saw the events A's saw (the
// resuming one from where it resumed), and ended within 300ms of A's.
func checkWatchedAlike(t *testing.T, round int, onA, onB, rest watchResult) {
	t.Helper()
	sameEvents(t, round, "B", onB.evs, onA.evs)
	first := rest.evs
	if len(first) > 0 {
		k := int(first[0].seq - 1)
		if k < 1 || k > len(onA.evs) {
			t.Fatalf("round %d: resuming watcher started at seq %d", round, first[0].seq)
		}
		sameEvents(t, round, "B resuming", rest.evs, onA.evs[k:])
	} else {
		t.Errorf("round %d: resuming watcher on B saw nothing", round)
	}
	var lag time.Duration
	for i := range onB.evs {
		lag = max(lag, onB.evs[i].at.Sub(onA.evs[i].at))
	}
	t.Logf("round %d: %d events; B's stream ended %v after A's, largest event lag %v", round, len(onA.evs), onB.end.Sub(onA.end), lag)
	if d := onB.end.Sub(onA.end); d > 300*time.Millisecond {
		t.Errorf("round %d: B's watcher ended %v after A's, want within 300ms", round, d)
	}
	if d := rest.end.Sub(onA.end); d > 300*time.Millisecond {
		t.Errorf("round %d: B's resuming watcher ended %v after A's, want within 300ms", round, d)
	}
}

// sameEvents checks that the watcher name saw want (what A saw).
func sameEvents(t *testing.T, round int, name string, got, want []watchedEvent) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("round %d: %s saw %d events, A saw %d", round, name, len(got), len(want))
		return
	}
	for i := range want {
		if got[i].seq != want[i].seq || got[i].kind != want[i].kind || got[i].node != want[i].node {
			t.Errorf("round %d: %s event %d = %+v, A saw %+v", round, name, i, got[i], want[i])
			return
		}
	}
}

// TestClusterWorkflowChanges runs two real replicas on one PostgreSQL store:
// each time a new version of a workflow is registered on A, an execution
// started on B right after the registering call returned runs that version,
// although B had the previous one cached (it had just run it); once the
// workflow is deleted on A, starting it on B right away fails NOT_FOUND.
func TestClusterWorkflowChanges(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two gateways")
	}
	gws, _, _ := startCluster(t, 2)
	cs := dialAll(t, gws)
	ctx := t.Context()
	register := func(v int) {
		t.Helper()
		b := kgw.NewWorkflow("changing")
		b.AddCode("n", fmt.Sprintf("result = {\"v\": %d}", v))
		wf, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cs[0].Register(ctx, wf); err != nil {
			t.Fatal(err)
		}
	}
	runOnB := func(want int) {
		t.Helper()
		ex, err := cs[1].Execute(ctx, "changing")
		if err != nil {
			t.Fatalf("execute on B: %v", err)
		}
		if ex.Status != kgw.StatusCompleted {
			t.Fatalf("execute on B: status %s, error %+v", ex.Status, ex.Error)
		}
		if got := ex.Result["n"]["v"]; fmt.Sprint(got) != fmt.Sprint(want) || ex.Version != want {
			t.Fatalf("execute on B right after registering version %d on A ran version %d with result %v", want, ex.Version, got)
		}
	}
	for v := 1; v <= 8; v++ {
		register(v)
		runOnB(v) // B's cache now holds version v: the next round must not use it
	}
	if err := cs[0].DeleteWorkflow(ctx, "changing"); err != nil {
		t.Fatal(err)
	}
	if _, err := cs[1].Execute(ctx, "changing"); !errors.Is(err, kgw.ErrNotFound) {
		t.Fatalf("execute on B right after deleting on A: %v, want NOT_FOUND", err)
	}
	register(9)
	runOnB(9)
}
