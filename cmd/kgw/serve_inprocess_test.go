package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
	"github.com/kailash-gateway/kgw/internal/testenv"
	"github.com/kailash-gateway/kgw/secrets"
)

// readyHandler is a slog.Handler that reports the gRPC address of the
// "kgw ready" line and whether "kgw stopped" was logged.
type readyHandler struct {
	slog.Handler
	ready chan string
	mu    *sync.Mutex
	msgs  *[]string
	admin *string // admin_addr of the "kgw ready" line
}

func newReadyHandler() *readyHandler {
	return &readyHandler{
		Handler: slog.NewTextHandler(io.Discard, nil),
		ready:   make(chan string, 1),
		mu:      new(sync.Mutex),
		msgs:    new([]string),
		admin:   new(string),
	}
}

func (h *readyHandler) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	*h.msgs = append(*h.msgs, r.Message)
	h.mu.Unlock()
	if r.Message == "kgw ready" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "admin_addr" {
				h.mu.Lock()
				*h.admin = a.Value.String()
				h.mu.Unlock()
			}
			return true
		})
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "grpc_addr" {
				h.ready <- a.Value.String()
			}
			return true
		})
	}
	return nil
}

func (h *readyHandler) logged(msg string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range *h.msgs {
		if m == msg {
			return true
		}
	}
	return false
}

// runServe starts serve in-process with cfg and returns a client
// connection and a stop function that shuts it down and returns serve's
// error.
func runInProcess(t *testing.T, cfg *serveConfig) (*grpc.ClientConn, func() error, *readyHandler) {
	t.Helper()
	h := newReadyHandler()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, slog.New(h)) }()
	var addr string
	select {
	case addr = <-h.ready:
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() error {
		stopped = true
		conn.Close()
		cancel()
		return <-done
	}
	t.Cleanup(func() {
		if !stopped {
			stop()
		}
	})
	return conn, stop, h
}

