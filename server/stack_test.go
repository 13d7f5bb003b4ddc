package server_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kailash-gateway/kgw/access"
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

	auth      *access.Authenticator
	st        *sqlite.Store
	storePath string
	clientTLS *tls.Config
}

type stackOptions struct {
	subscriberBuffer int
	disableInline    bool
	// authRequired serves --auth required; the stack's own conn then
	// carries adminKey, a key with the admin role.
	authRequired bool
	logger       *slog.Logger
	accessLog    bool
	metrics      prometheus.Registerer
	maxPerCaller int
	jwt          *access.JWTVerifier
	// tls serves over TLS; clientTLS is what the stack's connections use.
	tls       *tls.Config
	clientTLS *tls.Config
	trustXFCC bool
	// registry, when set, receives the server's metrics (server.Telemetry
	// wired into the broker, executor and server as `kgw serve` does).
	registry     *prometheus.Registry
	maxWorkflows int
	tracing      bool // server.Config.Tracing
	// maxConcurrent, when set, is the executor's MaxConcurrentExecutions
	// (StartExecution past it queues); the stack then calls Recover, which
	// starts the loop that runs queued executions.
	maxConcurrent int
}

// adminKeyOf returns a key with roles, made directly in the stack's store.
func (s *stack) key(t testing.TB, roles ...string) string {
	t.Helper()
	_, key, err := s.auth.Keys.Create(t.Context(), access.CreateRequest{Name: "test", Roles: roles, Creator: "test"})
	if err != nil {
		t.Fatalf("create key: %v", err)
	}
	return key
}

// bearer is per-RPC credentials sending a bearer token over plaintext
// (loopback tests only), built once as the Go client's are (gRPC copies
// the map and never changes it).
type bearer map[string]string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return b, nil
}
func (bearer) RequireTransportSecurity() bool { return false }

// dialAs opens a connection that sends token as a bearer token.
func (s *stack) dialAs(t testing.TB, token string) *grpc.ClientConn {
	t.Helper()
	return s.dial(t, grpc.WithPerRPCCredentials(bearer{"authorization": "Bearer " + token}))
}

func startStack(t testing.TB, opts stackOptions) *stack {
	t.Helper()
	st, storePath, mgr, authn := openStackStore(t, opts)
	tel, reg := stackTelemetry(t, opts)
	var execObs executor.Observer
	var brokerObs resources.Observer
	if tel != nil {
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
		MaxRunsPerCaller: opts.maxPerCaller,
		Logger:           opts.logger,
		Observer:         execObs,

		MaxConcurrentExecutions: opts.maxConcurrent,
		BacklogPollInterval:     20 * time.Millisecond,
	})
	if opts.maxConcurrent > 0 {
		if _, err := exec.Recover(t.Context()); err != nil {
			t.Fatalf("Recover: %v", err)
		}
	}
	srv, err := server.New(server.Config{
		Store: st, Executor: exec, Secrets: mgr, Broker: broker, DisableInlineResources: opts.disableInline,
		AuthRequired: opts.authRequired, Access: authn, Logger: opts.logger, Metrics: reg, Telemetry: tel, Tracing: opts.tracing, AccessLog: opts.accessLog,
		TLS: opts.tls, TrustForwardedClientCert: opts.trustXFCC,
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
	s := &stack{srv: srv, exec: exec, broker: broker, addr: lis.Addr().String(), auth: authn, st: st, storePath: storePath, clientTLS: opts.clientTLS}
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
	if opts.authRequired {
		s.conn = s.dialAs(t, s.key(t, access.RoleAdmin))
	} else {
		s.conn = s.dial(t)
	}
	s.wf = kgwv1.NewWorkflowServiceClient(s.conn)
	s.ex = kgwv1.NewExecutionServiceClient(s.conn)
	s.sec = kgwv1.NewSecretServiceClient(s.conn)
	s.res = kgwv1.NewResourceServiceClient(s.conn)
	return s
}

// openStackStore opens a SQLite store in a temporary directory, a secrets
// manager over it, and the authenticator of API keys, role bindings and
// opts.jwt.
func openStackStore(t testing.TB, opts stackOptions) (*sqlite.Store, string, *secrets.Manager, *access.Authenticator) {
	t.Helper()
	ctx := t.Context()
	storePath := t.TempDir() + "/kgw.db"
	st, err := sqlite.Open(ctx, storePath)
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	mgr, err := secrets.NewManager(ctx, st, secrets.NewMasterKey(), secrets.Options{})
	if err != nil {
		st.Close()
		t.Fatalf("secrets.NewManager: %v", err)
	}
	mac, err := mgr.SystemKey(ctx, "api-key-hmac")
	if err != nil {
		t.Fatal(err)
	}
	authn := &access.Authenticator{Keys: access.NewKeys(st, mac, nil), Bindings: access.NewBindings(st, nil), JWT: opts.jwt}
	return st, storePath, mgr, authn
}

// stackTelemetry is the gateway's telemetry when opts.registry is set (the
// registry for the server's metrics too); else none, and opts.metrics.
func stackTelemetry(t testing.TB, opts stackOptions) (*server.Telemetry, prometheus.Registerer) {
	t.Helper()
	reg := opts.metrics
	if opts.registry == nil {
		return nil, reg
	}
	tel, err := server.NewTelemetry(server.TelemetryConfig{Registry: opts.registry, MaxWorkflows: opts.maxWorkflows})
	if err != nil {
		t.Fatal(err)
	}
	return tel, opts.registry
}

// dial opens another client connection to the stack, closed at cleanup
// (before the server stops).
func (s *stack) dial(t testing.TB, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	creds := insecure.NewCredentials()
	if s.clientTLS != nil {
		creds = credentials.NewTLS(s.clientTLS)
	}
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, opts...)
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
