package server_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
	"github.com/kailash-gateway/kgw/server"
)

// bigClient is an execution client that accepts the gateway's largest
// messages (64 MiB), as the kgw clients do.
func bigClient(t *testing.T, s *stack) kgwv1.ExecutionServiceClient {
	return kgwv1.NewExecutionServiceClient(s.dial(t, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20))))
}

// watchAll reads every event of an execution from the start.
func watchAll(t *testing.T, ex kgwv1.ExecutionServiceClient, id string) []*kgwv1.ExecutionEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	stream, err := ex.WatchExecution(ctx, &kgwv1.WatchExecutionRequest{ExecutionId: id})
	if err != nil {
		t.Fatal(err)
	}
	var evs []*kgwv1.ExecutionEvent
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			return evs
		}
		if err != nil {
			t.Fatalf("watch %s after %d events: %v", id, len(evs), err)
		}
		if size := proto.Size(resp); size >= server.DefaultMaxSendMsgSize {
			t.Fatalf("event %d is %d bytes", resp.GetEvent().GetSeq(), size)
		}
		evs = append(evs, resp.GetEvent())
	}
}

// logLines returns the messages and fields of the NodeLog events.
func logLines(evs []*kgwv1.ExecutionEvent) []*kgwv1.NodeLog {
	var out []*kgwv1.NodeLog
	for _, ev := range evs {
		if l := ev.GetNodeLog(); l != nil {
			out = append(out, l)
		}
	}
	return out
}

// checkEveryRead checks that every read RPC still works on execution id,
// for a client with grpc-go's default 4 MiB receive limit too where the
// answer is small.
func checkEveryRead(t *testing.T, s *stack, ex kgwv1.ExecutionServiceClient, id string) {
	t.Helper()
	ctx := t.Context()
	if _, err := ex.GetExecution(ctx, &kgwv1.GetExecutionRequest{ExecutionId: id}); err != nil {
		t.Errorf("GetExecution: %v", err)
	}
	if _, err := s.ex.GetExecution(ctx, &kgwv1.GetExecutionRequest{ExecutionId: id, View: kgwv1.ExecutionView_EXECUTION_VIEW_BASIC}); err != nil {
		t.Errorf("GetExecution BASIC with a 4 MiB client: %v", err)
	}
	list, err := s.ex.ListExecutions(ctx, &kgwv1.ListExecutionsRequest{})
	if err != nil {
		t.Fatalf("unfiltered ListExecutions with a 4 MiB client: %v", err)
	}
	for _, x := range list.GetExecutions() {
		if len(x.GetResult()) > 0 {
			t.Errorf("ListExecutions (BASIC by default) returned results of %s", x.GetId())
		}
	}
	if _, err := ex.ListExecutions(ctx, &kgwv1.ListExecutionsRequest{View: kgwv1.ExecutionView_EXECUTION_VIEW_FULL}); err != nil {
		t.Errorf("ListExecutions FULL: %v", err)
	}
	watchAll(t, ex, id)
}

// A 50 MiB log message, a 50 MiB log field and a 50 MiB print are stored
// cut to the per-line limit, saying so; every read still works.
func TestHugeLogLine(t *testing.T) {
	s := startStack(t, stackOptions{})
	s.register(t, &kgwv1.Workflow{Name: "loud", Nodes: []*kgwv1.Node{{Id: "n", Code: `
big = "é" * (25 << 20)
logger.info(big)
logger.warning("small message", blob = big, n = 1)
print(big)
logger.error("%s!", big)
result = {"ok": True}
`}}})
	ex := bigClient(t, s)
	resp, err := ex.ExecuteWorkflow(t.Context(), &kgwv1.ExecuteWorkflowRequest{Workflow: "loud"})
	if err != nil {
		t.Fatal(err)
	}
	if st := resp.GetExecution().GetStatus(); st != kgwv1.ExecutionStatus_EXECUTION_STATUS_COMPLETED {
		t.Fatalf("status %v, error %v", st, resp.GetExecution().GetError())
	}
	id := resp.GetExecution().GetId()
	lines := logLines(watchAll(t, ex, id))
	if len(lines) != 4 {
		t.Fatalf("%d log lines, want 4", len(lines))
	}
	for i, l := range lines {
		if !utf8.ValidString(l.GetMessage()) {
			t.Errorf("line %d was cut inside a character", i)
		}
		size := len(l.GetMessage()) + proto.Size(l.GetFields())
		if size > 70<<10 {
			t.Errorf("line %d is %d bytes, want about 64 KiB at most", i, size)
		}
		if i == 1 {
			if l.GetMessage() != "small message" || !strings.Contains(l.GetFields().GetFields()["blob"].GetStringValue(), "value dropped") {
				t.Errorf("line with a huge field = %q %v, want the message kept and the field dropped", l.GetMessage(), l.GetFields())
			}
			continue
		}
		if !strings.Contains(l.GetMessage(), "log line truncated: ") || !strings.HasPrefix(l.GetMessage(), "éé") {
			t.Errorf("line %d = %.40q … %.80q, want it cut and saying so", i, l.GetMessage(), l.GetMessage()[max(0, len(l.GetMessage())-80):])
		}
	}
	checkEveryRead(t, s, ex, id)
}

