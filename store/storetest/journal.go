package storetest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kailash-gateway/kgw/store"
)

// testJournalWrite writes an execution's journal in two batches, checking
// the execution after each, then lists its events by range.
func testJournalWrite(t *testing.T, s store.Store) {
	ctx := t.Context()
	e := sampleExecution("j1", at(0))
	must(t, "CreateExecution", s.CreateExecution(ctx, e))
	want, first := journalWriteStart(t, s)
	final := journalWriteEnd(t, s, want)
	checkJournalEvents(t, s, append(first, final...))
	// An empty batch is fine.
	must(t, "WriteJournal(empty)", s.WriteJournal(ctx, &store.JournalBatch{}))
}

// journalWriteStart writes the first batch of execution j1 (made by
// sampleExecution): it starts, and its first node starts. It returns the
// execution as stored and the batch's events.
func journalWriteStart(t *testing.T, s store.Store) (*store.Execution, []*store.Event) {
	ctx := t.Context()
	started := &store.Event{ExecutionID: "j1", Seq: 1, Time: at(time.Second), Kind: store.EventExecutionStarted,
		Workflow: "orders", Version: 2, Resumed: true}
	nodeStarted := &store.Event{ExecutionID: "j1", Seq: 2, Time: at(2 * time.Second), Kind: store.EventNodeStarted,
		NodeID: "fetch", Attempt: 1}
	b1 := &store.JournalBatch{
		Executions: []*store.Execution{{ID: "j1", Status: store.ExecutionRunning, StartTime: at(time.Second), Owner: "gw-2",
			Workflow: "ignored", Caller: "ignored"}},
		Nodes: []store.NodeUpdate{
			{ExecutionID: "j1", State: &store.NodeState{NodeID: "fetch", Status: store.NodeRunning, Attempts: 1, StartTime: at(2 * time.Second)}},
			{ExecutionID: "j1", State: &store.NodeState{NodeID: "extra", Status: store.NodeSkipped}},
		},
		Events: []*store.Event{started, nodeStarted},
	}
	must(t, "WriteJournal #1", s.WriteJournal(ctx, b1))

	want := sampleExecution("j1", at(0))
	want.Status, want.StartTime, want.Owner = store.ExecutionRunning, at(time.Second), "gw-2"
	want.Nodes[0] = b1.Nodes[0].State
	want.Nodes = append(want.Nodes, b1.Nodes[1].State)
	got, err := s.GetExecution(ctx, "j1")
	must(t, "GetExecution", err)
	if d := diff(want, got); d != "" {
		t.Errorf("after WriteJournal #1 (-want +got):\n%s", d)
	}
	return want, b1.Events
}

// journalWriteEnd writes the second batch of j1, whose stored form is want:
// its node logs, retries and completes, and the execution fails. It
// returns the batch's events.
func journalWriteEnd(t *testing.T, s store.Store, want *store.Execution) []*store.Event {
	ctx := t.Context()
	log := &store.Event{ExecutionID: "j1", Seq: 3, Time: at(3 * time.Second), Kind: store.EventNodeLog,
		NodeID: "fetch", Attempt: 1, Level: store.LogWarning, Message: "slow", Fields: jsonValue()}
	retry := &store.Event{ExecutionID: "j1", Seq: 4, Time: at(4 * time.Second), Kind: store.EventNodeRetrying,
		NodeID: "fetch", Attempt: 1, Error: &store.ExecError{NodeID: "fetch", Code: "TIMEOUT", Message: "deadline"},
		Backoff: 1500 * time.Millisecond}
	done := &store.NodeState{NodeID: "fetch", Status: store.NodeCompleted, Attempts: 2,
		StartTime: at(2 * time.Second), EndTime: at(5 * time.Second), Result: jsonValue()}
	completed := &store.Event{ExecutionID: "j1", Seq: 5, Time: at(5 * time.Second), Kind: store.EventNodeCompleted,
		NodeID: "fetch", Attempt: 2, Result: jsonValue(), Duration: 3 * time.Second}
	want.Nodes[0] = done
	want.Status, want.EndTime = store.ExecutionFailed, at(6*time.Second)
	want.Error = &store.ExecError{NodeID: "transform", Code: "ERR", Message: "boom", Traceback: "line 1"}
	final := &store.Event{ExecutionID: "j1", Seq: 6, Time: at(6 * time.Second), Kind: store.EventExecutionFailed,
		Execution: want}
	b2 := &store.JournalBatch{
		Executions: []*store.Execution{{ID: "j1", Status: want.Status, StartTime: want.StartTime, EndTime: want.EndTime,
			Error: want.Error, Owner: "gw-2"}},
		Nodes:  []store.NodeUpdate{{ExecutionID: "j1", State: done}},
		Events: []*store.Event{log, retry, completed, final},
	}
	must(t, "WriteJournal #2", s.WriteJournal(ctx, b2))
	got, err := s.GetExecution(ctx, "j1")
	must(t, "GetExecution", err)
	if d := diff(want, got); d != "" {
		t.Errorf("after WriteJournal #2 (-want +got):\n%s", d)
	}
	return b2.Events
}

