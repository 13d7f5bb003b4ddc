package server_test

import (
	"context"
	"github.com/prometheus/client_golang/prometheus"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kailash-gateway/kgw/executor"
	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
	"github.com/kailash-gateway/kgw/resources"
	"github.com/kailash-gateway/kgw/secrets"
	"github.com/kailash-gateway/kgw/server"
	"github.com/kailash-gateway/kgw/store/sqlite"
)

// stack is a whole gateway: SQLite store, secrets manager, resource
// broker, executor and gRPC server on 127.0.0.1, wired as `kgw serve` does.
type stack struct {
	srv    *server.Server
	exec   *executor.Executor
	broker *resources.Broker
	addr   string
	conn   *grpc.ClientConn

	wf  kgwv1.WorkflowServiceClient
	ex  kgwv1.ExecutionServiceClient
	sec kgwv1.SecretServiceClient
	res kgwv1.ResourceServiceClient
}

type stackOptions struct {
	subscriberBuffer int
	disableInline    bool
	logger           *slog.Logger
	accessLog        bool
	// registry, when set, receives the server's metrics (server.Telemetry
	// wired into the broker, executor and server as `kgw serve` does).
	registry     *prometheus.Registry
	maxWorkflows int
	tracing      bool // server.Config.Tracing
}

func startStack(t testing.TB, opts stackOptions) *stack {
	t.Helper()
	ctx := t.Context()
	st, err := sqlite.Open(ctx, t.TempDir()+"/kgw.db")
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	mgr, err := secrets.NewManager(ctx, st, secrets.NewMasterKey(), secrets.Options{})
	if err != nil {
		st.Close()
		t.Fatalf("secrets.NewManager: %v", err)
	}
	var tel *server.Telemetry
	var execObs executor.Observer
	var brokerObs resources.Observer
	var reg prometheus.Registerer
	if opts.registry != nil {
		reg = opts.registry
		if tel, err = server.NewTelemetry(server.TelemetryConfig{Registry: opts.registry, MaxWorkflows: opts.maxWorkflows}); err != nil {
			t.Fatal(err)
		}
		execObs, brokerObs = tel, tel
	}
	broker := resources.NewBroker(resources.Config{Resources: st, Secrets: mgr, DisableInline: opts.disableInline, Observer: brokerObs})
	if tel != nil {
		tel.WatchPools(broker)
	}
	exec := executor.New(executor.Config{
		Store:            st,
		Resources:        server.ExecutorResources(broker),
		NewRedactor:      server.NewRedactor,
		SubscriberBuffer: opts.subscriberBuffer,
		Logger:           opts.logger,
		Observer:         execObs,
	})
	srv, err := server.New(server.Config{
		Store: st, Executor: exec, Secrets: mgr, Broker: broker, DisableInlineResources: opts.disableInline,
		Logger: opts.logger, AccessLog: opts.accessLog, Metrics: reg, Telemetry: tel, Tracing: opts.tracing,
	})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	s := &stack{srv: srv, exec: exec, broker: broker, addr: lis.Addr().String()}
	t.Cleanup(func() {
		// The shutdown order of `kgw serve`.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		srv.Stop(ctx)
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if err := exec.Close(ctx); err != nil {
			t.Errorf("executor.Close: %v", err)
		}
		broker.Close()
		if err := st.Close(); err != nil {
			t.Errorf("store.Close: %v", err)
		}
	})
	s.conn = s.dial(t)
	s.wf = kgwv1.NewWorkflowServiceClient(s.conn)
	s.ex = kgwv1.NewExecutionServiceClient(s.conn)
	s.sec = kgwv1.NewSecretServiceClient(s.conn)
	s.res = kgwv1.NewResourceServiceClient(s.conn)
	return s
}

// dial opens another client connection to the stack, closed at cleanup
// (before the server stops).
func (s *stack) dial(t testing.TB, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	conn, err := grpc.NewClient(s.addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// register registers w and fails the test on error.
func (s *stack) register(t *testing.T, w *kgwv1.Workflow) *kgwv1.Workflow {
	t.Helper()
	resp, err := s.wf.RegisterWorkflow(t.Context(), &kgwv1.RegisterWorkflowRequest{Workflow: w})
	if err != nil {
		t.Fatalf("RegisterWorkflow %s: %v", w.GetName(), err)
	}
	return resp.GetWorkflow()
}
