// Package server is the gRPC edge of the gateway: it implements the kgw.v1
// services over the domain packages, converts between protobuf and domain
// types, validates requests, and turns domain errors into gRPC statuses
// (errors.go is the only place that builds a status).
//
// A Server also serves grpc.health.v1 and server reflection, recovers from
// handler panics (the RPC gets INTERNAL, the server keeps serving), logs one
// line per RPC with log/slog and records Prometheus metrics.
package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"log/slog"
	"maps"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/stats"

	"github.com/kailash-gateway/kgw/access"
	"github.com/kailash-gateway/kgw/executor"
	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
	"github.com/kailash-gateway/kgw/resources"
	"github.com/kailash-gateway/kgw/secrets"
	"github.com/kailash-gateway/kgw/server/pagetoken"
	"github.com/kailash-gateway/kgw/store"
)

// Default message size limits.
const (
	DefaultMaxRecvMsgSize = 8 << 20
	DefaultMaxSendMsgSize = 64 << 20
)

// Config configures a Server. Store is required; every other field has a
// usable zero value.
type Config struct {
	// Store persists workflows, executions, secrets and named resources.
	Store store.Store
	// Executor runs workflows; nil leaves ExecutionService UNIMPLEMENTED.
	Executor *executor.Executor
	// Secrets stores and describes secrets; nil leaves SecretService
	// UNIMPLEMENTED.
	Secrets *secrets.Manager
	// Broker reports pools and checks resources; nil makes ListPools and
	// CheckResource answer UNIMPLEMENTED (named resources still work).
	Broker *resources.Broker
	// DisableInlineResources refuses inline resource specs in requests
	// (only {"ref": name} is accepted), matching the broker's policy.
	DisableInlineResources bool
	// Logger receives request logs and internal errors; nil discards them.
	Logger *slog.Logger
	// AccessLog logs every RPC (method, code, duration). Without it only
	// failed RPCs (any code but OK) are logged: a line per successful call
	// cost about 5% of the gateway's CPU under load (profile of
	// make bench's no-op scenario at 64 callers).
	AccessLog bool
	// Compile checks node code at registration; nil means CompileNode.
	Compile CompileFunc
	// PageTokenKey signs page tokens (at least 32 bytes). Nil picks a random
	// key, so tokens do not survive a restart.
	PageTokenKey []byte
	// Metrics registers the gRPC request metrics; nil keeps them unregistered.
	Metrics prometheus.Registerer
	// Tracing adds OpenTelemetry server spans (otelgrpc) from the global
	// tracer provider and propagator; off, the server makes no spans.
	Tracing bool
	// Telemetry counts the open event streams (kgw_stream_subscribers);
	// nil counts nothing.
	Telemetry *Telemetry
	// MaxRecvMsgSize and MaxSendMsgSize bound message sizes in bytes;
	// 0 means DefaultMaxRecvMsgSize / DefaultMaxSendMsgSize.
	MaxRecvMsgSize int
	MaxSendMsgSize int
	// MaxConnectionAge closes each client connection (with a GOAWAY) once
	// it is that old, after MaxConnectionAgeGrace for its RPCs to end, so
	// that clients behind an L4 load balancer reconnect and spread over
	// the replicas. 0 means connections never age out.
	MaxConnectionAge      time.Duration
	MaxConnectionAgeGrace time.Duration

	// AuthRequired is --auth required: every RPC but gRPC health and
	// reflection needs a caller that Access authenticates. False is
	// --auth none: every caller is the local admin.
	AuthRequired bool
	// Access authenticates callers and keeps API keys and role bindings.
	// Required with AuthRequired; nil otherwise leaves AccessService (but
	// WhoAmI) UNIMPLEMENTED.
	Access *access.Authenticator
	// TrustForwardedClientCert takes the caller from the
	// x-forwarded-client-cert header of a mesh sidecar (loopback listeners
	// only; cmd/kgw enforces that).
	TrustForwardedClientCert bool
	// TLS, when set, serves gRPC over TLS with this configuration.
	TLS *tls.Config
}