// checkJournalEvents lists the events of j1, all of them allEvents, in
// whole and by range, and those of an unknown execution.
func checkJournalEvents(t *testing.T, s store.Store, allEvents []*store.Event) {
	ctx := t.Context()
	events, err := s.ListEvents(ctx, "j1", 0, 0)
	must(t, "ListEvents", err)
	if d := diff(allEvents, events); d != "" {
		t.Errorf("ListEvents(j1, 0, 0) (-want +got):\n%s", d)
	}
	events, err = s.ListEvents(ctx, "j1", 2, 2)
	must(t, "ListEvents", err)
	if d := diff(allEvents[2:4], events); d != "" {
		t.Errorf("ListEvents(j1, 2, 2) (-want +got):\n%s", d)
	}
	events, err = s.ListEvents(ctx, "j1", 6, 10)
	must(t, "ListEvents", err)
	if len(events) != 0 {
		t.Errorf("ListEvents(j1, 6, 10) = %d events, want 0", len(events))
	}
	events, err = s.ListEvents(ctx, "unknown", 0, 10)
	must(t, "ListEvents(unknown)", err)
	if len(events) != 0 {
		t.Errorf("ListEvents(unknown) = %d events, want 0", len(events))
	}
}

// Executions created in a batch are inserted before the batch's other
// writes, and a create that CreateExecution would refuse fails the batch.
func testJournalCreate(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := sampleExecution("b1", at(0))
	a.Status, a.StartTime, a.IdempotencyKey = store.ExecutionRunning, at(0), "key-b"
	other := sampleExecution("b2", time.Time{})
	started := &store.Event{ExecutionID: "b1", Seq: 1, Time: at(0), Kind: store.EventExecutionStarted, Workflow: "orders", Version: 2}
	running := &store.NodeState{NodeID: "fetch", Status: store.NodeRunning, Attempts: 1, StartTime: at(time.Second)}
	must(t, "WriteJournal with creates", s.WriteJournal(ctx, &store.JournalBatch{
		Creates: []*store.Execution{a, other},
		Nodes:   []store.NodeUpdate{{ExecutionID: "b1", State: running}},
		Events: []*store.Event{started,
			{ExecutionID: "b1", Seq: 2, Time: at(time.Second), Kind: store.EventNodeStarted, NodeID: "fetch", Attempt: 1}},
	}))
	if other.CreateTime.IsZero() {
		t.Errorf("a zero CreateTime of a created execution was not set")
	}
	want := sampleExecution("b1", at(0))
	want.Status, want.StartTime, want.IdempotencyKey = store.ExecutionRunning, at(0), "key-b"
	want.Nodes[0] = running
	got, err := s.GetExecution(ctx, "b1")
	must(t, "GetExecution", err)
	if d := diff(want, got); d != "" {
		t.Errorf("created in a batch (-want +got):\n%s", d)
	}
	events, err := s.ListEvents(ctx, "b1", 0, 0)
	must(t, "ListEvents", err)
	if len(events) != 2 || events[0].Kind != store.EventExecutionStarted {
		t.Errorf("events of an execution created in a batch: %d, want 2 starting with ExecutionStarted", len(events))
	}
	if _, err := s.GetExecution(ctx, "b2"); err != nil {
		t.Errorf("second execution of the batch: %v", err)
	}

	dupKey := sampleExecution("b3", at(time.Minute))
	dupKey.IdempotencyKey = "key-b"
	refused := map[string]*store.Execution{"duplicate id": sampleExecution("b1", at(time.Minute)), "duplicate idempotency key": dupKey}
	for name, e := range refused {
		err := s.WriteJournal(ctx, &store.JournalBatch{
			Creates: []*store.Execution{sampleExecution("b4", at(time.Minute)), e},
			Events:  []*store.Event{{ExecutionID: "b2", Seq: 1, Time: at(time.Minute), Kind: store.EventExecutionStarted}},
		})
		wantErr(t, "WriteJournal creating an execution with a "+name, err, store.ErrAlreadyExists)
	}
	for _, id := range []string{"b3", "b4"} {
		if _, err := s.GetExecution(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetExecution(%s) after refused batches = %v, want ErrNotFound", id, err)
		}
	}
	if events, err := s.ListEvents(ctx, "b2", 0, 0); err != nil || len(events) != 0 {
		t.Errorf("refused batches appended %d events (error %v), want 0", len(events), err)
	}
}

func testJournalConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, "CreateExecution", s.CreateExecution(ctx, sampleExecution("c1", at(0))))
	must(t, "WriteJournal", s.WriteJournal(ctx, &store.JournalBatch{
		Events: []*store.Event{
			{ExecutionID: "c1", Seq: 1, Time: at(time.Second), Kind: store.EventExecutionStarted},
			{ExecutionID: "c1", Seq: 2, Time: at(time.Second), Kind: store.EventNodeStarted, NodeID: "fetch"},
		},
	}))
	before, err := s.GetExecution(ctx, "c1")
	must(t, "GetExecution", err)

	err = s.WriteJournal(ctx, &store.JournalBatch{
		Executions: []*store.Execution{{ID: "c1", Status: store.ExecutionCompleted, EndTime: at(time.Minute), Owner: "x"}},
		Nodes: []store.NodeUpdate{
			{ExecutionID: "c1", State: &store.NodeState{NodeID: "fetch", Status: store.NodeCompleted, Result: map[string]any{"a": "b"}}},
			{ExecutionID: "c1", State: &store.NodeState{NodeID: "new", Status: store.NodeRunning}},
		},
		Events: []*store.Event{
			{ExecutionID: "c1", Seq: 3, Time: at(time.Minute), Kind: store.EventNodeCompleted, NodeID: "fetch"},
			{ExecutionID: "c1", Seq: 2, Time: at(time.Minute), Kind: store.EventExecutionCompleted},
		},
	})
	wantErr(t, "WriteJournal with a duplicate seq", err, store.ErrConflict)

	after, err := s.GetExecution(ctx, "c1")
	must(t, "GetExecution", err)
	if d := diff(before, after); d != "" {
		t.Errorf("a failed batch changed the execution (-before +after):\n%s", d)
	}
	events, err := s.ListEvents(ctx, "c1", 0, 100)
	must(t, "ListEvents", err)
	if len(events) != 2 || events[1].Kind != store.EventNodeStarted {
		t.Errorf("after a failed batch: %d events (last %v), want the 2 earlier ones", len(events), events[len(events)-1].Kind)
	}
}

