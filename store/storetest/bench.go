package storetest

import (
	"context"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kailash-gateway/kgw/store"
)

// BenchmarkJournal measures the journal cost of one durable execution:
// CreateExecution with one node, then WriteJournal batches carrying four
// events and the node's state, as the executor writes them. It also
// reports the 99th percentile and the maximum of one execution's journal
// time (p99-ns, max-ns): a caller waits for these writes, so a write that
// sometimes takes much longer (a checkpoint, a table scan) is a tail
// latency callers feel.
func BenchmarkJournal(b *testing.B, s store.Store) {
	b.ReportAllocs()
	i := 0
	var took []time.Duration
	for b.Loop() {
		i++
		t0 := time.Now()
		journalOne(b, s, "bench-"+strconv.Itoa(i))
		took = append(took, time.Since(t0))
	}
	slices.Sort(took)
	if n := len(took); n > 0 {
		b.ReportMetric(float64(took[min(n*99/100, n-1)].Nanoseconds()), "p99-ns")
		b.ReportMetric(float64(took[n-1].Nanoseconds()), "max-ns")
	}
}

// BenchmarkJournalParallel is BenchmarkJournal with many executions
// journalling at once (b.SetParallelism(parallelism) goroutines per CPU).
func BenchmarkJournalParallel(b *testing.B, s store.Store, parallelism int) {
	b.ReportAllocs()
	b.SetParallelism(parallelism)
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			journalOne(b, s, "pbench-"+strconv.FormatInt(next.Add(1), 10))
		}
	})
}

func journalOne(b *testing.B, s store.Store, id string) {
	ctx := context.Background()
	result := map[string]any{"ok": true, "n": int64(1)}
	{
		now := time.Now()
		e := &store.Execution{
			ID: id, Workflow: "noop", Version: 1, Status: store.ExecutionPending,
			Request:    store.ExecutionRequest{Parameters: map[string]any{"x": id}},
			Nodes:      []*store.NodeState{{NodeID: "n", Status: store.NodePending}},
			CreateTime: now,
		}
		if err := s.CreateExecution(ctx, e); err != nil {
			b.Errorf("CreateExecution: %v", err)
			return
		}
		batch := &store.JournalBatch{
			Executions: []*store.Execution{{ID: id, Status: store.ExecutionCompleted, StartTime: now, EndTime: now}},
			Nodes: []store.NodeUpdate{{ExecutionID: id, State: &store.NodeState{
				NodeID: "n", Status: store.NodeCompleted, Attempts: 1, StartTime: now, EndTime: now, Result: result}}},
			Events: []*store.Event{
				{ExecutionID: id, Seq: 1, Time: now, Kind: store.EventExecutionStarted, Workflow: "noop", Version: 1},
				{ExecutionID: id, Seq: 2, Time: now, Kind: store.EventNodeStarted, NodeID: "n", Attempt: 1},
				{ExecutionID: id, Seq: 3, Time: now, Kind: store.EventNodeCompleted, NodeID: "n", Attempt: 1, Result: result},
				{ExecutionID: id, Seq: 4, Time: now, Kind: store.EventExecutionCompleted},
			},
		}
		if err := s.WriteJournal(ctx, batch); err != nil {
			b.Errorf("WriteJournal: %v", err)
		}
	}
}

