package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/kailash-gateway/kgw/store"
)

// ShortRun is a workflow run at once, journalled as the executor's journal
// writes it: one batch creates the execution running, with its nodes
// pending, and carries every node's start and completion, the final
// header and the events, the last referring to the execution. Edit, if
// set, changes the events before they are written: a backend that stores
// the events of such a run in a shorter form must give back exactly what
// was written, whatever it was.
type ShortRun struct {
	Name  string
	Nodes int
	Edit  func(evs []*store.Event, final *store.Execution) []*store.Event
}

// ShortRuns are the runs testJournalShortRuns writes: plain ones, whose
// events say nothing their execution does not, and others that differ
// from those in one way each.
func ShortRuns() []ShortRun {
	return []ShortRun{
		{Name: "noop", Nodes: 1},
		{Name: "chain", Nodes: 3},
		{Name: "seven", Nodes: 7},
		{Name: "eight", Nodes: 8}, // more events than a row keeps inline
		{Name: "log", Nodes: 2, Edit: func(evs []*store.Event, _ *store.Execution) []*store.Event {
			return insertEvent(evs, 2, &store.Event{Kind: store.EventNodeLog, NodeID: "n0", Attempt: 1,
				Level: store.LogInfo, Message: "hello", Time: evs[1].Time})
		}},
		{Name: "retried", Nodes: 1, Edit: func(evs []*store.Event, final *store.Execution) []*store.Event {
			final.Nodes[0].Attempts = 2
			evs[2].Attempt = 2
			return insertEvent(evs, 2, &store.Event{Kind: store.EventNodeRetrying, NodeID: "n0", Attempt: 1,
				Error: &store.ExecError{NodeID: "n0", Code: "E", Message: "again"}, Backoff: time.Millisecond, Time: evs[1].Time})
		}},
		{Name: "interleaved", Nodes: 2, Edit: func(evs []*store.Event, _ *store.Execution) []*store.Event {
			evs[2], evs[3] = evs[3], evs[2] // n1 starts before n0 completes
			evs[2].Seq, evs[3].Seq = 3, 4
			return evs
		}},
		{Name: "resumed", Nodes: 1, Edit: func(evs []*store.Event, _ *store.Execution) []*store.Event {
			evs[0].Resumed = true
			return evs
		}},
		{Name: "duration", Nodes: 1, Edit: func(evs []*store.Event, _ *store.Execution) []*store.Event {
			evs[2].Duration += time.Microsecond // a monotonic clock that disagrees with the wall clock
			return evs
		}},
		{Name: "late-start", Nodes: 1, Edit: func(evs []*store.Event, _ *store.Execution) []*store.Event {
			evs[0].Time = evs[0].Time.Add(5 * time.Microsecond)
			return evs
		}},
		{Name: "result-copy", Nodes: 1, Edit: func(evs []*store.Event, final *store.Execution) []*store.Event {
			final.Nodes[0].Result = map[string]any{"k": int64(0), "s": "a\tb"}
			evs[2].Result = map[string]any{"k": int64(0), "s": "a\tb"} // equal to the node's, another map
			return evs
		}},
		{Name: "other-result", Nodes: 1, Edit: func(evs []*store.Event, final *store.Execution) []*store.Event {
			final.Nodes[0].Result = map[string]any{"k": int64(0), "s": "a\tb"}
			evs[2].Result = map[string]any{"k": int64(1)}
			return evs
		}},
		{Name: "message", Nodes: 1, Edit: func(evs []*store.Event, _ *store.Execution) []*store.Event {
			evs[2].Message = "a field no completion has"
			return evs
		}},
		{Name: "second-attempt", Nodes: 1, Edit: func(evs []*store.Event, _ *store.Execution) []*store.Event {
			evs[1].Attempt, evs[2].Attempt = 2, 2 // numbered on from an earlier owner's attempts
			return evs
		}},
		{Name: "error", Nodes: 1, Edit: func(evs []*store.Event, _ *store.Execution) []*store.Event {
			evs[2].Error = &store.ExecError{NodeID: "n0", Code: "W", Message: "a field no completion has"}
			return evs
		}},
		{Name: "late-event", Nodes: 1, Edit: func(evs []*store.Event, _ *store.Execution) []*store.Event {
			return append(evs, &store.Event{ExecutionID: evs[0].ExecutionID, Seq: 20, Time: evs[3].Time, Kind: store.EventNodeLog,
				NodeID: "n0", Attempt: 1, Message: "an event row after derivable ones"})
		}},
		{Name: "seq-gap", Nodes: 1, Edit: func(evs []*store.Event, _ *store.Execution) []*store.Event {
			evs[3].Seq = 5
			return evs
		}},
		{Name: "no-execution", Nodes: 1, Edit: func(evs []*store.Event, _ *store.Execution) []*store.Event {
			evs[3].Execution = nil
			return evs
		}},
		{Name: "extra", Nodes: 1, Edit: func(evs []*store.Event, _ *store.Execution) []*store.Event {
			return append(evs, &store.Event{ExecutionID: evs[0].ExecutionID, Seq: 5, Time: evs[3].Time, Kind: store.EventNodeLog,
				NodeID: "n0", Attempt: 1, Message: "after the end"})
		}},
		{Name: "failed", Nodes: 1, Edit: func(evs []*store.Event, final *store.Execution) []*store.Event {
			final.Status = store.ExecutionFailed
			final.Error = &store.ExecError{NodeID: "n0", Code: "E", Message: "late"}
			evs[len(evs)-1].Kind = store.EventExecutionFailed
			return evs
		}},
	}
}

