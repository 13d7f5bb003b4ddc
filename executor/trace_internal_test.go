package executor

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/kailash-gateway/kgw/store"
)

// TestJournalTraceRoundTrip: the caller's span context journalled with an
// execution (traceparent, tracestate, link mode) reads back as the same
// remote span context; no context journals nothing, and a journalled value
// that does not parse resumes without a parent instead of failing.
func TestJournalTraceRoundTrip(t *testing.T) {
	ts, err := trace.ParseTraceState("vendor=a1,other=b2")
	if err != nil {
		t.Fatal(err)
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14},
		SpanID:     trace.SpanID{0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
		TraceState: ts,
		Remote:     true,
	})
	var x store.ExecutionRequest
	journalTrace(&Request{Trace: sc, TraceLink: true}, &x)
	if want := "00-4bf9010203040506070809" + "0a0b0c0d0e-00f067aa0ba902b7-01"; x.TraceParent != want {
		t.Errorf("TraceParent = %q, want %q", x.TraceParent, want)
	}
	if x.TraceState != "vendor=a1,other=b2" || !x.TraceLink {
		t.Errorf("TraceState %q, TraceLink %v; want vendor=a1,other=b2 and true", x.TraceState, x.TraceLink)
	}
	if got := journalledTrace(&x); !got.Equal(sc) {
		t.Errorf("journalledTrace = %+v, want %+v", got, sc)
	}

	var none store.ExecutionRequest
	journalTrace(&Request{}, &none)
	if none.TraceParent != "" || none.TraceState != "" || none.TraceLink {
		t.Errorf("no span context journalled %+v, want nothing", none)
	}
	if journalledTrace(&none).IsValid() {
		t.Error("journalledTrace of nothing is valid")
	}
	for _, bad := range []string{"garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"} {
		if journalledTrace(&store.ExecutionRequest{TraceParent: bad}).IsValid() {
			t.Errorf("journalledTrace(%q) is valid, want none", bad)
		}
	}
}

// BenchmarkSpanHooksOff measures the tracing hooks of one execution with
// one node attempt when tracing is off (OpenTelemetry's no-op tracer).
func BenchmarkSpanHooksOff(b *testing.B) {
	r := &run{id: "x", wf: &store.Workflow{Name: "noop", Version: 1}, req: &Request{}}
	b.ReportAllocs()
	for b.Loop() {
		r.startExecutionSpan()
		_, span := r.startNodeSpan(b.Context(), "n", 1)
		r.endNodeSpan(span, "n", 1, "completed", nil)
		r.endExecutionSpan()
	}
}

// BenchmarkSpanHooksOn measures the hooks of one execution with one
// attempt with always_on and a span processor that drops the ended spans
// (after the SDK's snapshot), under a sampled parent as a traced call
// gives them ("hooks"), against the same two spans made by calling the SDK
// directly with everything the hooks build per call built beforehand
// ("sdk"): the difference is the gateway's own work in the hooks (span
// names, attribute slices, the parent's context).
func BenchmarkSpanHooksOn(b *testing.B) {
	prev := otel.GetTracerProvider()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(dropSpans{}), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	otel.SetTracerProvider(tp)
	b.Cleanup(func() { otel.SetTracerProvider(prev) })
	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled})
	b.Run("hooks", func(b *testing.B) {
		r := &run{id: "01JEXAMPLE0000000000000000", wf: &store.Workflow{Name: "noop", Version: 1}, req: &Request{Trace: parent}}
		b.ReportAllocs()
		for b.Loop() {
			r.startExecutionSpan()
			_, span := r.startNodeSpan(b.Context(), "n", 1)
			r.endNodeSpan(span, "n", 1, "completed", nil)
			r.endExecutionSpan()
		}
	})
	b.Run("sdk", func(b *testing.B) {
		t := tp.Tracer(tracerName)
		pctx := trace.ContextWithRemoteSpanContext(b.Context(), parent)
		execAttrs := []attribute.KeyValue{attribute.String("kgw.execution_id", "01JEXAMPLE0000000000000000"), attribute.String("kgw.workflow", "noop"), attribute.Int("kgw.workflow_version", 1)}
		nodeAttrs := []attribute.KeyValue{attribute.String("kgw.execution_id", "01JEXAMPLE0000000000000000"), attribute.String("kgw.node", "n"), attribute.Int("kgw.attempt", 1), attribute.String("kgw.outcome", "completed")}
		b.ReportAllocs()
		for b.Loop() {
			ectx, exec := t.Start(pctx, "Execution noop")
			_, node := t.Start(ectx, "RunNode noop/n")
			node.SetAttributes(nodeAttrs...)
			node.End()
			exec.SetAttributes(execAttrs...)
			exec.End()
		}
	})
}

// dropSpans is a span processor that drops every span.
type dropSpans struct{}

func (dropSpans) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (dropSpans) OnEnd(sdktrace.ReadOnlySpan)                     {}
func (dropSpans) Shutdown(context.Context) error                  { return nil }
func (dropSpans) ForceFlush(context.Context) error                { return nil }

// TestSpanHooksOffAllocateNothing: with no tracer provider installed
// (tracing off) the span hooks of an execution and an attempt start no
// span and allocate nothing.
func TestSpanHooksOffAllocateNothing(t *testing.T) {
	r := &run{id: "x", wf: &store.Workflow{Name: "noop", Version: 1}, req: &Request{}}
	n := testing.AllocsPerRun(100, func() {
		r.startExecutionSpan()
		_, span := r.startNodeSpan(t.Context(), "n", 1)
		r.endNodeSpan(span, "n", 1, "completed", nil)
		r.endExecutionSpan()
	})
	if n != 0 {
		t.Errorf("span hooks with tracing off: %v allocations, want 0", n)
	}
	if r.span.IsRecording() || r.span.SpanContext().IsValid() {
		t.Error("a span was started with tracing off")
	}
}

