// Package redis is the cache resource: a rueidis client shared by every
// execution that uses the same config and secret version, and the Starlark
// handle ("cache") through which node code runs commands on it.
//
// rueidis pipelines the commands of all callers over a few connections, so
// a cache "pool" holds no per-caller connections and never runs out; a
// Handle only counts the commands in flight.
package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/kailash-gateway/kgw/resources/internal/confmap"
)

// Config is a cache resource's configuration with defaults applied, plus
// credentials merged from a secret (kept unexported).
type Config struct {
	Host            string `json:"host"`
	Port            int    `json:"port"`
	DB              int    `json:"db"`
	TLS             bool   `json:"tls"`
	DecodeResponses bool   `json:"decode_responses"`

	username string
	password string
}

// Defaults of the cache config keys.
const (
	DefaultHost = "localhost"
	DefaultPort = 6379
	dialTimeout = 10 * time.Second
)

// ParseConfig reads a cache config map, applies the defaults and checks
// every key. Unknown keys are errors.
func ParseConfig(m map[string]any) (Config, error) {
	r := confmap.New("cache config", m)
	c := Config{
		Host:            r.String("host", DefaultHost),
		Port:            r.Int("port", DefaultPort),
		DB:              r.Int("db", 0),
		TLS:             r.Bool("tls", false),
		DecodeResponses: r.Bool("decode_responses", true),
	}
	if err := r.Err(true); err != nil {
		return Config{}, err
	}
	switch {
	case c.Host == "":
		return Config{}, errors.New("cache config: host is empty")
	case c.Port < 1 || c.Port > 65535:
		return Config{}, fmt.Errorf("cache config: port %d out of range", c.Port)
	case c.DB < 0 || c.DB > 1<<20:
		return Config{}, fmt.Errorf("cache config: db %d out of range", c.DB)
	}
	return c, nil
}

// MergeCredentials merges a secret's username and password into c. Errors
// never contain values.
func (c *Config) MergeCredentials(values map[string]any) error {
	r := confmap.New("cache credentials", values)
	c.username = r.String("username", c.username)
	c.password = r.String("password", c.password)
	return r.Err(false)
}

// Hosts returns where the client connects, as "host:port", for checking
// against a secret's allowed hosts.
func (c Config) Hosts() []string { return []string{net.JoinHostPort(c.Host, strconv.Itoa(c.Port))} }

// Target describes where the client connects: "host:port/db".
func (c Config) Target() string {
	return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) + "/" + strconv.Itoa(c.DB)
}

// Options are the broker's hooks into a Pool.
type Options struct {
	// Dial opens network connections (address guard, per-target cap).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// OnError, if set, is called with every error a command returns
	// (not cancellations, not Redis nil replies).
	OnError func(error)
}

// Pool is a rueidis client for one cache resource config. It is safe for
// concurrent use.
type Pool struct {
	cfg      Config
	opts     Options
	client   rueidis.Client
	inFlight atomic.Int64
	commands atomic.Int64
}

// Stats are a pool's live counters.
type Stats struct {
	Size     int   // connections (1: commands are pipelined)
	InUse    int   // commands in flight
	Acquires int64 // commands sent
}

// New creates the client and connects to the server, failing if it cannot.
func New(ctx context.Context, cfg Config, opts Options) (*Pool, error) {
	opt := rueidis.ClientOption{
		InitAddress:       []string{net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))},
		Username:          cfg.username,
		Password:          cfg.password,
		SelectDB:          cfg.DB,
		DisableCache:      true,
		ForceSingleClient: true,
		Dialer:            net.Dialer{Timeout: dialTimeout},
	}
	if cfg.TLS {
		opt.TLSConfig = &tls.Config{ServerName: cfg.Host, MinVersion: tls.VersionTLS12}
	}
	if opts.Dial != nil {
		opt.DialCtxFn = func(ctx context.Context, addr string, d *net.Dialer, tc *tls.Config) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, dialTimeout)
			defer cancel()
			conn, err := opts.Dial(ctx, "tcp", addr)
			if err != nil || tc == nil {
				return conn, err
			}
			tlsConn := tls.Client(conn, tc)
			if err := tlsConn.HandshakeContext(ctx); err != nil {
				conn.Close()
				return nil, err
			}
			return tlsConn, nil
		}
	}
	client, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("connect to cache %s: %w", cfg.Target(), err)
	}
	return &Pool{cfg: cfg, opts: opts, client: client}, nil
}

// Config returns the pool's config.
func (p *Pool) Config() Config { return p.cfg }

// Stats returns the pool's live counters.
func (p *Pool) Stats() Stats {
	return Stats{Size: 1, InUse: int(p.inFlight.Load()), Acquires: p.commands.Load()}
}

// Ping checks that the server answers.
func (p *Pool) Ping(ctx context.Context) error {
	if err := p.client.Do(ctx, p.client.B().Ping().Build()).Error(); err != nil {
		return fmt.Errorf("ping cache: %w", err)
	}
	return nil
}

// Close closes the client and waits for its background work to stop.
func (p *Pool) Close() { p.client.Close() }

// Handle returns a new handle named name (the resource name, used in
// errors) for one node attempt.
func (p *Pool) Handle(name string) *Handle {
	h := &Handle{pool: p, name: name}
	h.attrs = h.methods()
	return h
}

func (p *Pool) noteError(err error) {
	if err == nil || p.opts.OnError == nil || errors.Is(err, context.Canceled) || rueidis.IsRedisNil(err) {
		return
	}
	p.opts.OnError(err)
}