func testJournalUnknownExecution(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, "CreateExecution", s.CreateExecution(ctx, sampleExecution("known", at(0))))
	batches := map[string]*store.JournalBatch{
		"header": {Executions: []*store.Execution{{ID: "ghost", Status: store.ExecutionRunning}}},
		"node":   {Nodes: []store.NodeUpdate{{ExecutionID: "ghost", State: &store.NodeState{NodeID: "n", Status: store.NodeRunning}}}},
		"event":  {Events: []*store.Event{{ExecutionID: "ghost", Seq: 1, Time: at(0), Kind: store.EventExecutionStarted}}},
	}
	for name, b := range batches {
		// Each batch also carries a valid write that must not be applied.
		b.Events = append(b.Events, &store.Event{ExecutionID: "known", Seq: 1, Time: at(0), Kind: store.EventExecutionStarted})
		wantErr(t, "WriteJournal("+name+" of unknown execution)", s.WriteJournal(ctx, b), store.ErrNotFound)
	}
	events, err := s.ListEvents(ctx, "known", 0, 10)
	must(t, "ListEvents", err)
	if len(events) != 0 {
		t.Errorf("failed batches appended %d events to another execution", len(events))
	}
}

func claimedIDs(execs []*store.Execution) []string {
	var ids []string
	for _, e := range execs {
		ids = append(ids, e.ID)
	}
	sort.Strings(ids)
	return ids
}

func testClaim(t *testing.T, s store.Store) {
	ctx := t.Context()
	t0 := time.Now().UTC().Truncate(time.Microsecond)
	must(t, "Heartbeat(a)", s.Heartbeat(ctx, "a", t0))
	must(t, "Heartbeat(c)", s.Heartbeat(ctx, "c", t0.Add(10*time.Minute)))
	create := func(id, owner string, status store.ExecutionStatus) {
		e := sampleExecution(id, at(0))
		e.Owner, e.Status = owner, status
		must(t, "CreateExecution", s.CreateExecution(ctx, e))
	}
	create("stale-owner", "a", store.ExecutionRunning)
	create("no-owner", "", store.ExecutionPending)
	create("finished", "", store.ExecutionCompleted)
	create("failed", "a", store.ExecutionFailed)
	create("never-beat", "b", store.ExecutionRunning)
	create("fresh-owner", "c", store.ExecutionRunning)

	staleBefore := t0.Add(time.Minute)
	got, err := claimStale(ctx, s, "d", staleBefore)
	must(t, "claimStale(d)", err)
	if d := diff([]string{"never-beat", "no-owner", "stale-owner"}, claimedIDs(got)); d != "" {
		t.Fatalf("claimStale(d) ids (-want +got):\n%s", d)
	}
	for _, e := range got {
		if e.Owner != "d" || len(e.Nodes) != 3 {
			t.Errorf("claimed %s: owner %q with %d nodes, want d with 3", e.ID, e.Owner, len(e.Nodes))
		}
		stored, err := s.GetExecution(ctx, e.ID)
		must(t, "GetExecution", err)
		if stored.Owner != "d" {
			t.Errorf("stored owner of %s = %q, want d", e.ID, stored.Owner)
		}
	}
	fresh, err := s.GetExecution(ctx, "fresh-owner")
	must(t, "GetExecution", err)
	if fresh.Owner != "c" {
		t.Errorf("owner of fresh-owner = %q, want c (its owner is alive)", fresh.Owner)
	}

	// Once d heart-beats, nobody can take its executions.
	must(t, "Heartbeat(d)", s.Heartbeat(ctx, "d", t0.Add(5*time.Minute)))
	got, err = claimStale(ctx, s, "e", staleBefore)
	must(t, "claimStale(e)", err)
	if len(got) != 0 {
		t.Errorf("claimStale(e) = %v, want none", claimedIDs(got))
	}
	// When c stops heart-beating (its last beat is now older than the
	// threshold), its execution can be claimed.
	got, err = claimStale(ctx, s, "e", t0.Add(time.Hour))
	must(t, "claimStale(e, later)", err)
	if d := diff([]string{"fresh-owner", "never-beat", "no-owner", "stale-owner"}, claimedIDs(got)); d != "" {
		t.Errorf("claimStale(e, later) ids (-want +got):\n%s", d)
	}
}

