package server_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
)

// BenchmarkTracingOverhead measures ExecuteWorkflow of an ephemeral no-op
// workflow at 128 callers with tracing off (no OTEL_* variable: no stats
// handler, the no-op tracer) and on (otelgrpc server spans, Execution and
// RunNode spans, sampler always_on, exported over OTLP/gRPC to a receiver
// on loopback). Single runs scatter by more than the difference sought, so
// the two alternate over rounds: compare round by round (off/on pairs).
func BenchmarkTracingOverhead(b *testing.B) {
	ctx := context.Background()
	wf := &kgwv1.Workflow{Name: "noop", Nodes: []*kgwv1.Node{{Id: "n", Code: "result = {}"}}, DisableJournal: true}
	const callers = 128
	run := func(b *testing.B, s *stack) {
		req := &kgwv1.ExecuteWorkflowRequest{Workflow: wf.Name}
		b.ReportAllocs()
		b.SetParallelism(max(1, callers/runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.ex.ExecuteWorkflow(ctx, req); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "execs/s")
	}
	off := startStack(b, stackOptions{})
	on := startStack(b, stackOptions{tracing: true})
	for _, s := range []*stack{off, on} {
		if _, err := s.wf.RegisterWorkflow(ctx, &kgwv1.RegisterWorkflowRequest{Workflow: wf}); err != nil {
			b.Fatal(err)
		}
	}
	for round := 1; round <= 3; round++ {
		b.Run(fmt.Sprintf("round=%d/off", round), func(b *testing.B) { run(b, off) })
		b.Run(fmt.Sprintf("round=%d/always_on", round), func(b *testing.B) {
			// The provider, batching as kgw serve's does, is installed for
			// this sub-benchmark only.
			startTracingWith(b, func(e sdktrace.SpanExporter) sdktrace.TracerProviderOption { return sdktrace.WithBatcher(e) })
			run(b, on)
		})
		if _, ok := otel.GetTracerProvider().(interface{ Shutdown(context.Context) error }); ok {
			b.Fatal("a tracer provider outlived its round")
		}
	}
}
