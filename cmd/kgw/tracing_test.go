package main

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
	"github.com/kailash-gateway/kgw/secrets"
)

type traceSink struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	names map[string]string // span name -> service.name
}

func (s *traceSink) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		svc := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				svc = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				s.names[sp.GetName()] = svc
			}
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// TestServeTracingFromEnv: with only OTEL_* variables set, kgw serve
// exports its spans over OTLP/gRPC to the endpoint they name, under the
// default service name, and flushes them when it stops.
func TestServeTracingFromEnv(t *testing.T) {
	sink := &traceSink{names: map[string]string{}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(gs, sink)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	t.Cleanup(func() { otel.SetTracerProvider(prevTP); otel.SetTextMapPropagator(prevProp) })
	env := map[string]string{
		"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://" + lis.Addr().String(),
	}
	for k, v := range env {
		t.Setenv(k, v) // the SDK reads the process environment
	}
	env["KGW_MASTER_KEY"] = secrets.NewMasterKey().Base64()
	cfg, err := parseServeConfig([]string{"--grpc-addr", "127.0.0.1:0", "--admin-addr=", "--data-dir", t.TempDir()}, envOf(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Tracing {
		t.Fatal("tracing is off with OTEL_EXPORTER_OTLP_ENDPOINT set")
	}
	conn, stop, _ := runInProcess(t, cfg)
	ctx := t.Context()
	if _, err := kgwv1.NewWorkflowServiceClient(conn).RegisterWorkflow(ctx, &kgwv1.RegisterWorkflowRequest{Workflow: &kgwv1.Workflow{
		Name: "hello", Nodes: []*kgwv1.Node{{Id: "n", Code: `result = {}`}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := kgwv1.NewExecutionServiceClient(conn).ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: "hello"}); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for _, name := range []string{"kgw.v1.ExecutionService/ExecuteWorkflow", "Execution hello", "RunNode hello/n"} {
		if svc, ok := sink.names[name]; !ok || svc != "kgw" {
			t.Errorf("span %q: exported %v with service.name %q, want exported by service kgw (got %v)", name, ok, svc, sink.names)
		}
	}
}
