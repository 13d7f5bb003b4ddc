package server_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
	"github.com/kailash-gateway/kgw/internal/testenv"
	"github.com/kailash-gateway/kgw/server"
	"github.com/kailash-gateway/kgw/store/sqlite"
)

func TestMain(m *testing.M) {
	testenv.Main(m)
}

type testServer struct {
	srv  *server.Server
	conn *grpc.ClientConn
	wf   kgwv1.WorkflowServiceClient
}

// start runs a Server on a real 127.0.0.1 listener with a SQLite store in
// t.TempDir(); extra lets a test register more services before serving.
func start(t *testing.T, cfg server.Config, extra func(*server.Server)) *testServer {
	t.Helper()
	st, err := sqlite.Open(t.Context(), t.TempDir()+"/kgw.db")
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	cfg.Store = st
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	if extra != nil {
		extra(srv)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Stop(ctx)
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &testServer{srv: srv, conn: conn, wf: kgwv1.NewWorkflowServiceClient(conn)}
}

func hello(name string) *kgwv1.Workflow {
	return &kgwv1.Workflow{
		Name:        name,
		Description: "says hello",
		Labels:      map[string]string{"team": "core"},
		Nodes: []*kgwv1.Node{
			{Id: "greet", Code: `result = {"message": "hello " + parameters.get("name", "world")}`, RequiredResources: []string{"cache"}},
			{Id: "shout", Code: `result = {"loud": message.upper()}`},
		},
		Connections: []*kgwv1.Connection{{FromNode: "greet", FromOutput: "message", ToNode: "shout"}},
	}
}

// details returns the code, ErrorInfo and BadRequest of an RPC error.
func details(t *testing.T, err error) (codes.Code, *errdetails.ErrorInfo, *errdetails.BadRequest) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("error %v is not a gRPC status", err)
	}
	var info *errdetails.ErrorInfo
	var br *errdetails.BadRequest
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			info = d
		case *errdetails.BadRequest:
			br = d
		}
	}
	return st.Code(), info, br
}

func TestWorkflowRoundTrip(t *testing.T) {
	ts := start(t, server.Config{}, nil)
	ctx := t.Context()

	// Register two versions of one workflow.
	for v := int32(1); v <= 2; v++ {
		w := hello("hello")
		w.Description = fmt.Sprintf("v%d", v)
		resp, err := ts.wf.RegisterWorkflow(ctx, &kgwv1.RegisterWorkflowRequest{Workflow: w})
		if err != nil {
			t.Fatalf("RegisterWorkflow v%d: %v", v, err)
		}
		if got := resp.GetWorkflow().GetVersion(); got != v {
			t.Fatalf("RegisterWorkflow version = %d, want %d", got, v)
		}
		if resp.GetWorkflow().GetCreateTime() == nil {
			t.Fatal("RegisterWorkflow: create_time unset")
		}
	}

	got, err := ts.wf.GetWorkflow(ctx, &kgwv1.GetWorkflowRequest{Name: "hello"})
	if err != nil {
		t.Fatalf("GetWorkflow latest: %v", err)
	}
	if got.GetWorkflow().GetVersion() != 2 || got.GetWorkflow().GetDescription() != "v2" {
		t.Fatalf("GetWorkflow latest = version %d %q, want 2 \"v2\"", got.GetWorkflow().GetVersion(), got.GetWorkflow().GetDescription())
	}
	want := hello("hello")
	gw := got.GetWorkflow()
	if len(gw.GetNodes()) != 2 || gw.GetNodes()[0].GetCode() != want.Nodes[0].Code ||
		gw.GetNodes()[0].GetRequiredResources()[0] != "cache" || gw.GetConnections()[0].GetToNode() != "shout" ||
		gw.GetLabels()["team"] != "core" {
		t.Fatalf("GetWorkflow = %v, want the registered definition", gw)
	}
	v1, err := ts.wf.GetWorkflow(ctx, &kgwv1.GetWorkflowRequest{Name: "hello", Version: 1})
	if err != nil || v1.GetWorkflow().GetDescription() != "v1" {
		t.Fatalf("GetWorkflow v1 = %v, %v, want description v1", v1, err)
	}

	_, err = ts.wf.GetWorkflow(ctx, &kgwv1.GetWorkflowRequest{Name: "hello", Version: 7})
	if code, info, _ := details(t, err); code != codes.NotFound || info.GetReason() != server.ReasonWorkflowNotFound || info.GetDomain() != "kgw" {
		t.Fatalf("GetWorkflow v7: %v %v, want NOT_FOUND WORKFLOW_NOT_FOUND", code, info)
	}

	if _, err := ts.wf.DeleteWorkflow(ctx, &kgwv1.DeleteWorkflowRequest{Name: "hello"}); err != nil {
		t.Fatalf("DeleteWorkflow: %v", err)
	}
	_, err = ts.wf.GetWorkflow(ctx, &kgwv1.GetWorkflowRequest{Name: "hello"})
	if code, info, _ := details(t, err); code != codes.NotFound || info.GetReason() != server.ReasonWorkflowNotFound {
		t.Fatalf("GetWorkflow after delete: %v %v, want NOT_FOUND WORKFLOW_NOT_FOUND", code, info)
	}
	_, err = ts.wf.DeleteWorkflow(ctx, &kgwv1.DeleteWorkflowRequest{Name: "hello"})
	if code, _, _ := details(t, err); code != codes.NotFound {
		t.Fatalf("DeleteWorkflow twice: %v, want NOT_FOUND", code)
	}
}

