package executor

import (
	"context"
	"reflect"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/kailash-gateway/kgw/store"
)

const tracerName = "github.com/kailash-gateway/kgw/executor"

// offProvider is the global tracer provider of a process that installed
// none: OpenTelemetry's own, a no-op that (for providers installed later)
// takes a lock and a map lookup in every Tracer call and allocates a span
// context in every Start. kgw serve installs none when no OTEL_* variable
// asks for traces (cmd/kgw/tracing.go).
var offProvider = otel.GetTracerProvider()

// lastTracer is the executor's tracer from the last provider tracer saw.
var lastTracer atomic.Pointer[providerTracer]

type providerTracer struct {
	tp trace.TracerProvider
	t  trace.Tracer
}

// offSpan is the span of every execution and attempt while tracing is off:
// non-recording, with an invalid span context.
var offSpan = trace.SpanFromContext(context.Background())

// tracer is the executor's tracer from the global provider, nil while
// tracing is off (no provider installed): the hooks below then start no
// span at all. The provider is read at each call, so one installed later
// (or by a test) takes effect at once; its tracer is kept, which spares
// the SDK provider's lock in each call.
//
// With tracing off the hooks went through the global provider's lock and
// map lookup and allocated the span names, contexts and no-op spans:
// BenchmarkSpanHooksOff (one execution, one attempt) went from 9
// allocations, 560 B and 1.5–4.5 µs to none and 24–92 ns (six runs of
// each build in turns, at a load average of 14–17 on the 2-core
// machine); against the 54 µs of CPU of a no-op ExecuteWorkflow that is
// 0.9986× of a gateway without the hooks (make bench).
// TestSpanHooksOffAllocateNothing keeps it at none.
func tracer() trace.Tracer {
	tp := otel.GetTracerProvider()
	if tp == offProvider {
		return nil
	}
	if c := lastTracer.Load(); c != nil && c.tp == tp {
		return c.t
	}
	t := tp.Tracer(tracerName)
	// Only a pointer is surely comparable (c.tp == tp above).
	if reflect.TypeOf(tp).Kind() == reflect.Pointer {
		lastTracer.Store(&providerTracer{tp: tp, t: t})
	}
	return t
}

// startExecutionSpan starts the run's "Execution <workflow>" span: a child
// of the caller's span (Request.Trace), or with Request.TraceLink a new
// root linked to it (the run outlives the call). Attributes are set only
// on a recording span, at its end (the samplers that OTEL_* variables
// select do not read them): with tracing off the hooks of one execution
// with one node attempt went from 16 allocations, 1152 B and 3.4–6 µs to
// 9 allocations, 560 B and 1.6–2.1 µs (BenchmarkSpanHooksOff, 3 runs each
// on the shared 2-core machine), and to none without a provider (tracer).
//
// Under a caller's span that was not sampled the span is not started: it
// would not be sampled either (see unsampledSpan).
func (r *run) startExecutionSpan() {
	t := tracer()
	if t == nil {
		r.span = offSpan
		return
	}
	if sc := r.req.Trace; sc.IsValid() && !sc.IsSampled() && !r.req.TraceLink {
		r.span = unsampledSpan{sc: sc}
		return
	}
	parent := context.Background()
	var opts []trace.SpanStartOption
	if sc := r.req.Trace; sc.IsValid() {
		if r.req.TraceLink {
			opts = []trace.SpanStartOption{trace.WithNewRoot(), trace.WithLinks(trace.Link{SpanContext: sc})}
		} else {
			parent = trace.ContextWithRemoteSpanContext(parent, sc)
		}
	}
	// The attributes are all set at the end (endExecutionSpan), in one
	// call: the SDK grows a span's attribute slice at each call, and
	// exports nothing before the end.
	_, r.span = t.Start(parent, "Execution "+r.wf.Name, opts...)
}

// unsampledSpan stands for the span of an execution or attempt whose
// parent span was not sampled: it carries the parent's span context (trace
// id and all, for the log lines and the resource calls' traceparent) and
// records nothing. Every sampler the OTEL_* variables select (always_off;
// parentbased_* for the children of an unsampled local or remote parent;
// traceidratio, which decides by the trace id alone; always_on, whose
// parents are all sampled) drops such a child, so the SDK's span would
// have been a non-recording one too, at 4–5 allocations and a span id
// drawn under the ID generator's lock each. With the sampler off this
// took a no-op call from 266 to 258 allocations (BenchmarkTracingOverhead,
// its off side; base: 215, the rest of the difference is otelgrpc's and
// gRPC's stats; CPU ratios within the machine's noise). A run linked to
// its caller's span (StartExecution, TraceLink) is a new root, which the
// sampler decides afresh: it is always started.
type unsampledSpan struct {
	noop.Span
	sc trace.SpanContext
}