// streamWorkers is how many goroutines gRPC keeps to run the handlers of
// new streams (grpc.NumStreamWorkers); a stream that finds them all busy
// gets a goroutine of its own, as every stream did before. A worker's
// stack has grown to what a handler needs, and ExecuteWorkflow runs the
// execution (the Starlark interpreter) on it (executor.Request.OnCaller),
// where a new goroutine per call grew and copied its stack each time
// (runtime.copystack, 5% of the gateway's CPU at 64 callers). As many as
// the executor's default limit of concurrent executions. Measured with
// tools/loadgen at 64 callers, three runs in turns with a goroutine per
// stream: gateway CPU per call 0.80x for a health check, 0.90x for a
// no-op execution (before OnCaller).
const streamWorkers = executor.DefaultMaxConcurrentExecutions

// Server is the gateway's gRPC server. Its methods are safe for concurrent
// use.
type Server struct {
	grpc   *grpc.Server
	health *health.Server
	log    *slog.Logger
	// accessLog logs successful RPCs too (Config.AccessLog).
	accessLog bool
	metrics   *rpcMetrics
	authz     *authorizer
}

// serviceNames are the kgw.v1 services a Server registers, for health.
var serviceNames = []string{
	kgwv1.WorkflowService_ServiceDesc.ServiceName,
	kgwv1.ExecutionService_ServiceDesc.ServiceName,
	kgwv1.SecretService_ServiceDesc.ServiceName,
	kgwv1.ResourceService_ServiceDesc.ServiceName,
	kgwv1.AccessService_ServiceDesc.ServiceName,
}

// New builds a Server with every kgw.v1 service, health and reflection
// registered. Services whose component is missing from cfg answer
// UNIMPLEMENTED. New starts gRPC's stream workers (streamWorkers): Stop
// ends them, also for a Server that never served.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("server: Config.Store is required")
	}
	if cfg.AuthRequired && cfg.Access == nil {
		return nil, errors.New("server: Config.Access is required with AuthRequired")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	key := cfg.PageTokenKey
	if key == nil {
		key = make([]byte, 32)
		rand.Read(key)
	}
	pages, err := pagetoken.New(key)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	m, err := newRPCMetrics(cfg.Metrics)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	failures, err := newAuthFailures(cfg.Metrics)
	if err != nil {
		return nil, fmt.Errorf("server: register auth metrics: %w", err)
	}
	authz := &authorizer{required: cfg.AuthRequired, auth: cfg.Access, trustXFCC: cfg.TrustForwardedClientCert, log: log, failures: failures,
		rules: maps.Clone(rules)}

	s := &Server{health: health.NewServer(), log: log, metrics: m, accessLog: cfg.AccessLog, authz: authz}
	s.grpc = grpc.NewServer(s.serverOptions(cfg, authz)...)
	registerServices(s.grpc, cfg, pages, log)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	for _, name := range serviceNames {
		s.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	return s, nil
}

// serverOptions are the gRPC server's options for cfg: message size
// limits, the request codec, the interceptor chains (observe, errors,
// authorization, recover, undecodable requests, outermost first),
// keepalive, TLS and tracing.
func (s *Server) serverOptions(cfg Config, authz *authorizer) []grpc.ServerOption {
	recv, send := cfg.MaxRecvMsgSize, cfg.MaxSendMsgSize
	if recv <= 0 {
		recv = DefaultMaxRecvMsgSize
	}
	if send <= 0 {
		send = DefaultMaxSendMsgSize
	}
	codec := newRequestCodec()
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(recv),
		grpc.MaxSendMsgSize(send),
		grpc.ForceServerCodecV2(codec),
		grpc.NumStreamWorkers(streamWorkers),
		grpc.ChainUnaryInterceptor(s.unaryObserve, s.unaryErrors, authz.unary, unaryRecover, codec.unaryUndecodable),
		grpc.ChainStreamInterceptor(s.streamObserve, s.streamErrors, authz.stream, streamRecover, codec.streamUndecodable),
	}
	if cfg.MaxConnectionAge > 0 {
		opts = append(opts, grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionAge: cfg.MaxConnectionAge, MaxConnectionAgeGrace: cfg.MaxConnectionAgeGrace,
		}))
	}
	if cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	if cfg.Tracing {
		// Server spans, with the caller's W3C traceparent and baggage
		// (the global propagator) as their parent.
		opts = append(opts, grpc.StatsHandler(tracingStatsHandler()))
	}
	return opts
}