// Many large log lines stop at the per-attempt byte limit with one
// warning line.
func TestManyLargeLogLines(t *testing.T) {
	s := startStack(t, stackOptions{})
	s.register(t, &kgwv1.Workflow{Name: "chatty", Nodes: []*kgwv1.Node{{Id: "n", Code: `
line = "z" * 60000
for i in range(900):
    logger.info(line, i = i)
result = {"ok": True}
`}}})
	ex := bigClient(t, s)
	resp, err := ex.ExecuteWorkflow(t.Context(), &kgwv1.ExecuteWorkflowRequest{Workflow: "chatty"})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.GetExecution().GetId()
	lines := logLines(watchAll(t, ex, id))
	total := 0
	for _, l := range lines {
		total += len(l.GetMessage())
	}
	last := lines[len(lines)-1]
	if len(lines) > 20 || total > 1<<20+64<<10 || !strings.Contains(last.GetMessage(), "logged more than 1048576 bytes") ||
		last.GetLevel() != kgwv1.LogLevel_LOG_LEVEL_WARNING {
		t.Errorf("%d lines of %d bytes, last %.100q; want at most about 1 MiB and a warning at the end", len(lines), total, last.GetMessage())
	}
	checkEveryRead(t, s, ex, id)
}

// Twenty results of 3.5 MiB: the execution fails with RESULT_TOO_LARGE
// once its results would pass 16 MiB, and Get, Execute, List and Watch
// keep working for every caller.
func TestLargeResults(t *testing.T) {
	s := startStack(t, stackOptions{})
	w := &kgwv1.Workflow{Name: "heavy"}
	for i := range 20 {
		w.Nodes = append(w.Nodes, &kgwv1.Node{Id: fmt.Sprintf("n%02d", i), Code: `result = {"blob": "r" * (3584 << 10)}`})
		if i > 0 { // a chain, so the order is known
			w.Connections = append(w.Connections, &kgwv1.Connection{FromNode: fmt.Sprintf("n%02d", i-1), ToNode: fmt.Sprintf("n%02d", i), FromOutput: "blob", ToInput: "prev"})
		}
	}
	s.register(t, w)
	ex := bigClient(t, s)
	resp, err := ex.ExecuteWorkflow(t.Context(), &kgwv1.ExecuteWorkflowRequest{Workflow: "heavy"})
	if err != nil {
		t.Fatalf("ExecuteWorkflow: %v", err)
	}
	x := resp.GetExecution()
	if x.GetStatus() != kgwv1.ExecutionStatus_EXECUTION_STATUS_FAILED || x.GetError().GetCode() != "RESULT_TOO_LARGE" ||
		x.GetError().GetNodeId() != "n04" || !strings.Contains(x.GetError().GetMessage(), "--max-result-bytes") {
		t.Fatalf("execution = %v %v, want FAILED with RESULT_TOO_LARGE at n04", x.GetStatus(), x.GetError())
	}
	if len(x.GetResult()) != 4 {
		t.Errorf("%d results, want the 4 that fit", len(x.GetResult()))
	}
	id := x.GetId()
	checkEveryRead(t, s, ex, id)

	// The execution is not the only one: a few more, then every read again.
	for range 3 {
		if _, err := ex.ExecuteWorkflow(t.Context(), &kgwv1.ExecuteWorkflowRequest{Workflow: "heavy"}); err != nil {
			t.Fatal(err)
		}
	}
	full, err := ex.ListExecutions(t.Context(), &kgwv1.ListExecutionsRequest{View: kgwv1.ExecutionView_EXECUTION_VIEW_FULL})
	if err != nil {
		t.Fatalf("ListExecutions FULL of 4 × 14 MiB: %v", err)
	}
	if n := len(full.GetExecutions()); n == 0 || n == 4 || full.GetNextPageToken() == "" {
		t.Errorf("FULL page of 4 × 14 MiB: %d executions, next token %q; want it cut short with a token", n, full.GetNextPageToken())
	}
	seen := len(full.GetExecutions())
	for token := full.GetNextPageToken(); token != ""; {
		page, err := ex.ListExecutions(t.Context(), &kgwv1.ListExecutionsRequest{View: kgwv1.ExecutionView_EXECUTION_VIEW_FULL, PageToken: token})
		if err != nil {
			t.Fatalf("next FULL page: %v", err)
		}
		seen += len(page.GetExecutions())
		token = page.GetNextPageToken()
	}
	if seen != 4 {
		t.Errorf("FULL pages held %d executions, want 4", seen)
	}
	basic, err := s.ex.ListExecutions(t.Context(), &kgwv1.ListExecutionsRequest{})
	if err != nil || len(basic.GetExecutions()) != 4 || basic.GetNextPageToken() != "" {
		t.Errorf("BASIC list = %d executions, %v; want 4 in one page", len(basic.GetExecutions()), err)
	}
	// A view that is not one is refused; a page token is bound to its view.
	_, err = s.ex.ListExecutions(t.Context(), &kgwv1.ListExecutionsRequest{View: 7})
	if code, _, br := details(t, err); code != codes.InvalidArgument || br.GetFieldViolations()[0].GetField() != "view" {
		t.Errorf("view 7 = %v, want INVALID_ARGUMENT on view", err)
	}
	_, err = s.ex.GetExecution(t.Context(), &kgwv1.GetExecutionRequest{ExecutionId: id, View: -1})
	if code, _, _ := details(t, err); code != codes.InvalidArgument {
		t.Errorf("GetExecution view -1 = %v, want INVALID_ARGUMENT", err)
	}
	_, err = ex.ListExecutions(t.Context(), &kgwv1.ListExecutionsRequest{PageToken: full.GetNextPageToken()})
	if code := status.Code(err); full.GetNextPageToken() != "" && code != codes.InvalidArgument {
		t.Errorf("FULL token used for a BASIC list = %v, want INVALID_ARGUMENT", err)
	}
}