// insertEvent inserts ev at index i of evs and renumbers the seqs.
func insertEvent(evs []*store.Event, i int, ev *store.Event) []*store.Event {
	ev.ExecutionID = evs[0].ExecutionID
	evs = append(evs[:i], append([]*store.Event{ev}, evs[i:]...)...)
	for k, e := range evs {
		e.Seq = int64(k + 1)
	}
	return evs
}

// ShortRunBatch returns the batch of r, with the id ShortRunID(r), and
// the events written.
func ShortRunBatch(r ShortRun) (*store.JournalBatch, []*store.Event) {
	id := ShortRunID(r)
	e := sampleExecution(id, at(0))
	e.Status, e.StartTime, e.Nodes = store.ExecutionRunning, at(0), nil
	b := &store.JournalBatch{Creates: []*store.Execution{e}}
	final := *e
	final.Nodes = nil
	evs := []*store.Event{{Kind: store.EventExecutionStarted, Time: at(0), Workflow: e.Workflow, Version: e.Version}}
	for k := range r.Nodes {
		nid := fmt.Sprintf("n%d", k)
		e.Nodes = append(e.Nodes, &store.NodeState{NodeID: nid, Status: store.NodePending})
		start, end := at(time.Duration(2*k+1)*time.Millisecond+7), at(time.Duration(2*k+2)*time.Millisecond+3)
		res := map[string]any{}
		if k > 0 {
			res = map[string]any{"k": int64(k), "s": "a\tb\n", "nested": []any{1.5, "é"}}
		}
		running := &store.NodeState{NodeID: nid, Status: store.NodeRunning, Attempts: 1, StartTime: start}
		done := &store.NodeState{NodeID: nid, Status: store.NodeCompleted, Attempts: 1, StartTime: start, EndTime: end, Result: res}
		final.Nodes = append(final.Nodes, done)
		b.Nodes = append(b.Nodes, store.NodeUpdate{ExecutionID: id, State: running}, store.NodeUpdate{ExecutionID: id, State: done})
		evs = append(evs,
			&store.Event{Kind: store.EventNodeStarted, Time: start, NodeID: nid, Attempt: 1},
			&store.Event{Kind: store.EventNodeCompleted, Time: end, NodeID: nid, Attempt: 1, Result: res, Duration: end.Sub(start)})
	}
	final.Status, final.EndTime = store.ExecutionCompleted, at(time.Duration(2*r.Nodes+3)*time.Millisecond)
	evs = append(evs, &store.Event{Kind: store.EventExecutionCompleted, Time: final.EndTime, Execution: &final})
	for k, ev := range evs {
		ev.ExecutionID, ev.Seq = id, int64(k+1)
	}
	if r.Edit != nil {
		evs = r.Edit(evs, &final)
	}
	b.Executions, b.Events = []*store.Execution{&final}, evs
	return b, evs
}

