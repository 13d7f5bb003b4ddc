package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
	"github.com/kailash-gateway/kgw/server"
)

// pipeline is a three-node workflow a → b → c over named connections.
func pipeline(name string) *kgwv1.Workflow {
	return &kgwv1.Workflow{
		Name: name,
		Nodes: []*kgwv1.Node{
			{Id: "a", Code: `result = {"x": n * 2}`},
			{Id: "b", Code: `result = {"y": x + 1}`},
			{Id: "c", Code: `result = {"key": "value-" + str(y)}`},
		},
		Connections: []*kgwv1.Connection{
			{FromNode: "a", FromOutput: "x", ToNode: "b"},
			{FromNode: "b", FromOutput: "y", ToNode: "c"},
		},
	}
}

// failing is a workflow whose second node fails.
func failing(name string) *kgwv1.Workflow {
	return &kgwv1.Workflow{
		Name: name,
		Nodes: []*kgwv1.Node{
			{Id: "ok", Code: `result = {"v": 1}`},
			{Id: "bad", Code: "def check(v):\n    fail(\"value %d is not allowed\" % v)\n\ncheck(v)\n"},
		},
		Connections: []*kgwv1.Connection{{FromNode: "ok", FromOutput: "v", ToNode: "bad"}},
	}
}

// gated waits until another execution of the same workflow, run with
// parameters {"open": true}, opens the gate (workflow_cache is shared by the
// executions of a workflow); then it logs lines lines of size bytes each.
func gated(name string, lines, size int) *kgwv1.Workflow {
	code := fmt.Sprintf(`
if parameters.get("open"):
    workflow_cache.set("gate", True)
else:
    while workflow_cache.get("gate") == None:
        time.sleep(0.005)
    pad = "x" * %d
    for i in range(%d):
        logger.info(pad, i=i)
result = {"done": True}
`, size, lines)
	return &kgwv1.Workflow{Name: name, Nodes: []*kgwv1.Node{{Id: "g", Code: code}}}
}