func TestListWorkflowsPaged(t *testing.T) {
	ts := start(t, server.Config{}, nil)
	ctx := t.Context()
	const n = 7
	var want []string
	for i := range n {
		name := fmt.Sprintf("wf-%02d", i)
		want = append(want, name)
		if _, err := ts.wf.RegisterWorkflow(ctx, &kgwv1.RegisterWorkflowRequest{Workflow: hello(name)}); err != nil {
			t.Fatalf("RegisterWorkflow %s: %v", name, err)
		}
	}
	// A second version must not add an entry.
	if _, err := ts.wf.RegisterWorkflow(ctx, &kgwv1.RegisterWorkflowRequest{Workflow: hello("wf-03")}); err != nil {
		t.Fatal(err)
	}

	var got []string
	token, pages := "", 0
	for {
		resp, err := ts.wf.ListWorkflows(ctx, &kgwv1.ListWorkflowsRequest{PageSize: 3, PageToken: token})
		if err != nil {
			t.Fatalf("ListWorkflows page %d: %v", pages, err)
		}
		pages++
		if len(resp.GetWorkflows()) > 3 {
			t.Fatalf("page %d has %d items, want at most 3", pages, len(resp.GetWorkflows()))
		}
		for _, w := range resp.GetWorkflows() {
			got = append(got, w.GetName())
			if w.GetName() == "wf-03" && w.GetLatestVersion() != 2 {
				t.Errorf("wf-03 latest_version = %d, want 2", w.GetLatestVersion())
			}
			if w.GetNodeCount() != 2 || len(w.GetRequiredResources()) != 1 || w.GetLabels()["team"] != "core" {
				t.Errorf("summary %v lacks node_count/required_resources/labels", w)
			}
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
		if pages > n {
			t.Fatal("ListWorkflows never ends")
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("ListWorkflows names = %v, want %v", got, want)
	}
	if pages != 3 {
		t.Fatalf("ListWorkflows took %d pages of 3 for %d items, want 3", pages, n)
	}

	// Default page size returns everything at once.
	all, err := ts.wf.ListWorkflows(ctx, &kgwv1.ListWorkflowsRequest{})
	if err != nil || len(all.GetWorkflows()) != n || all.GetNextPageToken() != "" {
		t.Fatalf("ListWorkflows default = %d items, token %q, %v; want %d, \"\"", len(all.GetWorkflows()), all.GetNextPageToken(), err, n)
	}
}

func TestListWorkflowsBadPaging(t *testing.T) {
	ts := start(t, server.Config{}, nil)
	ctx := t.Context()
	for _, name := range []string{"a1", "a2"} {
		if _, err := ts.wf.RegisterWorkflow(ctx, &kgwv1.RegisterWorkflowRequest{Workflow: hello(name)}); err != nil {
			t.Fatal(err)
		}
	}
	first, err := ts.wf.ListWorkflows(ctx, &kgwv1.ListWorkflowsRequest{PageSize: 1})
	if err != nil || first.GetNextPageToken() == "" {
		t.Fatalf("ListWorkflows = %v, %v, want a next page", first, err)
	}
	tok := first.GetNextPageToken()
	tampered := tok[:len(tok)-2] + map[bool]string{true: "AA", false: "BB"}[!strings.HasSuffix(tok, "AA")]

	// A token signed by another gateway (another key) is not accepted.
	other := start(t, server.Config{}, nil)
	if _, err := other.wf.RegisterWorkflow(ctx, &kgwv1.RegisterWorkflowRequest{Workflow: hello("a1")}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		client kgwv1.WorkflowServiceClient
		req    *kgwv1.ListWorkflowsRequest
		field  string
		reason string
	}{
		{"negative page size", ts.wf, &kgwv1.ListWorkflowsRequest{PageSize: -1}, "page_size", server.ReasonInvalidRequest},
		{"tampered token", ts.wf, &kgwv1.ListWorkflowsRequest{PageToken: tampered}, "page_token", server.ReasonInvalidPageToken},
		{"garbage token", ts.wf, &kgwv1.ListWorkflowsRequest{PageToken: "not a token"}, "page_token", server.ReasonInvalidPageToken},
		{"foreign token", other.wf, &kgwv1.ListWorkflowsRequest{PageToken: tok}, "page_token", server.ReasonInvalidPageToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.client.ListWorkflows(ctx, tt.req)
			code, info, br := details(t, err)
			if code != codes.InvalidArgument || info.GetReason() != tt.reason || len(br.GetFieldViolations()) != 1 ||
				br.GetFieldViolations()[0].GetField() != tt.field {
				t.Fatalf("ListWorkflows = %v %v %v, want INVALID_ARGUMENT %s on %s", code, info, br, tt.reason, tt.field)
			}
		})
	}

	// Page sizes above 1000 are clamped, not rejected.
	if _, err := ts.wf.ListWorkflows(ctx, &kgwv1.ListWorkflowsRequest{PageSize: 5000}); err != nil {
		t.Fatalf("ListWorkflows(page_size 5000) = %v, want clamped", err)
	}
}

func TestUnimplemented(t *testing.T) {
	ts := start(t, server.Config{}, nil)
	_, err := kgwv1.NewSecretServiceClient(ts.conn).GetSecret(t.Context(), &kgwv1.GetSecretRequest{Name: "x"})
	if code, info, _ := details(t, err); code != codes.Unimplemented || info.GetReason() != server.ReasonUnimplemented {
		t.Fatalf("GetSecret = %v %v, want UNIMPLEMENTED with reason", code, info)
	}
}

func TestHealth(t *testing.T) {
	ts := start(t, server.Config{}, nil)
	hc := healthpb.NewHealthClient(ts.conn)
	for _, svc := range []string{"", "kgw.v1.WorkflowService", "kgw.v1.ExecutionService", "kgw.v1.SecretService", "kgw.v1.ResourceService"} {
		resp, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("Check(%q) = %v, %v, want SERVING", svc, resp, err)
		}
	}
	ts.srv.Drain()
	resp, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Check after Drain = %v, %v, want NOT_SERVING", resp, err)
	}
}

