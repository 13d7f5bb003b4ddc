package server

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/kailash-gateway/kgw/access"
	"github.com/kailash-gateway/kgw/store"
)

// grantStore is the part of store.Store that guards use.
type grantStore interface {
	PutGrant(ctx context.Context, g *store.Grant) (*store.Grant, error)
	GetGrant(ctx context.Context, kind store.GrantKind, name string) (*store.Grant, error)
	DeleteGrant(ctx context.Context, kind store.GrantKind, name string) error
	GetResource(ctx context.Context, name string) (*store.Resource, error)
	GetSecret(ctx context.Context, name string, version int32) (*store.SecretRecord, error)
}

// guard checks grants (allowed_callers) on what a request references.
// Under --auth none (required false) every caller is the local admin and
// checks pass; existence is then reported where it was before (a missing
// secret fails the node that opens it).
type guard struct {
	st       grantStore
	required bool
	log      *slog.Logger

	mu    sync.Mutex
	cache map[grantKey]cachedGrant
}

type grantKey struct {
	kind store.GrantKind
	name string
}

type cachedGrant struct {
	g     *store.Grant // nil: none recorded
	until time.Time
}

// grantTTL is how long a replica trusts a grant it read; a grant changed on
// another replica applies here within this time (changes made here apply at
// once). Reading the grant of the workflow from the store on every
// ExecuteWorkflow cut the peak no-op throughput under --auth required to
// 0.33× of --auth none (BenchmarkAuthThroughput in its first form, the two
// sides run one after the other, SQLite, 2 shared cores); with this cache
// the same benchmark measured 1.01× (target ≥ 0.90×).
const grantTTL = 2 * time.Second

// grant returns the grant of (kind, name), nil when none is recorded.
func (g *guard) grant(ctx context.Context, kind store.GrantKind, name string) (*store.Grant, error) {
	k := grantKey{kind, name}
	now := time.Now()
	g.mu.Lock()
	c, ok := g.cache[k]
	g.mu.Unlock()
	if ok && now.Before(c.until) {
		return c.g, nil
	}
	gr, err := g.st.GetGrant(ctx, kind, name)
	if errors.Is(err, store.ErrNotFound) {
		gr, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	if g.cache == nil || len(g.cache) >= 10000 {
		g.cache = make(map[grantKey]cachedGrant)
	}
	g.cache[k] = cachedGrant{g: gr, until: now.Add(grantTTL)}
	g.mu.Unlock()
	return gr, nil
}

// forget drops the cached grant of (kind, name) after a change here.
func (g *guard) forget(kind store.GrantKind, name string) {
	g.mu.Lock()
	delete(g.cache, grantKey{kind, name})
	g.mu.Unlock()
}

// putGrant and deleteGrant change a grant and forget the cached copy.
func (g *guard) putGrant(ctx context.Context, gr *store.Grant) (*store.Grant, error) {
	defer g.forget(gr.Kind, gr.Name)
	return g.st.PutGrant(ctx, gr)
}

func (g *guard) deleteGrant(ctx context.Context, kind store.GrantKind, name string) error {
	defer g.forget(kind, name)
	return g.st.DeleteGrant(ctx, kind, name)
}

// secretDenied is the one message for a secret the caller may not use,
// whether or not it exists.
func secretDenied(p *access.Principal, name string) error {
	return denied("secret '%s' does not exist or is not granted to %s", name, p.Name)
}

func resourceDenied(p *access.Principal, name string) error {
	return denied("resource '%s' does not exist or is not granted to %s", name, p.Name)
}

// useSecret checks that p may use secret name, which must exist.
func (g *guard) useSecret(ctx context.Context, p *access.Principal, name string) error {
	if !g.required {
		return nil
	}
	if _, err := g.st.GetSecret(ctx, name, 0); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			g.auditDenied(ctx, p, "secret", name)
			return secretDenied(p, name)
		}
		return err
	}
	gr, err := g.grant(ctx, store.GrantSecret, name)
	if err != nil {
		return err
	}
	if !access.MayUse(p, gr) {
		g.auditDenied(ctx, p, "secret", name)
		return secretDenied(p, name)
	}
	return nil
}