func params(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestExecuteWorkflowThreeNodes(t *testing.T) {
	s := startStack(t, stackOptions{})
	s.register(t, pipeline("pipe"))
	resp, err := s.ex.ExecuteWorkflow(t.Context(), &kgwv1.ExecuteWorkflowRequest{
		Workflow: "pipe", Parameters: params(t, map[string]any{"n": 3}),
	})
	if err != nil {
		t.Fatalf("ExecuteWorkflow: %v", err)
	}
	x := resp.GetExecution()
	if x.GetStatus() != kgwv1.ExecutionStatus_EXECUTION_STATUS_COMPLETED || x.GetError() != nil {
		t.Fatalf("ExecuteWorkflow status = %v, error %v, want COMPLETED", x.GetStatus(), x.GetError())
	}
	if got := x.GetResult()["c"].GetFields()["key"].GetStringValue(); got != "value-7" {
		t.Fatalf(`result["c"]["key"] = %q, want "value-7" (result %v)`, got, x.GetResult())
	}
	if got := x.GetResult()["a"].GetFields()["x"].GetNumberValue(); got != 6 {
		t.Errorf(`result["a"]["x"] = %v, want 6`, got)
	}
	if x.GetId() == "" || x.GetWorkflow() != "pipe" || x.GetVersion() != 1 || x.GetCreateTime() == nil ||
		x.GetStartTime() == nil || x.GetEndTime() == nil {
		t.Errorf("execution header = %v, want id, workflow pipe v1 and all times", x)
	}
	if len(x.GetNodes()) != 3 {
		t.Fatalf("nodes = %v, want 3", x.GetNodes())
	}
	for i, n := range x.GetNodes() {
		if n.GetNodeId() != []string{"a", "b", "c"}[i] || n.GetStatus() != kgwv1.NodeStatus_NODE_STATUS_COMPLETED ||
			n.GetAttempts() != 1 || n.GetStartTime() == nil || n.GetEndTime() == nil || n.GetDuration() == nil {
			t.Errorf("nodes[%d] = %v, want completed after 1 attempt with times and duration", i, n)
		}
	}
}

func TestExecuteWorkflowNodeFails(t *testing.T) {
	s := startStack(t, stackOptions{})
	s.register(t, failing("fails"))
	resp, err := s.ex.ExecuteWorkflow(t.Context(), &kgwv1.ExecuteWorkflowRequest{Workflow: "fails"})
	if err != nil {
		t.Fatalf("ExecuteWorkflow of a failing workflow = %v, want a normal response", err)
	}
	x := resp.GetExecution()
	if x.GetStatus() != kgwv1.ExecutionStatus_EXECUTION_STATUS_FAILED {
		t.Fatalf("status = %v, want FAILED", x.GetStatus())
	}
	e := x.GetError()
	if e.GetNodeId() != "bad" || e.GetCode() == "" || !strings.Contains(e.GetMessage(), "value 1 is not allowed") ||
		!strings.Contains(e.GetTraceback(), "check") {
		t.Fatalf("error = %v, want node bad, a code, the fail message and a traceback naming check", e)
	}
	if got := x.GetResult()["ok"].GetFields()["v"].GetNumberValue(); got != 1 {
		t.Errorf(`result["ok"]["v"] = %v, want 1 (completed nodes keep their result)`, got)
	}
	if n := x.GetNodes()[1]; n.GetStatus() != kgwv1.NodeStatus_NODE_STATUS_FAILED || n.GetError().GetMessage() == "" {
		t.Errorf("nodes[1] = %v, want FAILED with an error", n)
	}
}

func TestExecuteWorkflowBadRequests(t *testing.T) {
	s := startStack(t, stackOptions{})
	s.register(t, pipeline("pipe"))
	ctx := t.Context()

	_, err := s.ex.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: "nope"})
	if code, info, _ := details(t, err); code != codes.NotFound || info.GetReason() != server.ReasonWorkflowNotFound {
		t.Fatalf("ExecuteWorkflow(unknown) = %v %v, want NOT_FOUND WORKFLOW_NOT_FOUND", code, info)
	}
	_, err = s.ex.StartExecution(ctx, &kgwv1.StartExecutionRequest{Workflow: "pipe", Version: 9})
	if code, info, _ := details(t, err); code != codes.NotFound || info.GetReason() != server.ReasonWorkflowNotFound {
		t.Fatalf("StartExecution(version 9) = %v %v, want NOT_FOUND WORKFLOW_NOT_FOUND", code, info)
	}

	db := func(config map[string]any) *kgwv1.ResourceSpec {
		return &kgwv1.ResourceSpec{Type: "database", Config: params(t, config)}
	}
	tests := []struct {
		name  string
		req   *kgwv1.ExecuteWorkflowRequest
		field string
	}{
		{"no workflow", &kgwv1.ExecuteWorkflowRequest{}, "workflow"},
		{"negative version", &kgwv1.ExecuteWorkflowRequest{Workflow: "pipe", Version: -1}, "version"},
		{"negative timeout", &kgwv1.ExecuteWorkflowRequest{Workflow: "pipe", Timeout: durationpb.New(-1)}, "timeout"},
		{"huge timeout", &kgwv1.ExecuteWorkflowRequest{Workflow: "pipe", Timeout: durationpb.New(1e6 * 1e9 * 3600)}, "timeout"},
		{"bad resource name", &kgwv1.ExecuteWorkflowRequest{Workflow: "pipe",
			Resources: map[string]*kgwv1.ResourceSpec{"Bad-Name": db(nil)}}, `resources["Bad-Name"]`},
		{"no type", &kgwv1.ExecuteWorkflowRequest{Workflow: "pipe",
			Resources: map[string]*kgwv1.ResourceSpec{"db": {}}}, `resources["db"].type`},
		{"unknown type", &kgwv1.ExecuteWorkflowRequest{Workflow: "pipe",
			Resources: map[string]*kgwv1.ResourceSpec{"db": {Type: "mongo"}}}, `resources["db"].type`},
		{"unknown config key", &kgwv1.ExecuteWorkflowRequest{Workflow: "pipe",
			Resources: map[string]*kgwv1.ResourceSpec{"db": db(map[string]any{"hots": "x"})}}, `resources["db"].config`},
		{"ref and type", &kgwv1.ExecuteWorkflowRequest{Workflow: "pipe",
			Resources: map[string]*kgwv1.ResourceSpec{"db": {Ref: "orders", Type: "database"}}}, `resources["db"].ref`},
		{"bad ref", &kgwv1.ExecuteWorkflowRequest{Workflow: "pipe",
			Resources: map[string]*kgwv1.ResourceSpec{"db": {Ref: "Orders DB"}}}, `resources["db"].ref`},
		{"credentials_key alone", &kgwv1.ExecuteWorkflowRequest{Workflow: "pipe",
			Resources: map[string]*kgwv1.ResourceSpec{"db": {Type: "database", CredentialsKey: "k"}}}, `resources["db"].credentials_key`},
		{"bad credentials_ref", &kgwv1.ExecuteWorkflowRequest{Workflow: "pipe",
			Resources: map[string]*kgwv1.ResourceSpec{"db": {Type: "database", CredentialsRef: "no spaces"}}}, `resources["db"].credentials_ref`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.ex.ExecuteWorkflow(ctx, tt.req)
			code, info, br := details(t, err)
			if code != codes.InvalidArgument || info.GetReason() != server.ReasonInvalidRequest {
				t.Fatalf("ExecuteWorkflow = %v %v, want INVALID_ARGUMENT INVALID_REQUEST", code, info)
			}
			var fields []string
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
			if len(fields) != 1 || fields[0] != tt.field {
				t.Fatalf("violations on %q, want one on %q (%v)", fields, tt.field, br)
			}
		})
	}

	// A gateway with inline specs disabled refuses them up front.
	locked := startStack(t, stackOptions{disableInline: true})
	locked.register(t, pipeline("pipe"))
	_, err = locked.ex.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: "pipe",
		Resources: map[string]*kgwv1.ResourceSpec{"db": db(map[string]any{"host": "127.0.0.1"})}})
	if code, _, br := details(t, err); code != codes.InvalidArgument || len(br.GetFieldViolations()) != 1 ||
		!strings.Contains(br.GetFieldViolations()[0].GetDescription(), "inline resource specs are disabled") {
		t.Fatalf("inline spec with inline disabled = %v %v, want INVALID_ARGUMENT saying inline specs are disabled", code, br)
	}
}

