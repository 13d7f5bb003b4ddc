package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.starlark.net/starlark"

	"github.com/kailash-gateway/kgw/internal/starval"
)

// querier is what *pgx.Conn and pgx.Tx have in common.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	Begin(ctx context.Context) (pgx.Tx, error)
}

// queryFunc runs the statement sql with args on q and returns its result
// and command tag.
type queryFunc func(ctx context.Context, q querier, sql string, args []any) (starlark.Value, pgconn.CommandTag, error)

// runner runs f against a querier: the pool checks a connection out for
// the call, an acquired connection and a transaction use their own.
type runner interface {
	starlark.Value
	// run runs f(ctx, q, sql, args) and returns its result. sql and the
	// command tag f returns decide whether the connection's session state
	// may have changed (see session.go).
	run(ctx context.Context, sql string, args []any, f queryFunc) (starlark.Value, error)
	// begin starts a transaction and returns it with a function that ends
	// the lease it needs (for the pool: releasing the connection).
	begin(ctx context.Context) (*txValue, error)
	label() string
}

// Handle is the "database" value a node attempt gets from get_resource.
// It is safe for concurrent use by the attempt's threads. Close releases
// every connection checked out through it.
type Handle struct {
	pool *Pool
	name string

	mu     sync.Mutex
	held   map[*heldConn]struct{}
	closed bool
}

// heldConn is a connection checked out for longer than one call: by
// acquire() or by a transaction on the pool.
type heldConn struct {
	h        *Handle
	mu       sync.Mutex // serialises use of conn
	conn     pooledConn
	released bool
	tx       pgx.Tx // open top-level transaction, if any
	// dirty is set once a statement run on conn may have changed its
	// session state: then release closes conn instead of pooling it.
	dirty bool
}

// pooledConn is the part of *pgxpool.Conn a heldConn uses.
type pooledConn interface {
	Conn() *pgx.Conn
	Release()
	Hijack() *pgx.Conn
}

var (
	_ starlark.HasAttrs = (*Handle)(nil)
	_ starlark.HasAttrs = (*connValue)(nil)
	_ starlark.HasAttrs = (*txValue)(nil)
)

// Handle returns a new handle named name (the resource name, used in
// errors) for one node attempt.
func (p *Pool) Handle(name string) *Handle {
	return &Handle{pool: p, name: name}
}

// Close rolls back open transactions and returns every connection the
// handle checked out. Later calls on the handle fail. Close is idempotent.
func (h *Handle) Close() {
	h.mu.Lock()
	h.closed = true
	var held []*heldConn
	for c := range h.held {
		held = append(held, c)
	}
	h.held = nil
	h.mu.Unlock()
	for _, c := range held {
		c.release()
	}
}

// Held reports how many connections the handle has checked out beyond a
// single call (acquired connections and transactions in progress).
func (h *Handle) Held() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.held)
}

func (h *Handle) String() string        { return fmt.Sprintf("<database %q>", h.name) }
func (h *Handle) Type() string          { return "database" }
func (h *Handle) Freeze()               {}
func (h *Handle) Truth() starlark.Bool  { return starlark.True }
func (h *Handle) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable type: database") }
func (h *Handle) label() string         { return h.name }

// Attr returns a method or the size/freesize attributes.
func (h *Handle) Attr(name string) (starlark.Value, error) {
	switch name {
	case "size":
		return starlark.MakeInt(h.pool.Stats().Size), nil
	case "freesize":
		return starlark.MakeInt(h.pool.Stats().Idle), nil
	}
	if name == "acquire" {
		return starlark.NewBuiltin("acquire", h.acquire), nil
	}
	if b := handleMethods[name]; b != nil {
		return b.BindReceiver(h), nil
	}
	return nil, starval.NoSuchAttr(h.Type(), name, h.AttrNames())
}

// handleMethods are the query methods of every Handle, which Attr binds
// to the handle (one allocation, where building them for each handle
// would take several).
var handleMethods = func() map[string]*starlark.Builtin {
	m := make(map[string]*starlark.Builtin, len(methodNames))
	for _, name := range methodNames {
		m[name] = method(nil, nil, name)
	}
	return m
}()

