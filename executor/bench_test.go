package executor_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kailash-gateway/kgw/executor"
	"github.com/kailash-gateway/kgw/executor/node"
	"github.com/kailash-gateway/kgw/store"
)

func benchExecutor(b *testing.B, st store.Store) *executor.Executor {
	b.Helper()
	e := executor.New(executor.Config{Store: st, Logger: slog.New(slog.DiscardHandler)})
	b.Cleanup(func() {
		if err := e.Close(context.Background()); err != nil {
			b.Errorf("Close: %v", err)
		}
	})
	return e
}

func benchExecute(b *testing.B, e *executor.Executor, req *executor.Request) {
	benchExecuteCtx(context.Background(), b, e, req)
}

func benchExecuteCtx(ctx context.Context, b *testing.B, e *executor.Executor, req *executor.Request) {
	x, err := e.Execute(ctx, req)
	if err != nil {
		b.Fatal(err)
	}
	if x.Status != store.ExecutionCompleted {
		b.Fatalf("status %v: %+v", x.Status, x.Error)
	}
}

// BenchmarkTrivialNode measures one execution of a one-node workflow whose
// node does nothing, journal disabled: the executor's per-node overhead plus
// a minimal Starlark run.
func BenchmarkTrivialNode(b *testing.B) {
	e := benchExecutor(b, nil)
	w := workflow("trivial", []store.Node{codeNode("n", "result = {}")})
	w.DisableJournal = true
	req := &executor.Request{Workflow: w}
	benchExecute(b, e, req) // compile outside the loop
	b.ReportAllocs()
	for b.Loop() {
		benchExecute(b, e, req)
	}
}

// BenchmarkTrivialNodeCancellable is BenchmarkTrivialNode with a context
// that can end, as a gRPC request's: Execute then hands the run to a
// worker goroutine instead of running it on the caller's.
func BenchmarkTrivialNodeCancellable(b *testing.B) {
	e := benchExecutor(b, nil)
	w := workflow("trivial", []store.Node{codeNode("n", "result = {}")})
	w.DisableJournal = true
	req := &executor.Request{Workflow: w}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	benchExecuteCtx(ctx, b, e, req)
	b.ReportAllocs()
	for b.Loop() {
		benchExecuteCtx(ctx, b, e, req)
	}
}

