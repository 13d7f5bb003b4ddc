package main

import (
	"context"
	"encoding/hex"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	kgw "github.com/kailash-gateway/kgw/clients/go"
	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
	"github.com/kailash-gateway/kgw/internal/testenv"
)

// spanSink is an OpenTelemetry collector's trace service on loopback that
// keeps every span it is sent.
type spanSink struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (s *spanSink) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			s.spans = append(s.spans, ss.GetSpans()...)
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// named returns the spans called name received so far.
func (s *spanSink) named(name string) []*tracepb.Span {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*tracepb.Span
	for _, sp := range s.spans {
		if sp.GetName() == name {
			out = append(out, sp)
		}
	}
	return out
}

// TestTracingResumeAfterKill: a call carrying a W3C traceparent starts a
// run whose node holds; the gateway process is SIGKILLed during the node
// and restarted with the same OTEL_* environment. Because the caller's
// trace context was journalled with the execution, the resumed run's spans
// are placed as the first run's were: for ExecuteWorkflow the resumed
// "Execution" and "RunNode" spans are in the caller's trace; for
// StartExecution the resumed "Execution" span is a new root linked to the
// caller's trace, with the RunNode spans under it.
func TestTracingResumeAfterKill(t *testing.T) {
	pg := testenv.Postgres(t)
	for _, viaStart := range []bool{false, true} {
		name := "ExecuteWorkflow"
		if viaStart {
			name = "StartExecution"
		}
		t.Run(name, func(t *testing.T) { testTracingResumeAfterKill(t, pg, viaStart) })
	}
}