// recvAll reads a stream of events to its end.
func recvAll[T interface{ GetEvent() *kgwv1.ExecutionEvent }](t *testing.T, recv func() (T, error)) ([]*kgwv1.ExecutionEvent, error) {
	t.Helper()
	var evs []*kgwv1.ExecutionEvent
	for {
		m, err := recv()
		if errors.Is(err, io.EOF) {
			return evs, nil
		}
		if err != nil {
			return evs, err
		}
		evs = append(evs, m.GetEvent())
	}
}

// terminal returns the final execution carried by a terminal event, or nil.
func terminal(ev *kgwv1.ExecutionEvent) *kgwv1.Execution {
	switch e := ev.GetEvent().(type) {
	case *kgwv1.ExecutionEvent_ExecutionCompleted:
		return e.ExecutionCompleted.GetExecution()
	case *kgwv1.ExecutionEvent_ExecutionFailed:
		return e.ExecutionFailed.GetExecution()
	case *kgwv1.ExecutionEvent_ExecutionCancelled:
		return e.ExecutionCancelled.GetExecution()
	case *kgwv1.ExecutionEvent_ExecutionTimedOut:
		return e.ExecutionTimedOut.GetExecution()
	}
	return nil
}

// checkDense checks that events have seqs first, first+1, … and that only
// the last one (when wantEnd) is terminal.
func checkDense(t *testing.T, evs []*kgwv1.ExecutionEvent, first int64, wantEnd bool) {
	t.Helper()
	for i, ev := range evs {
		if ev.GetSeq() != first+int64(i) {
			t.Fatalf("event %d has seq %d, want %d", i, ev.GetSeq(), first+int64(i))
		}
		if end := terminal(ev) != nil; end != (wantEnd && i == len(evs)-1) {
			t.Fatalf("event seq %d terminal = %v, want only the last event terminal", ev.GetSeq(), end)
		}
	}
}

