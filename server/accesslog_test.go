package server_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
)

// lockedBuffer is a bytes.Buffer safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Failed RPCs are always logged; successful ones only with the access log.
func TestAccessLog(t *testing.T) {
	for _, on := range []bool{false, true} {
		var logs lockedBuffer
		s := startStack(t, stackOptions{logger: slog.New(slog.NewTextHandler(&logs, nil)), accessLog: on})
		if _, err := s.wf.ListWorkflows(t.Context(), &kgwv1.ListWorkflowsRequest{}); err != nil {
			t.Fatalf("ListWorkflows: %v", err)
		}
		if _, err := s.wf.GetWorkflow(t.Context(), &kgwv1.GetWorkflowRequest{Name: "missing"}); err == nil {
			t.Fatal("GetWorkflow(missing) succeeded")
		}
		got := logs.String()
		if !strings.Contains(got, "method=/kgw.v1.WorkflowService/GetWorkflow") || !strings.Contains(got, "code=NotFound") {
			t.Errorf("access log %v: the failed GetWorkflow is not logged:\n%s", on, got)
		}
		if logged := strings.Contains(got, "method=/kgw.v1.WorkflowService/ListWorkflows"); logged != on {
			t.Errorf("access log %v: successful ListWorkflows logged = %v:\n%s", on, logged, got)
		}
	}
}
