package resources

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kailash-gateway/kgw/resources/internal/poolerr"
	"github.com/kailash-gateway/kgw/resources/netguard"
	"github.com/kailash-gateway/kgw/secrets"
	"github.com/kailash-gateway/kgw/store"
)

// Resource types.
const (
	TypeDatabase   = "database"
	TypeCache      = "cache"
	TypeHTTPClient = "http_client"
)

// Errors callers branch on.
var (
	// ErrExhausted reports that a pool had no free connection within the
	// resource's timeout ("connection pool exhausted for resource 'x'
	// (max_size=N, waited Ns)"), or that the per-target connection cap was
	// reached.
	ErrExhausted = poolerr.ErrExhausted
	// ErrNotProvided reports a name the request's resources do not have
	// ("resource 'x' was not provided in the request").
	ErrNotProvided = errors.New("resource not provided")
	// ErrInlineDisabled reports an inline spec on a broker that only
	// allows named resources.
	ErrInlineDisabled = errors.New("inline resource specs are disabled")
	// ErrHostNotAllowed reports a resource whose host is not in its
	// secret's allowed_hosts; nothing was sent to it.
	ErrHostNotAllowed = errors.New("host not allowed for the secret")
	// ErrInvalidSpec reports a spec that cannot be used as written (unknown
	// type, bad config key, both ref and type).
	ErrInvalidSpec = errors.New("invalid resource spec")
	// ErrClosed reports use of a closed Broker.
	ErrClosed = errors.New("resource broker closed")
)

// ResourceGetter looks up named resources; store.Store satisfies it.
type ResourceGetter interface {
	GetResource(ctx context.Context, name string) (*store.Resource, error)
}

// SecretResolver resolves a secret's latest version; *secrets.Manager
// satisfies it.
type SecretResolver interface {
	Resolve(ctx context.Context, name string) (*secrets.Resolved, error)
}

// Default broker settings.
const (
	DefaultIdleTimeout       = 5 * time.Minute
	DefaultMaxConnsPerTarget = 500
)

// Config configures a Broker. Resources and Secrets may be nil when no spec
// uses ref or credentials_ref.
type Config struct {
	// Resources resolves ref (named resources).
	Resources ResourceGetter
	// Secrets resolves credentials_ref.
	Secrets SecretResolver
	// DisableInline refuses inline specs: only named resources are usable.
	DisableInline bool
	// Guard says which guarded addresses (link-local, cloud metadata) the
	// pools may connect to. The zero value refuses both.
	Guard netguard.Policy
	// IdleTimeout closes a pool that no session has used for this long.
	// Zero means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxConnsPerTarget caps the connections all pools together hold to
	// one host:port. Zero means DefaultMaxConnsPerTarget.
	MaxConnsPerTarget int
	// Logger receives pool lifecycle events; nil means slog.Default().
	Logger *slog.Logger
	// Observer receives pool exhaustion and secret resolution counts
	// (default: none).
	Observer Observer
}

// Observer receives the broker's measurements (Config.Observer). Its
// methods must not block.
type Observer interface {
	// PoolExhausted: an acquire on the pool of type typ labelled pool
	// (PoolStats.Label) gave up with ErrExhausted.
	PoolExhausted(typ, pool string)
	// SecretResolved: a credentials_ref was resolved with outcome ok,
	// not_found or error.
	SecretResolved(outcome string)
}

type nopObserver struct{}

func (nopObserver) PoolExhausted(string, string) {}
func (nopObserver) SecretResolved(string)        {}

// Broker owns the shared pools. It is safe for concurrent use. Close must
// be called; it blocks until every pool is closed.
type Broker struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	pools   map[string]*pool
	latest  map[string]secretVersion // lineage → newest secret version seen
	targets map[string]chan struct{} // host:port → connection slots
	closed  bool

	plans planCache

	stop chan struct{}
	wg   sync.WaitGroup
}

type secretVersion struct {
	version int32
	created time.Time
}

func (v secretVersion) newer(o secretVersion) bool {
	if !v.created.Equal(o.created) {
		return v.created.After(o.created)
	}
	return v.version > o.version
}