func TestStreamExecution(t *testing.T) {
	s := startStack(t, stackOptions{})
	s.register(t, pipeline("pipe"))
	ctx := t.Context()
	stream, err := s.ex.StreamExecution(ctx, &kgwv1.StreamExecutionRequest{Workflow: "pipe", Parameters: params(t, map[string]any{"n": 1})})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := recvAll(t, stream.Recv)
	if err != nil {
		t.Fatalf("StreamExecution: %v", err)
	}
	// started, 3 × (node started, node completed), completed.
	if len(evs) != 8 {
		t.Fatalf("StreamExecution sent %d events, want 8: %v", len(evs), evs)
	}
	checkDense(t, evs, 1, true)
	if evs[0].GetExecutionStarted().GetWorkflow() != "pipe" {
		t.Errorf("first event = %v, want execution_started of pipe", evs[0])
	}
	if evs[7].GetExecutionCompleted() == nil {
		t.Fatalf("last event = %v, want execution_completed", evs[7])
	}
	final := terminal(evs[7])
	got, err := s.ex.GetExecution(ctx, &kgwv1.GetExecutionRequest{ExecutionId: evs[0].GetExecutionId()})
	if err != nil {
		t.Fatalf("GetExecution: %v", err)
	}
	if diff := cmp.Diff(got.GetExecution(), final, protocmp.Transform()); diff != "" {
		t.Fatalf("terminal event execution differs from GetExecution (-get +event):\n%s", diff)
	}
	if final.GetResult()["c"].GetFields()["key"].GetStringValue() != "value-3" {
		t.Errorf("final result = %v, want c.key value-3", final.GetResult())
	}
}

func TestWatchExecutionFinished(t *testing.T) {
	s := startStack(t, stackOptions{})
	s.register(t, failing("fails"))
	ctx := t.Context()
	resp, err := s.ex.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: "fails"})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.GetExecution().GetId()

	watch := func(after int64) []*kgwv1.ExecutionEvent {
		t.Helper()
		stream, err := s.ex.WatchExecution(ctx, &kgwv1.WatchExecutionRequest{ExecutionId: id, AfterSeq: after})
		if err != nil {
			t.Fatal(err)
		}
		evs, err := recvAll(t, stream.Recv)
		if err != nil {
			t.Fatalf("WatchExecution(after %d): %v", after, err)
		}
		return evs
	}
	all := watch(0)
	n := int64(len(all))
	checkDense(t, all, 1, true)
	if all[n-1].GetExecutionFailed() == nil {
		t.Fatalf("last event = %v, want execution_failed", all[n-1])
	}
	for k := int64(1); k <= n+1; k++ {
		got := watch(k)
		if want := max(n-k, 0); int64(len(got)) != want {
			t.Fatalf("WatchExecution(after %d) sent %d events, want %d", k, len(got), want)
		}
		if len(got) > 0 {
			checkDense(t, got, k+1, true)
			if diff := cmp.Diff(all[k:], got, protocmp.Transform()); diff != "" {
				t.Fatalf("WatchExecution(after %d) differs from the full watch (-all +got):\n%s", k, diff)
			}
		}
	}

	stream, err := s.ex.WatchExecution(ctx, &kgwv1.WatchExecutionRequest{ExecutionId: "no-such-execution"})
	if err == nil {
		_, err = stream.Recv()
	}
	if code, info, _ := details(t, err); code != codes.NotFound || info.GetReason() != server.ReasonExecutionNotFound {
		t.Fatalf("WatchExecution(unknown) = %v %v, want NOT_FOUND EXECUTION_NOT_FOUND", code, info)
	}
	_, err = s.ex.GetExecution(ctx, &kgwv1.GetExecutionRequest{ExecutionId: "no-such-execution"})
	if code, info, _ := details(t, err); code != codes.NotFound || info.GetReason() != server.ReasonExecutionNotFound {
		t.Fatalf("GetExecution(unknown) = %v %v, want NOT_FOUND EXECUTION_NOT_FOUND", code, info)
	}
}

func TestWatchExecutionLive(t *testing.T) {
	s := startStack(t, stackOptions{})
	s.register(t, gated("gate", 3, 10))
	ctx := t.Context()
	start, err := s.ex.StartExecution(ctx, &kgwv1.StartExecutionRequest{Workflow: "gate"})
	if err != nil {
		t.Fatal(err)
	}
	id := start.GetExecutionId()
	stream, err := s.ex.WatchExecution(ctx, &kgwv1.WatchExecutionRequest{ExecutionId: id})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil || first.GetEvent().GetSeq() != 1 {
		t.Fatalf("first watched event = %v, %v, want seq 1", first, err)
	}
	// The execution is still waiting at the gate: open it.
	if _, err := s.ex.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: "gate", Parameters: params(t, map[string]any{"open": true})}); err != nil {
		t.Fatal(err)
	}
	rest, err := recvAll(t, stream.Recv)
	if err != nil {
		t.Fatalf("WatchExecution: %v", err)
	}
	evs := append([]*kgwv1.ExecutionEvent{first.GetEvent()}, rest...)
	checkDense(t, evs, 1, true)
	logs := 0
	for _, ev := range evs {
		if l := ev.GetNodeLog(); l != nil {
			logs++
			if l.GetMessage() != "xxxxxxxxxx" || l.GetFields().GetFields()["i"].GetNumberValue() != float64(logs-1) {
				t.Errorf("log event = %v, want message of 10 x and field i=%d", l, logs-1)
			}
		}
	}
	if logs != 3 || terminal(evs[len(evs)-1]).GetStatus() != kgwv1.ExecutionStatus_EXECUTION_STATUS_COMPLETED {
		t.Fatalf("watched %d log events ending with %v, want 3 and COMPLETED", logs, evs[len(evs)-1])
	}
}