// BenchmarkJournalGrouped measures the journal cost per execution when the
// writes of many one-node executions are grouped as the executor's journal
// writer groups them under load: one WriteJournal creating group
// executions with their ExecutionStarted events, then one carrying, for
// each, the node's completed state, the NodeStarted, NodeCompleted and
// terminal events and the final header. One op is one group; ns/exec is
// the cost per execution.
func BenchmarkJournalGrouped(b *testing.B, s store.Store, group int) {
	ctx := context.Background()
	result := map[string]any{}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		now := time.Now()
		first := &store.JournalBatch{}
		second := &store.JournalBatch{}
		for k := range group {
			id := "grouped-" + strconv.Itoa(n+k)
			e := &store.Execution{
				ID: id, Workflow: "noop", Version: 1, Status: store.ExecutionRunning,
				Nodes:      []*store.NodeState{{NodeID: "n", Status: store.NodePending}},
				CreateTime: now, StartTime: now, Owner: "bench-owner-0123456789",
			}
			first.Creates = append(first.Creates, e)
			first.Events = append(first.Events, &store.Event{ExecutionID: id, Seq: 1, Time: now,
				Kind: store.EventExecutionStarted, Workflow: "noop", Version: 1})
			done := &store.NodeState{NodeID: "n", Status: store.NodeCompleted, Attempts: 1, StartTime: now, EndTime: now, Result: result}
			final := *e
			final.Status, final.EndTime, final.Nodes = store.ExecutionCompleted, now, []*store.NodeState{done}
			second.Executions = append(second.Executions, &final)
			second.Nodes = append(second.Nodes, store.NodeUpdate{ExecutionID: id, State: done})
			second.Events = append(second.Events,
				&store.Event{ExecutionID: id, Seq: 2, Time: now, Kind: store.EventNodeStarted, NodeID: "n", Attempt: 1},
				&store.Event{ExecutionID: id, Seq: 3, Time: now, Kind: store.EventNodeCompleted, NodeID: "n", Attempt: 1, Result: result},
				&store.Event{ExecutionID: id, Seq: 4, Time: now, Kind: store.EventExecutionCompleted, Execution: &final})
		}
		if err := s.WriteJournal(ctx, first); err != nil {
			b.Fatalf("WriteJournal (creates): %v", err)
		}
		if err := s.WriteJournal(ctx, second); err != nil {
			b.Fatalf("WriteJournal (completions): %v", err)
		}
		n += group
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/exec")
}

// BenchmarkJournalFinished journals one-node executions that start and
// finish before their first write, group per batch, as the executor's
// journal writes a short workflow run at once: each execution's creation
// (running, its node pending), its node's updates, its final header and
// its four events, the last referring to the execution.
func BenchmarkJournalFinished(b *testing.B, s store.Store, group int) {
	ctx := context.Background()
	result := map[string]any{}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		now := time.Now()
		batch := &store.JournalBatch{}
		for k := range group {
			id := "finished-" + strconv.Itoa(n+k)
			e := &store.Execution{
				ID: id, Workflow: "noop", Version: 1, Status: store.ExecutionRunning,
				Nodes:      []*store.NodeState{{NodeID: "n", Status: store.NodePending}},
				CreateTime: now, StartTime: now, Caller: "local", Owner: "bench-owner-0123456789",
			}
			running := &store.NodeState{NodeID: "n", Status: store.NodeRunning, Attempts: 1, StartTime: now}
			done := &store.NodeState{NodeID: "n", Status: store.NodeCompleted, Attempts: 1, StartTime: now, EndTime: now, Result: result}
			final := *e
			final.Status, final.EndTime, final.Nodes, final.Request = store.ExecutionCompleted, now, nil, store.ExecutionRequest{}
			batch.Creates = append(batch.Creates, e)
			batch.Executions = append(batch.Executions, &final)
			batch.Nodes = append(batch.Nodes, store.NodeUpdate{ExecutionID: id, State: running}, store.NodeUpdate{ExecutionID: id, State: done})
			batch.Events = append(batch.Events,
				&store.Event{ExecutionID: id, Seq: 1, Time: now, Kind: store.EventExecutionStarted, Workflow: "noop", Version: 1},
				&store.Event{ExecutionID: id, Seq: 2, Time: now, Kind: store.EventNodeStarted, NodeID: "n", Attempt: 1},
				&store.Event{ExecutionID: id, Seq: 3, Time: now, Kind: store.EventNodeCompleted, NodeID: "n", Attempt: 1},
				&store.Event{ExecutionID: id, Seq: 4, Time: now, Kind: store.EventExecutionCompleted, Execution: &final})
		}
		if err := s.WriteJournal(ctx, batch); err != nil {
			b.Fatalf("WriteJournal: %v", err)
		}
		n += group
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/exec")
}
