package kgw

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
)

// Aliases for the generated messages the client passes through unchanged, so
// that most programs need not import the generated package.
type (
	// Workflow is a workflow definition (kgw.v1.Workflow).
	Workflow = kgwv1.Workflow
	// Node is one code node of a workflow (kgw.v1.Node).
	Node = kgwv1.Node
	// Connection is one edge of a workflow (kgw.v1.Connection).
	Connection = kgwv1.Connection
	// RetryPolicy is a node's retry policy (kgw.v1.RetryPolicy).
	RetryPolicy = kgwv1.RetryPolicy
	// WorkflowSummary is one entry of ListWorkflows (kgw.v1.WorkflowSummary).
	WorkflowSummary = kgwv1.WorkflowSummary
	// ResourceSpec describes one resource of a request (kgw.v1.ResourceSpec).
	ResourceSpec = kgwv1.ResourceSpec
	// NamedResource is a server-side resource stored under a name by an
	// operator (kgw.v1.Resource).
	NamedResource = kgwv1.Resource
	// Pool is the live state of one connection pool (kgw.v1.Pool).
	Pool = kgwv1.Pool
	// Secret is the metadata of a secret; it never carries the value
	// (kgw.v1.Secret).
	Secret = kgwv1.Secret
)

// A Client talks to one Kailash Gateway. It is safe for concurrent use by
// multiple goroutines; create one per gateway and share it. Close releases
// its connection.
type Client struct {
	conn      *grpc.ClientConn
	workflows kgwv1.WorkflowServiceClient
	execs     kgwv1.ExecutionServiceClient
	secrets   kgwv1.SecretServiceClient
	resources kgwv1.ResourceServiceClient
	access    kgwv1.AccessServiceClient
}

// An Option configures Dial.
type Option func(*dialConfig)

type dialConfig struct {
	token    string
	tls      *tls.Config
	insecure bool
	block    bool
	extra    []grpc.DialOption
	err      error // from an Option that could not be applied
}

// WithToken sends token as a bearer token ("authorization: Bearer <token>")
// with every call. The token is sent over plaintext connections too (for a
// loopback gateway or a mesh sidecar), so use WithTLS for remote gateways.
func WithToken(token string) Option {
	return func(c *dialConfig) { c.token = token }
}

// WithTLS connects with TLS using cfg (nil means the system roots and the
// target's host name). It is the default for targets that are not loopback
// addresses. For a private CA or a client certificate kept in files, see
// WithTLSFiles.
func WithTLS(cfg *tls.Config) Option {
	return func(c *dialConfig) {
		if cfg == nil {
			cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		c.tls, c.insecure = cfg, false
	}
}

// WithInsecure connects without TLS. It is the default for loopback targets
// ("127.0.0.1:50051", "[::1]:50051", "localhost:50051", unix sockets);
// without it, other targets use TLS.
func WithInsecure() Option {
	return func(c *dialConfig) { c.insecure, c.tls = true, nil }
}

// WithBlock makes Dial wait until the connection is ready or ctx ends.
// Without it Dial returns at once and connects in the background; the first
// call then waits for the connection.
func WithBlock() Option {
	return func(c *dialConfig) { c.block = true }
}

// maxRecvMsgSize is the largest message the client accepts: the
// gateway's send limit.
const maxRecvMsgSize = 64 << 20

// WithDialOptions appends raw gRPC dial options (interceptors, message size
// limits, keepalive, …). They are applied after the options Dial derives
// from the other Options, so they win on conflict.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(c *dialConfig) { c.extra = append(c.extra, opts...) }
}

// Dial returns a client of the gateway at target, a gRPC target such as
// "127.0.0.1:50051", "dns:///kgw.internal:443" or "unix:///run/kgw.sock".
// Dial does not wait for the connection unless WithBlock is given; ctx only
// bounds that wait.
func Dial(ctx context.Context, target string, opts ...Option) (*Client, error) {
	var cfg dialConfig
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.err != nil {
		return nil, fmt.Errorf("kgw: dial %s: %w", target, cfg.err)
	}
	var creds credentials.TransportCredentials
	switch {
	case cfg.tls != nil:
		creds = credentials.NewTLS(cfg.tls)
	case cfg.insecure || isLoopbackTarget(target):
		creds = insecure.NewCredentials()
	default:
		creds = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
	}
	// The gateway sends messages of up to 64 MiB (an execution with its
	// results); grpc-go would refuse anything above 4 MiB.
	dopts := []grpc.DialOption{grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvMsgSize))}
	if cfg.token != "" {
		dopts = append(dopts, grpc.WithPerRPCCredentials(newBearer(cfg.token)))
	}
	dopts = append(dopts, unreachableInterceptors(target)...)
	dopts = append(dopts, cfg.extra...)
	conn, err := grpc.NewClient(target, dopts...)
	if err != nil {
		return nil, fmt.Errorf("kgw: dial %s: %w", target, err)
	}
	c := &Client{
		conn:      conn,
		workflows: kgwv1.NewWorkflowServiceClient(conn),
		execs:     kgwv1.NewExecutionServiceClient(conn),
		secrets:   kgwv1.NewSecretServiceClient(conn),
		resources: kgwv1.NewResourceServiceClient(conn),
		access:    kgwv1.NewAccessServiceClient(conn),
	}
	if cfg.block {
		if err := waitReady(ctx, conn); err != nil {
			conn.Close()
			return nil, fmt.Errorf("kgw: dial %s: %w", target, err)
		}
	}
	return c, nil
}

// waitReady waits until conn is READY, or fails when ctx ends.
func waitReady(ctx context.Context, conn *grpc.ClientConn) error {
	conn.Connect()
	for {
		s := conn.GetState()
		switch s {
		case connectivity.Ready:
			return nil
		case connectivity.Shutdown:
			return errors.New("connection closed")
		}
		if !conn.WaitForStateChange(ctx, s) {
			return fmt.Errorf("not ready (last state %s): %w", s, ctx.Err())
		}
	}
}

// Close closes the connection. Calls in progress fail with codes.Canceled.
func (c *Client) Close() error {
	if err := c.conn.Close(); err != nil {
		return fmt.Errorf("kgw: close: %w", err)
	}
	return nil
}

// Conn returns the underlying connection, for the generated stubs of
// package kgwv1 or for health checks.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// isLoopbackTarget reports whether target names a loopback address or a unix
// socket, where plaintext is the safe default.
func isLoopbackTarget(target string) bool {
	if strings.HasPrefix(target, "unix:") || strings.HasPrefix(target, "unix-abstract:") {
		return true
	}
	if i := strings.Index(target, ":///"); i >= 0 {
		target = target[i+4:]
	}
	host := target
	if h, _, err := net.SplitHostPort(target); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// bearer is PerRPCCredentials that send a bearer token. The header is
// built once: gRPC copies what GetRequestMetadata returns and never
// changes it, so every call can share the map (3 allocations a call
// fewer; API-key auth's share of a no-op call, docs/performance.md
// "Tracing and auth overhead").
type bearer struct{ md map[string]string }

func newBearer(token string) bearer {
	return bearer{md: map[string]string{"authorization": "Bearer " + token}}
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return b.md, nil
}

// RequireTransportSecurity is false so that tokens also work with loopback
// gateways and mesh sidecars; Dial picks TLS for every other target.
func (b bearer) RequireTransportSecurity() bool { return false }