// A watcher that stops reading while its execution produces events is cut
// off with RESOURCE_EXHAUSTED / WATCH_LAGGING after the events it was sent,
// and resuming from resume_after_seq misses nothing.
func TestWatchExecutionLagging(t *testing.T) {
	s := startStack(t, stackOptions{subscriberBuffer: 8})
	s.register(t, gated("chatty", 500, 2000))
	ctx := t.Context()
	const key = "lagging-run"
	start, err := s.ex.StartExecution(ctx, &kgwv1.StartExecutionRequest{Workflow: "chatty", IdempotencyKey: key})
	if err != nil {
		t.Fatal(err)
	}
	id := start.GetExecutionId()

	// A client with the smallest flow-control windows (64 KiB, no dynamic
	// growth): it stops reading, so the server's Send blocks well before
	// the ~1 MB of log events is out.
	slow := kgwv1.NewExecutionServiceClient(s.dial(t, grpc.WithInitialWindowSize(1<<16), grpc.WithInitialConnWindowSize(1<<16)))
	stream, err := slow.WatchExecution(ctx, &kgwv1.WatchExecutionRequest{ExecutionId: id})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv() // the watch is subscribed
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ex.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: "chatty", Parameters: params(t, map[string]any{"open": true})}); err != nil {
		t.Fatal(err)
	}
	// Wait for the chatty execution to end: the same idempotency key
	// attaches to it.
	done, err := s.ex.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: "chatty", IdempotencyKey: key})
	if err != nil || done.GetExecution().GetId() != id || done.GetExecution().GetStatus() != kgwv1.ExecutionStatus_EXECUTION_STATUS_COMPLETED {
		t.Fatalf("ExecuteWorkflow(same key) = %v, %v, want execution %s COMPLETED", done.GetExecution().GetStatus(), err, id)
	}

	rest, err := recvAll(t, stream.Recv)
	evs := append([]*kgwv1.ExecutionEvent{first.GetEvent()}, rest...)
	code, info, _ := details(t, err)
	if code != codes.ResourceExhausted || info.GetReason() != server.ReasonWatchLagging {
		t.Fatalf("lagging watch ended with %v %v, want RESOURCE_EXHAUSTED WATCH_LAGGING", code, info)
	}
	checkDense(t, evs, 1, false)
	last := evs[len(evs)-1].GetSeq()
	if got := info.GetMetadata()["resume_after_seq"]; got != strconv.FormatInt(last, 10) {
		t.Fatalf("resume_after_seq = %q, want %d (the last seq sent)", got, last)
	}
	if !strings.Contains(err.Error(), "after_seq "+strconv.FormatInt(last, 10)) {
		t.Errorf("message %q does not tell where to resume", err)
	}

	resumed, err := s.ex.WatchExecution(ctx, &kgwv1.WatchExecutionRequest{ExecutionId: id, AfterSeq: last})
	if err != nil {
		t.Fatal(err)
	}
	more, err := recvAll(t, resumed.Recv)
	if err != nil {
		t.Fatalf("resumed watch: %v", err)
	}
	checkDense(t, more, last+1, true)
	if total := len(evs) + len(more); total != 500+4 {
		t.Fatalf("watched %d events in all, want %d", total, 500+4)
	}
}

