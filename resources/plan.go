package resources

import (
	"context"
	"errors"
	"fmt"
	"net"

	"go.starlark.net/starlark"

	"github.com/kailash-gateway/kgw/resources/httppool"
	"github.com/kailash-gateway/kgw/resources/postgres"
	"github.com/kailash-gateway/kgw/resources/redis"
	"github.com/kailash-gateway/kgw/secrets"
	"github.com/kailash-gateway/kgw/store"
)

type dialFunc = func(ctx context.Context, network, addr string) (net.Conn, error)

// backend is a pool of one of the resource types.
type backend interface {
	stats() PoolStats
	Ping(ctx context.Context) error
	Close()
	handle(name string) handle
}

// handle is a Starlark handle that gives back what it holds on Close.
type handle interface {
	starlark.Value
	Close()
}

// plan is a resolved spec: everything needed to find or create its pool.
// A plan is immutable once built and shared through the broker's cache.
type plan struct {
	typ          string
	key          string
	lineage      string
	target       string
	label        string   // the metrics label of an inline spec's pool (PoolStats.Label)
	hosts        []string // where the pool connects, for allowed_hosts
	secret       string
	version      secretVersion
	poolRedactor *secrets.Redactor
	// derivedSecrets are forms of the secret's values the pool sends (an
	// encoded Authorization header) that a session's redactor must hide too.
	derivedSecrets []string
	create         func(ctx context.Context, dial dialFunc, onError func(error)) (backend, error)
}

// plan resolves spec (ref, credentials) for the resource called name and
// adds resolved secret values to red.
func (b *Broker) plan(ctx context.Context, name string, spec store.ResourceSpec, red *secrets.Redactor) (*plan, error) {
	spec, err := b.named(ctx, name, spec)
	if err != nil {
		return nil, err
	}
	resolved, err := b.credentials(ctx, name, spec)
	if err != nil {
		return nil, err
	}
	if resolved != nil && red != nil {
		red.Add(resolved.Values)
	}

	bufp := fingerprintBufs.Get().(*[]byte)
	defer fingerprintBufs.Put(bufp)
	fp, cacheable := fingerprint((*bufp)[:0], spec, resolved)
	*bufp = fp
	var pl *plan
	if cacheable {
		pl = b.plans.get(fp)
	}
	if pl == nil {
		if pl, err = buildPlan(name, spec, resolved); err != nil {
			return nil, err
		}
		if cacheable {
			b.plans.put(fp, pl)
		}
	}

	if resolved != nil {
		if red != nil {
			for _, v := range pl.derivedSecrets {
				red.AddString(v)
			}
		}
		// Check before any connection exists: nothing is sent to a host the
		// secret does not allow. Allowed hosts can change without a new
		// secret version, so this runs on every use of a cached plan.
		for _, h := range pl.hosts {
			if !secrets.HostAllowed(resolved.AllowedHosts, h) {
				return nil, fmt.Errorf("resource '%s': secret '%s' may not be sent to host '%s' (not in its allowed_hosts): %w",
					name, resolved.Name, h, ErrHostNotAllowed)
			}
		}
	}
	return pl, nil
}

// named returns the spec of the named resource that spec refers to, or
// spec itself when it is inline (and inline specs are allowed).
func (b *Broker) named(ctx context.Context, name string, spec store.ResourceSpec) (store.ResourceSpec, error) {
	if spec.Ref == "" {
		if b.cfg.DisableInline {
			return spec, fmt.Errorf("resource '%s': %w on this gateway; use a named resource ({\"ref\": \"...\"})", name, ErrInlineDisabled)
		}
		return spec, nil
	}
	if spec.Type != "" || len(spec.Config) > 0 || spec.CredentialsRef != "" || spec.CredentialsKey != "" {
		return spec, fmt.Errorf("resource '%s': give ref or type/config/credentials_ref, not both: %w", name, ErrInvalidSpec)
	}
	if b.cfg.Resources == nil {
		return spec, fmt.Errorf("resource '%s': named resources are not available: %w", name, ErrInvalidSpec)
	}
	r, err := b.cfg.Resources.GetResource(ctx, spec.Ref)
	if errors.Is(err, store.ErrNotFound) {
		return spec, fmt.Errorf("resource '%s': named resource '%s' not found: %w", name, spec.Ref, err)
	}
	if err != nil {
		return spec, fmt.Errorf("resource '%s': look up named resource '%s': %w", name, spec.Ref, err)
	}
	if r.Spec.Ref != "" {
		return spec, fmt.Errorf("resource '%s': named resource '%s' refers to another one: %w", name, r.Name, ErrInvalidSpec)
	}
	return r.Spec, nil
}