func testTracingResumeAfterKill(t *testing.T, pg *testenv.PostgresServer, viaStart bool) {
	sink, collector := startSpanSink(t)

	ctx := t.Context()
	pool, port, dbName := newRunsDB(t, pg)

	gw := testenv.Gateway(t, testenv.WithGatewayEnv(
		"OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://"+collector,
		"OTEL_TRACES_SAMPLER=parentbased_always_on",
	))
	client, err := kgw.Dial(ctx, gw.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.StoreSecret(ctx, "runs_db", map[string]any{"user": "postgres", "password": "unused"}); err != nil {
		t.Fatal(err)
	}
	wf, err := kgw.NewWorkflow("trace_resume").
		AddCode("n1", crashNodeCode, kgw.RequiredResources("db"), kgw.NodeTimeout(3*time.Minute)).Build()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Register(ctx, wf); err != nil {
		t.Fatal(err)
	}

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	callCtx := metadata.AppendToOutgoingContext(ctx, "traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	params, err := structpb.NewStruct(map[string]any{"gate": "n1", "mode": "after"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := structpb.NewStruct(map[string]any{"host": "127.0.0.1", "port": port, "database": dbName})
	if err != nil {
		t.Fatal(err)
	}
	resources := map[string]*kgwv1.ResourceSpec{"db": {Type: "database", Config: res, CredentialsRef: "runs_db"}}
	execs := kgwv1.NewExecutionServiceClient(client.Conn())
	callDone := make(chan error, 1)
	go func() {
		var err error
		if viaStart {
			_, err = execs.StartExecution(callCtx, &kgwv1.StartExecutionRequest{Workflow: "trace_resume", Parameters: params, Resources: resources})
		} else {
			_, err = execs.ExecuteWorkflow(callCtx, &kgwv1.ExecuteWorkflowRequest{Workflow: "trace_resume", Parameters: params, Resources: resources})
		}
		callDone <- err
	}()

	// The node has recorded its run and holds: kill the gateway under it.
	id := waitForRecordedRun(t, pool, gw)
	if err := gw.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := <-callDone; viaStart && err != nil {
		t.Fatalf("StartExecution: %v", err)
	} else if !viaStart && err == nil {
		t.Fatal("ExecuteWorkflow succeeded although the gateway was killed during its node")
	}
	if n := len(sink.named("RunNode trace_resume/n1")); n != 0 {
		t.Fatalf("%d RunNode spans exported before the kill, want none (the node was still running)", n)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO released (exec_id) VALUES ($1)`, id); err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	if ex := waitForEnd(t, client, id); ex.Status != kgw.StatusCompleted {
		t.Fatalf("after restart: status %s, error %+v", ex.Status, ex.Error)
	}
	if err := gw.Stop(); err != nil { // flushes the batched spans
		t.Fatal(err)
	}

	checkResumedSpans(t, sink, id, traceID, viaStart)
}

// startSpanSink starts an OTLP trace collector on loopback, stopped at the
// end of the test, and returns what it receives and its address.
func startSpanSink(t *testing.T) (*spanSink, string) {
	t.Helper()
	sink := &spanSink{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(gs, sink)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	return sink, lis.Addr().String()
}

// waitForRecordedRun waits up to a minute for a node to record its run in
// pool's table runs and returns the run's execution id.
func waitForRecordedRun(t *testing.T, pool *pgxpool.Pool, gw *testenv.GatewayProcess) (id string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for id == "" {
		if time.Now().After(deadline) {
			t.Fatalf("the node never recorded its run; gateway log:\n%s", gw.Logs())
		}
		if err := pool.QueryRow(t.Context(), `SELECT coalesce(max(exec_id), '') FROM runs`).Scan(&id); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return id
}

// checkResumedSpans checks the spans sink received for execution id,
// resumed after a kill: one Execution span, marked resumed, in the
// caller's trace traceID (ExecuteWorkflow) or a new root linked to it
// (StartExecution, viaStart), with the resumed node's RunNode spans under
// it.
func checkResumedSpans(t *testing.T, sink *spanSink, id, traceID string, viaStart bool) {
	t.Helper()
	runs := sink.named("Execution trace_resume")
	if len(runs) != 1 {
		t.Fatalf("%d Execution spans exported, want 1 (the resumed run's)", len(runs))
	}
	run := runs[0]
	if !boolAttr(run, "kgw.resumed") || spanAttr(run, "kgw.execution_id") != id {
		t.Errorf("Execution span: kgw.resumed %v, kgw.execution_id %q; want true and %q", boolAttr(run, "kgw.resumed"), spanAttr(run, "kgw.execution_id"), id)
	}
	runTrace := hex.EncodeToString(run.GetTraceId())
	if viaStart {
		// A new root, as the first run's was, linked to the caller's trace.
		if runTrace == traceID || len(run.GetParentSpanId()) != 0 {
			t.Errorf("resumed Execution span of StartExecution: trace %s, parent %x; want a new root", runTrace, run.GetParentSpanId())
		}
		linked := false
		for _, l := range run.GetLinks() {
			linked = linked || hex.EncodeToString(l.GetTraceId()) == traceID
		}
		if !linked {
			t.Errorf("resumed Execution span of StartExecution has no link to the caller's trace %s (links %v)", traceID, run.GetLinks())
		}
	} else if runTrace != traceID {
		t.Errorf("resumed Execution span in trace %s, want the caller's trace %s", runTrace, traceID)
	}

	nodes := sink.named("RunNode trace_resume/n1")
	if len(nodes) == 0 {
		t.Fatal("no RunNode span of the resumed node exported")
	}
	for _, sp := range nodes {
		if got := hex.EncodeToString(sp.GetTraceId()); got != runTrace || (!viaStart && got != traceID) {
			t.Errorf("resumed RunNode span in trace %s, want the Execution span's trace %s (caller's %s)", got, runTrace, traceID)
		}
		if string(sp.GetParentSpanId()) != string(run.GetSpanId()) {
			t.Errorf("resumed RunNode span's parent is %x, want the Execution span %x", sp.GetParentSpanId(), run.GetSpanId())
		}
		if spanAttr(sp, "kgw.execution_id") != id {
			t.Errorf("resumed RunNode span of execution %q, want %q", spanAttr(sp, "kgw.execution_id"), id)
		}
	}
}

func spanAttr(s *tracepb.Span, key string) string {
	for _, a := range s.GetAttributes() {
		if a.GetKey() == key {
			return a.GetValue().GetStringValue()
		}
	}
	return ""
}

func boolAttr(s *tracepb.Span, key string) bool {
	for _, a := range s.GetAttributes() {
		if a.GetKey() == key {
			return a.GetValue().GetBoolValue()
		}
	}
	return false
}