func TestListExecutions(t *testing.T) {
	s := startStack(t, stackOptions{})
	s.register(t, pipeline("pipe"))
	s.register(t, failing("fails"))
	ctx := t.Context()
	var ids []string // in creation order
	for i := range 7 {
		wf := "pipe"
		if i%3 == 2 {
			wf = "fails"
		}
		resp, err := s.ex.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: wf, Parameters: params(t, map[string]any{"n": i})})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, resp.GetExecution().GetId())
	}

	newestFirst := func(keep func(i int) bool) []string {
		var out []string
		for i := len(ids) - 1; i >= 0; i-- {
			if keep(i) {
				out = append(out, ids[i])
			}
		}
		return out
	}
	tests := []struct {
		name string
		req  *kgwv1.ListExecutionsRequest
		want []string
	}{
		{"all", &kgwv1.ListExecutionsRequest{PageSize: 2}, newestFirst(func(int) bool { return true })},
		{"workflow", &kgwv1.ListExecutionsRequest{PageSize: 2, Workflow: "pipe"}, newestFirst(func(i int) bool { return i%3 != 2 })},
		{"status", &kgwv1.ListExecutionsRequest{PageSize: 1, Status: kgwv1.ExecutionStatus_EXECUTION_STATUS_FAILED}, newestFirst(func(i int) bool { return i%3 == 2 })},
		{"both, none match", &kgwv1.ListExecutionsRequest{PageSize: 3, Workflow: "pipe", Status: kgwv1.ExecutionStatus_EXECUTION_STATUS_FAILED}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, listExecutionIDs(t, s, tt.req)); diff != "" {
				t.Fatalf("ListExecutions ids (-want +got):\n%s", diff)
			}
		})
	}

	// A token is bound to its filters.
	first, err := s.ex.ListExecutions(ctx, &kgwv1.ListExecutionsRequest{PageSize: 1, Workflow: "pipe"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.ex.ListExecutions(ctx, &kgwv1.ListExecutionsRequest{PageSize: 1, Workflow: "fails", PageToken: first.GetNextPageToken()})
	if code, info, _ := details(t, err); code != codes.InvalidArgument || info.GetReason() != server.ReasonInvalidPageToken {
		t.Fatalf("ListExecutions with another filter's token = %v %v, want INVALID_ARGUMENT INVALID_PAGE_TOKEN", code, info)
	}
	_, err = s.ex.ListExecutions(ctx, &kgwv1.ListExecutionsRequest{Status: 42})
	if code, _, _ := details(t, err); code != codes.InvalidArgument {
		t.Fatalf("ListExecutions(status 42) = %v, want INVALID_ARGUMENT", code)
	}
}

// listExecutionIDs lists the executions req asks for, page by page (req's
// page token is overwritten), checking each page's size and filters, and
// returns their ids.
func listExecutionIDs(t *testing.T, s *stack, req *kgwv1.ListExecutionsRequest) []string {
	t.Helper()
	var got []string
	for pages := 0; ; pages++ {
		resp, err := s.ex.ListExecutions(t.Context(), req)
		if err != nil {
			t.Fatalf("ListExecutions(%v): %v", req, err)
		}
		if len(resp.GetExecutions()) > int(req.GetPageSize()) {
			t.Fatalf("page of %d, want at most %d", len(resp.GetExecutions()), req.GetPageSize())
		}
		for _, x := range resp.GetExecutions() {
			if req.GetWorkflow() != "" && x.GetWorkflow() != req.GetWorkflow() ||
				req.GetStatus() != 0 && x.GetStatus() != req.GetStatus() {
				t.Fatalf("ListExecutions(%v) returned %v", req, x)
			}
			got = append(got, x.GetId())
		}
		if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
			return got
		}
		if pages > 10 {
			t.Fatal("ListExecutions never ends")
		}
	}
}

