package postgres

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.starlark.net/starlark"

	"github.com/kailash-gateway/kgw/internal/testenv"
)

// resetFixture is a max_size 1 pool on a test database whose network
// writes are counted (one write per round trip the client starts), with
// functions that change session state from inside a clean-looking
// statement, as in resources/session_state_test.go.
type resetFixture struct {
	pool   *Pool
	h      *Handle
	writes atomic.Int64
	admin  *pgx.Conn
}

// countingConn counts the writes made on a connection.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Write(b []byte) (int, error) {
	c.n.Add(1)
	return c.Conn.Write(b)
}

func newResetFixture(t *testing.T) *resetFixture {
	t.Helper()
	return newResetFixtureDSN(t, "")
}

// newResetFixtureDSN is newResetFixture with the dsn's query parameters
// (query) added to the pool's connection string.
func newResetFixtureDSN(t *testing.T, query string) *resetFixture {
	t.Helper()
	dsn := testenv.Postgres(t).NewDatabase(t)
	admin, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	for _, sql := range []string{
		"CREATE SCHEMA tenant_7",
		"CREATE TABLE parent (id int PRIMARY KEY)",
		"CREATE TABLE child (parent_id int REFERENCES parent DEFERRABLE INITIALLY DEFERRED, note text)",
		`CREATE FUNCTION leak_search_path() RETURNS text LANGUAGE plpgsql AS $$
BEGIN RETURN set_config('search' || '_path', 'tenant_7', false); END $$`,
		`CREATE FUNCTION leak_lock() RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_advisory_lock(7); RETURN 'locked'; END $$`,
		// A row of slow_commit makes the commit wait: it runs after the
		// reset statements of the batch.
		"CREATE TABLE slow_commit (v text)",
		`CREATE FUNCTION sleep_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep(10); RETURN NULL; END $$`,
		`CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON slow_commit DEFERRABLE INITIALLY DEFERRED
FOR EACH ROW EXECUTE FUNCTION sleep_at_commit()`,
	} {
		if _, err := admin.Exec(t.Context(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	cfg, err := ParseConfig(map[string]any{
		"host": u.Hostname(), "port": int64(port), "database": u.Path[1:], "user": u.User.Username(),
		"max_size": int64(1),
	})
	if err != nil {
		t.Fatal(err)
	}
	if query != "" {
		if err := cfg.MergeCredentials(map[string]any{"dsn": dsn + "&" + query}); err != nil {
			t.Fatal(err)
		}
	}
	f := &resetFixture{admin: admin}
	var d net.Dialer
	p, err := New(t.Context(), cfg, Options{Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{Conn: c, n: &f.writes}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	f.pool, f.h = p, p.Handle("db")
	t.Cleanup(f.h.Close)
	return f
}

// call runs sql through the handle as method does, waits until the
// connection is back in the pool (the pool's hook has run), and returns
// the result and the number of writes, i.e. round trips, it took.
func (f *resetFixture) call(t *testing.T, ctx context.Context, sql string, args []any, q queryFunc) (starlark.Value, int64, error) {
	t.Helper()
	before := f.writes.Load()
	out, err := f.h.run(ctx, sql, args, q)
	f.idle(t)
	return out, f.writes.Load() - before, err
}

// idle waits until the pool's one connection, if open, is idle again.
func (f *resetFixture) idle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := f.pool.Stats()
		if s.InUse == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection still in use: %+v", s)
		}
		time.Sleep(time.Millisecond)
	}
}

// state is what a new call sees of the session (search_path, advisory
// locks held) and its backend.
func (f *resetFixture) state(t *testing.T) (string, int32) {
	t.Helper()
	out, err := f.h.run(t.Context(), `SELECT current_setting('search_path') || ' locks=' ||
		(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid())`, nil, fetchValue)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := f.h.run(t.Context(), "SELECT pg_backend_pid()", nil, fetchValue)
	if err != nil {
		t.Fatal(err)
	}
	f.idle(t)
	n, _ := starlark.AsInt32(pid)
	return string(out.(starlark.String)), int32(n)
}

const freshState = `"$user", public locks=0`

// TestResetRidesWithStatement: a call on the handle sends its statement
// and the session reset in one round trip, and the reset works: state set
// by a function the statement called is gone for the next call, on the
// same backend. Calls that cannot carry the reset take a second round
// trip, and are reset too.
func TestResetRidesWithStatement(t *testing.T) {
	f := newResetFixture(t)
	ctx := t.Context()
	_, pid := f.state(t) // connects, prepares the reset statements
	tests := []struct {
		name   string
		sql    string
		args   []any
		q      queryFunc
		trips  int64
		result string
	}{
		{"fetchval", "SELECT leak_search_path()", nil, fetchValue, 1, `"tenant_7"`},
		{"fetchval with params", "SELECT leak_search_path() || $1", []any{"!"}, fetchValue, 1, `"tenant_7!"`},
		{"fetchrow", "SELECT leak_search_path() AS p, leak_lock() AS l", nil, fetchFirst, 1, `{"p": "tenant_7", "l": "locked"}`},
		{"fetch", "SELECT leak_search_path() AS p FROM generate_series(1, 3)", nil, fetchAll, 1, `[{"p": "tenant_7"}, {"p": "tenant_7"}, {"p": "tenant_7"}]`},
		{"execute with params", "INSERT INTO parent SELECT $1::int + count(*)::int FROM parent WHERE leak_lock() <> ''", []any{int64(1)}, execute, 1, `"INSERT 0 1"`},
		{"comment and parentheses", "/* c */ ((SELECT leak_search_path()))", nil, fetchValue, 1, `"tenant_7"`},
		// Not carried: these keep the hook's separate reset.
		{"execute without params", "SELECT leak_search_path()", nil, execute, 2, `"SELECT 1"`},
		{"two statements", "SELECT 1; SELECT leak_search_path()", nil, execute, 2, `"SELECT 1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Twice: the first run may prepare the statement (a round trip).
			for i := range 2 {
				out, trips, err := f.call(t, ctx, tt.sql, tt.args, tt.q)
				if err != nil {
					t.Fatal(err)
				}
				if out.String() != tt.result {
					t.Fatalf("result %s, want %s", out, tt.result)
				}
				if i == 1 && trips != tt.trips {
					t.Errorf("%d round trips, want %d", trips, tt.trips)
				}
				if st, p := f.state(t); st != freshState || p != pid {
					t.Fatalf("next call sees %q on backend %d, want %q on %d", st, p, freshState, pid)
				}
			}
		})
	}
}

// TestResetSimpleProtocol: with a dsn that makes pgx use the simple
// protocol, calls keep the separate reset (2 round trips), and it works.
func TestResetSimpleProtocol(t *testing.T) {
	f := newResetFixtureDSN(t, "default_query_exec_mode=simple_protocol")
	ctx := t.Context()
	_, pid := f.state(t)
	for range 2 {
		out, trips, err := f.call(t, ctx, "SELECT leak_search_path() || $1", []any{"!"}, fetchValue)
		if err != nil || out.String() != `"tenant_7!"` {
			t.Fatalf("result %v, error %v", out, err)
		}
		if trips != 2 {
			t.Errorf("%d round trips, want 2", trips)
		}
		if st, p := f.state(t); st != freshState || p != pid {
			t.Fatalf("next call sees %q on backend %d, want %q on %d", st, p, freshState, pid)
		}
	}
}

// TestResetAttacks: whatever happens to the call whose statement carries
// the reset — it fails before the reset, the commit after the reset fails,
// it opens a transaction, it is cancelled at any point — the next call
// finds a fresh session, and a statement the reset could not commit with
// is reported as failed.
func TestResetAttacks(t *testing.T) {
	f := newResetFixture(t)
	f.state(t)

	t.Run("statement fails after changing state", func(t *testing.T) { testResetStatementFails(t, f) })
	t.Run("commit fails after the reset", func(t *testing.T) { testResetCommitFails(t, f) })
	t.Run("first statement opens a transaction", func(t *testing.T) { testResetOpensTransaction(t, f) })
	t.Run("cancelled while sleeping", func(t *testing.T) { testResetCancelledSleeping(t, f) })
	t.Run("cancelled at commit, after the reset statements", func(t *testing.T) { testResetCancelledAtCommit(t, f) })
	t.Run("cancelled at any point", func(t *testing.T) { testResetCancelledAnyPoint(t, f) })
}

// testResetStatementFails: a statement that fails after changing session state: the hook's reset cleans up.
func testResetStatementFails(t *testing.T, f *resetFixture) {
	ctx := t.Context()
	// Session advisory locks survive the rollback: only the hook's
	// reset releases them.
	// pgx forgets the statements of a failed batch, so each call here
	// prepares again: 3 round trips, the last the hook's reset.
	for range 2 {
		_, trips, err := f.call(t, ctx, "SELECT leak_lock(), leak_search_path(), 1/0", nil, fetchValue)
		if err == nil || !strings.Contains(err.Error(), "division by zero") {
			t.Fatalf("error %v, want division by zero", err)
		}
		if trips != 3 {
			t.Errorf("%d round trips, want 3 (prepare, the call, the hook's reset)", trips)
		}
		if st, _ := f.state(t); st != freshState {
			t.Fatalf("next call sees %q, want %q", st, freshState)
		}
	}
}

// testResetCommitFails: a commit that fails after the reset statements rolls the statement back with them, and the call says so.
func testResetCommitFails(t *testing.T, f *resetFixture) {
	ctx := t.Context()
	// The foreign key is checked at commit, after the reset statements:
	// the insert is rolled back with them, and the call says so.
	_, _, err := f.call(t, ctx, "INSERT INTO child SELECT $1::int, leak_lock() || leak_search_path()", []any{int64(999)}, execute)
	if err == nil || !strings.Contains(err.Error(), "statement rolled back") || !strings.Contains(err.Error(), "child_parent_id_fkey") {
		t.Fatalf("error %v, want the rolled back statement and the foreign key", err)
	}
	var n int
	if err := f.admin.QueryRow(ctx, "SELECT count(*) FROM child").Scan(&n); err != nil || n != 0 {
		t.Fatalf("child rows %d (%v), want 0", n, err)
	}
	if st, _ := f.state(t); st != freshState {
		t.Fatalf("next call sees %q, want %q", st, freshState)
	}
}

// testResetOpensTransaction: a statement that opens a transaction: the connection is not pooled, and no transaction statement carries the reset.
func testResetOpensTransaction(t *testing.T, f *resetFixture) {
	ctx := t.Context()
	_, pid := f.state(t)
	for _, sql := range []string{"BEGIN", "START TRANSACTION", "begin; SELECT leak_search_path()"} {
		if _, _, err := f.call(t, ctx, sql, nil, execute); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		st, p := f.state(t)
		if st != freshState {
			t.Fatalf("after %s the next call sees %q, want %q", sql, st, freshState)
		}
		if p == pid {
			t.Fatalf("after %s the connection with an open transaction was pooled", sql)
		}
		pid = p
	}
	// A transaction statement never carries the reset, even with
	// parameters.
	if batchable("BEGIN") || batchable("COMMIT") || batchable("SAVEPOINT a") {
		t.Fatal("a transaction statement is batchable")
	}
}

// testResetCancelledSleeping: a call cancelled while its statement sleeps.
func testResetCancelledSleeping(t *testing.T, f *resetFixture) {
	ctx := t.Context()
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, _, err := f.call(t, cctx, "SELECT leak_lock(), leak_search_path(), pg_sleep(10)", nil, fetchValue)
	if err == nil || !errors.Is(cancelled(cctx, err), context.DeadlineExceeded) {
		t.Fatalf("error %v, want the deadline", err)
	}
	if st, _ := f.state(t); st != freshState {
		t.Fatalf("next call sees %q, want %q", st, freshState)
	}
}

// testResetCancelledAtCommit: a call cancelled at commit, after the reset statements: the statement is rolled back and reported.
func testResetCancelledAtCommit(t *testing.T, f *resetFixture) {
	ctx := t.Context()
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, _, err := f.call(t, cctx, "INSERT INTO slow_commit SELECT leak_lock() || leak_search_path() || $1", []any{"x"}, execute)
	if err == nil || !errors.Is(cancelled(cctx, err), context.DeadlineExceeded) || !strings.Contains(err.Error(), "statement rolled back") {
		t.Fatalf("error %v, want the deadline and the rolled back statement", err)
	}
	var n int
	if err := f.admin.QueryRow(ctx, "SELECT count(*) FROM slow_commit").Scan(&n); err != nil || n != 0 {
		t.Fatalf("slow_commit rows %d (%v), want 0", n, err)
	}
	if st, _ := f.state(t); st != freshState {
		t.Fatalf("next call sees %q, want %q", st, freshState)
	}
}

// testResetCancelledAnyPoint: calls cancelled at any point, before, during or after the statement and the reset.
func testResetCancelledAnyPoint(t *testing.T, f *resetFixture) {
	ctx := t.Context()
	// Deadlines from before the call to after it: some cancel the
	// statement, some the reset statements after it, some nothing.
	failed := 0
	for i := range 60 {
		d := time.Duration(i) * 10 * time.Microsecond
		cctx, cancel := context.WithTimeout(ctx, d)
		_, _, err := f.call(t, cctx, "SELECT leak_lock() || leak_search_path() || $1", []any{fmt.Sprint(i)}, fetchValue)
		cancel()
		if err != nil {
			failed++
		}
		if st, _ := f.state(t); st != freshState {
			t.Fatalf("deadline %s (error %v): next call sees %q, want %q", d, err, st, freshState)
		}
	}
	t.Logf("%d of 60 calls cancelled", failed)
}

// TestGiveBack: a connection whose caller says the reset ran after its
// last statement goes back as it is; any other is reset first. Only
// resetAfter may say so: the state an unreset statement left is still
// there when giveBack is told otherwise.
func TestGiveBack(t *testing.T) {
	f := newResetFixture(t)
	ctx := t.Context()
	c, err := f.pool.acquire(ctx, "db")
	if err != nil {
		t.Fatal(err)
	}
	q := &resetAfter{conn: c.Conn(), try: true}
	rows, err := q.Query(ctx, "SELECT leak_search_path()")
	if err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if err := rows.Err(); err != nil || !q.done {
		t.Fatalf("after a batched statement: done %v, error %v; want done", q.done, err)
	}
	// Any later statement on the querier clears it.
	if _, err := q.Exec(ctx, "SELECT leak_search_path()"); err != nil || q.done {
		t.Fatalf("after a second statement: done %v, error %v; want not done", q.done, err)
	}

	f.pool.giveBack(c, true, true) // wrongly: to show what the flag does
	f.idle(t)
	c, err = f.pool.acquire(ctx, "db")
	if err != nil {
		t.Fatal(err)
	}
	var sp string
	if err := c.QueryRow(ctx, "SHOW search_path").Scan(&sp); err != nil || sp != "tenant_7" {
		t.Fatalf("search_path %q (%v) after giveBack without a reset, want tenant_7", sp, err)
	}
	f.pool.giveBack(c, true, false)
	f.idle(t)
	if st, _ := f.state(t); st != freshState {
		t.Fatalf("after giveBack with a reset the next call sees %q, want %q", st, freshState)
	}

	// A connection given back inside a transaction is closed, not reset.
	_, pid := f.state(t)
	c, err = f.pool.acquire(ctx, "db")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	f.pool.giveBack(c, true, false)
	f.idle(t)
	if st, p := f.state(t); st != freshState || p == pid {
		t.Fatalf("after giveBack in a transaction the next call sees %q on backend %d (was %d), want %q on a new one", st, p, pid, freshState)
	}
}

// TestOneWayBack: giveBack is the only code of the package that puts a
// connection back in the pool: no other function calls Release, and the
// pgxpool pool is used only to acquire, count and close (its query
// methods release connections themselves, without a reset).
func TestOneWayBack(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok {
				continue
			}
			ast.Inspect(fn, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				checked++
				if sel.Sel.Name == "Release" && fn.Name.Name != "giveBack" {
					t.Errorf("%s: %s calls Release; only giveBack may", fset.Position(sel.Pos()), fn.Name.Name)
				}
				if inner, ok := sel.X.(*ast.SelectorExpr); ok && inner.Sel.Name == "pgxPool" {
					switch sel.Sel.Name {
					case "Acquire", "Stat", "Close":
					default:
						t.Errorf("%s: %s uses the pgxpool pool's %s", fset.Position(sel.Pos()), fn.Name.Name, sel.Sel.Name)
					}
				}
				return true
			})
		}
	}
	if checked == 0 {
		t.Fatal("no source checked")
	}
}

func TestBatchable(t *testing.T) {
	for sql, want := range map[string]bool{
		"SELECT 1":                     true,
		"  select 1;  ":                true,
		"/* c */ (SELECT 1)":           true,
		"WITH x AS (SELECT 1) TABLE x": true,
		"INSERT INTO t VALUES ($1)":    true,
		"UPDATE t SET a = 1":           true,
		"DELETE FROM t":                true,
		"MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE": true,
		"VALUES (1)":                true,
		"TABLE t":                   true,
		"SHOW search_path":          true,
		"SELECT 1; SELECT 2":        false,
		"SELECT ';'":                false,
		"BEGIN":                     false,
		"START TRANSACTION":         false,
		"COMMIT":                    false,
		"END":                       false,
		"ROLLBACK":                  false,
		"SAVEPOINT a":               false,
		"RELEASE a":                 false,
		"SET LOCAL search_path = x": false,
		"NOTIFY x":                  false,
		"COPY t TO STDOUT":          false,
		"":                          false,
		"-- only a comment":         false,
	} {
		if got := batchable(sql); got != want {
			t.Errorf("batchable(%q) = %v, want %v", sql, got, want)
		}
	}
}