// NewBroker returns a broker and starts its idle-pool janitor.
func NewBroker(cfg Config) *Broker {
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxConnsPerTarget <= 0 {
		cfg.MaxConnsPerTarget = DefaultMaxConnsPerTarget
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	b := &Broker{
		cfg:     cfg,
		log:     cfg.Logger,
		pools:   map[string]*pool{},
		latest:  map[string]secretVersion{},
		targets: map[string]chan struct{}{},
		stop:    make(chan struct{}),
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	b.wg.Add(1)
	go b.janitor()
	return b
}

// pool is one shared pool and its bookkeeping.
type pool struct {
	key     string
	lineage string
	typ     string
	target  string
	secret  string
	version secretVersion
	label   string // PoolStats.Label
	obs     Observer

	ready   chan struct{} // closed when backend or err is set
	backend backend
	err     error

	// guarded by Broker.mu
	refs     int
	lastUsed time.Time // when refs last dropped; meaningful while refs == 0
	retired  bool
	removed  bool

	errCount      atomic.Int64
	lastExhausted atomic.Pointer[error]
	lastErr       atomic.Pointer[string]
	redactor      *secrets.Redactor
}

func (p *pool) noteError(err error) {
	if errors.Is(err, ErrExhausted) {
		// A backend may report one exhaustion twice (from the acquire and
		// from the call that needed it): count each error value once.
		inner := err
		for u := errors.Unwrap(inner); u != nil && u != ErrExhausted; u = errors.Unwrap(inner) {
			inner = u
		}
		if prev := p.lastExhausted.Swap(&inner); prev == nil || *prev != inner {
			p.obs.PoolExhausted(p.typ, p.label)
		}
	}
	p.errCount.Add(1)
	msg := p.redactor.String(err.Error())
	p.lastErr.Store(&msg)
}

// PoolStats describes one live pool. It never holds credentials.
type PoolStats struct {
	Key    string // hash of type, canonical config, secret name and version
	Type   string
	Target string // host:port/db or base URL
	// Label names the pool in metrics: the named resource that created it,
	// or Target for one an inline spec created. Never a user, password or
	// secret name.
	Label         string
	Secret        string // secret name ("" without credentials)
	SecretVersion int32
	Size          int // open connections
	Idle          int
	InUse         int
	Max           int
	Acquires      int64
	AcquireWait   time.Duration // total time spent waiting to acquire
	Errors        int64
	LastError     string // with secret values removed
	Sessions      int    // attempts currently holding a handle on the pool
	Retired       bool   // a newer secret version exists; closes when unused
}

// Pools returns the live pools, ordered by type, target and key.
func (b *Broker) Pools() []PoolStats {
	b.mu.Lock()
	type entry struct {
		p       *pool
		refs    int
		retired bool
		backend backend
	}
	var list []entry
	for _, p := range b.pools {
		select {
		case <-p.ready:
		default:
			continue
		}
		if p.backend == nil {
			continue
		}
		list = append(list, entry{p, p.refs, p.retired, p.backend})
	}
	b.mu.Unlock()
	out := make([]PoolStats, 0, len(list))
	for _, e := range list {
		s := e.backend.stats()
		s.Key, s.Type, s.Target, s.Label = e.p.key, e.p.typ, e.p.target, e.p.label
		s.Secret, s.SecretVersion = e.p.secret, e.p.version.version
		s.Errors = e.p.errCount.Load()
		if m := e.p.lastErr.Load(); m != nil {
			s.LastError = *m
		}
		s.Sessions, s.Retired = e.refs, e.retired
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Type != out[j].Type {
			return out[i].Type < out[j].Type
		}
		if out[i].Target != out[j].Target {
			return out[i].Target < out[j].Target
		}
		return out[i].Key < out[j].Key
	})
	return out
}

// Check resolves spec like a request would, connects with a private pool
// and pings the server. The error (nil when healthy) says why not; it never
// contains secret values.
func (b *Broker) Check(ctx context.Context, spec store.ResourceSpec) error {
	name := "check"
	if spec.Ref != "" {
		name = spec.Ref
	}
	red := secrets.NewRedactor()
	pl, err := b.plan(ctx, name, spec, red)
	if err != nil {
		return redacted(red, err)
	}
	be, err := pl.create(ctx, b.dialer(), nil)
	if err != nil {
		return redacted(red, fmt.Errorf("resource '%s': %w", name, err))
	}
	defer be.Close()
	if err := be.Ping(ctx); err != nil {
		return redacted(red, fmt.Errorf("resource '%s': %w", name, err))
	}
	return nil
}

// Close closes every pool and stops the janitor. It blocks until all pools
// are closed, which waits for connections still checked out: close the
// sessions (stop the executor) first.
func (b *Broker) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	pools := make([]*pool, 0, len(b.pools))
	for k, p := range b.pools {
		pools = append(pools, p)
		p.removed = true
		delete(b.pools, k)
	}
	b.mu.Unlock()
	close(b.stop)
	b.wg.Wait()
	for _, p := range pools {
		<-p.ready
		b.closePool(p, "broker closed")
	}
}

func (b *Broker) closePool(p *pool, why string) {
	if p.backend == nil {
		return
	}
	b.log.Info("closing resource pool", "type", p.typ, "target", p.target, "key", p.key, "reason", why)
	p.backend.Close()
}

// janitor closes idle pools.
func (b *Broker) janitor() {
	defer b.wg.Done()
	interval := min(max(b.cfg.IdleTimeout/4, 10*time.Millisecond), time.Minute)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case now := <-t.C:
			b.reapIdle(now)
		}
	}
}

func (b *Broker) reapIdle(now time.Time) {
	var idle []*pool
	b.mu.Lock()
	for k, p := range b.pools {
		select {
		case <-p.ready:
		default:
			continue
		}
		if p.refs == 0 && now.Sub(p.lastUsed) >= b.cfg.IdleTimeout {
			delete(b.pools, k)
			p.removed = true
			idle = append(idle, p)
		}
	}
	b.mu.Unlock()
	for _, p := range idle {
		b.closePool(p, "idle")
	}
}