func testConcurrentClaims(t *testing.T, s store.Store) {
	ctx := t.Context()
	const executions, claimers = 30, 5
	t0 := time.Now().UTC()
	for i := range executions {
		e := sampleExecution("cc-"+string(rune('a'+i/10))+string(rune('0'+i%10)), at(time.Duration(i)))
		e.Owner, e.Status = "", store.ExecutionRunning
		must(t, "CreateExecution", s.CreateExecution(ctx, e))
	}
	for i := range claimers {
		must(t, "Heartbeat", s.Heartbeat(ctx, claimer(i), t0.Add(time.Hour)))
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		claimed = map[string]string{}
		errs    []error
	)
	for i := range claimers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := claimStale(ctx, s, claimer(i), t0)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			for _, e := range got {
				if prev, dup := claimed[e.ID]; dup {
					errs = append(errs, errorf("%s claimed by %s and %s", e.ID, prev, claimer(i)))
				}
				claimed[e.ID] = claimer(i)
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("concurrent claims: %v", errs)
	}
	if len(claimed) != executions {
		t.Errorf("concurrent claims took %d executions, want %d", len(claimed), executions)
	}
	for id, owner := range claimed {
		e, err := s.GetExecution(ctx, id)
		must(t, "GetExecution", err)
		if e.Owner != owner {
			t.Errorf("%s: stored owner %q, but %s was told it claimed it", id, e.Owner, owner)
		}
	}
}

func claimer(i int) string { return "claimer-" + string(rune('0'+i)) }

func testDeleteBefore(t *testing.T, s store.Store) {
	ctx := t.Context()
	create := func(id string, status store.ExecutionStatus, created, ended time.Time) {
		e := sampleExecution(id, created)
		e.Status, e.EndTime = status, ended
		must(t, "CreateExecution", s.CreateExecution(ctx, e))
		must(t, "WriteJournal", s.WriteJournal(ctx, &store.JournalBatch{Events: []*store.Event{
			{ExecutionID: id, Seq: 1, Time: created, Kind: store.EventExecutionStarted},
			{ExecutionID: id, Seq: 2, Time: created, Kind: store.EventNodeStarted, NodeID: "fetch"},
		}}))
	}
	cutoff := at(10 * time.Hour)
	create("old-completed", store.ExecutionCompleted, at(0), at(time.Hour))
	create("old-failed", store.ExecutionFailed, at(0), at(2*time.Hour))
	create("old-cancelled", store.ExecutionCancelled, at(0), at(3*time.Hour))
	create("new-completed", store.ExecutionCompleted, at(0), at(11*time.Hour))
	create("old-running", store.ExecutionRunning, at(0), time.Time{})
	create("old-pending", store.ExecutionPending, at(0), time.Time{})

	n, err := s.DeleteExecutionsBefore(ctx, cutoff)
	must(t, "DeleteExecutionsBefore", err)
	if n != 3 {
		t.Errorf("DeleteExecutionsBefore = %d, want 3", n)
	}
	for _, id := range []string{"old-completed", "old-failed", "old-cancelled"} {
		_, err := s.GetExecution(ctx, id)
		wantErr(t, "GetExecution("+id+")", err, store.ErrNotFound)
		events, err := s.ListEvents(ctx, id, 0, 10)
		must(t, "ListEvents", err)
		if len(events) != 0 {
			t.Errorf("ListEvents(%s) after delete = %d events, want 0", id, len(events))
		}
	}
	for _, id := range []string{"new-completed", "old-running", "old-pending"} {
		e, err := s.GetExecution(ctx, id)
		must(t, "GetExecution("+id+")", err)
		if len(e.Nodes) != 3 {
			t.Errorf("%s lost its nodes", id)
		}
		events, err := s.ListEvents(ctx, id, 0, 10)
		must(t, "ListEvents", err)
		if len(events) != 2 {
			t.Errorf("ListEvents(%s) = %d events, want 2", id, len(events))
		}
	}
	n, err = s.DeleteExecutionsBefore(ctx, cutoff)
	must(t, "DeleteExecutionsBefore again", err)
	if n != 0 {
		t.Errorf("second DeleteExecutionsBefore = %d, want 0", n)
	}
	// Nothing of a deleted execution is left over: one created again
	// with its id has only its own nodes and events.
	again := sampleExecution("old-completed", at(12*time.Hour))
	again.Nodes = again.Nodes[:1]
	must(t, "CreateExecution(old-completed again)", s.CreateExecution(ctx, again))
	e, err := s.GetExecution(ctx, "old-completed")
	must(t, "GetExecution(old-completed again)", err)
	if d := diff(again, e); d != "" {
		t.Errorf("execution created again with a deleted id (-want +got):\n%s", d)
	}
	events, err := s.ListEvents(ctx, "old-completed", 0, 10)
	must(t, "ListEvents(old-completed again)", err)
	if len(events) != 0 {
		t.Errorf("execution created again with a deleted id has %d events, want 0", len(events))
	}
}

