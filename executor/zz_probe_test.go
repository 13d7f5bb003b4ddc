package executor_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kailash-gateway/kgw/executor"
	"github.com/kailash-gateway/kgw/store"
)

type probeStore struct {
	store.Store
	creates, writes, items atomic.Int64
	createNs, writeNs      atomic.Int64
}

func (p *probeStore) CreateExecution(ctx context.Context, e *store.Execution) error {
	t := time.Now()
	defer func() { p.createNs.Add(int64(time.Since(t))) }()
	p.creates.Add(1)
	return p.Store.CreateExecution(ctx, e)
}
func (p *probeStore) WriteJournal(ctx context.Context, b *store.JournalBatch) error {
	t := time.Now()
	defer func() { p.writeNs.Add(int64(time.Since(t))) }()
	p.writes.Add(1)
	p.items.Add(int64(len(b.Events)))
	return p.Store.WriteJournal(ctx, b)
}

func BenchmarkProbe(b *testing.B) {
	p := &probeStore{Store: openStore(b)}
	e := benchExecutor(b, p)
	w := workflow("noop", []store.Node{codeNode("n", "result = {}")})
	req := &executor.Request{Workflow: w}
	benchExecute(b, e, req)
	for b.Loop() {
		var wg sync.WaitGroup
		for range noopBatch {
			wg.Go(func() { benchExecute(b, e, req) })
		}
		wg.Wait()
	}
	n := float64(b.N)
	b.ReportMetric(float64(p.creates.Load())/n, "creates/op")
	b.ReportMetric(float64(p.writes.Load())/n, "writes/op")
	b.ReportMetric(float64(p.items.Load())/float64(p.writes.Load()), "events/write")
	b.ReportMetric(float64(p.writeNs.Load())/n/1e6, "writems/op")
	b.ReportMetric(float64(p.createNs.Load())/float64(p.creates.Load())/1e6, "ms/create")
}
