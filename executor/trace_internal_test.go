package executor

import (
	"testing"

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
		endNodeSpan(span, "completed", nil)
		r.endExecutionSpan()
	}
}
