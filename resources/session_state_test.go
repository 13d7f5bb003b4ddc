package resources_test

import (
	"crypto/rand"
	"strconv"
	"strings"
	"testing"

	"go.starlark.net/starlark"

	"github.com/kailash-gateway/kgw/internal/testenv"
	"github.com/kailash-gateway/kgw/resources"
	"github.com/kailash-gateway/kgw/store"
)

// observeSQL reads, in one row, every kind of session state the tests set:
// none of it may be seen by a session other than the one that set it.
const observeSQL = `SELECT
	current_setting('search_path') AS search_path,
	current_user::text AS current_user,
	session_user::text AS session_user,
	to_regclass('pg_temp.secret_scratch') IS NOT NULL AS temp_table,
	(SELECT count(*) FROM pg_listening_channels()) AS listening,
	(SELECT count(*) FROM pg_prepared_statements WHERE from_sql) AS prepared,
	(SELECT count(*) FROM pg_cursors WHERE name = 'secret_cursor') AS cursors,
	(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS advisory,
	current_setting('app.tenant', true) AS app_tenant,
	current_setting('TimeZone') AS timezone,
	current_setting('statement_timeout') AS statement_timeout,
	current_setting('work_mem') AS work_mem`

// sessionStateFixture is a database with a schema tenant_7, a role the
// pool's user may switch to and a function that changes the session's
// time zone (a statement that looks clean but is not), used through a
// broker with a max_size 1 pool, so that consecutive sessions get the same
// connection unless it was discarded.
type sessionStateFixture struct {
	b     *resources.Broker
	specs map[string]store.ResourceSpec
	role  string
}