// FULL pages of executions of about 10.5 MiB each are cut below 48 MiB,
// also in the middle of a chunk the server reads, and paging through them
// returns every execution once, in the order of the BASIC list.
func TestListFullPages(t *testing.T) {
	s := startStack(t, stackOptions{})
	w := &kgwv1.Workflow{Name: "tens"}
	for i := range 3 {
		w.Nodes = append(w.Nodes, &kgwv1.Node{Id: fmt.Sprintf("n%d", i), Code: `result = {"blob": "r" * (3584 << 10)}`})
	}
	s.register(t, w)
	ex := bigClient(t, s)
	for range 6 {
		if _, err := ex.ExecuteWorkflow(t.Context(), &kgwv1.ExecuteWorkflowRequest{Workflow: "tens"}); err != nil {
			t.Fatal(err)
		}
	}
	basic, err := s.ex.ListExecutions(t.Context(), &kgwv1.ListExecutionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var want, got []string
	for _, x := range basic.GetExecutions() {
		want = append(want, x.GetId())
	}
	var sizes []int
	token := ""
	for {
		page, err := ex.ListExecutions(t.Context(), &kgwv1.ListExecutionsRequest{View: kgwv1.ExecutionView_EXECUTION_VIEW_FULL, PageToken: token})
		if err != nil {
			t.Fatalf("FULL page after %d executions: %v", len(got), err)
		}
		if size := proto.Size(page); size > 48<<20 {
			t.Errorf("FULL page of %d bytes", size)
		}
		sizes = append(sizes, len(page.GetExecutions()))
		for _, x := range page.GetExecutions() {
			got = append(got, x.GetId())
			if len(x.GetResult()) != 3 {
				t.Errorf("execution %s has %d results in a FULL page, want 3", x.GetId(), len(x.GetResult()))
			}
		}
		if token = page.GetNextPageToken(); token == "" {
			break
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("FULL pages = %v, want %v", got, want)
	}
	if len(sizes) != 2 || sizes[0] != 4 {
		t.Errorf("page sizes %v, want [4 2] (4 × 10.5 MiB fit in 48 MiB)", sizes)
	}
}