// testCancelled checks that a cancelled context fails reads and writes.
func testCancelled(t *testing.T, s store.Store) {
	must(t, "CreateExecution", s.CreateExecution(t.Context(), sampleExecution("x", at(0))))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	calls := map[string]func() error{
		"CreateWorkflowVersion": func() error { _, err := s.CreateWorkflowVersion(ctx, sampleWorkflow("w", 1)); return err },
		"GetWorkflow":           func() error { _, err := s.GetWorkflow(ctx, "w", 0); return err },
		"ListWorkflows":         func() error { _, _, err := s.ListWorkflows(ctx, store.Page{Limit: 10}); return err },
		"CreateExecution":       func() error { return s.CreateExecution(ctx, sampleExecution("y", at(0))) },
		"GetExecution":          func() error { _, err := s.GetExecution(ctx, "x"); return err },
		"ListExecutions": func() error {
			_, _, err := s.ListExecutions(ctx, store.ExecutionQuery{Page: store.Page{Limit: 10}})
			return err
		},
		"WriteJournal": func() error {
			return s.WriteJournal(ctx, &store.JournalBatch{Events: []*store.Event{{ExecutionID: "x", Seq: 1, Time: at(0), Kind: store.EventExecutionStarted}}})
		},
		"ListEvents":   func() error { _, err := s.ListEvents(ctx, "x", 0, 10); return err },
		"ReleaseStale": func() error { _, err := s.ReleaseStale(ctx, at(0)); return err },
		"ClaimQueued":  func() error { _, err := s.ClaimQueued(ctx, "o", 1); return err },
		"Heartbeat":    func() error { return s.Heartbeat(ctx, "o", at(0)) },
		"GetSecret":    func() error { _, err := s.GetSecret(ctx, "s", 0); return err },
		"PutResource": func() error {
			_, err := s.PutResource(ctx, &store.Resource{Name: "r", Spec: store.ResourceSpec{Ref: "x"}})
			return err
		},
	}
	for name, call := range calls {
		if err := call(); !errorsIsCanceled(err) {
			t.Errorf("%s with a cancelled context: err = %v, want context.Canceled", name, err)
		}
	}
	// Nothing was written.
	if _, err := s.GetExecution(t.Context(), "y"); err == nil {
		t.Errorf("CreateExecution with a cancelled context stored the execution")
	}
	events, err := s.ListEvents(t.Context(), "x", 0, 10)
	must(t, "ListEvents", err)
	if len(events) != 0 {
		t.Errorf("WriteJournal with a cancelled context appended %d events", len(events))
	}
}

// testConcurrentJournalWriters checks that concurrent batches, some of
// which conflict, each get their own outcome (backends that commit several
// writers' batches together must not let one failure spill over).
func testConcurrentJournalWriters(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, "CreateExecution", s.CreateExecution(ctx, sampleExecution("cw", at(0))))
	const writers, distinct = 32, 16
	var (
		wg            sync.WaitGroup
		mu            sync.Mutex
		ok, conflicts int
		unexpected    []error
	)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seq := int64(i%distinct) + 1
			err := s.WriteJournal(ctx, &store.JournalBatch{
				Nodes: []store.NodeUpdate{{ExecutionID: "cw", State: &store.NodeState{NodeID: "fetch", Status: store.NodeRunning, Attempts: int32(i)}}},
				Events: []*store.Event{{ExecutionID: "cw", Seq: seq, Time: at(time.Duration(i)), Kind: store.EventNodeLog,
					NodeID: "fetch", Message: "writer", Fields: map[string]any{"writer": int64(i)}}},
			})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, store.ErrConflict):
				conflicts++
			default:
				unexpected = append(unexpected, err)
			}
		}()
	}
	wg.Wait()
	if len(unexpected) > 0 {
		t.Fatalf("concurrent WriteJournal: %v", unexpected)
	}
	if ok != distinct || conflicts != writers-distinct {
		t.Errorf("concurrent WriteJournal: %d ok, %d conflicts; want %d and %d", ok, conflicts, distinct, writers-distinct)
	}
	events, err := s.ListEvents(ctx, "cw", 0, 100)
	must(t, "ListEvents", err)
	if len(events) != distinct {
		t.Fatalf("ListEvents = %d events, want %d", len(events), distinct)
	}
	for i, ev := range events {
		if ev.Seq != int64(i)+1 {
			t.Errorf("events[%d].Seq = %d, want %d", i, ev.Seq, i+1)
		}
	}
}

// testConcurrentExecutions journals many executions at once, as a busy
// gateway does, and checks that every write landed.
func testConcurrentExecutions(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 40
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := "par-" + strconv.Itoa(i)
			if errs[i] = s.CreateExecution(ctx, sampleExecution(id, at(time.Duration(i)))); errs[i] != nil {
				return
			}
			for seq := int64(1); seq <= 3 && errs[i] == nil; seq++ {
				errs[i] = s.WriteJournal(ctx, &store.JournalBatch{
					Executions: []*store.Execution{{ID: id, Status: store.ExecutionRunning, Owner: "gw"}},
					Nodes: []store.NodeUpdate{{ExecutionID: id, State: &store.NodeState{
						NodeID: "fetch", Status: store.NodeRunning, Attempts: int32(seq)}}},
					Events: []*store.Event{{ExecutionID: id, Seq: seq, Time: at(0), Kind: store.EventNodeStarted, NodeID: "fetch"}},
				})
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("execution %d: %v", i, err)
		}
	}
	for i := range n {
		id := "par-" + strconv.Itoa(i)
		e, err := s.GetExecution(ctx, id)
		must(t, "GetExecution", err)
		if e.Status != store.ExecutionRunning || e.Nodes[0].Attempts != 3 {
			t.Errorf("%s: status %v, fetch attempts %d; want RUNNING and 3", id, e.Status, e.Nodes[0].Attempts)
		}
		events, err := s.ListEvents(ctx, id, 0, 10)
		must(t, "ListEvents", err)
		if len(events) != 3 {
			t.Errorf("%s: %d events, want 3", id, len(events))
		}
	}
}

