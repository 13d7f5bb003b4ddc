package httppool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Options are the broker's hooks into a Pool.
type Options struct {
	// Dial opens network connections (address guard, per-target cap).
	// Nil means a plain net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// OnError, if set, is called with every transport error (not
	// cancellations, not HTTP error statuses).
	OnError func(error)
}

// Pool is an HTTP transport for one http_client config. It is safe for
// concurrent use.
type Pool struct {
	cfg       Config
	opts      Options
	transport *http.Transport
	client    *http.Client
	origin    string

	conns    atomic.Int64 // open connections
	inFlight atomic.Int64
	requests atomic.Int64
}

// Stats are a pool's live counters.
type Stats struct {
	Size     int   // open connections
	Idle     int   // open connections without a request in flight (estimate)
	InUse    int   // requests in flight
	Max      int   // connection_limit per host
	Acquires int64 // requests sent
}

// New creates the transport. It does not connect.
func New(_ context.Context, cfg Config, opts Options) (*Pool, error) {
	p := &Pool{cfg: cfg, opts: opts}
	dial := opts.Dial
	if dial == nil {
		d := &net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}
		dial = d.DialContext
	}
	p.transport = &http.Transport{
		Proxy: nil, // never route through environment proxies: the guard checks real peers
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			p.conns.Add(1)
			return &countedConn{Conn: c, n: &p.conns}, nil
		},
		ForceAttemptHTTP2:     true,
		MaxConnsPerHost:       cfg.ConnectionLimit,
		MaxIdleConns:          cfg.ConnectionLimit,
		MaxIdleConnsPerHost:   cfg.ConnectionLimit,
		IdleConnTimeout:       cfg.KeepaliveTimeout,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	var rt http.RoundTripper = p.transport
	if cfg.creds != nil {
		p.origin = origin(cfg.base)
		rt = &credentialTransport{next: p.transport, origin: p.origin, creds: cfg.creds}
	}
	p.client = &http.Client{Transport: rt}
	return p, nil
}

// Config returns the pool's config.
func (p *Pool) Config() Config { return p.cfg }

// Stats returns the pool's live counters.
func (p *Pool) Stats() Stats {
	size, inUse := int(p.conns.Load()), int(p.inFlight.Load())
	return Stats{Size: size, Idle: max(size-inUse, 0), InUse: inUse,
		Max: p.cfg.ConnectionLimit, Acquires: p.requests.Load()}
}

// Ping sends HEAD base_url and accepts any HTTP answer (a status means the
// server is reachable).
func (p *Pool) Ping(ctx context.Context) error {
	if p.cfg.base == nil {
		return errors.New("http_client without base_url: nothing to check")
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, p.cfg.base.String(), nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("reach %s: %w", p.cfg.Target(), err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	return resp.Body.Close()
}

// Close closes idle connections. Requests in flight finish on their own
// connections, which close when they end.
func (p *Pool) Close() { p.transport.CloseIdleConnections() }

// Handle returns a new handle named name for one node attempt.
func (p *Pool) Handle(name string) *Handle {
	h := &Handle{pool: p, name: name}
	h.attrs = h.methods()
	return h
}

func (p *Pool) noteError(err error) {
	if err == nil || p.opts.OnError == nil || errors.Is(err, context.Canceled) {
		return
	}
	p.opts.OnError(err)
}

// credentialTransport adds the credential headers to requests for origin,
// including redirect hops back to it, and to no other request.
type credentialTransport struct {
	next   http.RoundTripper
	origin string
	creds  http.Header
}

func (t *credentialTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if origin(req.URL) != t.origin {
		return t.next.RoundTrip(req)
	}
	r := req.Clone(req.Context())
	for k, vs := range t.creds {
		r.Header[k] = vs
	}
	return t.next.RoundTrip(r)
}

// countedConn decrements the open-connection count once when closed.
type countedConn struct {
	net.Conn
	n    *atomic.Int64
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.n.Add(-1) })
	return c.Conn.Close()
}