// AttrNames lists the handle's attributes.
func (h *Handle) AttrNames() []string {
	return attrNames(nil, append([]string{"acquire", "size", "freesize"}, methodNames...)...)
}

func (h *Handle) checkOpen() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return fmt.Errorf("resource '%s' is no longer available: the node attempt that opened it has ended", h.name)
	}
	return nil
}

func (h *Handle) run(ctx context.Context, sql string, args []any, f queryFunc) (starlark.Value, error) {
	if err := h.checkOpen(); err != nil {
		return nil, err
	}
	clean := cleanSQL(sql)
	c, err := h.pool.acquire(ctx, h.name)
	if err != nil {
		return nil, err
	}
	q := &resetAfter{conn: c.Conn(), try: clean && h.pool.batchReset}
	defer func() { h.pool.giveBack(c, clean, q.done) }()
	qctx, w := watchStatement(ctx, c.Conn().PgConn())
	out, tag, err := f(qctx, q, sql, args)
	w.end()
	if err == nil && !cleanTag(tag) {
		clean = false
	}
	return out, err
}

// hold checks a connection out and registers it for Close.
func (h *Handle) hold(ctx context.Context) (*heldConn, error) {
	if err := h.checkOpen(); err != nil {
		return nil, err
	}
	c, err := h.pool.acquire(ctx, h.name)
	if err != nil {
		return nil, err
	}
	hc := &heldConn{h: h, conn: c}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		h.pool.giveBack(c, true, false)
		return nil, h.checkOpen()
	}
	if h.held == nil {
		h.held = make(map[*heldConn]struct{})
	}
	h.held[hc] = struct{}{}
	h.mu.Unlock()
	return hc, nil
}

func (h *Handle) begin(ctx context.Context) (*txValue, error) {
	hc, err := h.hold(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := hc.conn.Conn().Begin(ctx)
	if err != nil {
		hc.release()
		return nil, err
	}
	hc.mu.Lock()
	hc.tx = tx
	hc.mu.Unlock()
	return &txValue{name: h.name, conn: hc, tx: tx, top: true, endLease: hc.release}, nil
}

func (h *Handle) acquire(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	hc, err := h.hold(starval.Context(th))
	if err != nil {
		return nil, h.wrap("acquire", err)
	}
	cv := &connValue{hc: hc}
	cv.attrs = methods(cv, h)
	cv.attrs["release"] = starlark.NewBuiltin("release", cv.release)
	return cv, nil
}

// wrap marks err, a failure of the database during method, as a
// resource error ("db.fetch: cause").
func (h *Handle) wrap(method string, err error) error {
	return starval.NewResourceError(h.name, method, err)
}

// release rolls back an open transaction and returns the connection, or
// closes it if its session state may have changed.
func (c *heldConn) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.released {
		return
	}
	c.released = true
	if c.tx != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = c.tx.Rollback(ctx) // if it fails the pool discards the connection
		cancel()
		c.tx = nil
	}
	c.h.pool.giveBack(c.conn, !c.dirty, false)
	c.h.mu.Lock()
	delete(c.h.held, c)
	c.h.mu.Unlock()
}

func (c *heldConn) use(ctx context.Context, f func(q querier) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.released {
		return errors.New("connection already released")
	}
	return f(c.conn.Conn())
}

// exec runs f(ctx, q, sql, args) on the connection (q is tx if not nil,
// else the connection), and marks the connection dirty if sql or the
// command tag f returns may have changed its session state.
func (c *heldConn) exec(ctx context.Context, tx *txValue, sql string, args []any, f queryFunc) (starlark.Value, error) {
	clean := cleanSQL(sql)
	var out starlark.Value
	err := c.use(ctx, func(q querier) error {
		if !clean {
			c.dirty = true
		}
		if tx != nil {
			if tx.done {
				return errTxDone
			}
			q = tx.tx
		}
		var tag pgconn.CommandTag
		var err error
		qctx, w := watchStatement(ctx, c.conn.Conn().PgConn())
		out, tag, err = f(qctx, q, sql, args)
		w.end()
		if err == nil && !cleanTag(tag) {
			c.dirty = true
		}
		return err
	})
	return out, err
}