// TestSpanHooksFollowProvider: a provider installed after the executor
// started is used at once, a second one replaces the first (the tracer
// kept from the first is not reused), and removing it turns tracing off.
func TestSpanHooksFollowProvider(t *testing.T) {
	prev := otel.GetTracerProvider()
	t.Cleanup(func() {
		if otel.GetTracerProvider() != prev {
			otel.SetTracerProvider(prev)
		}
	})
	r := &run{id: "x", wf: &store.Workflow{Name: "wf", Version: 1}, req: &Request{}}
	hooks := func() {
		r.startExecutionSpan()
		_, span := r.startNodeSpan(t.Context(), "n", 1)
		r.endNodeSpan(span, "n", 1, "completed", nil)
		r.endExecutionSpan()
	}
	var recs [2]*tracetest.SpanRecorder
	for i := range recs {
		recs[i] = tracetest.NewSpanRecorder()
		otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recs[i])))
		hooks()
	}
	for i, rec := range recs {
		var names []string
		for _, s := range rec.Ended() {
			names = append(names, s.Name())
		}
		if got := strings.Join(names, ","); got != "RunNode wf/n,Execution wf" {
			t.Errorf("provider %d recorded %q, want its own two spans", i, got)
		}
	}
	otel.SetTracerProvider(prev)
	hooks()
	if r.span.IsRecording() || len(recs[1].Ended()) != 2 {
		t.Error("spans started after the provider was removed")
	}
}

// TestUnsampledParentStartsNoSpan: under a caller's span that was not
// sampled the execution and its attempts start no span and carry the
// caller's trace; a sampled caller, or a run linked to its caller (a new
// root), gets its spans.
func TestUnsampledParentStartsNoSpan(t *testing.T) {
	prev := otel.GetTracerProvider()
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	rec := tracetest.NewSpanRecorder()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample()))))
	parent := func(flags trace.TraceFlags) trace.SpanContext {
		return trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
			SpanID:  trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}, TraceFlags: flags, Remote: true,
		})
	}
	hooks := func(req *Request) trace.Span {
		r := &run{id: "x", wf: &store.Workflow{Name: "wf", Version: 1}, req: req}
		r.startExecutionSpan()
		_, span := r.startNodeSpan(t.Context(), "n", 1)
		r.endNodeSpan(span, "n", 1, "completed", nil)
		r.endExecutionSpan()
		return span
	}
	unsampled := parent(0)
	span := hooks(&Request{Trace: unsampled})
	if n := len(rec.Ended()); n != 0 {
		t.Errorf("%d spans under an unsampled caller, want none", n)
	}
	if sc := span.SpanContext(); sc.TraceID() != unsampled.TraceID() || span.IsRecording() {
		t.Errorf("attempt span %+v: want the caller's trace, not recording", sc)
	}
	hooks(&Request{Trace: parent(trace.FlagsSampled)})
	if n := len(rec.Ended()); n != 2 {
		t.Errorf("%d spans under a sampled caller, want 2", n)
	}
	hooks(&Request{Trace: unsampled, TraceLink: true})
	if n := len(rec.Ended()); n != 4 {
		t.Errorf("%d spans in all after a linked run, want 4 (a new root is sampled afresh)", n-2)
	}
}

// TestUnsampledChildrenAgreeWithSDK checks unsampledSpan's premise against
// the SDK for every sampler the OTEL_* variables select: when the server's
// span (a root, or the child of a sampled or unsampled remote caller) is
// not sampled, a child of it (as the executor starts it: under a remote
// span context) is not sampled either.
func TestUnsampledChildrenAgreeWithSDK(t *testing.T) {
	samplers := map[string]sdktrace.Sampler{
		"always_on":                sdktrace.AlwaysSample(),
		"always_off":               sdktrace.NeverSample(),
		"traceidratio":             sdktrace.TraceIDRatioBased(0.5),
		"parentbased_always_on":    sdktrace.ParentBased(sdktrace.AlwaysSample()),
		"parentbased_always_off":   sdktrace.ParentBased(sdktrace.NeverSample()),
		"parentbased_traceidratio": sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.5)),
	}
	for name, s := range samplers {
		tr := sdktrace.NewTracerProvider(sdktrace.WithSampler(s)).Tracer("t")
		unsampledServers := 0
		for i := range 300 {
			ctx := t.Context()
			if i%3 != 0 { // a caller's traceparent, sampled or not
				var tid trace.TraceID
				var sid trace.SpanID
				tid[0], tid[15], tid[8], sid[7] = byte(i), byte(i>>8)|1, byte(i*37), 1
				ctx = trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
					TraceID: tid, SpanID: sid, TraceFlags: trace.TraceFlags(i % 2), Remote: true,
				}))
			}
			_, server := tr.Start(ctx, "server")
			sc := server.SpanContext()
			if sc.IsSampled() {
				continue
			}
			unsampledServers++
			_, child := tr.Start(trace.ContextWithRemoteSpanContext(t.Context(), sc), "Execution")
			if child.SpanContext().IsSampled() {
				t.Errorf("%s: the child of an unsampled server span was sampled", name)
				break
			}
		}
		if name != "always_on" && unsampledServers == 0 {
			t.Errorf("%s: no unsampled server span to check", name)
		}
	}
}