// credentials resolves spec's credentials_ref (nil: the spec has none),
// counting the outcome in the broker's observer.
func (b *Broker) credentials(ctx context.Context, name string, spec store.ResourceSpec) (*secrets.Resolved, error) {
	if spec.CredentialsRef == "" {
		if spec.CredentialsKey != "" {
			return nil, fmt.Errorf("resource '%s': credentials_key without credentials_ref: %w", name, ErrInvalidSpec)
		}
		return nil, nil
	}
	if b.cfg.Secrets == nil {
		return nil, fmt.Errorf("resource '%s': secrets are not available: %w", name, ErrInvalidSpec)
	}
	resolved, err := b.cfg.Secrets.Resolve(ctx, spec.CredentialsRef)
	switch {
	case err == nil:
		b.cfg.Observer.SecretResolved("ok")
	case errors.Is(err, store.ErrNotFound):
		b.cfg.Observer.SecretResolved("not_found")
	default:
		b.cfg.Observer.SecretResolved("error")
	}
	if err != nil {
		return nil, fmt.Errorf("resource '%s': %w", name, err)
	}
	return resolved, nil
}

// buildPlan parses and checks spec's config with ParseConfig, merges the
// resolved secret's values (nil: none) into it and computes the pool keys.
// The plan it returns depends on nothing else, so the broker caches it.
func buildPlan(name string, spec store.ResourceSpec, resolved *secrets.Resolved) (*plan, error) {
	c, err := ParseConfig(spec.Type, spec.Config)
	if errors.Is(err, ErrUnknownType) {
		return nil, fmt.Errorf("resource '%s': %w", name, err)
	}
	if err != nil {
		return nil, invalid(name, err)
	}
	var values map[string]any
	if resolved != nil {
		values = resolved.Values
	}
	pl := &plan{typ: spec.Type, poolRedactor: secrets.NewRedactor()}
	// Each case merges credentials into its own copy of the config: c
	// stays as parsed, for the pool keys.
	switch c := c.(type) {
	case postgres.Config:
		err = pl.database(c, values, spec.CredentialsKey)
	case redis.Config:
		err = pl.cache(c, values, spec.CredentialsKey)
	case httppool.Config:
		err = pl.httpClient(c, values, spec.CredentialsKey)
	default:
		err = fmt.Errorf("config type %T has no pool", c)
	}
	if err != nil {
		return nil, invalid(name, err)
	}
	if resolved != nil {
		pl.secret = resolved.Name
		pl.version = secretVersion{version: resolved.Version, created: resolved.CreateTime}
		pl.poolRedactor.Add(values)
	}
	pl.lineage, pl.key = poolKeys(spec.Type, c, pl.secret, spec.CredentialsKey, pl.version)
	return pl, nil
}

// database completes pl for a PostgreSQL pool: credentials (values, nil:
// none, picked by credentialsKey), hosts and how to create the pool.
func (pl *plan) database(c postgres.Config, values map[string]any, credentialsKey string) error {
	if err := mergeSubKey(&c, values, credentialsKey); err != nil {
		return err
	}
	pl.hosts, pl.target = c.Hosts(), c.Target()
	pl.create = func(ctx context.Context, dial dialFunc, onError func(error)) (backend, error) {
		p, err := postgres.New(ctx, c, postgres.Options{Dial: dial, OnError: onError})
		if err != nil {
			return nil, err
		}
		return pgBackend{p}, nil
	}
	return nil
}