// testJournalManyEvents journals an execution with more events than a
// backend may keep together, some with large bodies, written out of seq
// order across batches, and reads them back in every window.
func testJournalManyEvents(t *testing.T, s store.Store) {
	ctx := t.Context()
	e := sampleExecution("many", at(0))
	e.Nodes[1] = &store.NodeState{NodeID: "transform", Status: store.NodeCompleted, Attempts: 1,
		StartTime: at(time.Second), EndTime: at(2 * time.Second), Result: map[string]any{"ok": true}}
	must(t, "CreateExecution", s.CreateExecution(ctx, e))
	got, err := s.GetExecution(ctx, "many")
	must(t, "GetExecution", err)
	if d := diff(e, got); d != "" {
		t.Errorf("created with a completed node (-want +got):\n%s", d)
	}

	const n = 40
	big := strings.Repeat("x", 4000)
	events := make([]*store.Event, n)
	for i := range events {
		ev := &store.Event{ExecutionID: "many", Seq: int64(i) + 1, Time: at(time.Duration(i) * time.Millisecond),
			Kind: store.EventNodeLog, NodeID: "fetch", Attempt: 1, Message: "line " + strconv.Itoa(i)}
		if i%7 == 3 {
			ev.Message += big
		}
		events[i] = ev
	}
	// Three batches, each out of seq order.
	order := [][]int{{4, 0, 2, 1, 3, 9, 8}, {20, 5, 6, 7, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}, {39, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38}}
	for k, idx := range order {
		b := &store.JournalBatch{}
		for _, i := range idx {
			b.Events = append(b.Events, events[i])
		}
		must(t, "WriteJournal #"+strconv.Itoa(k), s.WriteJournal(ctx, b))
	}
	for _, window := range [][2]int{{0, 0}, {0, 5}, {3, 10}, {14, 4}, {15, 2}, {16, 30}, {30, 100}, {40, 1}} {
		after, limit := window[0], window[1]
		got, err := s.ListEvents(ctx, "many", int64(after), limit)
		must(t, "ListEvents", err)
		end := n
		if limit > 0 {
			end = min(n, after+limit)
		}
		if d := diff(events[after:end], got); d != "" {
			t.Errorf("ListEvents(many, %d, %d) (-want +got):\n%s", after, limit, d)
		}
	}
	// A seq journalled with a large body, or past the first events, is
	// refused again even with a small one.
	for _, seq := range []int64{4, 11, 33} {
		err := s.WriteJournal(ctx, &store.JournalBatch{Events: []*store.Event{
			{ExecutionID: "many", Seq: seq, Time: at(0), Kind: store.EventNodeLog, Message: "again"}}})
		wantErr(t, "WriteJournal of seq "+strconv.FormatInt(seq, 10)+" again", err, store.ErrConflict)
	}
	// Two events with one seq in one batch are refused.
	err = s.WriteJournal(ctx, &store.JournalBatch{Events: []*store.Event{
		{ExecutionID: "many", Seq: n + 1, Time: at(0), Kind: store.EventNodeLog},
		{ExecutionID: "many", Seq: n + 1, Time: at(0), Kind: store.EventNodeLog}}})
	wantErr(t, "WriteJournal with one seq twice", err, store.ErrConflict)
	all, err := s.ListEvents(ctx, "many", 0, 0)
	must(t, "ListEvents", err)
	if len(all) != n {
		t.Errorf("refused batches changed the events: %d, want %d", len(all), n)
	}
}