func newSessionStateFixture(t *testing.T) *sessionStateFixture {
	t.Helper()
	pg := testenv.Postgres(t)
	dsn := pg.NewDatabase(t)
	role := "kgw_sess_" + strings.ToLower(rand.Text()[:10])
	server := adminConn(t, pg.DSN)
	if _, err := server.Exec(t.Context(), "CREATE ROLE "+role+" NOLOGIN"); err != nil {
		t.Fatalf("create role: %v", err)
	}
	t.Cleanup(func() { _, _ = server.Exec(t.Context(), "DROP ROLE IF EXISTS "+role) })
	db := adminConn(t, dsn)
	for _, sql := range []string{
		"CREATE SCHEMA tenant_7",
		"CREATE TABLE items (id int PRIMARY KEY, name text)",
		"CREATE TABLE tenant_7.items (id int PRIMARY KEY, name text)",
		`CREATE FUNCTION tz_tokyo() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	SET TimeZone = 'Asia/Tokyo';
	RETURN current_setting('TimeZone');
END $$`,
		// Functions that change session state from inside a statement that
		// looks clean: only a reset can undo them.
		`CREATE FUNCTION leak_search_path() RETURNS text LANGUAGE plpgsql AS $$
BEGIN RETURN set_config('search' || '_path', 'tenant_7', false); END $$`,
		`CREATE FUNCTION leak_tenant() RETURNS text LANGUAGE sql AS $$ SELECT set_config('app.tenant', '7', false) $$`,
		`CREATE FUNCTION leak_role(r text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN EXECUTE format('SET ROLE %I', r); END $$`,
		`CREATE FUNCTION leak_session_auth(r text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN EXECUTE format('SET SESSION AUTHORIZATION %I', r); END $$`,
		`CREATE FUNCTION leak_temp() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	CREATE TEMP TABLE IF NOT EXISTS secret_scratch (v text);
	INSERT INTO secret_scratch VALUES ('tenant 7 secret');
END $$`,
		`CREATE FUNCTION leak_prepare() RETURNS void LANGUAGE plpgsql AS $$
BEGIN EXECUTE 'PREPARE secret_stmt AS SELECT 1'; END $$`,
		`CREATE FUNCTION leak_listen() RETURNS void LANGUAGE plpgsql AS $$
BEGIN EXECUTE 'LISTEN secret_channel'; END $$`,
		`CREATE FUNCTION leak_lock() RETURNS void LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_advisory_lock(7); PERFORM pg_advisory_lock_shared(8); END $$`,
		`CREATE FUNCTION leak_timezone_quietly() RETURNS void LANGUAGE plpgsql AS $$
BEGIN PERFORM set_config('statement_timeout', '1234', false); PERFORM set_config('work_mem', '7MB', false); END $$`,
	} {
		if _, err := db.Exec(t.Context(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	b := resources.NewBroker(resources.Config{Logger: quiet})
	t.Cleanup(b.Close)
	return &sessionStateFixture{
		b:     b,
		specs: map[string]store.ResourceSpec{"db": dbSpec(t, dsn, map[string]any{"max_size": int64(1)})},
		role:  role,
	}
}

// run runs code in a new session (a node attempt) and returns its globals.
func (f *sessionStateFixture) run(t *testing.T, code string) starlark.StringDict {
	t.Helper()
	return mustExec(t, f.b, f.specs, `db = get_resource("db")
OBSERVE = `+strconv.Quote(observeSQL)+"\n"+code)
}

// observe returns the session state a new session sees, and its backend.
func (f *sessionStateFixture) observe(t *testing.T) (state starlark.Value, pid starlark.Value) {
	t.Helper()
	g := f.run(t, `
state = db.fetchrow(OBSERVE)
pid = db.fetchval("SELECT pg_backend_pid()")
`)
	return g["state"], g["pid"]
}

// withField returns a copy of the dict d with key set to v.
func withField(t *testing.T, d starlark.Value, key string, v starlark.Value) starlark.Value {
	t.Helper()
	out := starlark.NewDict(d.(*starlark.Dict).Len())
	for _, kv := range d.(*starlark.Dict).Items() {
		_ = out.SetKey(kv[0], kv[1])
	}
	if err := out.SetKey(starlark.String(key), v); err != nil {
		t.Fatal(err)
	}
	return out
}

func starlarkList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func equal(t *testing.T, x, y starlark.Value) bool {
	t.Helper()
	eq, err := starlark.Equal(x, y)
	if err != nil {
		t.Fatal(err)
	}
	return eq
}

// stateSetPaths are the ways a node can run the statements STMTS against
// a database handle db: each code sets seen to the state the statements
// set, when it can tell (on an acquired connection).
var stateSetPaths = []struct {
	name string
	code string // runs STMTS; sets seen to the state it set, if it can tell
}{
	{"handle", `
for s in STMTS:
    db.execute(s)
seen = None
`},
	{"acquire", `
c = db.acquire()
for s in STMTS:
    c.execute(s)
seen = c.fetchrow(OBSERVE)
`},
	{"transaction", `
def set_state(tx):
    for s in STMTS:
        tx.execute(s)
db.transaction(set_state)
seen = None
`},
	{"acquired transaction", `
c = db.acquire()
def set_state(tx):
    for s in STMTS:
        tx.execute(s)
c.transaction(set_state)
seen = c.fetchrow(OBSERVE)
`},
}

// TestSessionStateDoesNotOutliveAttempt sets each kind of session state in
// one session — through the handle (a pool connection per call), an
// acquired connection and a transaction — and checks that the next
// session, which gets a connection from the same max_size 1 pool, sees a
// fresh session.
func TestSessionStateDoesNotOutliveAttempt(t *testing.T) {
	f := newSessionStateFixture(t)
	fresh, _ := f.observe(t)
	t.Logf("fresh session: %s", fresh)

	kinds := []struct {
		name  string
		stmts []string
	}{
		{"search_path", []string{"SET search_path = tenant_7"}},
		{"search_path in a multi-statement string", []string{"SELECT 1; SET search_path = tenant_7"}},
		{"set role", []string{"SET ROLE " + f.role}},
		{"set session authorization", []string{"SET SESSION AUTHORIZATION " + f.role}},
		{"set_config", []string{"SELECT set_config('app.tenant', '7', false)"}},
		{"temp table", []string{"CREATE TEMP TABLE secret_scratch (v text); INSERT INTO secret_scratch VALUES ('tenant 7 secret')"}},
		{"select into temp table", []string{"SELECT 'tenant 7 secret' AS v INTO TEMP secret_scratch"}},
		{"listen", []string{"LISTEN secret_channel"}},
		{"prepare", []string{"PREPARE secret_stmt AS SELECT 'tenant 7'"}},
		{"cursor with hold", []string{"DECLARE secret_cursor CURSOR WITH HOLD FOR SELECT 'tenant 7'"}},
		{"advisory lock", []string{"SELECT pg_advisory_lock(7)"}},
		{"shared advisory lock", []string{"SELECT pg_try_advisory_lock_shared(7)"}},
		{"time zone", []string{"SET TimeZone = 'Asia/Tokyo'"}},
		{"time zone set by a function", []string{"SELECT tz_tokyo()"}},
		{"search_path set by a function", []string{"SELECT leak_search_path()"}},
		{"search_path set by a function in a CTE", []string{"WITH x AS (SELECT leak_search_path()) SELECT * FROM x"}},
		{"custom setting set by a function", []string{"SELECT leak_tenant()"}},
		{"role set by a function", []string{"SELECT leak_role('" + f.role + "')"}},
		{"session authorization set by a function", []string{"SELECT leak_session_auth('" + f.role + "')"}},
		{"temp table by a function", []string{"SELECT leak_temp()"}},
		{"listen by a function", []string{"SELECT leak_listen()"}},
		{"prepare by a function", []string{"SELECT leak_prepare()"}},
		{"advisory locks by a function", []string{"SELECT leak_lock()"}},
		{"settings changed quietly by a function", []string{"SELECT leak_timezone_quietly()"}},
	}
	for _, k := range kinds {
		for _, p := range stateSetPaths {
			t.Run(k.name+"/"+p.name, func(t *testing.T) {
				g := f.run(t, "STMTS = "+starlarkList(k.stmts)+"\n"+p.code)
				// On an acquired connection the state lasts as long as the
				// attempt: the statements did set it.
				if seen := g["seen"]; seen != starlark.None && equal(t, seen, fresh) {
					t.Fatalf("the setting session itself sees %s, want a changed session state", seen)
				}
				want := fresh
				if k.name == "custom setting set by a function" {
					// The reset removes the value; the setting's name stays
					// defined, empty, in the session (see session.go).
					want = withField(t, fresh, "app_tenant", starlark.String(""))
				}
				if next, _ := f.observe(t); !equal(t, next, want) {
					t.Errorf("next session sees %s\nwant %s", next, want)
				}
			})
		}
	}
}

// TestSessionStateRepro is the reported leak: an execution sets
// search_path and fills a temporary table on an acquired connection; the
// next one, on the same max_size 1 pool, must neither use that search_path
// nor read the table.
func TestSessionStateRepro(t *testing.T) {
	f := newSessionStateFixture(t)
	f.run(t, `
c = db.acquire()
c.execute("SET search_path = tenant_7")
c.execute("CREATE TEMP TABLE secret_scratch (v text)")
c.execute("INSERT INTO secret_scratch VALUES ($1)", "tenant 7 secret")
if c.fetchval("SELECT v FROM pg_temp.secret_scratch") != "tenant 7 secret":
    fail("temp table not written")
`)
	sess := f.b.Session(f.specs, nil)
	defer sess.Close()
	_, err := exec(t.Context(), sess, `
db = get_resource("db")
if db.fetchval("SHOW search_path") != '"$user", public':
    fail("inherited search_path " + db.fetchval("SHOW search_path"))
db.fetchval("SELECT v FROM pg_temp.secret_scratch")
`)
	if err == nil || !strings.Contains(err.Error(), `relation "pg_temp.secret_scratch" does not exist`) {
		t.Fatalf("reading the previous execution's temp table: error %v, want it not to exist", err)
	}
}

// TestCleanStatementsKeepConnection runs statements that cannot leave
// session state behind, through every path: the next session gets the
// same backend (no reconnect), in a fresh state.
func TestCleanStatementsKeepConnection(t *testing.T) {
	f := newSessionStateFixture(t)
	fresh, pid := f.observe(t)
	g := f.run(t, `
pids = [db.fetchval("SELECT pg_backend_pid()")]
db.execute("INSERT INTO items VALUES ($1, $2)", 1, "a")
db.execute("INSERT INTO items VALUES (2, 'b')")
db.execute("INSERT INTO items (id) VALUES (3); UPDATE items SET name = id::text WHERE id = 3")
db.executemany("INSERT INTO items VALUES ($1, $2)", [(4, "d"), (5, "e")])
db.execute("UPDATE items SET name = $1 WHERE id = $2", "B", 2)
db.execute("DELETE FROM items WHERE id = 5")
db.fetch("SELECT id, name FROM items WHERE id = ANY($1) ORDER BY id", [1, 2])
db.fetchrow("WITH x AS (SELECT 1 AS a) SELECT a FROM x")
db.fetchval("/* count */ SELECT count(*) FROM items;")
db.fetch("TABLE items")
db.fetch("VALUES (1), (2)")
db.fetchval("SHOW search_path")
db.execute("NOTIFY nobody_listens")
db.execute("MERGE INTO items USING (VALUES (1, 'A')) AS v(id, name) ON items.id = v.id WHEN MATCHED THEN UPDATE SET name = v.name")
pids.append(db.fetchval("SELECT pg_backend_pid()"))

def tenant(tx):
    tx.execute("SET LOCAL search_path = tenant_7")
    tx.fetchval("SELECT pg_advisory_xact_lock(7)")
    tx.fetchval("SELECT set_config('app.tenant', $1, true)", "7")
    tx.execute("INSERT INTO items VALUES (1, 'tenant')")
    tx.transaction(lambda sp: sp.execute("UPDATE items SET name = 'nested' WHERE id = 1"))
    return [tx.fetchval("SHOW search_path"), tx.fetchval("SELECT pg_backend_pid()")]
in_tx = db.transaction(tenant)
pids.append(in_tx[1])

c = db.acquire()
pids.append(c.fetchval("SELECT pg_backend_pid()"))
c.execute("BEGIN")
c.execute("SET LOCAL TimeZone = 'Asia/Tokyo'")
c.execute("SET TRANSACTION READ ONLY")
c.fetchval("SELECT count(*) FROM items")
c.execute("COMMIT")
c.transaction(lambda tx: tx.execute("SET LOCAL search_path = tenant_7"))
c.release()
pids.append(db.fetchval("SELECT pg_backend_pid()"))
`)
	expect(t, g["in_tx"].(*starlark.List).Index(0), `"tenant_7"`)
	pids := g["pids"].(*starlark.List)
	for i := range pids.Len() {
		if !equal(t, pids.Index(i), pid) {
			t.Errorf("backend of call %d = %s, want %s (the connection was replaced)", i, pids.Index(i), pid)
		}
	}
	next, nextPid := f.observe(t)
	if !equal(t, nextPid, pid) {
		t.Errorf("next session's backend = %s, want %s: clean statements made the pool reconnect", nextPid, pid)
	}
	// set_config('app.tenant', …, true) leaves the custom setting defined
	// in the session, with an empty value: its name is known, not its value.
	want := starlark.NewDict(fresh.(*starlark.Dict).Len())
	for _, kv := range fresh.(*starlark.Dict).Items() {
		_ = want.SetKey(kv[0], kv[1])
	}
	if err := want.SetKey(starlark.String("app_tenant"), starlark.String("")); err != nil {
		t.Fatal(err)
	}
	if !equal(t, next, want) {
		t.Errorf("next session sees %s\nwant %s", next, want)
	}
	// A statement that changes session state does replace the connection.
	f.run(t, `db.execute("SET search_path = tenant_7")`)
	if _, p := f.observe(t); equal(t, p, pid) {
		t.Errorf("backend after SET search_path = %s, the same as before; want a new connection", p)
	}
}
