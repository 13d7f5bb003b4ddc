package server

import (
	"context"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/kailash-gateway/kgw/access"
)

// A rule says who may call an RPC: callers with any of roles (admin always
// may), or, with anyCaller, every authenticated caller. An RPC without a
// rule is refused (fail closed).
type rule struct {
	roles     []string
	anyCaller bool
}

const (
	admin     = access.RoleAdmin
	developer = access.RoleDeveloper
	operator  = access.RoleOperator
	executorR = access.RoleExecutor
	viewer    = access.RoleViewer
	secretsA  = access.RoleSecretsAdmin
)

func roles(r ...string) rule { return rule{roles: r} }

// rules maps every RPC of every kgw.v1 service to what it needs (DESIGN.md
// §9; docs/security.md has the same table). TestEveryRPCHasARule walks the
// service descriptors, so an RPC added without a rule fails the tests, and
// is refused at run time.
var rules = map[string]rule{
	"/kgw.v1.WorkflowService/RegisterWorkflow": roles(developer),
	"/kgw.v1.WorkflowService/GetWorkflow":      roles(developer, operator, executorR, viewer),
	"/kgw.v1.WorkflowService/ListWorkflows":    roles(developer, operator, executorR, viewer),
	"/kgw.v1.WorkflowService/DeleteWorkflow":   roles(developer),

	"/kgw.v1.ExecutionService/ExecuteWorkflow": roles(developer, executorR),
	"/kgw.v1.ExecutionService/StartExecution":  roles(developer, executorR),
	"/kgw.v1.ExecutionService/StreamExecution": roles(developer, executorR),
	"/kgw.v1.ExecutionService/WatchExecution":  roles(developer, operator, executorR, viewer),
	"/kgw.v1.ExecutionService/GetExecution":    roles(developer, operator, executorR, viewer),
	"/kgw.v1.ExecutionService/ListExecutions":  roles(developer, operator, executorR, viewer),
	"/kgw.v1.ExecutionService/CancelExecution": roles(operator, executorR),

	"/kgw.v1.SecretService/StoreSecret":        roles(secretsA),
	"/kgw.v1.SecretService/GetSecret":          roles(secretsA, developer, operator, viewer),
	"/kgw.v1.SecretService/ListSecrets":        roles(secretsA, developer, operator, viewer),
	"/kgw.v1.SecretService/DeleteSecret":       roles(secretsA),
	"/kgw.v1.SecretService/UpdateSecretAccess": roles(secretsA),

	"/kgw.v1.ResourceService/PutResource":    roles(developer),
	"/kgw.v1.ResourceService/GetResource":    roles(developer, operator, viewer),
	"/kgw.v1.ResourceService/ListResources":  roles(developer, operator, viewer),
	"/kgw.v1.ResourceService/DeleteResource": roles(developer),
	"/kgw.v1.ResourceService/ListPools":      roles(developer, operator, viewer),
	"/kgw.v1.ResourceService/CheckResource":  roles(developer, operator),

	"/kgw.v1.AccessService/CreateApiKey":      roles(),
	"/kgw.v1.AccessService/ListApiKeys":       roles(),
	"/kgw.v1.AccessService/RevokeApiKey":      roles(),
	"/kgw.v1.AccessService/CreateRoleBinding": roles(),
	"/kgw.v1.AccessService/DeleteRoleBinding": roles(),
	"/kgw.v1.AccessService/ListRoleBindings":  roles(),
	"/kgw.v1.AccessService/WhoAmI":            {anyCaller: true},
}

// exempt reports the RPCs that need no caller: gRPC health and reflection.
func exempt(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.Health/") ||
		strings.HasPrefix(method, "/grpc.reflection.v1.ServerReflection/") ||
		strings.HasPrefix(method, "/grpc.reflection.v1alpha.ServerReflection/")
}

// allowed reports whether p may call method under rules.
func allowed(rules map[string]rule, p *access.Principal, method string) bool {
	r, ok := rules[method]
	if !ok {
		return false
	}
	return r.anyCaller || p.Has(admin) || p.HasAny(r.roles...)
}

