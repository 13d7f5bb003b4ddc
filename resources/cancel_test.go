package resources_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kailash-gateway/kgw/internal/testenv"
	"github.com/kailash-gateway/kgw/resources"
	"github.com/kailash-gateway/kgw/store"
)

// TestCancelBeforeStatementStarts cancels a node while its statement is
// still on its way to PostgreSQL, so that the first cancel request reaches
// an idle backend, which ignores it; the statement then starts. The call
// must still stop the statement and give the connection back at once: the
// pool shows nothing in use and the server runs nothing once the session
// has closed. (Before the fix the statement ran to completion while pgx
// waited for the server, keeping the connection checked out: the flaky
// TestNoLeaks.)
func TestCancelBeforeStatementStarts(t *testing.T) {
	pg := testenv.Postgres(t)
	dsn := pg.NewDatabase(t)
	dbName := pgConfig(t, dsn, nil)["database"].(string)
	px := newHoldProxy(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(pg.Port)))
	cfg := pgConfig(t, dsn, map[string]any{"max_size": int64(1)})
	cfg["host"], cfg["port"] = "127.0.0.1", int64(px.port())
	b := resources.NewBroker(resources.Config{Logger: quiet})
	defer b.Close()
	specs := map[string]store.ResourceSpec{"db": {Type: resources.TypeDatabase, Config: cfg}}

	sess := b.Session(specs, nil)
	defer sess.Close()
	// Prepare the statement first, so that the cancelled call sends one
	// message (bind and execute) that the proxy can hold.
	if _, err := exec(t.Context(), sess, `get_resource("db").fetchval("SELECT pg_sleep($1)", 0)`); err != nil {
		t.Fatal(err)
	}
	waitPoolsIdle(t, b) // the reset after that call has gone through the proxy
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	px.holdNext(true)
	done := make(chan error, 1)
	go func() {
		_, err := exec(ctx, sess, `get_resource("db").fetchval("SELECT pg_sleep($1)", 30)`)
		done <- err
	}()
	<-px.held // the statement is held; the backend is idle
	cancel()
	err := <-done
	sess.Close()
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled fetchval = %v, want an error holding context.Canceled", err)
	}
	if !px.cancelSeen() {
		t.Error("no cancel request went through the proxy")
	}
	waitPoolsIdle(t, b)
	pools := b.Pools()
	if len(pools) != 1 || pools[0].InUse != 0 || pools[0].Idle != 1 {
		t.Errorf("pools after the session = %+v, want one pool, nothing in use, the connection kept idle", pools)
	}
	admin := adminConn(t, pg.DSN)
	var active int
	if err := admin.QueryRow(t.Context(), "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'kgw' AND state <> 'idle'", dbName).Scan(&active); err != nil {
		t.Fatal(err)
	}
	if active != 0 {
		t.Errorf("server still runs %d statements of the gateway after the cancelled call returned", active)
	}
	// The connection is still usable.
	mustExec(t, b, specs, `get_resource("db").fetchval("SELECT 1")`)
}

// TestCancelUnansweredStatement cancels a call whose statement never
// reaches the server (it seems hung): every cancel request is ignored, so
// they are repeated, and the call still returns, failing with the
// cancellation, once the handle gives up and cuts the connection.
func TestCancelUnansweredStatement(t *testing.T) {
	pg := testenv.Postgres(t)
	dsn := pg.NewDatabase(t)
	px := newHoldProxy(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(pg.Port)))
	cfg := pgConfig(t, dsn, map[string]any{"max_size": int64(1)})
	cfg["host"], cfg["port"] = "127.0.0.1", int64(px.port())
	b := resources.NewBroker(resources.Config{Logger: quiet})
	defer b.Close()
	defer px.close() // before the broker waits for the cut connection's cleanup
	specs := map[string]store.ResourceSpec{"db": {Type: resources.TypeDatabase, Config: cfg}}

	sess := b.Session(specs, nil)
	defer sess.Close()
	if _, err := exec(t.Context(), sess, `get_resource("db").fetchval("SELECT pg_sleep($1)", 0)`); err != nil {
		t.Fatal(err)
	}
	waitPoolsIdle(t, b)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	px.holdNext(false)
	done := make(chan error, 1)
	go func() {
		_, err := exec(ctx, sess, `get_resource("db").fetchval("SELECT pg_sleep($1)", 30)`)
		done <- err
	}()
	<-px.held
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled fetchval = %v, want an error holding context.Canceled", err)
	}
	if n := px.cancels.Load(); n < 2 {
		t.Errorf("%d cancel requests reached the proxy, want them repeated", n)
	}
}

// holdProxy relays TCP connections to target. After holdNext, it holds the
// next chunk a client sends: until a connection opened while the chunk is
// held (pgx's cancel request) has ended, or for good (the server seems
// hung), then forwards it.
type holdProxy struct {
	ln     net.Listener
	target string

	hold     atomic.Bool
	untilCxl atomic.Bool // release the held chunk after a cancel request
	holding  atomic.Bool
	held     chan struct{}
	release  chan struct{}
	released sync.Once
	cancels  atomic.Int32

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newHoldProxy(t testing.TB, target string) *holdProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdProxy{ln: ln, target: target, held: make(chan struct{}, 1), release: make(chan struct{}), conns: []net.Conn{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *holdProxy) port() int        { return p.ln.Addr().(*net.TCPAddr).Port }
func (p *holdProxy) cancelSeen() bool { return p.cancels.Load() > 0 }

// holdNext holds the next chunk a client sends, until a cancel request
// has gone through (untilCancel) or until the proxy closes.
func (p *holdProxy) holdNext(untilCancel bool) {
	p.untilCxl.Store(untilCancel)
	p.hold.Store(true)
}

func (p *holdProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.relay(c)
		}()
	}
}

// track registers conns for close; it reports false once closed.
func (p *holdProxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return false
	}
	p.conns = append(p.conns, conns...)
	return true
}

func (p *holdProxy) relay(client net.Conn) {
	defer client.Close()
	cancelConn := p.holding.Load() // opened while a chunk is held
	if cancelConn {
		p.cancels.Add(1)
		if p.untilCxl.Load() {
			defer p.released.Do(func() { close(p.release) })
		}
	}
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	if !p.track(client, server) {
		return
	}
	var back sync.WaitGroup
	back.Add(1)
	go func() {
		defer back.Done()
		_, _ = io.Copy(client, server)
		_ = client.Close()
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			if p.hold.CompareAndSwap(true, false) {
				p.holding.Store(true)
				p.held <- struct{}{}
				<-p.release
			}
			if _, werr := server.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	_ = server.Close()
	back.Wait()
}

func (p *holdProxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	p.released.Do(func() { close(p.release) })
	p.wg.Wait()
}
