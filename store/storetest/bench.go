package storetest

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kailash-gateway/kgw/store"
)

// BenchmarkJournal measures the journal cost of one durable execution:
// CreateExecution with one node, then WriteJournal batches carrying four
// events and the node's state, as the executor writes them.
func BenchmarkJournal(b *testing.B, s store.Store) {
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		journalOne(b, s, "bench-"+strconv.Itoa(i))
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