// TestServePostgresStore runs the whole gateway on a PostgreSQL store:
// a secret, a database resource and a workflow through gRPC; then a
// restart with the same master key, where page tokens stay valid.
func TestServePostgresStore(t *testing.T) {
	pg := testenv.Postgres(t)
	storeDSN := pg.NewDatabase(t)
	dataDir := t.TempDir()
	key := secrets.NewMasterKey()
	cfg, err := parseServeConfig([]string{"--grpc-addr", "127.0.0.1:0", "--admin-addr=", "--data-dir", dataDir, "--store", storeDSN},
		envOf(map[string]string{"KGW_MASTER_KEY": key.Base64()}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ShutdownTimeout = 20 * time.Second

	conn, stop, h := runInProcess(t, cfg)
	ctx := t.Context()
	wf := kgwv1.NewWorkflowServiceClient(conn)
	for _, name := range []string{"hello_db", "other"} {
		_, err := wf.RegisterWorkflow(ctx, &kgwv1.RegisterWorkflowRequest{Workflow: &kgwv1.Workflow{
			Name: name,
			Nodes: []*kgwv1.Node{{Id: "query", RequiredResources: []string{"db"},
				Code: `result = {"message": get_resource("db").fetchval("SELECT 'Hello from kgw'")}`}},
		}})
		if err != nil {
			t.Fatalf("RegisterWorkflow: %v", err)
		}
	}
	// The test server trusts local connections; the secret still travels
	// through the broker as it would with password authentication.
	value, _ := structpb.NewStruct(map[string]any{"user": "postgres", "password": "not-checked-here"})
	if _, err := kgwv1.NewSecretServiceClient(conn).StoreSecret(ctx, &kgwv1.StoreSecretRequest{Name: "pg", Value: value}); err != nil {
		t.Fatalf("StoreSecret: %v", err)
	}
	config, _ := structpb.NewStruct(map[string]any{"host": "127.0.0.1", "port": pg.Port, "database": "postgres"})
	resp, err := kgwv1.NewExecutionServiceClient(conn).ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{
		Workflow:  "hello_db",
		Resources: map[string]*kgwv1.ResourceSpec{"db": {Type: "database", Config: config, CredentialsRef: "pg"}},
	})
	if err != nil {
		t.Fatalf("ExecuteWorkflow: %v", err)
	}
	if got := resp.GetExecution().GetResult()["query"].GetFields()["message"].GetStringValue(); got != "Hello from kgw" {
		t.Fatalf("result = %v (error %v), want message 'Hello from kgw'", resp.GetExecution().GetResult(), resp.GetExecution().GetError())
	}
	page, err := wf.ListWorkflows(ctx, &kgwv1.ListWorkflowsRequest{PageSize: 1})
	if err != nil || page.GetNextPageToken() == "" {
		t.Fatalf("ListWorkflows = %v, %v, want a next page", page, err)
	}
	if err := stop(); err != nil {
		t.Fatalf("serve after stop: %v", err)
	}
	if !h.logged("kgw stopped") {
		t.Error(`no "kgw stopped" log line`)
	}

	// Restart: the page token signed before is still accepted, and the
	// execution is still there.
	conn, _, _ = runInProcess(t, cfg)
	next, err := kgwv1.NewWorkflowServiceClient(conn).ListWorkflows(ctx, &kgwv1.ListWorkflowsRequest{PageSize: 1, PageToken: page.GetNextPageToken()})
	if err != nil || len(next.GetWorkflows()) != 1 || next.GetWorkflows()[0].GetName() != "other" {
		t.Fatalf("ListWorkflows after restart with the earlier token = %v, %v, want the second page", next, err)
	}
	got, err := kgwv1.NewExecutionServiceClient(conn).GetExecution(ctx, &kgwv1.GetExecutionRequest{ExecutionId: resp.GetExecution().GetId()})
	if err != nil || got.GetExecution().GetStatus() != kgwv1.ExecutionStatus_EXECUTION_STATUS_COMPLETED {
		t.Fatalf("GetExecution after restart = %v, %v, want COMPLETED", got, err)
	}
}

// TestServeGuardsOwnAddresses: node code cannot reach the gateway's own
// gRPC and admin listeners through a resource, in any loopback spelling,
// and CheckResource says so; a resource elsewhere on loopback still works.
func TestServeGuardsOwnAddresses(t *testing.T) {
	cfg, err := parseServeConfig([]string{"--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--data-dir", t.TempDir()},
		envOf(map[string]string{"KGW_MASTER_KEY": secrets.NewMasterKey().Base64()}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	conn, _, h := runInProcess(t, cfg)
	h.mu.Lock()
	adminAddr := *h.admin
	h.mu.Unlock()
	grpcAddr := conn.Target()
	_, adminPort, _ := net.SplitHostPort(adminAddr)
	_, grpcPort, _ := net.SplitHostPort(grpcAddr)
	if adminPort == "" || grpcPort == "" {
		t.Fatalf("addresses: admin %q, grpc %q", adminAddr, grpcAddr)
	}
	ctx := t.Context()
	wf := kgwv1.NewWorkflowServiceClient(conn)
	if _, err := wf.RegisterWorkflow(ctx, &kgwv1.RegisterWorkflowRequest{Workflow: &kgwv1.Workflow{
		Name: "self", Nodes: []*kgwv1.Node{{Id: "n", RequiredResources: []string{"r"},
			Code: `result = {"status": get_resource("r").get("/healthz").status}`}},
	}}); err != nil {
		t.Fatal(err)
	}
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer other.Close()
	exec := kgwv1.NewExecutionServiceClient(conn)
	resSvc := kgwv1.NewResourceServiceClient(conn)
	for _, base := range []string{
		"http://" + adminAddr, "http://localhost:" + adminPort, "http://[::ffff:127.0.0.1]:" + adminPort,
		"http://0.0.0.0:" + adminPort, "http://" + grpcAddr, "http://localhost:" + grpcPort,
	} {
		config, _ := structpb.NewStruct(map[string]any{"base_url": base, "timeout": 5})
		spec := &kgwv1.ResourceSpec{Type: "http_client", Config: config}
		resp, err := exec.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: "self", Resources: map[string]*kgwv1.ResourceSpec{"r": spec}})
		if err != nil {
			t.Fatalf("%s: ExecuteWorkflow: %v", base, err)
		}
		if msg := resp.GetExecution().GetError().GetMessage(); !strings.Contains(msg, "gateway's own listener") {
			t.Errorf("%s: execution %v error %q, want the guard's refusal", base, resp.GetExecution().GetStatus(), msg)
		}
		chk, err := resSvc.CheckResource(ctx, &kgwv1.CheckResourceRequest{Target: &kgwv1.CheckResourceRequest_Spec{Spec: spec}})
		if err != nil || chk.GetHealthy() || !strings.Contains(chk.GetMessage(), "gateway's own listener") {
			t.Errorf("%s: CheckResource = %v, %v, want unhealthy (own listener)", base, chk, err)
		}
	}
	config, _ := structpb.NewStruct(map[string]any{"base_url": other.URL})
	resp, err := exec.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: "self",
		Resources: map[string]*kgwv1.ResourceSpec{"r": {Type: "http_client", Config: config}}})
	if err != nil || resp.GetExecution().GetStatus() != kgwv1.ExecutionStatus_EXECUTION_STATUS_COMPLETED {
		t.Errorf("other loopback server: %v, %v, want COMPLETED", resp.GetExecution(), err)
	}
}
