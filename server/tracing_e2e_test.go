package server_test

import (
	"context"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
	"github.com/kailash-gateway/kgw/internal/testenv"
)

// otlpReceiver is an OpenTelemetry collector's trace service on loopback:
// it keeps the spans exporters send it.
type otlpReceiver struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (r *otlpReceiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			r.spans = append(r.spans, ss.GetSpans()...)
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (r *otlpReceiver) all() []*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*tracepb.Span(nil), r.spans...)
}

// startTracing runs an OTLP receiver on 127.0.0.1 and installs, for the
// test, a global tracer provider exporting to it synchronously and the W3C
// propagator.
func startTracing(t testing.TB) *otlpReceiver { return startTracingWith(t, sdktrace.WithSyncer) }

// startTracingWith is startTracing with the span processor of register
// (sdktrace.WithSyncer or, as the gateway uses, WithBatcher).
func startTracingWith(t testing.TB, register func(sdktrace.SpanExporter) sdktrace.TracerProviderOption) *otlpReceiver {
	t.Helper()
	recv := &otlpReceiver{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(gs, recv)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	exp, err := otlptracegrpc.New(t.Context(), otlptracegrpc.WithEndpoint(lis.Addr().String()), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(register(exp))
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	t.Cleanup(func() {
		tp.Shutdown(context.Background())
		otel.SetTracerProvider(prevTP)
		otel.SetTextMapPropagator(prevProp)
	})
	return recv
}

func spanAttr(s *tracepb.Span, key string) string {
	for _, a := range s.GetAttributes() {
		if a.GetKey() == key {
			if v := a.GetValue(); v.GetStringValue() != "" {
				return v.GetStringValue()
			} else if v.GetIntValue() != 0 {
				return jsonNum(float64(v.GetIntValue()))
			}
		}
	}
	return ""
}

// TestTracingExecuteWorkflow: an ExecuteWorkflow call carrying a W3C
// traceparent yields, in the caller's trace, the otelgrpc server span, the
// "Execution" span under it and one "RunNode" span per attempt under that,
// with the execution id, node, attempt and error code; and the failed
// execution's warn line carries the trace id.
func TestTracingExecuteWorkflow(t *testing.T) {
	recv := startTracing(t)
	var buf syncBuffer
	s := startStack(t, stackOptions{tracing: true, logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	s.register(t, &kgwv1.Workflow{Name: "traced", Nodes: []*kgwv1.Node{
		{Id: "a", Code: `result = {"x": 1}`},
		{Id: "b", Code: `result = {"y": inputs["x"] // 0}`},
	}, Connections: []*kgwv1.Connection{{FromNode: "a", FromOutput: "x", ToNode: "b", ToInput: "x"}}})

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	ctx := metadata.AppendToOutgoingContext(t.Context(), "traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	resp, err := s.ex.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: "traced"})
	if err != nil {
		t.Fatal(err)
	}
	x := resp.GetExecution()
	failed(t, x)

	var server, exec *tracepb.Span
	nodes := map[string]*tracepb.Span{}
	eventually(t, "the spans", func() string {
		for _, sp := range recv.all() {
			switch name := sp.GetName(); {
			case name == "kgw.v1.ExecutionService/ExecuteWorkflow":
				server = sp
			case name == "Execution traced":
				exec = sp
			case name == "RunNode traced/a" || name == "RunNode traced/b":
				nodes[spanAttr(sp, "kgw.node")] = sp
			}
		}
		if server == nil || exec == nil || len(nodes) != 2 {
			return "missing spans"
		}
		return ""
	})
	for _, sp := range []*tracepb.Span{server, exec, nodes["a"], nodes["b"]} {
		if got := hex.EncodeToString(sp.GetTraceId()); got != traceID {
			t.Errorf("span %s in trace %s, want the caller's %s", sp.GetName(), got, traceID)
		}
	}
	if hex.EncodeToString(server.GetParentSpanId()) != "00f067aa0ba902b7" {
		t.Errorf("server span's parent = %x, want the caller's span", server.GetParentSpanId())
	}
	if string(exec.GetParentSpanId()) != string(server.GetSpanId()) {
		t.Errorf("Execution span's parent = %x, want the server span %x", exec.GetParentSpanId(), server.GetSpanId())
	}
	for id, sp := range nodes {
		if string(sp.GetParentSpanId()) != string(exec.GetSpanId()) {
			t.Errorf("RunNode %s parent = %x, want the Execution span", id, sp.GetParentSpanId())
		}
		if spanAttr(sp, "kgw.execution_id") != x.GetId() || spanAttr(sp, "kgw.attempt") != "1" {
			t.Errorf("RunNode %s attributes = %v", id, sp.GetAttributes())
		}
	}
	if spanAttr(nodes["a"], "kgw.outcome") != "completed" || nodes["a"].GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("RunNode a = %v, want completed", nodes["a"])
	}
	if spanAttr(nodes["b"], "kgw.outcome") != "failed" || spanAttr(nodes["b"], "kgw.error_code") != x.GetError().GetCode() ||
		nodes["b"].GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("RunNode b = %v, want failed with code %s", nodes["b"], x.GetError().GetCode())
	}
	if spanAttr(exec, "kgw.status") != "failed" || spanAttr(exec, "kgw.execution_id") != x.GetId() {
		t.Errorf("Execution span attributes = %v", exec.GetAttributes())
	}

	var warn map[string]any
	for _, l := range buf.lines() {
		if l["msg"] == "execution did not complete" && l["execution_id"] == x.GetId() {
			warn = l
		}
	}
	if warn == nil || warn["trace_id"] != traceID || warn["span_id"] != hex.EncodeToString(exec.GetSpanId()) ||
		warn["error_code"] != x.GetError().GetCode() {
		t.Errorf("warn line = %v, want trace_id %s, the Execution span id and the error code", warn, traceID)
	}
}

// TestTracingStartExecutionLinks: a StartExecution run, which outlives the
// call, is a new trace root linked to the caller's span.
func TestTracingStartExecutionLinks(t *testing.T) {
	recv := startTracing(t)
	s := startStack(t, stackOptions{tracing: true})
	s.register(t, &kgwv1.Workflow{Name: "later", Nodes: []*kgwv1.Node{{Id: "n", Code: `result = {}`}}})
	const traceID = "0af7651916cd43dd8448eb211c80319c"
	ctx := metadata.AppendToOutgoingContext(t.Context(), "traceparent", "00-"+traceID+"-b7ad6b7169203331-01")
	st, err := s.ex.StartExecution(ctx, &kgwv1.StartExecutionRequest{Workflow: "later"})
	if err != nil {
		t.Fatal(err)
	}
	s.wait(t, st.GetExecutionId())
	var exec *tracepb.Span
	eventually(t, "the Execution span", func() string {
		for _, sp := range recv.all() {
			if sp.GetName() == "Execution later" {
				exec = sp
				return ""
			}
		}
		return "missing"
	})
	if hex.EncodeToString(exec.GetTraceId()) == traceID || len(exec.GetParentSpanId()) != 0 {
		t.Errorf("Execution span in trace %x with parent %x, want a new root", exec.GetTraceId(), exec.GetParentSpanId())
	}
	links := exec.GetLinks()
	if len(links) != 1 || hex.EncodeToString(links[0].GetTraceId()) != traceID {
		t.Fatalf("Execution span links = %v, want one to the caller's trace", links)
	}
}

// TestTracingResourceCalls: a node's database query, Redis command and HTTP request are
// client spans under its RunNode span, in the caller's trace, and the
// HTTP upstream receives a traceparent of that trace.
func TestTracingResourceCalls(t *testing.T) {
	recv := startTracing(t)
	db := newPGDB(t, testenv.Postgres(t))
	var mu sync.Mutex
	var upstreamTP string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		upstreamTP = r.Header.Get("traceparent")
		mu.Unlock()
		w.Write([]byte(`{"ok": true}`))
	}))
	t.Cleanup(up.Close)
	s := startStack(t, stackOptions{tracing: true})
	rd := testenv.Redis(t)
	s.register(t, &kgwv1.Workflow{Name: "calls", Nodes: []*kgwv1.Node{{Id: "n", RequiredResources: []string{"db", "api", "cache"}, Code: `
v = get_resource("db").fetchval("SELECT 41 + 1")
get_resource("cache").set("traced-key", "v")
r = get_resource("api").get("/ping")
result = {"v": v, "status": r.status_code}`}}})
	const traceID = "5bf92f3577b34da6a3ce929d0e0e4737"
	ctx := metadata.AppendToOutgoingContext(t.Context(), "traceparent", "00-"+traceID+"-00f067aa0ba902b8-01")
	resp, err := s.ex.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: "calls", Resources: map[string]*kgwv1.ResourceSpec{
		"db":    db.spec(t, nil),
		"api":   {Type: "http_client", Config: params(t, map[string]any{"base_url": up.URL})},
		"cache": {Type: "cache", Config: params(t, map[string]any{"host": "127.0.0.1", "port": rd.Port})},
	}})
	if err != nil {
		t.Fatal(err)
	}
	mustComplete(t, resp.GetExecution())

	var node, query, call, cmd *tracepb.Span
	eventually(t, "the spans", func() string {
		for _, sp := range recv.all() {
			switch sp.GetName() {
			case "RunNode calls/n":
				node = sp
			case "postgresql SELECT":
				query = sp
			case "HTTP GET":
				call = sp
			case "redis SET":
				cmd = sp
			}
		}
		if node == nil || query == nil || call == nil || cmd == nil {
			return "missing spans"
		}
		return ""
	})
	for _, sp := range []*tracepb.Span{query, call, cmd} {
		if hex.EncodeToString(sp.GetTraceId()) != traceID || string(sp.GetParentSpanId()) != string(node.GetSpanId()) ||
			sp.GetKind() != tracepb.Span_SPAN_KIND_CLIENT {
			t.Errorf("span %s: trace %x parent %x kind %v, want a client span under RunNode in trace %s",
				sp.GetName(), sp.GetTraceId(), sp.GetParentSpanId(), sp.GetKind(), traceID)
		}
	}
	if spanAttr(query, "db.namespace") != db.name || spanAttr(call, "url.path") != "/ping" {
		t.Errorf("attributes: query %v, call %v", query.GetAttributes(), call.GetAttributes())
	}
	mu.Lock()
	tp := upstreamTP
	mu.Unlock()
	if want := "00-" + traceID + "-" + hex.EncodeToString(call.GetSpanId()) + "-01"; tp != want {
		t.Errorf("upstream traceparent = %q, want %q (the HTTP span)", tp, want)
	}
}