func TestCancelExecution(t *testing.T) {
	s := startStack(t, stackOptions{})
	s.register(t, &kgwv1.Workflow{Name: "slow", Nodes: []*kgwv1.Node{{Id: "wait", Code: "time.sleep(120)\nresult = {}"}}})
	ctx := t.Context()
	start, err := s.ex.StartExecution(ctx, &kgwv1.StartExecutionRequest{Workflow: "slow"})
	if err != nil {
		t.Fatal(err)
	}
	id := start.GetExecutionId()
	stream, err := s.ex.WatchExecution(ctx, &kgwv1.WatchExecutionRequest{ExecutionId: id})
	if err != nil {
		t.Fatal(err)
	}
	for { // until the node runs
		m, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if m.GetEvent().GetNodeStarted() != nil {
			break
		}
	}
	resp, err := s.ex.CancelExecution(ctx, &kgwv1.CancelExecutionRequest{ExecutionId: id})
	if err != nil {
		t.Fatalf("CancelExecution: %v", err)
	}
	if resp.GetExecution().GetStatus() != kgwv1.ExecutionStatus_EXECUTION_STATUS_CANCELLED {
		t.Fatalf("CancelExecution status = %v, want CANCELLED", resp.GetExecution().GetStatus())
	}
	rest, err := recvAll(t, stream.Recv)
	if err != nil || len(rest) == 0 || rest[len(rest)-1].GetExecutionCancelled() == nil {
		t.Fatalf("watch after cancel = %v, %v, want it to end with execution_cancelled", rest, err)
	}
	got, err := s.ex.GetExecution(ctx, &kgwv1.GetExecutionRequest{ExecutionId: id})
	if err != nil || got.GetExecution().GetStatus() != kgwv1.ExecutionStatus_EXECUTION_STATUS_CANCELLED {
		t.Fatalf("GetExecution after cancel = %v, %v, want CANCELLED", got, err)
	}
	// Cancelling a finished execution returns it unchanged.
	again, err := s.ex.CancelExecution(ctx, &kgwv1.CancelExecutionRequest{ExecutionId: id})
	if err != nil || again.GetExecution().GetStatus() != kgwv1.ExecutionStatus_EXECUTION_STATUS_CANCELLED {
		t.Fatalf("second CancelExecution = %v, %v, want CANCELLED", again, err)
	}
	_, err = s.ex.CancelExecution(ctx, &kgwv1.CancelExecutionRequest{ExecutionId: "missing"})
	if code, info, _ := details(t, err); code != codes.NotFound || info.GetReason() != server.ReasonExecutionNotFound {
		t.Fatalf("CancelExecution(unknown) = %v %v, want NOT_FOUND EXECUTION_NOT_FOUND", code, info)
	}
}

// A workflow registered or deleted through the gateway is what the next
// execution runs, at once (the definitions executions use are cached).
func TestExecuteWorkflowSeesNewVersion(t *testing.T) {
	s := startStack(t, stackOptions{})
	wf := func(v string) *kgwv1.Workflow {
		return &kgwv1.Workflow{Name: "versioned", Nodes: []*kgwv1.Node{{Id: "n", Code: `result = {"v": "` + v + `"}`}}}
	}
	run := func() (string, error) {
		resp, err := s.ex.ExecuteWorkflow(t.Context(), &kgwv1.ExecuteWorkflowRequest{Workflow: "versioned"})
		return resp.GetExecution().GetResult()["n"].GetFields()["v"].GetStringValue(), err
	}
	for _, v := range []string{"one", "two"} {
		s.register(t, wf(v))
		if got, err := run(); err != nil || got != v {
			t.Fatalf("after registering %q: ran %q, %v", v, got, err)
		}
	}
	if _, err := s.wf.DeleteWorkflow(t.Context(), &kgwv1.DeleteWorkflowRequest{Name: "versioned"}); err != nil {
		t.Fatalf("DeleteWorkflow: %v", err)
	}
	if _, err := run(); status.Code(err) != codes.NotFound {
		t.Errorf("ExecuteWorkflow after delete = %v, want NotFound", err)
	}
}

// A caller that leaves while ExecuteWorkflow runs (its deadline passes)
// gets DEADLINE_EXCEEDED, and the execution, which runs on the handler's
// goroutine, still completes and is journalled.
func TestExecuteWorkflowCallerGone(t *testing.T) {
	s := startStack(t, stackOptions{})
	s.register(t, &kgwv1.Workflow{Name: "gone", Nodes: []*kgwv1.Node{{Id: "s", Code: "time.sleep(0.3)\nresult = {\"done\": True}"}}})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := s.ex.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: "gone"})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("ExecuteWorkflow past the caller's deadline = %v, want DEADLINE_EXCEEDED", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := s.ex.ListExecutions(t.Context(), &kgwv1.ListExecutionsRequest{Workflow: "gone"})
		if err != nil {
			t.Fatal(err)
		}
		if xs := resp.GetExecutions(); len(xs) == 1 && xs[0].GetStatus() == kgwv1.ExecutionStatus_EXECUTION_STATUS_COMPLETED {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("executions after the caller left = %v, want one COMPLETED", xs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