func (s unsampledSpan) SpanContext() trace.SpanContext { return s.sc }

// endExecutionSpan ends the run's span with its final status.
func (r *run) endExecutionSpan() {
	if !r.span.IsRecording() {
		r.span.End()
		return
	}
	r.mu.Lock()
	x := r.final
	r.mu.Unlock()
	attrs := make([]attribute.KeyValue, 0, 7)
	attrs = append(attrs,
		attribute.String("kgw.execution_id", r.id),
		attribute.String("kgw.workflow", r.wf.Name),
		attribute.Int("kgw.workflow_version", int(r.wf.Version)),
	)
	// kgw.resumed only where it is true: on every other span it was one
	// more attribute for the SDK and the exporter to carry.
	if r.resumed {
		attrs = append(attrs, attribute.Bool("kgw.resumed", true))
	}
	if x != nil {
		attrs = append(attrs, attribute.String("kgw.status", statusName(x.Status)))
		if x.Error != nil {
			attrs = append(attrs, attribute.String("kgw.error_code", x.Error.Code), attribute.String("kgw.node", x.Error.NodeID))
			r.span.SetStatus(codes.Error, x.Error.Code)
		}
	}
	r.span.SetAttributes(attrs...)
	r.span.End()
}

// startNodeSpan starts the "RunNode <workflow>/<node>" span of one attempt
// under the execution's span and returns ctx (the run's) with it: the
// attempt's context is made from it, so that the resource calls' spans are
// its children. Tracing off, ctx is returned as it is.
func (r *run) startNodeSpan(ctx context.Context, node string, attempt int32) (context.Context, trace.Span) {
	t := tracer()
	if t == nil {
		return ctx, offSpan
	}
	if sc := r.span.SpanContext(); sc.IsValid() && !sc.IsSampled() {
		return trace.ContextWithSpan(ctx, r.span), r.span // see unsampledSpan
	}
	// The attributes are all set at the end (endNodeSpan), in one call, as
	// the execution's are.
	return t.Start(trace.ContextWithSpan(ctx, r.span), "RunNode "+r.wf.Name+"/"+node)
}

// endNodeSpan ends an attempt's span with its attributes, outcome and
// error code.
func (r *run) endNodeSpan(span trace.Span, node string, attempt int32, outcome string, xe *store.ExecError) {
	if !span.IsRecording() {
		span.End()
		return
	}
	attrs := make([]attribute.KeyValue, 0, 5)
	attrs = append(attrs,
		attribute.String("kgw.execution_id", r.id),
		attribute.String("kgw.node", node),
		attribute.Int("kgw.attempt", int(attempt)),
		attribute.String("kgw.outcome", outcome),
	)
	if xe != nil {
		attrs = append(attrs, attribute.String("kgw.error_code", xe.Code))
		span.SetStatus(codes.Error, xe.Code)
	}
	span.SetAttributes(attrs...)
	span.End()
}

// traceAttrs are the trace_id and span_id log attributes of span, none
// when it is not recording (tracing off).
func traceAttrs(span trace.Span) []any {
	sc := span.SpanContext()
	if !sc.IsValid() {
		return nil
	}
	return []any{"trace_id", sc.TraceID().String(), "span_id", sc.SpanID().String()}
}

// journalTrace writes the caller's span context into the journalled
// request as W3C traceparent and tracestate values (baggage is never
// journalled: it may carry anything the caller put there). Nothing is
// written when the call carried no valid span context (tracing off).
// newRun calls it for durable runs only: for a run without a journal it
// wrote values nobody reads, 5 allocations a call whenever the call
// carried a span context (BenchmarkTracingOverhead, whose no-op workflow
// has the journal disabled: always_on 280.4 → 275.4 allocations a call,
// sampler off 257.6 → 252.7).
func journalTrace(req *Request, into *store.ExecutionRequest) {
	if !req.Trace.IsValid() {
		return
	}
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(trace.ContextWithRemoteSpanContext(context.Background(), req.Trace), c)
	into.TraceParent, into.TraceState, into.TraceLink = c["traceparent"], c["tracestate"], req.TraceLink
}

// journalledTrace is the caller's span context journalled with an
// execution (see journalTrace); invalid when none was or it does not
// parse.
func journalledTrace(from *store.ExecutionRequest) trace.SpanContext {
	if from.TraceParent == "" {
		return trace.SpanContext{}
	}
	c := propagation.MapCarrier{"traceparent": from.TraceParent}
	if from.TraceState != "" {
		c["tracestate"] = from.TraceState
	}
	return trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), c))
}