// panicService is a test service whose handlers panic, to prove recovery.
var panicServiceDesc = grpc.ServiceDesc{
	ServiceName: "kgwtest.Panic",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Unary",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := new(emptypb.Empty)
			if err := dec(in); err != nil {
				return nil, err
			}
			h := func(context.Context, any) (any, error) { panic("boom: unary") }
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: "/kgwtest.Panic/Unary"}
			return interceptor(ctx, in, info, h)
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Stream",
		ServerStreams: true,
		Handler:       func(any, grpc.ServerStream) error { panic("boom: stream") },
	}},
}

func TestPanicRecovery(t *testing.T) {
	ts := start(t, server.Config{}, func(s *server.Server) {
		s.RegisterService(&panicServiceDesc, struct{}{})
	})
	ctx := t.Context()

	err := ts.conn.Invoke(ctx, "/kgwtest.Panic/Unary", &emptypb.Empty{}, &emptypb.Empty{})
	if st := status.Convert(err); st.Code() != codes.Internal || strings.Contains(st.Message(), "boom") {
		t.Fatalf("unary panic = %v, want INTERNAL without the panic value", err)
	}
	// The same server keeps serving.
	if _, err := ts.wf.RegisterWorkflow(ctx, &kgwv1.RegisterWorkflowRequest{Workflow: hello("after-panic")}); err != nil {
		t.Fatalf("RegisterWorkflow after a unary panic: %v", err)
	}

	stream, err := ts.conn.NewStream(ctx, &panicServiceDesc.Streams[0], "/kgwtest.Panic/Stream")
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.SendMsg(&emptypb.Empty{}); err != nil {
		t.Fatal(err)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	err = stream.RecvMsg(&emptypb.Empty{})
	if st := status.Convert(err); st.Code() != codes.Internal || strings.Contains(st.Message(), "boom") {
		t.Fatalf("stream panic = %v, want INTERNAL without the panic value", err)
	}
	if _, err := ts.wf.GetWorkflow(ctx, &kgwv1.GetWorkflowRequest{Name: "after-panic"}); err != nil {
		t.Fatalf("GetWorkflow after a stream panic: %v", err)
	}

	// A panic inside a kgw handler (here: the compile hook) is recovered too.
	boom := start(t, server.Config{Compile: func(string, string) []server.CompileProblem { panic("compiler bug") }}, nil)
	_, err = boom.wf.RegisterWorkflow(ctx, &kgwv1.RegisterWorkflowRequest{Workflow: hello("x")})
	if status.Code(err) != codes.Internal {
		t.Fatalf("RegisterWorkflow with a panicking compiler = %v, want INTERNAL", err)
	}
	if _, err := boom.wf.ListWorkflows(ctx, &kgwv1.ListWorkflowsRequest{}); err != nil {
		t.Fatalf("ListWorkflows after a handler panic: %v", err)
	}
}

func TestMessageSizeLimit(t *testing.T) {
	ts := start(t, server.Config{MaxRecvMsgSize: 64 << 10}, nil)
	w := hello("big")
	w.Description = strings.Repeat("x", 100<<10)
	_, err := ts.wf.RegisterWorkflow(t.Context(), &kgwv1.RegisterWorkflowRequest{Workflow: w})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("RegisterWorkflow of 100 KiB with a 64 KiB limit = %v, want RESOURCE_EXHAUSTED", err)
	}
}
