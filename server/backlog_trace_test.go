package server_test

import (
	"encoding/hex"
	"testing"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc/metadata"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
)

// TestTracingQueuedStartExecutionLinks: a StartExecution that found the
// gateway at its limit of concurrent executions waits in the backlog; when
// it runs, its "Execution" span is still a new trace root linked to the
// span of the call that queued it (from the trace context journalled with
// it), not a child of anything of the run that freed the slot.
func TestTracingQueuedStartExecutionLinks(t *testing.T) {
	recv := startTracing(t)
	s := startStack(t, stackOptions{tracing: true, maxConcurrent: 1})
	s.register(t, &kgwv1.Workflow{Name: "busy", Nodes: []*kgwv1.Node{{Id: "n", Code: "time.sleep(0.3)\nresult = {}"}}})
	s.register(t, &kgwv1.Workflow{Name: "queued", Nodes: []*kgwv1.Node{{Id: "n", Code: `result = {}`}}})
	const firstTrace, queuedTrace = "0af7651916cd43dd8448eb211c80319c", "4bf92f3577b34da6a3ce929d0e0e4736"
	call := func(traceID string) *metadata.MD {
		md := metadata.Pairs("traceparent", "00-"+traceID+"-b7ad6b7169203331-01")
		return &md
	}
	first, err := s.ex.StartExecution(metadata.NewOutgoingContext(t.Context(), *call(firstTrace)), &kgwv1.StartExecutionRequest{Workflow: "busy"})
	if err != nil {
		t.Fatal(err)
	}
	queued, err := s.ex.StartExecution(metadata.NewOutgoingContext(t.Context(), *call(queuedTrace)), &kgwv1.StartExecutionRequest{Workflow: "queued"})
	if err != nil {
		t.Fatal(err)
	}
	// The second start found the only slot taken: it is queued.
	resp, err := s.ex.GetExecution(t.Context(), &kgwv1.GetExecutionRequest{ExecutionId: queued.GetExecutionId()})
	if err != nil {
		t.Fatal(err)
	}
	got := resp.GetExecution()
	if got.GetStatus() != kgwv1.ExecutionStatus_EXECUTION_STATUS_PENDING || got.GetReplica() != "" {
		t.Fatalf("second execution: status %v on replica %q, want PENDING and queued (no replica)", got.GetStatus(), got.GetReplica())
	}
	s.wait(t, first.GetExecutionId())
	s.wait(t, queued.GetExecutionId())
	var exec *tracepb.Span
	eventually(t, "the Execution span of the queued run", func() string {
		for _, sp := range recv.all() {
			if sp.GetName() == "Execution queued" {
				exec = sp
				return ""
			}
		}
		return "missing"
	})
	if hex.EncodeToString(exec.GetTraceId()) == queuedTrace || len(exec.GetParentSpanId()) != 0 {
		t.Errorf("Execution span in trace %x with parent %x, want a new root", exec.GetTraceId(), exec.GetParentSpanId())
	}
	links := exec.GetLinks()
	if len(links) != 1 || hex.EncodeToString(links[0].GetTraceId()) != queuedTrace {
		t.Fatalf("Execution span links = %v, want one to the queuing call's trace %s", links, queuedTrace)
	}
}