// testClaimCounters checks the ownership counters of an execution: a new
// execution has epoch 1 and no restarts whatever the caller put in those
// fields; every claim adds one to the epoch, and one to the restarts when
// the execution still had an owner (a crash), not when it was released
// (a graceful drain); journal writes leave both alone.
func testClaimCounters(t *testing.T, s store.Store) {
	ctx := t.Context()
	e := sampleExecution("counted", at(0))
	e.Status, e.Owner = store.ExecutionRunning, "gw-1"
	e.Epoch, e.Restarts = 7, 5 // ignored by creates
	must(t, "CreateExecution", s.CreateExecution(ctx, e))
	finished := sampleExecution("finished", at(time.Second))
	finished.Status = store.ExecutionCompleted
	must(t, "CreateExecution", s.CreateExecution(ctx, finished))

	check := func(what string, x *store.Execution, epoch int64, restarts int32) {
		t.Helper()
		if x.Epoch != epoch || x.Restarts != restarts {
			t.Errorf("%s: epoch %d, restarts %d; want %d, %d", what, x.Epoch, x.Restarts, epoch, restarts)
		}
		stored, err := s.GetExecution(ctx, x.ID)
		must(t, "GetExecution", err)
		if stored.Epoch != epoch || stored.Restarts != restarts {
			t.Errorf("%s: stored epoch %d, restarts %d; want %d, %d", what, stored.Epoch, stored.Restarts, epoch, restarts)
		}
	}
	got, err := s.GetExecution(ctx, "counted")
	must(t, "GetExecution", err)
	check("created", got, 1, 0)

	// claim takes the execution for owner (its previous owner never
	// heart-beat, so it is stale at any time).
	claim := func(owner string) *store.Execution {
		t.Helper()
		got, err := claimStale(ctx, s, owner, time.Now().Add(time.Hour))
		must(t, "claimStale("+owner+")", err)
		if d := diff([]string{"counted"}, claimedIDs(got)); d != "" {
			t.Fatalf("claimStale(%s) ids (-want +got):\n%s", owner, d)
		}
		return got[0]
	}
	check("claimed from a crashed owner", claim("a"), 2, 1)
	check("claimed again from a crashed owner", claim("b"), 3, 2)

	// A header update with other counters (and a release) changes neither.
	h := *e
	h.Nodes, h.Request, h.Owner, h.Epoch, h.Restarts = nil, store.ExecutionRequest{}, "", 99, 99
	must(t, "WriteJournal(release)", s.WriteJournal(ctx, &store.JournalBatch{Executions: []*store.Execution{&h}}))
	got, err = s.GetExecution(ctx, "counted")
	must(t, "GetExecution", err)
	check("released", got, 3, 2)
	check("claimed after a release", claim("c"), 4, 2)
	check("claimed from a crashed owner after a release", claim("d"), 5, 3)

	fin, err := s.GetExecution(ctx, "finished")
	must(t, "GetExecution", err)
	check("finished, never claimed", fin, 1, 0)
}

// testDeleteBeforeMany deletes more expired executions than a backend
// would sensibly delete in one transaction, with events and node states,
// among executions that must stay.
func testDeleteBeforeMany(t *testing.T, s store.Store) {
	ctx := t.Context()
	const expired = 1234
	var b store.JournalBatch
	for i := range expired + 10 {
		id := fmt.Sprintf("x-%05d", i)
		e := sampleExecution(id, at(time.Duration(i)*time.Second))
		e.Status, e.EndTime = store.ExecutionCompleted, at(time.Duration(i+1)*time.Second)
		switch {
		case i >= expired+5: // ends after the cutoff
			e.EndTime = at(48 * time.Hour)
		case i >= expired: // unfinished
			e.Status, e.EndTime = store.ExecutionRunning, time.Time{}
		}
		b.Creates = append(b.Creates, e)
		b.Events = append(b.Events, &store.Event{ExecutionID: id, Seq: 1, Time: e.CreateTime, Kind: store.EventExecutionStarted})
	}
	must(t, "WriteJournal", s.WriteJournal(ctx, &b))
	n, err := s.DeleteExecutionsBefore(ctx, at(24*time.Hour))
	must(t, "DeleteExecutionsBefore", err)
	if n != expired {
		t.Errorf("DeleteExecutionsBefore = %d, want %d", n, expired)
	}
	for i := range expired + 10 {
		id := fmt.Sprintf("x-%05d", i)
		_, err := s.GetExecution(ctx, id)
		events, lerr := s.ListEvents(ctx, id, 0, 10)
		must(t, "ListEvents", lerr)
		if i < expired {
			wantErr(t, "GetExecution("+id+")", err, store.ErrNotFound)
			if len(events) != 0 {
				t.Errorf("ListEvents(%s) after delete = %d events, want 0", id, len(events))
			}
			continue
		}
		must(t, "GetExecution("+id+")", err)
		if len(events) != 1 {
			t.Errorf("ListEvents(%s) = %d events, want 1", id, len(events))
		}
	}
	n, err = s.DeleteExecutionsBefore(ctx, at(24*time.Hour))
	must(t, "DeleteExecutionsBefore again", err)
	if n != 0 {
		t.Errorf("second DeleteExecutionsBefore = %d, want 0", n)
	}
}

// finishedCase is an execution that a batch creates finished: its nodes
// in the creation, the batch's node updates, and the node states it must
// read back with.
type finishedCase struct {
	id               string
	nodes, ups, want []*store.NodeState
}

// finishedCases covers node states in the creation and in updates, nodes
// that never ran, a node added by an update, large results, and strings
// with the characters a line format must keep.
func finishedCases() []finishedCase {
	odd := map[string]any{"tab": "a\tb", "newline": "x\ny", "dash": "-", "empty": "", "nested": map[string]any{"list": []any{"\t", "é", 1.5}}}
	big := map[string]any{"blob": strings.Repeat("x", 4096)}
	done := func(id string, res map[string]any) *store.NodeState {
		return &store.NodeState{NodeID: id, Status: store.NodeCompleted, Attempts: 1, StartTime: at(time.Second), EndTime: at(2 * time.Second), Result: res}
	}
	failed := &store.NodeState{NodeID: "transform", Status: store.NodeFailed, Attempts: 3, StartTime: at(time.Second),
		EndTime: at(3 * time.Second), Error: &store.ExecError{NodeID: "transform", Code: "E", Message: "bad\tinput\n", Traceback: "line 1"}}
	pending := func(id string) *store.NodeState { return &store.NodeState{NodeID: id, Status: store.NodePending} }
	return []finishedCase{
		{id: "fin-updates", nodes: []*store.NodeState{pending("fetch"), pending("transform")},
			ups:  []*store.NodeState{done("fetch", odd), done("transform", map[string]any{})},
			want: []*store.NodeState{done("fetch", odd), done("transform", map[string]any{})}},
		{id: "fin-in-create", nodes: []*store.NodeState{done("fetch", nil), failed, pending("store")},
			want: []*store.NodeState{done("fetch", nil), failed, pending("store")}},
		{id: "fin-appended", nodes: []*store.NodeState{pending("fetch")},
			ups:  []*store.NodeState{done("extra", map[string]any{"n": int64(1)}), done("fetch", nil)},
			want: []*store.NodeState{done("fetch", nil), done("extra", map[string]any{"n": int64(1)})}},
		{id: "fin-big", nodes: []*store.NodeState{pending("fetch"), pending("transform")},
			ups:  []*store.NodeState{done("fetch", big)},
			want: []*store.NodeState{done("fetch", big), pending("transform")}},
		{id: "fin-odd-id", nodes: []*store.NodeState{done("a\tb", odd)}, want: []*store.NodeState{done("a\tb", odd)}},
	}
}