type principalKey struct{}

// callerOf returns the caller the auth interceptor put in ctx. Without one
// (handlers called directly, as some tests do) it is the local admin, as
// under --auth none; every RPC served by a Server passes the interceptor,
// which refuses a call it cannot name under --auth required.
func callerOf(ctx context.Context) *access.Principal {
	if p, ok := ctx.Value(principalKey{}).(*access.Principal); ok {
		return p
	}
	return access.Local
}

// authorizer is the authentication and authorization interceptor's state.
type authorizer struct {
	required  bool // --auth required
	auth      *access.Authenticator
	trustXFCC bool
	log       *slog.Logger
	failures  *prometheus.CounterVec
	// rules is the table above plus admin-only rules for services added
	// with Server.RegisterService.
	rules map[string]rule
}

func newAuthFailures(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kgw",
		Name:      "auth_failures_total",
		Help:      "Calls refused for want of valid credentials (reason) or of permission (reason permission_denied).",
	}, []string{"reason"})
	if reg != nil {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// check authenticates the call (under --auth required) and applies the
// rule of method. It returns the context carrying the caller.
func (a *authorizer) check(ctx context.Context, method string) (context.Context, error) {
	if exempt(method) {
		return ctx, nil
	}
	p := access.Local
	if a.required {
		var err error
		if p, err = a.auth.Authenticate(ctx, a.credentials(ctx)); err != nil {
			reason := access.ReasonInternal
			if ae, ok := err.(*access.AuthError); ok {
				reason = ae.Reason
			}
			a.failures.WithLabelValues(reason).Inc()
			a.log.LogAttrs(ctx, slog.LevelWarn, "audit: authentication failed",
				slog.String("method", method), slog.String("reason", reason), slog.String("peer", peerAddr(ctx)))
			return ctx, err
		}
	}
	if !allowed(a.rules, p, method) {
		a.failures.WithLabelValues("permission_denied").Inc()
		a.log.LogAttrs(ctx, slog.LevelWarn, "audit: permission denied",
			slog.String("method", method), slog.String("principal", p.Name), slog.Any("roles", p.Roles))
		return ctx, denied("%s may not call %s", p.Name, strings.TrimPrefix(method, "/"))
	}
	return context.WithValue(ctx, principalKey{}, p), nil
}

// credentials collects what the call presented: "authorization: Bearer
// <token>" (the scheme in any case); more than one authorization header is
// malformed.
func (a *authorizer) credentials(ctx context.Context) access.Credentials {
	var c access.Credentials
	// ValueFromIncomingContext reads the one key without copying the
	// whole metadata map, as FromIncomingContext does.
	if vals := metadata.ValueFromIncomingContext(ctx, "authorization"); len(vals) > 0 {
		// The scheme is case-insensitive (RFC 9110 §11.1).
		v := vals[0]
		ok := len(v) > len("bearer ") && strings.EqualFold(v[:len("bearer ")], "bearer ")
		tok := ""
		if ok {
			tok = strings.TrimSpace(v[len("bearer "):])
		}
		if !ok || tok == "" || len(vals) > 1 {
			c.BadAuthorization = true
		}
		c.Bearer = tok
	}
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 && len(ti.State.VerifiedChains[0]) > 0 {
			c.ClientCert = ti.State.VerifiedChains[0][0]
		}
	}
	if a.trustXFCC {
		if vals := metadata.ValueFromIncomingContext(ctx, "x-forwarded-client-cert"); len(vals) == 1 {
			c.Forwarded = vals[0]
		}
	}
	return c
}

func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}

func (a *authorizer) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := a.check(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (a *authorizer) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := a.check(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return handler(srv, &callerStream{ServerStream: ss, ctx: ctx})
}

// callerStream carries the caller in its context.
type callerStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *callerStream) Context() context.Context { return s.ctx }