// acquirePool finds or creates the pool for pl and takes a reference on it.
func (b *Broker) acquirePool(ctx context.Context, pl *plan, ref string) (*pool, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	p := b.pools[pl.key]
	creating := p == nil
	if creating {
		p = &pool{key: pl.key, lineage: pl.lineage, typ: pl.typ, target: pl.target,
			secret: pl.secret, version: pl.version, ready: make(chan struct{}),
			redactor: pl.poolRedactor, label: ref, obs: b.cfg.Observer}
		if p.label == "" {
			p.label = pl.label
		}
		if p.label == "" {
			p.label = pl.target
		}
		b.pools[pl.key] = p
	}
	p.refs++ // the janitor leaves it alone until releasePool sets lastUsed
	b.mu.Unlock()

	if creating {
		be, err := pl.create(context.WithoutCancel(ctx), b.dialer(), p.noteError)
		p.backend, p.err = be, err
		close(p.ready)
		if err != nil {
			b.mu.Lock()
			if b.pools[p.key] == p {
				delete(b.pools, p.key)
			}
			p.refs--
			b.mu.Unlock()
			return nil, err
		}
		b.log.Info("opened resource pool", "type", p.typ, "target", p.target, "key", p.key,
			"secret", p.secret, "secret_version", p.version.version)
		b.retireOlder(p)
	} else {
		if err := waitReady(ctx, p); err != nil {
			b.releasePool(p)
			return nil, err
		}
		if p.err != nil {
			b.releasePool(p)
			return nil, p.err
		}
	}
	return p, nil
}

// waitReady waits until p has been created, or ctx ends.
func waitReady(ctx context.Context, p *pool) error {
	select {
	case <-p.ready: // the usual case: this spares ctx making a Done channel
		return nil
	default:
	}
	select {
	case <-p.ready:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// retireOlder marks the pools of p's lineage with older secret versions
// as retired and closes those nobody uses.
func (b *Broker) retireOlder(p *pool) {
	if p.secret == "" {
		return
	}
	var drained []*pool
	b.mu.Lock()
	if cur, ok := b.latest[p.lineage]; !ok || p.version.newer(cur) {
		b.latest[p.lineage] = p.version
	}
	newest := b.latest[p.lineage]
	for k, q := range b.pools {
		if q.lineage != p.lineage || q == p || q.retired || !newest.newer(q.version) {
			continue
		}
		q.retired = true
		if q.refs == 0 {
			select {
			case <-q.ready:
				delete(b.pools, k)
				q.removed = true
				drained = append(drained, q)
			default:
			}
		}
	}
	b.mu.Unlock()
	for _, q := range drained {
		b.closePool(q, "secret rotated")
	}
}

// releasePool drops a reference; a retired pool closes with its last one.
func (b *Broker) releasePool(p *pool) {
	b.mu.Lock()
	p.refs--
	p.lastUsed = time.Now()
	closeNow := p.refs == 0 && p.retired && !p.removed
	if closeNow {
		if b.pools[p.key] == p {
			delete(b.pools, p.key)
		}
		p.removed = true
	}
	b.mu.Unlock()
	if closeNow {
		b.closePool(p, "secret rotated")
	}
}

// dialer returns the dial function every pool uses: the per-target cap,
// then the address guard.
func (b *Broker) dialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := b.cfg.Guard.Dialer(net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second})
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		slots := b.slots(addr)
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("connection cap of %d reached for %s: %w", cap(slots), addr, ErrExhausted)
		}
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			<-slots
			return nil, err
		}
		return &slotConn{Conn: c, slots: slots}, nil
	}
}

func (b *Broker) slots(addr string) chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.targets[addr]
	if !ok {
		s = make(chan struct{}, b.cfg.MaxConnsPerTarget)
		b.targets[addr] = s
	}
	return s
}

// slotConn gives its target slot back once when closed.
type slotConn struct {
	net.Conn
	slots chan struct{}
	once  sync.Once
}

func (c *slotConn) Close() error {
	c.once.Do(func() { <-c.slots })
	return c.Conn.Close()
}

// poolKeys hashes the parts that make two specs share a pool: lineage
// leaves out the secret version (pools of one lineage replace each other
// when the secret rotates), key includes it.
func poolKeys(typ string, canonical any, secret, credKey string, v secretVersion) (lineage, key string) {
	data, _ := json.Marshal([]any{typ, canonical, secret, credKey}) // plain values and config structs
	h := sha256.New()
	h.Write(data)
	sum := h.Sum(nil)
	lineage = hex.EncodeToString(sum[:12])
	fmt.Fprintf(h, "|%d|%d", v.version, v.created.UnixNano())
	sum = h.Sum(sum[:0])
	return lineage, hex.EncodeToString(sum[:12])
}

// redacted returns err with every secret value of red removed from its
// message; errors.Is still sees the original chain.
func redacted(red *secrets.Redactor, err error) error {
	if err == nil {
		return nil
	}
	return &redactedError{msg: red.String(err.Error()), err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
