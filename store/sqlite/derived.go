package sqlite

import (
	"reflect"
	"strings"
	"time"

	"github.com/kailash-gateway/kgw/store"
	"github.com/kailash-gateway/kgw/store/internal/codec"
)

// Events of short runs are not stored when they can be derived.
//
// A workflow run at once (the journal's lazy creation) is written as one
// executions row, already completed, with its node states in the row
// (migration 0007). Its events then say nothing that row does not: the
// execution started at its start time, each node started and completed
// once at its own times with its own result, and the execution completed
// at its end time. Such a row stores derivedLine in place of those
// events, and ListEvents derives them from the row (deriveEvents).
//
// The batch decides it by comparing what it was given, event by event,
// with what ListEvents will derive from the row as stored (markDerived,
// derivedEvent). Anything else a run journals (a retry, a log line, a
// failure, a cancellation, nodes whose events interleave, a resumed run)
// fails the comparison and keeps the events as written. Derived events
// are equal to the stored ones field for field, times to the nanosecond,
// and results are the node's results (decoded from the same JSON the
// event would have stored). BenchmarkJournalFinished (one-node executions
// written as the executor writes them), seven runs in turns: 13.6 → 11.8
// µs per execution (−11%, median of the pairs; docs/performance.md,
// seventh part).
const derivedLine = "derived\n"

// markDerived marks derived each execution the batch creates, with its
// node states inline, whose events with seqs up to inlineEvents are, in
// batch order and field for field, those derivedEvent gives for its row.
// (Any later events are stored and read as before.)
func (ws *execWrites) markDerived(events []*store.Event) {
	for _, w := range ws.order {
		w.derived = w.create != nil && w.header != nil && w.states != nil
	}
	for _, ev := range events {
		w := ws.byID[ev.ExecutionID]
		if w == nil || !w.derived || ev.Seq < 1 || ev.Seq > inlineEvents {
			continue
		}
		k := w.compared
		w.compared++
		if k >= derivedCount(w.states) {
			w.derived = false
			continue
		}
		want := derivedEvent(w.create.Workflow, w.create.Version, w.header.StartTime, w.header.EndTime, w.states, k)
		if k == derivedCount(w.states)-1 {
			want.Execution = w.header
		}
		w.derived = sameEvent(ev, &want)
	}
	for _, w := range ws.order {
		w.derived = w.derived && w.compared == derivedCount(w.states)
	}
}

// derivedCount is how many events are derived for an execution with
// these node states.
func derivedCount(nodes []*store.NodeState) int { return 2*len(nodes) + 2 }

// derivedEvent returns event k (from 0, seq k+1) of those derived for an
// execution of workflow wf at version that started at start and ended at
// end with node states nodes; the caller sets the last one's Execution.
func derivedEvent(wf string, version int32, start, end time.Time, nodes []*store.NodeState, k int) store.Event {
	seq := int64(k + 1)
	switch {
	case k == 0:
		return store.Event{Seq: seq, Time: start, Kind: store.EventExecutionStarted, Workflow: wf, Version: version}
	case k == derivedCount(nodes)-1:
		return store.Event{Seq: seq, Time: end, Kind: store.EventExecutionCompleted}
	}
	n := nodes[(k-1)/2]
	if k%2 == 1 {
		return store.Event{Seq: seq, Time: n.StartTime, Kind: store.EventNodeStarted, NodeID: n.NodeID, Attempt: 1}
	}
	res := n.Result
	if len(res) == 0 {
		res = nil // an event stores no empty result
	}
	return store.Event{Seq: seq, Time: n.EndTime, Kind: store.EventNodeCompleted, NodeID: n.NodeID, Attempt: 1,
		Result: res, Duration: time.Duration(codec.Nanos(n.EndTime) - codec.Nanos(n.StartTime))}
}

// sameEvent reports whether a and b are stored alike: the same fields,
// times to the nanosecond, and results the same map or both empty (the
// executor gives a node's state and its completion event the same map,
// which the codec encodes alike in each). A terminal event is stored by
// reference to its execution, whatever it carries.
func sameEvent(a, b *store.Event) bool {
	return a.Seq == b.Seq && a.Kind == b.Kind && codec.Nanos(a.Time) == codec.Nanos(b.Time) &&
		a.Workflow == b.Workflow && a.Version == b.Version && a.Resumed == b.Resumed &&
		a.NodeID == b.NodeID && a.Attempt == b.Attempt && a.Level == b.Level && a.Message == b.Message &&
		len(a.Fields) == 0 && len(b.Fields) == 0 && a.Error == nil && b.Error == nil &&
		a.Backoff == b.Backoff && a.Duration == b.Duration && sameResult(a.Result, b.Result) &&
		(a.Execution == nil) == (b.Execution == nil)
}

// sameResult reports whether two results are stored alike: both empty
// (an event then stores none), or the very same map.
func sameResult(a, b map[string]any) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == 0 && len(b) == 0
	}
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// deriveEvents returns the events of x, an execution stored with
// derivedLine, with seq > afterSeq. The terminal event carries x, and each
// node completion the node's result (the same map as x's node state).
func deriveEvents(x *store.Execution, afterSeq int64) []*store.Event {
	n := derivedCount(x.Nodes)
	out := make([]*store.Event, 0, n)
	for k := range n {
		if int64(k+1) <= afterSeq {
			continue
		}
		ev := derivedEvent(x.Workflow, x.Version, x.StartTime, x.EndTime, x.Nodes, k)
		ev.ExecutionID = x.ID
		if k == n-1 {
			ev.Execution = x
		}
		out = append(out, &ev)
	}
	return out
}

// cutDerived returns the inline event lines after derivedLine, and
// whether lines starts with it.
func cutDerived(lines string) (string, bool) { return strings.CutPrefix(lines, derivedLine) }