// useResource checks that p may use named resource name, which must exist,
// and returns it. The resource's own secret is not checked against p:
// storing the resource needed a grant on it, and the resource's grant is
// what its users need.
func (g *guard) useResource(ctx context.Context, p *access.Principal, name string) (*store.Resource, error) {
	r, err := g.st.GetResource(ctx, name)
	if !g.required {
		return r, err
	}
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			g.auditDenied(ctx, p, "resource", name)
			return nil, resourceDenied(p, name)
		}
		return nil, err
	}
	gr, err := g.grant(ctx, store.GrantResource, name)
	if err != nil {
		return nil, err
	}
	if !access.MayUse(p, gr) {
		g.auditDenied(ctx, p, "resource", name)
		return nil, resourceDenied(p, name)
	}
	return r, nil
}

// useSpecs checks every resource of a request and returns the names of the
// secrets it will use (directly or through named resources), for the
// audit log.
func (g *guard) useSpecs(ctx context.Context, p *access.Principal, specs map[string]store.ResourceSpec) ([]string, error) {
	var used []string
	if !g.required { // the local admin may use everything; the broker reports what is missing
		for _, spec := range specs {
			if spec.CredentialsRef != "" {
				used = append(used, spec.CredentialsRef)
			}
		}
		return used, nil
	}
	for _, spec := range specs {
		if spec.Ref != "" {
			r, err := g.useResource(ctx, p, spec.Ref)
			if err != nil {
				return nil, err
			}
			if r.Spec.CredentialsRef != "" {
				used = append(used, r.Spec.CredentialsRef)
			}
			continue
		}
		if spec.CredentialsRef != "" {
			if err := g.useSecret(ctx, p, spec.CredentialsRef); err != nil {
				return nil, err
			}
			used = append(used, spec.CredentialsRef)
		}
	}
	return used, nil
}

func (g *guard) auditDenied(ctx context.Context, p *access.Principal, kind, name string) {
	g.log.LogAttrs(ctx, slog.LevelWarn, "audit: permission denied",
		slog.String("principal", p.Name), slog.String(kind, name))
}

// auditSecretUse logs one line per secret an execution uses.
func (g *guard) auditSecretUse(ctx context.Context, p *access.Principal, executionID string, secrets []string) {
	for _, s := range secrets {
		g.log.LogAttrs(ctx, slog.LevelInfo, "audit: secret use",
			slog.String("principal", p.Name), slog.String("secret", s), slog.String("execution_id", executionID))
	}
}

// AuthorizeResume returns the check to use as
// executor.Config.AuthorizeResume under --auth required: an execution
// claimed after a restart resumes only if its caller may still use the
// secrets and named resources it references (with the roles its API key
// and role bindings give it now; roles from a JWT claim are not known
// then). The error is the PERMISSION_DENIED message of a new request.
func AuthorizeResume(st store.Store, auth *access.Authenticator, log *slog.Logger) func(context.Context, string, map[string]store.ResourceSpec) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &guard{st: st, required: true, log: log}
	return func(ctx context.Context, caller string, specs map[string]store.ResourceSpec) error {
		if len(specs) == 0 {
			return nil
		}
		p, err := auth.RolesOf(ctx, caller)
		if err != nil {
			return err
		}
		_, err = g.useSpecs(ctx, p, specs)
		return err
	}
}

// checkCallers validates allowed_callers entries into v under field.
func checkCallers(v *validationErrors, field string, callers []string) {
	if len(callers) > 100 {
		v.add(field, "more than 100 entries")
		return
	}
	for i, c := range callers {
		if err := access.CheckCaller(c); err != nil {
			v.add(field+"["+strconv.Itoa(i)+"]", "%s", err.Error())
		}
	}
}

// recordGrant records the creator of a new thing (kept if one is recorded)
// and, when callers is non-empty, replaces its allowed callers. Empty
// callers keep what was recorded.
func (g *guard) recordGrant(ctx context.Context, kind store.GrantKind, name, creator string, callers []string) (*store.Grant, error) {
	if len(callers) == 0 {
		gr, err := g.grant(ctx, kind, name)
		if err != nil || gr != nil {
			return gr, err
		}
	}
	return g.putGrant(ctx, &store.Grant{Kind: kind, Name: name, Creator: creator, AllowedCallers: callers})
}

// mayChange checks that p may replace or delete (kind, name), whose grant
// is gr, when it exists.
func (g *guard) mayChange(ctx context.Context, p *access.Principal, kind store.GrantKind, name string, gr *store.Grant) error {
	if !g.required || access.MayChange(p, gr) {
		return nil
	}
	g.auditDenied(ctx, p, string(kind), name)
	return denied("%s '%s' was created by another caller: only its creator or an admin may change or delete it", kind, name)
}