// connValue is what acquire() returns: one connection held until release()
// or the end of the attempt.
type connValue struct {
	hc    *heldConn
	attrs map[string]*starlark.Builtin
}

func (c *connValue) String() string       { return fmt.Sprintf("<database connection %q>", c.hc.h.name) }
func (c *connValue) Type() string         { return "database.connection" }
func (c *connValue) Freeze()              {}
func (c *connValue) Truth() starlark.Bool { return starlark.True }
func (c *connValue) Hash() (uint32, error) {
	return 0, fmt.Errorf("unhashable type: database.connection")
}
func (c *connValue) label() string       { return c.hc.h.name }
func (c *connValue) AttrNames() []string { return attrNames(c.attrs, "size", "freesize") }

func (c *connValue) Attr(name string) (starlark.Value, error) {
	if name == "size" || name == "freesize" {
		return c.hc.h.Attr(name)
	}
	if b, ok := c.attrs[name]; ok {
		return b, nil
	}
	return nil, starval.NoSuchAttr(c.Type(), name, c.AttrNames())
}

func (c *connValue) run(ctx context.Context, sql string, args []any, f queryFunc) (starlark.Value, error) {
	return c.hc.exec(ctx, nil, sql, args, f)
}

func (c *connValue) begin(ctx context.Context) (*txValue, error) {
	var tv *txValue
	err := c.hc.use(ctx, func(q querier) error {
		if c.hc.tx != nil {
			return errors.New("a transaction is already open on this connection; use its tx value")
		}
		tx, err := q.Begin(ctx)
		if err != nil {
			return err
		}
		c.hc.tx = tx
		tv = &txValue{name: c.hc.h.name, conn: c.hc, tx: tx, top: true}
		return nil
	})
	return tv, err
}

func (c *connValue) release(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	c.hc.release()
	return starlark.None, nil
}

// txValue is the tx passed to transaction(fn).
type txValue struct {
	name     string
	conn     *heldConn
	tx       pgx.Tx
	top      bool   // outermost transaction on its connection
	endLease func() // called after commit/rollback (pool transactions)
	done     bool   // guarded by conn.mu
	attrs    map[string]*starlark.Builtin
}

func (t *txValue) String() string       { return fmt.Sprintf("<database transaction %q>", t.name) }
func (t *txValue) Type() string         { return "database.transaction" }
func (t *txValue) Freeze()              {}
func (t *txValue) Truth() starlark.Bool { return starlark.True }
func (t *txValue) Hash() (uint32, error) {
	return 0, fmt.Errorf("unhashable type: database.transaction")
}
func (t *txValue) label() string       { return t.name }
func (t *txValue) AttrNames() []string { return attrNames(t.attrs) }

func (t *txValue) Attr(name string) (starlark.Value, error) {
	if b, ok := t.attrs[name]; ok {
		return b, nil
	}
	return nil, starval.NoSuchAttr(t.Type(), name, t.AttrNames())
}

func (t *txValue) run(ctx context.Context, sql string, args []any, f queryFunc) (starlark.Value, error) {
	return t.conn.exec(ctx, t, sql, args, f)
}

var errTxDone = errors.New("transaction already finished")

func (t *txValue) begin(ctx context.Context) (*txValue, error) {
	var tv *txValue
	err := t.conn.use(ctx, func(querier) error {
		if t.done {
			return errTxDone
		}
		sp, err := t.tx.Begin(ctx) // a savepoint
		if err != nil {
			return err
		}
		tv = &txValue{name: t.name, conn: t.conn, tx: sp}
		return nil
	})
	return tv, err
}

// end commits or rolls back the transaction and ends its lease.
func (t *txValue) end(ctx context.Context, commit bool) error {
	err := t.conn.use(ctx, func(querier) error {
		if t.done {
			return nil
		}
		t.done = true
		var err error
		if commit {
			err = t.tx.Commit(ctx)
		} else {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			err = t.tx.Rollback(rctx)
			cancel()
		}
		if t.top {
			t.conn.tx = nil
		}
		return err
	})
	if t.endLease != nil {
		t.endLease()
	}
	return err
}

func attrNames(m map[string]*starlark.Builtin, extra ...string) []string {
	names := slices.Clone(extra)
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}