// BenchmarkTrivialNodeRuntime runs the same node code directly in the
// runtime: the baseline to subtract from BenchmarkTrivialNode to get the
// executor's own overhead.
func BenchmarkTrivialNodeRuntime(b *testing.B) {
	prog, err := node.Compile("n", "result = {}")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		a := &node.Attempt{NodeID: "n", Execution: node.ExecutionInfo{ID: "x", Workflow: "trivial", Version: 1, Attempt: 1}}
		if _, err := prog.Run(ctx, a); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkChain40 runs a 40-node sequential chain in process, journal
// disabled; each node adds one to its input.
func BenchmarkChain40(b *testing.B) {
	e := benchExecutor(b, nil)
	nodes := make([]store.Node, 40)
	var conns []store.Connection
	for i := range nodes {
		nodes[i] = codeNode(fmt.Sprintf("n%02d", i), `result = {"v": v + 1}`)
		if i > 0 {
			conns = append(conns, conn(nodes[i-1].ID, "v", nodes[i].ID, ""))
		}
	}
	w := workflow("chain40", nodes, conns...)
	w.DisableJournal = true
	req := &executor.Request{Workflow: w, Parameters: map[string]any{"v": int64(0)}}
	benchExecute(b, e, req)
	b.ReportAllocs()
	for b.Loop() {
		benchExecute(b, e, req)
	}
}

// noopBatch is how many executions each iteration of the no-op throughput
// benchmarks runs concurrently, as a loaded gateway would.
const noopBatch = 32

func benchNoop(b *testing.B, durable bool) {
	e := benchExecutor(b, openStore(b))
	w := workflow("noop", []store.Node{codeNode("n", "result = {}")})
	w.DisableJournal = !durable
	req := &executor.Request{Workflow: w}
	benchExecute(b, e, req)
	b.ReportAllocs()
	for b.Loop() {
		var wg sync.WaitGroup
		for range noopBatch {
			wg.Go(func() { benchExecute(b, e, req) })
		}
		wg.Wait()
	}
	b.ReportMetric(float64(b.N*noopBatch)/b.Elapsed().Seconds(), "execs/s")
}

// BenchmarkNoopDurable: no-op workflow throughput, journalled to SQLite.
func BenchmarkNoopDurable(b *testing.B) { benchNoop(b, true) }

// BenchmarkNoopEphemeral: the same workflow with the journal disabled, on the
// same kind of store (the baseline of BenchmarkNoopDurable).
func BenchmarkNoopEphemeral(b *testing.B) { benchNoop(b, false) }

// logLines is how many NODE_LOG events the watcher benchmark's node emits.
const logLines = 500

func benchEvents(b *testing.B, durable bool) {
	e := executor.New(executor.Config{Store: openStore(b), Logger: slog.New(slog.DiscardHandler), SubscriberBuffer: 4 * logLines})
	b.Cleanup(func() {
		if err := e.Close(context.Background()); err != nil {
			b.Errorf("Close: %v", err)
		}
	})
	w := workflow("chatty", []store.Node{codeNode("n", fmt.Sprintf(`for i in range(%d):
    logger.info("line", i = i)
result = {}`, logLines))})
	w.DisableJournal = !durable
	req := &executor.Request{Workflow: w}
	ctx := context.Background()
	events := 0
	b.ReportAllocs()
	for b.Loop() {
		id, err := e.Start(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		sub, err := e.Subscribe(ctx, id, 0)
		if err != nil {
			b.Fatal(err)
		}
		for {
			ev, err := sub.Next(ctx)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if ev.Seq != int64(events%(logLines+4))+1 {
				b.Fatalf("event seq %d out of order", ev.Seq)
			}
			events++
		}
		sub.Close()
	}
	if want := b.N * (logLines + 4); events != want {
		b.Fatalf("watcher received %d events, want %d", events, want)
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkEventsToWatcherDurable: events per second delivered to one
// watcher (Subscribe + Next) of a workflow whose node logs 500 lines,
// journalled to SQLite (events reach watchers once journalled).
func BenchmarkEventsToWatcherDurable(b *testing.B) { benchEvents(b, true) }

// BenchmarkEventsToWatcherEphemeral: the same with the journal disabled.
func BenchmarkEventsToWatcherEphemeral(b *testing.B) { benchEvents(b, false) }

// benchLone runs one durable execution at a time with a cancellable
// context, the path of a lone gRPC caller: its latency is what one caller
// waits for (journal commits included).
func benchLone(b *testing.B, w *store.Workflow, params map[string]any) {
	e := benchExecutor(b, openStore(b))
	req := &executor.Request{Workflow: w, Parameters: params}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	benchExecuteCtx(ctx, b, e, req)
	b.ReportAllocs()
	var took []time.Duration
	for b.Loop() {
		t0 := time.Now()
		benchExecuteCtx(ctx, b, e, req)
		took = append(took, time.Since(t0))
	}
	slices.Sort(took)
	if n := len(took); n > 0 {
		b.ReportMetric(float64(took[n/2].Nanoseconds()), "p50-ns")
		b.ReportMetric(float64(took[min(n*99/100, n-1)].Nanoseconds()), "p99-ns")
	}
}

// BenchmarkLoneNoopDurable: the no-op workflow, journalled to SQLite, one
// caller.
func BenchmarkLoneNoopDurable(b *testing.B) {
	benchLone(b, workflow("noop", []store.Node{codeNode("n", "result = {}")}), nil)
}

// BenchmarkLoneChain3Durable: three nodes passing a value along, journalled
// to SQLite, one caller.
func BenchmarkLoneChain3Durable(b *testing.B) {
	w := workflow("chain3", []store.Node{
		codeNode("a", `result = {"x": v + 1}`),
		codeNode("b", `result = {"y": x + 1}`),
		codeNode("c", `result = {"z": y + 1}`),
	}, conn("a", "x", "b", "x"), conn("b", "y", "c", "y"))
	benchLone(b, w, map[string]any{"v": int64(0)})
}
