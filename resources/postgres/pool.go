// Package postgres is the database resource: a pgx pool shared by every
// execution that uses the same config and secret version, and the Starlark
// handle ("database") through which node code runs queries on it.
//
// A Pool is created by the resource broker. Each node attempt gets its own
// Handle from Pool.Handle; everything the attempt checks out through the
// handle (acquire(), transactions) is given back by Handle.Close, whatever
// way the attempt ended. A connection on which a statement may have changed
// the session state (SET, temporary tables, LISTEN, …) is closed instead of
// going back to the pool, and every other connection is reset before it
// goes back, so that no session state outlives the attempt (session.go has
// the rules).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kailash-gateway/kgw/resources/internal/poolerr"
)

// Options are the broker's hooks into a Pool.
type Options struct {
	// Dial opens network connections (address guard, per-target cap).
	// Nil means a plain net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// OnError, if set, is called with every error a database operation
	// returns (not cancellations), for pool statistics.
	OnError func(error)
}

// Pool is a pgx connection pool for one database resource config. It is
// safe for concurrent use.
type Pool struct {
	cfg     Config
	opts    Options
	pgxPool *pgxpool.Pool
	// lostAt is when (UnixNano) a connection of the pool last failed
	// below SQL (EOF, reset, refused): a connection that went idle before
	// then is pinged before it is handed out (shouldPing), since the server
	// may have restarted under it.
	lostAt atomic.Int64
	// batchReset is whether a call's statement may carry the session
	// reset (reset.go): not when the config makes pgx use the simple
	// protocol, which would join them into one query string.
	batchReset bool
}

// Stats are a pool's live counters.
type Stats struct {
	Size        int           // open connections
	Idle        int           // open and not in use
	InUse       int           // checked out
	Max         int           // max_size
	Acquires    int64         // successful acquires so far
	AcquireWait time.Duration // total time spent waiting in acquire
}

// New creates a pool for cfg. It does not connect (unless min_size > 0, in
// which case connections are opened in the background); the first query
// does. Close must be called.
func New(ctx context.Context, cfg Config, opts Options) (*Pool, error) {
	pc, err := cfg.poolConfig()
	if err != nil {
		return nil, err
	}
	if opts.Dial != nil {
		pc.ConnConfig.DialFunc = opts.Dial
	}
	pc.ConnConfig.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &canceller{conn: c}
	}
	pl := &Pool{cfg: cfg, opts: opts, batchReset: pc.ConnConfig.DefaultQueryExecMode != pgx.QueryExecModeSimpleProtocol}
	pc.AfterConnect = func(_ context.Context, c *pgx.Conn) error {
		registerJSON(c.TypeMap())
		rememberParams(c.PgConn())
		return nil
	}
	pc.ShouldPing = pl.shouldPing
	p, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("create database pool: %w", err)
	}
	pl.pgxPool = p
	return pl, nil
}

// Config returns the pool's config.
func (p *Pool) Config() Config { return p.cfg }

// Stats returns the pool's live counters.
func (p *Pool) Stats() Stats {
	s := p.pgxPool.Stat()
	return Stats{
		Size:        int(s.TotalConns()),
		Idle:        int(s.IdleConns()),
		InUse:       int(s.AcquiredConns()),
		Max:         int(s.MaxConns()),
		Acquires:    s.AcquireCount(),
		AcquireWait: s.AcquireDuration(),
	}
}

// Ping acquires a connection and checks that the server answers.
func (p *Pool) Ping(ctx context.Context) error {
	c, err := p.acquire(ctx, "check")
	if err != nil {
		return err
	}
	defer p.giveBack(c, true, false)
	if err := c.Ping(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// Close closes the pool. It blocks until every checked-out connection has
// been returned, so the broker calls it once no handle uses the pool.
func (p *Pool) Close() { p.pgxPool.Close() }

// errAcquireTimeout is the cause of an acquire's context when the pool's
// timeout passes (rather than the caller's context ending).
var errAcquireTimeout = errors.New("pool acquire timed out")

// acquire checks out a connection, waiting at most the config's timeout.
// If the pool stayed full for that long the error wraps ErrExhausted.
func (p *Pool) acquire(ctx context.Context, name string) (*pgxpool.Conn, error) {
	start := time.Now()
	wctx, cancel := context.WithTimeoutCause(ctx, p.cfg.Timeout, errAcquireTimeout)
	c, err := p.pgxPool.Acquire(wctx)
	timedOut := err != nil && context.Cause(wctx) == errAcquireTimeout
	cancel()
	if err == nil {
		return c, nil
	}
	if ctx.Err() == nil && timedOut {
		s := p.pgxPool.Stat()
		if s.TotalConns() >= s.MaxConns() || errors.Is(err, poolerr.ErrExhausted) {
			err = poolerr.Exhausted(name, p.cfg.MaxSize, time.Since(start))
		} else {
			err = fmt.Errorf("connect to database timed out after %s: %w", p.cfg.Timeout, err)
		}
	}
	p.noteError(err)
	return nil, err
}

// shouldPing is pgxpool's ShouldPing hook: ping a connection idle for more
// than a second (pgxpool's default), or one that went idle before a
// connection of the pool was lost.
func (p *Pool) shouldPing(_ context.Context, params pgxpool.ShouldPingParams) bool {
	if params.IdleDuration > time.Second {
		return true
	}
	lost := p.lostAt.Load()
	return lost != 0 && time.Now().Add(-params.IdleDuration).UnixNano() <= lost
}

// noteError reports err to the broker unless it is a cancellation.
func (p *Pool) noteError(err error) {
	var pgErr *pgconn.PgError
	if err != nil && !errors.As(err, &pgErr) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		p.lostAt.Store(time.Now().UnixNano())
	}
	if err == nil || p.opts.OnError == nil || errors.Is(err, context.Canceled) {
		return
	}
	p.opts.OnError(err)
}