// cache completes pl for a Redis pool, as database does for PostgreSQL.
func (pl *plan) cache(c redis.Config, values map[string]any, credentialsKey string) error {
	if err := mergeSubKey(&c, values, credentialsKey); err != nil {
		return err
	}
	pl.hosts, pl.target = c.Hosts(), c.Target()
	pl.create = func(ctx context.Context, dial dialFunc, onError func(error)) (backend, error) {
		p, err := redis.New(ctx, c, redis.Options{Dial: dial, OnError: onError})
		if err != nil {
			return nil, err
		}
		return redisBackend{p}, nil
	}
	return nil
}

// httpClient completes pl for an HTTP client pool. The credential headers
// it sends are derived from the secret's values, so both the pool's and
// each session's redactor must hide them too.
func (pl *plan) httpClient(c httppool.Config, values map[string]any, credentialsKey string) error {
	if values != nil {
		if err := c.MergeCredentials(values, credentialsKey); err != nil {
			return err
		}
		for _, v := range c.CredentialHeaderValues() {
			pl.poolRedactor.AddString(v)
			pl.derivedSecrets = append(pl.derivedSecrets, v)
		}
	}
	pl.hosts, pl.target, pl.label = c.Hosts(), c.Target(), c.Origin()
	pl.create = func(ctx context.Context, dial dialFunc, onError func(error)) (backend, error) {
		p, err := httppool.New(ctx, c, httppool.Options{Dial: dial, OnError: onError})
		if err != nil {
			return nil, err
		}
		return httpBackend{p}, nil
	}
	return nil
}

func invalid(name string, err error) error {
	return fmt.Errorf("resource '%s': %w: %w", name, err, ErrInvalidSpec)
}

// mergeSubKey merges the credentials in values (nil: none), picked by
// credentialsKey, into c.
func mergeSubKey(c interface{ MergeCredentials(map[string]any) error }, values map[string]any, credentialsKey string) error {
	if values == nil {
		return nil
	}
	v, err := subKey(values, credentialsKey)
	if err != nil {
		return err
	}
	return c.MergeCredentials(v)
}

// subKey picks values[key] (a map) when credentials_key is set.
func subKey(values map[string]any, key string) (map[string]any, error) {
	if key == "" {
		return values, nil
	}
	v, ok := values[key]
	if !ok {
		return nil, fmt.Errorf("the secret has no key %q (credentials_key)", key)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("secret key %q (credentials_key) must hold a map of credentials", key)
	}
	return m, nil
}

type pgBackend struct{ p *postgres.Pool }

func (b pgBackend) stats() PoolStats {
	s := b.p.Stats()
	return PoolStats{Size: s.Size, Idle: s.Idle, InUse: s.InUse, Max: s.Max,
		Acquires: s.Acquires, AcquireWait: s.AcquireWait}
}
func (b pgBackend) Ping(ctx context.Context) error { return b.p.Ping(ctx) }
func (b pgBackend) Close()                         { b.p.Close() }
func (b pgBackend) handle(name string) handle      { return b.p.Handle(name) }

type redisBackend struct{ p *redis.Pool }

func (b redisBackend) stats() PoolStats {
	s := b.p.Stats()
	return PoolStats{Size: s.Size, Idle: max(s.Size-s.InUse, 0), InUse: s.InUse, Max: s.Size, Acquires: s.Acquires}
}
func (b redisBackend) Ping(ctx context.Context) error { return b.p.Ping(ctx) }
func (b redisBackend) Close()                         { b.p.Close() }
func (b redisBackend) handle(name string) handle      { return b.p.Handle(name) }

type httpBackend struct{ p *httppool.Pool }

func (b httpBackend) stats() PoolStats {
	s := b.p.Stats()
	return PoolStats{Size: s.Size, Idle: s.Idle, InUse: s.InUse, Max: s.Max, Acquires: s.Acquires}
}
func (b httpBackend) Ping(ctx context.Context) error { return b.p.Ping(ctx) }
func (b httpBackend) Close()                         { b.p.Close() }
func (b httpBackend) handle(name string) handle      { return b.p.Handle(name) }