// finishedBatch creates the cases in one batch, every other one finished
// in its creation and the others by the batch's header update, each with
// a start and a completion event.
func finishedBatch(cases []finishedCase) *store.JournalBatch {
	b := &store.JournalBatch{}
	for i, c := range cases {
		e := sampleExecution(c.id, at(time.Duration(i)*time.Millisecond))
		e.Nodes, e.StartTime = c.nodes, at(0)
		final := *e
		final.Status, final.EndTime, final.Nodes = store.ExecutionCompleted, at(3*time.Second), c.want
		if i%2 == 0 {
			e.Status, e.EndTime = store.ExecutionCompleted, final.EndTime // finished in the creation
		} else {
			e.Status = store.ExecutionRunning // finished by the batch's header update
			b.Executions = append(b.Executions, &final)
		}
		b.Creates = append(b.Creates, e)
		for _, n := range c.ups {
			b.Nodes = append(b.Nodes, store.NodeUpdate{ExecutionID: c.id, State: n})
		}
		b.Events = append(b.Events,
			&store.Event{ExecutionID: c.id, Seq: 1, Time: at(0), Kind: store.EventExecutionStarted, Workflow: "orders", Version: 2},
			&store.Event{ExecutionID: c.id, Seq: 2, Time: at(3 * time.Second), Kind: store.EventExecutionCompleted, Execution: &final})
	}
	return b
}

// testJournalCreateFinished writes executions that a batch creates already
// finished (how the journal writes a short workflow run at once) and reads
// them back every way the store reads executions.
func testJournalCreateFinished(t *testing.T, s store.Store) {
	ctx := t.Context()
	cases := finishedCases()
	must(t, "WriteJournal", s.WriteJournal(ctx, finishedBatch(cases)))
	listed, _, err := s.ListExecutions(ctx, store.ExecutionQuery{})
	must(t, "ListExecutions", err)
	bare, _, err := s.ListExecutions(ctx, store.ExecutionQuery{OmitResults: true})
	must(t, "ListExecutions(OmitResults)", err)
	for _, c := range cases {
		want := sampleExecution(c.id, time.Time{})
		want.Status, want.StartTime, want.EndTime, want.Nodes = store.ExecutionCompleted, at(0), at(3*time.Second), c.want
		got, err := s.GetExecution(ctx, c.id)
		must(t, "GetExecution", err)
		want.CreateTime = got.CreateTime
		if d := diff(want, got); d != "" {
			t.Errorf("GetExecution(%s) (-want +got):\n%s", c.id, d)
		}
		if d := diff(want, listedByID(t, listed, c.id)); d != "" {
			t.Errorf("ListExecutions, %s (-want +got):\n%s", c.id, d)
		}
		events, err := s.ListEvents(ctx, c.id, 0, 0)
		must(t, "ListEvents", err)
		if len(events) != 2 || events[1].Execution == nil {
			t.Fatalf("ListEvents(%s): %d events, want 2, the last with the execution", c.id, len(events))
		}
		if d := diff(want.Nodes, events[1].Execution.Nodes); d != "" {
			t.Errorf("nodes of the execution of the completion event of %s (-want +got):\n%s", c.id, d)
		}
		bareWant := *want
		bareWant.Nodes = nil
		for _, n := range want.Nodes {
			c := *n
			c.Result = nil
			bareWant.Nodes = append(bareWant.Nodes, &c)
		}
		if d := diff(&bareWant, listedByID(t, bare, c.id)); d != "" {
			t.Errorf("ListExecutions(OmitResults), %s (-want +got):\n%s", c.id, d)
		}
	}
	n, err := s.DeleteExecutionsBefore(ctx, at(time.Hour))
	must(t, "DeleteExecutionsBefore", err)
	if n != len(cases) {
		t.Errorf("DeleteExecutionsBefore = %d, want %d", n, len(cases))
	}
}

// listedByID returns the execution of list with the given id.
func listedByID(t *testing.T, list []*store.Execution, id string) *store.Execution {
	t.Helper()
	for _, e := range list {
		if e.ID == id {
			return e
		}
	}
	t.Fatalf("execution %s not listed", id)
	return nil
}