// ShortRunID is the execution id of r.
func ShortRunID(r ShortRun) string { return "short-" + r.Name }

// testJournalShortRuns writes ShortRuns, all in one batch, and reads their
// events back whole and by range: each as written, the terminal one with
// the execution as GetExecution gives it.
func testJournalShortRuns(t *testing.T, s store.Store) {
	ctx := t.Context()
	all := &store.JournalBatch{}
	written := map[string][]*store.Event{}
	for _, r := range ShortRuns() {
		b, evs := ShortRunBatch(r)
		all.Creates = append(all.Creates, b.Creates...)
		all.Executions = append(all.Executions, b.Executions...)
		all.Nodes = append(all.Nodes, b.Nodes...)
		all.Events = append(all.Events, b.Events...)
		written[ShortRunID(r)] = evs
	}
	must(t, "WriteJournal", s.WriteJournal(ctx, all))
	for id, evs := range written {
		x, err := s.GetExecution(ctx, id)
		must(t, "GetExecution", err)
		want := make([]*store.Event, len(evs))
		for i, ev := range evs {
			c := *ev
			if c.Execution != nil {
				c.Execution = x
			}
			if len(c.Result) == 0 {
				c.Result = nil // an event stores no empty result
			}
			want[i] = &c
		}
		got, err := s.ListEvents(ctx, id, 0, 0)
		must(t, "ListEvents", err)
		if d := diff(want, got); d != "" {
			t.Errorf("ListEvents(%s, 0, 0) (-want +got):\n%s", id, d)
		}
		for i := range min(len(want), len(got)) {
			if (want[i].Result == nil) != (got[i].Result == nil) {
				t.Errorf("ListEvents(%s): event %d has result %#v, want %#v", id, got[i].Seq, got[i].Result, want[i].Result)
			}
		}
		got, err = s.ListEvents(ctx, id, 1, 2)
		must(t, "ListEvents", err)
		if d := diff(want[1:3], got); d != "" {
			t.Errorf("ListEvents(%s, 1, 2) (-want +got):\n%s", id, d)
		}
		last, before := want[len(want)-1].Seq, want[len(want)-2].Seq
		got, err = s.ListEvents(ctx, id, before, 5)
		must(t, "ListEvents", err)
		if d := diff(want[len(want)-1:], got); d != "" {
			t.Errorf("ListEvents(%s, %d, 5) (-want +got):\n%s", id, before, d)
		}
		got, err = s.ListEvents(ctx, id, last, 5)
		must(t, "ListEvents", err)
		if len(got) != 0 {
			t.Errorf("ListEvents(%s, %d, 5) = %d events, want none", id, last, len(got))
		}
		// A later batch may still add an event.
		more := &store.Event{ExecutionID: id, Seq: last + 1, Time: at(time.Hour), Kind: store.EventNodeLog, NodeID: "n0", Message: "later"}
		must(t, "WriteJournal(later)", s.WriteJournal(ctx, &store.JournalBatch{Events: []*store.Event{more}}))
		got, err = s.ListEvents(ctx, id, 0, 0)
		must(t, "ListEvents", err)
		if d := diff(append(want, more), got); d != "" {
			t.Errorf("ListEvents(%s, 0, 0) after a later event (-want +got):\n%s", id, d)
		}
	}
}