// tracingStatsHandler makes the gRPC stats handler of a server with
// Tracing: otelgrpc's. A variable so that BenchmarkTracingFloor can tell
// gRPC's own per-call stats work (under a handler that does nothing) from
// otelgrpc's (export_test.go).
var tracingStatsHandler = func() stats.Handler { return otelgrpc.NewServerHandler() }

// registerServices registers the kgw.v1 services on g; a service whose
// component cfg lacks (Executor, Secrets) answers UNIMPLEMENTED.
func registerServices(g *grpc.Server, cfg Config, pages *pagetoken.Codec, log *slog.Logger) {
	compile := cfg.Compile
	if compile == nil {
		compile = CompileNode
	}
	gd := &guard{st: cfg.Store, required: cfg.AuthRequired, log: log}
	workflows := newWorkflowCache(cfg.Store)
	if cfg.Executor != nil {
		// Changes made through other replicas (PostgreSQL NOTIFY).
		cfg.Executor.OnWorkflowChange(workflows.forget)
	}
	kgwv1.RegisterWorkflowServiceServer(g, &workflowService{
		store: cfg.Store, cache: workflows, compile: compile, pages: pages, log: log, guard: gd,
	})
	if cfg.Executor != nil {
		kgwv1.RegisterExecutionServiceServer(g, &executionService{
			store: cfg.Store, workflows: workflows, exec: cfg.Executor, pages: pages, inlineDisabled: cfg.DisableInlineResources, log: log, guard: gd,
			telemetry: cfg.Telemetry,
		})
	} else {
		kgwv1.RegisterExecutionServiceServer(g, kgwv1.UnimplementedExecutionServiceServer{})
	}
	if cfg.Secrets != nil {
		kgwv1.RegisterSecretServiceServer(g, &secretService{secrets: cfg.Secrets, pages: pages, log: log, guard: gd})
	} else {
		kgwv1.RegisterSecretServiceServer(g, kgwv1.UnimplementedSecretServiceServer{})
	}
	rs := &resourceService{store: cfg.Store, pages: pages, inlineDisabled: cfg.DisableInlineResources, log: log, guard: gd}
	if cfg.Broker != nil {
		rs.broker = cfg.Broker
	}
	kgwv1.RegisterResourceServiceServer(g, rs)
	kgwv1.RegisterAccessServiceServer(g, &accessService{auth: cfg.Access, pages: pages, log: log})
}

// RegisterService registers an additional service (before Serve). It makes
// Server a grpc.ServiceRegistrar; the interceptors apply to it too, and its
// RPCs need the admin role.
func (s *Server) RegisterService(desc *grpc.ServiceDesc, impl any) {
	for _, m := range desc.Methods {
		s.authz.rules["/"+desc.ServiceName+"/"+m.MethodName] = roles()
	}
	for _, st := range desc.Streams {
		s.authz.rules["/"+desc.ServiceName+"/"+st.StreamName] = roles()
	}
	s.grpc.RegisterService(desc, impl)
}

// Serve accepts connections on lis until Stop; it returns nil after a stop.
func (s *Server) Serve(lis net.Listener) error {
	if err := s.grpc.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serve gRPC: %w", err)
	}
	return nil
}

// Drain reports NOT_SERVING for every service through grpc.health.v1, so
// load balancers stop sending new work. RPCs are still served.
func (s *Server) Drain() {
	s.health.Shutdown()
}

// Stop drains (see Drain), then stops gracefully: it waits for running RPCs
// to finish, or until ctx is done, when it closes every connection. It
// reports whether the stop was graceful. Stop blocks until the server has
// stopped.
func (s *Server) Stop(ctx context.Context) (graceful bool) {
	s.Drain()
	stop := context.AfterFunc(ctx, s.grpc.Stop)
	s.grpc.GracefulStop()
	return stop()
}
