package resources_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/kailash-gateway/kgw/internal/testenv"
	"github.com/kailash-gateway/kgw/resources"
	"github.com/kailash-gateway/kgw/store"
)

// serverConns counts the gateway's connections to the test database.
func serverConns(t testing.TB, conn *pgx.Conn, db string) int {
	t.Helper()
	var n int
	err := conn.QueryRow(context.Background(),
		"SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'kgw'", db).Scan(&n)
	if err != nil {
		t.Fatalf("count connections: %v", err)
	}
	return n
}

func adminConn(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// TestPoolSharing runs 100 sessions with the same spec concurrently: they
// share one pool and the server never sees more than max_size connections.
func TestPoolSharing(t *testing.T) {
	pg := testenv.Postgres(t)
	dsn := pg.NewDatabase(t)
	dbName := pgConfig(t, dsn, nil)["database"].(string)
	b := resources.NewBroker(resources.Config{Logger: quiet})
	defer b.Close()
	const maxSize = 3
	admin := adminConn(t, pg.DSN)

	var peak atomic.Int64
	var g errgroup.Group
	g.SetLimit(20)
	for i := range 100 {
		g.Go(func() error {
			specs := map[string]store.ResourceSpec{"db": dbSpec(t, dsn, map[string]any{"max_size": int64(maxSize)})}
			sess := b.Session(specs, nil)
			defer sess.Close()
			_, err := exec(t.Context(), sess, fmt.Sprintf(`
db = get_resource("db")
v = db.fetchval("SELECT $1::int FROM pg_sleep(0.005)", %d)
if v != %d:
    fail("got %%r" %% v)
`, i, i))
			if i%10 == 0 {
				peak.Store(max(peak.Load(), int64(len(b.Pools()))))
			}
			return err
		})
		if i%10 == 0 {
			if n := serverConns(t, admin, dbName); n > maxSize {
				t.Errorf("server has %d connections, max_size is %d", n, maxSize)
			}
		}
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if n := serverConns(t, admin, dbName); n > maxSize {
		t.Errorf("server has %d connections, max_size is %d", n, maxSize)
	}
	waitPoolsIdle(t, b)
	pools := b.Pools()
	if len(pools) != 1 || peak.Load() != 1 {
		t.Fatalf("pools = %+v (peak %d), want exactly one", pools, peak.Load())
	}
	p := pools[0]
	if p.Type != "database" || p.Max != maxSize || p.Acquires < 100 || p.InUse != 0 || p.Sessions != 0 {
		t.Errorf("pool stats = %+v", p)
	}
	if strings.Contains(p.Target, "postgres@") || !strings.HasSuffix(p.Target, "/"+dbName) {
		t.Errorf("target = %q, want host:port/db without credentials", p.Target)
	}
}

// TestExhaustion holds every connection of a max_size=1 pool in one
// session; another session waits for the timeout and fails with the
// documented message.
func TestExhaustion(t *testing.T) {
	dsn := testenv.Postgres(t).NewDatabase(t)
	b := resources.NewBroker(resources.Config{Logger: quiet})
	defer b.Close()
	specs := map[string]store.ResourceSpec{"db": dbSpec(t, dsn, map[string]any{"max_size": int64(1), "timeout": 0.3})}

	holder := b.Session(specs, nil)
	if _, err := exec(t.Context(), holder, `conn = get_resource("db").acquire()`); err != nil {
		t.Fatal(err)
	}
	waiter := b.Session(specs, nil)
	_, err := exec(t.Context(), waiter, `get_resource("db").fetchval("SELECT 1")`)
	waiter.Close()
	if !errors.Is(err, resources.ErrExhausted) {
		t.Fatalf("fetchval on an exhausted pool = %v, want ErrExhausted", err)
	}
	if !strings.Contains(err.Error(), "connection pool exhausted for resource 'db' (max_size=1, waited 0.3s)") {
		t.Errorf("message = %q", err)
	}
	holder.Close() // returns the connection
	mustExec(t, b, specs, `get_resource("db").fetchval("SELECT 1")`)
}

// TestNoLeaks runs many sessions that end in every way (success, SQL
// error, failed transaction, acquire without release, cancellation,
// timeout); afterwards nothing is checked out and the server holds no more
// connections than the pool's idle set.
func TestNoLeaks(t *testing.T) {
	pg := testenv.Postgres(t)
	dsn := pg.NewDatabase(t)
	dbName := pgConfig(t, dsn, nil)["database"].(string)
	b := resources.NewBroker(resources.Config{Logger: quiet})
	defer b.Close()
	specs := map[string]store.ResourceSpec{"db": dbSpec(t, dsn, map[string]any{"max_size": int64(5)})}
	scripts := []string{
		`get_resource("db").fetchval("SELECT 1")`,
		`get_resource("db").fetch("SELECT * FROM nowhere")`,
		`get_resource("db").transaction(lambda tx: tx.execute("SELECT 1/0"))`,
		`c = get_resource("db").acquire(); c.execute("BEGIN"); c.execute("SELECT 1")`,
		`get_resource("db").transaction(lambda tx: fail("user error"))`,
		`db = get_resource("db")
def f(tx):
    tx.execute("SELECT 1")
    db.acquire().fetchval("SELECT pg_sleep(10)")
db.transaction(f)`, // cancelled below
		`get_resource("db").fetchval("SELECT pg_sleep(10)", timeout=0.05)`,
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range 210 {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx := t.Context()
			code := scripts[i%len(scripts)]
			if strings.Contains(code, "pg_sleep(10)") && !strings.Contains(code, "timeout=") {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				go func() { // cancel once the sleep is running
					for serverBusy(t, pg.DSN, dbName) == 0 && ctx.Err() == nil {
					}
					cancel()
				}()
				defer cancel()
			}
			sess := b.Session(specs, nil)
			defer sess.Close()
			_, _ = exec(ctx, sess, code)
		}()
	}
	wg.Wait()
	// A cancelled statement is stopped before its call returns and its
	// connection goes back to the pool (TestCancelBeforeStatementStarts).
	// A connection that broke instead (cancelled while connecting) is
	// closed by pgxpool in the background; wait for that to finish.
	var p resources.PoolStats
	for range 500 {
		pools := b.Pools()
		if len(pools) != 1 {
			t.Fatalf("pools = %+v", pools)
		}
		if p = pools[0]; p.InUse == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	admin := adminConn(t, pg.DSN)
	if n := serverConns(t, admin, dbName); p.InUse != 0 || n > p.Idle {
		t.Errorf("after all sessions: in use %d, idle %d, server connections %d; want 0 in use and server <= idle", p.InUse, p.Idle, n)
	}
	if p.Errors == 0 || p.LastError == "" {
		t.Errorf("errors = %d, last error %q; want failures counted", p.Errors, p.LastError)
	}
}

func serverBusy(t testing.TB, dsn, db string) int {
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		return 1
	}
	defer c.Close(context.Background())
	var n int
	_ = c.QueryRow(context.Background(),
		"SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND query LIKE '%pg_sleep(10)%' AND state = 'active' AND application_name = 'kgw'", db).Scan(&n)
	return n
}

// TestDatabaseServerRestart stops PostgreSQL during a run: the query fails
// with a clear error, and after a restart the same broker works again.
func TestDatabaseServerRestart(t *testing.T) {
	pg := testenv.NewPostgres(t)
	dsn := pg.NewDatabase(t)
	b := resources.NewBroker(resources.Config{Logger: quiet})
	defer b.Close()
	specs := map[string]store.ResourceSpec{"db": dbSpec(t, dsn, map[string]any{"timeout": 2})}
	mustExec(t, b, specs, `get_resource("db").fetchval("SELECT 1")`)

	if err := pg.Kill(); err != nil {
		t.Fatal(err)
	}
	sess := b.Session(specs, nil)
	_, err := exec(t.Context(), sess, `get_resource("db").fetchval("SELECT 1")`)
	sess.Close()
	if err == nil || !strings.Contains(err.Error(), "db.fetchval") {
		t.Fatalf("query with the server down = %v, want an error naming db.fetchval", err)
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for range 20 { // a stale idle connection may fail once
		sess := b.Session(specs, nil)
		_, lastErr = exec(t.Context(), sess, `v = get_resource("db").fetchval("SELECT 1")`)
		sess.Close()
		if lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("after restart: %v", lastErr)
	}
	if n := len(b.Pools()); n != 1 {
		t.Errorf("pools after restart = %d, want the same single pool", n)
	}
}

// TestSpecContentDecidesPool opens specs in fresh sessions: equal content
// in different maps (including a number written as a float) shares a
// pool, and any changed value, however deep, gets its own, however often
// the broker has seen the earlier spec.
func TestSpecContentDecidesPool(t *testing.T) {
	dsn := testenv.Postgres(t).NewDatabase(t)
	b := resources.NewBroker(resources.Config{Logger: quiet})
	defer b.Close()
	open := func(extra map[string]any) string {
		t.Helper()
		sess := b.Session(map[string]store.ResourceSpec{"db": dbSpec(t, dsn, extra)}, nil)
		defer sess.Close()
		if _, err := sess.Open(t.Context(), "db"); err != nil {
			t.Fatal(err)
		}
		keys := map[string]bool{}
		for _, p := range b.Pools() {
			keys[p.Key] = true
		}
		return fmt.Sprint(len(keys))
	}
	settings := func(v string) map[string]any {
		return map[string]any{"max_size": int64(3), "server_settings": map[string]any{"search_path": v}}
	}
	got := []string{
		open(settings("a")),
		open(settings("a")),
		open(map[string]any{"max_size": 3.0, "server_settings": map[string]any{"search_path": "a"}}),
		open(settings("b")),
		open(settings("a")),
		open(settings("b")),
	}
	if want := []string{"1", "1", "1", "2", "2", "2"}; !slices.Equal(got, want) {
		t.Errorf("pools after each open = %v, want %v", got, want)
	}
}
