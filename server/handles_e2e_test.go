package server_test

// Every method of the resource handles (DESIGN.md §5), called by node code
// in executed workflows through the gRPC API, with their effects checked
// on the real servers.

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"
	"github.com/redis/rueidis"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
	"github.com/kailash-gateway/kgw/internal/testenv"
)

// runNode registers a one-node workflow (node "n") needing res, runs it
// with parameters p and returns its result.
func (s *stack) runNode(t *testing.T, name, code string, res map[string]*kgwv1.ResourceSpec, p map[string]any) map[string]any {
	t.Helper()
	var names []string
	for k := range res {
		names = append(names, k)
	}
	s.register(t, &kgwv1.Workflow{Name: name, Nodes: []*kgwv1.Node{{Id: "n", RequiredResources: names, Code: code}}})
	return mustComplete(t, s.run(t, &kgwv1.ExecuteWorkflowRequest{Workflow: name, Resources: res, Parameters: params(t, p)}))
}

// diffResult fails the test if got differs from want (numbers are float64
// in a result).
func diffResult(t *testing.T, got, want map[string]any) {
	t.Helper()
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
}

func TestDatabaseHandleMethods(t *testing.T) {
	db := newPGDB(t, testenv.Postgres(t))
	db.exec(t, "CREATE TABLE items (id int8 PRIMARY KEY, name text NOT NULL, qty int4)")
	s := startStack(t, stackOptions{})
	const maxSize = 4
	got := s.runNode(t, "db_methods", dbMethodsNode, map[string]*kgwv1.ResourceSpec{"db": db.spec(t, map[string]any{"max_size": maxSize})}, nil)

	acq := got["acquire"].(map[string]any)
	rel := got["after_release"].(map[string]any)
	// Pool statistics: plain numbers within the pool's bounds; the held
	// connection is not free, and is free again after release().
	size, free := acq["size"].(float64), acq["freesize"].(float64)
	rsize, rfree := rel["size"].(float64), rel["freesize"].(float64)
	// Other connections' session resets finish in the background, so the
	// free count may grow by more than the released connection; it grows
	// by at least that one.
	before := rel["before"].(float64)
	delete(rel, "before")
	if size < 1 || size > maxSize || free < 0 || free > size-1 || rsize < 1 || rsize > maxSize || rfree < before+1 || rfree > rsize {
		t.Errorf("size/freesize while held %v/%v, after release %v/%v; want 1..%d open, the held one not free, then free again",
			size, free, rsize, rfree, maxSize)
	}
	for _, m := range []map[string]any{acq, rel} {
		delete(m, "size")
		delete(m, "freesize")
	}
	txFail := got["tx_fail"].(map[string]any)
	txSQL := got["tx_sql_error"].(map[string]any)
	if !strings.Contains(txFail["error"].(string), "abort the transaction") ||
		!strings.Contains(txSQL["error"].(string), "duplicate key") || !strings.Contains(txSQL["error"].(string), "23505") {
		t.Errorf("transaction errors = %q / %q, want the fail() message and the unique violation", txFail["error"], txSQL["error"])
	}
	delete(txFail, "error")
	delete(txSQL, "error")
	diffResult(t, got, map[string]any{
		"execute":     "INSERT 0 1",
		"executemany": nil,
		"fetch": []any{
			map[string]any{"id": 1.0, "name": "one", "qty": 10.0},
			map[string]any{"id": 2.0, "name": "two", "qty": 20.0},
			map[string]any{"id": 4.0, "name": "four", "qty": nil},
		},
		"fetch_empty":       []any{},
		"fetchrow":          map[string]any{"id": 3.0, "name": "three"},
		"fetchrow_none":     nil,
		"fetchval":          60.0,
		"fetchval_none":     nil,
		"update":            "UPDATE 2",
		"no_args_multi":     "INSERT 0 1",
		"injection_is_data": 0.0,
		"tx_commit":         map[string]any{"count": 5.0, "row": map[string]any{"qty": 0.0}, "rows": 3.0},
		"tx_fail":           map[string]any{"ok": false},
		"tx_sql_error":      map[string]any{"ok": false},
		"acquire": map[string]any{
			"same_backend": true,
			"fetch":        []any{map[string]any{"v": 2.0}, map[string]any{"v": 3.0}},
			"fetchrow":     map[string]any{"n": 3.0, "total": 6.0},
			"execute":      "DELETE 1",
			"tx":           true,
		},
		"after_release": map[string]any{},
	})

	checkDatabaseEffects(t, db.dsn)
}

// dbMethodsNode calls every method of the database handle "db" on the
// table items; TestDatabaseHandleMethods checks its result and
// checkDatabaseEffects what it left in the database.
const dbMethodsNode = `
db = get_resource("db")
out = {}
out["execute"] = db.execute("INSERT INTO items VALUES ($1, $2, $3)", 1, "one", 10)
out["executemany"] = db.executemany("INSERT INTO items VALUES ($1, $2, $3)", [(2, "two", 20), (3, "three", 30), [4, "four", None]])
out["fetch"] = db.fetch("SELECT id, name, qty FROM items WHERE id = ANY($1) ORDER BY id", [1, 2, 4])
out["fetch_empty"] = db.fetch("SELECT id FROM items WHERE id < $1", 0)
out["fetchrow"] = db.fetchrow("SELECT id, name FROM items WHERE name = $1", "three")
out["fetchrow_none"] = db.fetchrow("SELECT id FROM items WHERE id = $1", 99)
out["fetchval"] = db.fetchval("SELECT sum(qty) FROM items")
out["fetchval_none"] = db.fetchval("SELECT qty FROM items WHERE id = $1", 4)
out["update"] = db.execute("UPDATE items SET qty = qty + 1 WHERE id <= $1", 2)
out["no_args_multi"] = db.execute("CREATE TABLE audit (note text); INSERT INTO audit VALUES ('created')")
out["injection_is_data"] = db.fetchval("SELECT count(*) FROM items WHERE name = $1", "x' OR '1'='1")

def commit(tx):
    tx.execute("INSERT INTO items VALUES ($1, $2, $3)", 5, "five", 50)
    tx.execute("UPDATE items SET qty = 0 WHERE id = $1", 3)
    tx.executemany("INSERT INTO audit VALUES ($1)", [("tx-a",), ("tx-b",)])
    return {"count": tx.fetchval("SELECT count(*) FROM items"), "row": tx.fetchrow("SELECT qty FROM items WHERE id = 3"),
            "rows": len(tx.fetch("SELECT 1 FROM audit"))}
out["tx_commit"] = db.transaction(commit)

def rollback(tx):
    tx.execute("INSERT INTO items VALUES ($1, $2, $3)", 6, "six", 60)
    tx.execute("DELETE FROM items WHERE id = $1", 1)
    fail("abort the transaction")
r = catch(db.transaction, rollback)
out["tx_fail"] = {"ok": r.ok, "error": r.error}

def sql_error(tx):
    tx.execute("INSERT INTO items VALUES ($1, $2, $3)", 7, "seven", 70)
    tx.execute("INSERT INTO items VALUES ($1, $2, $3)", 1, "duplicate", 0)
r = catch(db.transaction, sql_error)
out["tx_sql_error"] = {"ok": r.ok, "error": r.error}

db.execute("CREATE TABLE scratch (v int4)")  # DDL: that connection is closed, not reused
held = db.acquire()
pid = held.fetchval("SELECT pg_backend_pid()")
held.executemany("INSERT INTO scratch VALUES ($1)", [(1,), (2,), (3,)])
out["acquire"] = {
    "same_backend": held.fetchval("SELECT pg_backend_pid()") == pid,
    "fetch": held.fetch("SELECT v FROM scratch WHERE v >= $1 ORDER BY v", 2),
    "fetchrow": held.fetchrow("SELECT count(*) AS n, sum(v) AS total FROM scratch"),
    "execute": held.execute("DELETE FROM scratch WHERE v = $1", 1),
    "tx": held.transaction(lambda tx: tx.fetchval("SELECT pg_backend_pid() = $1", pid)),
    "size": db.size, "freesize": db.freesize,
}
free_held = db.freesize
held.release()
# The connection is free again once its session has been reset, just
# after release.
for _ in range(1000):
    if db.freesize > free_held:
        break
    time.sleep(0.005)
out["after_release"] = {"size": db.size, "freesize": db.freesize, "before": free_held}
result = out
`

// checkDatabaseEffects reads what dbMethodsNode left in the database at
// dsn: committed writes are there, rolled-back ones are not.
func checkDatabaseEffects(t *testing.T, dsn string) {
	t.Helper()
	c, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	rows, err := c.Query(t.Context(), "SELECT id, name, coalesce(qty, -1) FROM items ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	type item struct {
		ID   int64
		Name string
		Qty  int32
	}
	items, err := pgx.CollectRows(rows, pgx.RowToStructByPos[item])
	if err != nil {
		t.Fatal(err)
	}
	wantItems := []item{{1, "one", 11}, {2, "two", 21}, {3, "three", 0}, {4, "four", -1}, {5, "five", 50}}
	if diff := cmp.Diff(wantItems, items); diff != "" {
		t.Errorf("items table (-want +got):\n%s", diff)
	}
	var notes []string
	rows, err = c.Query(t.Context(), "SELECT note FROM audit ORDER BY note")
	if err != nil {
		t.Fatal(err)
	}
	if notes, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"created", "tx-a", "tx-b"}, notes); diff != "" {
		t.Errorf("audit table (-want +got):\n%s", diff)
	}
}

// TestDatabaseTypeMapping sends one value of each PostgreSQL type as a
// bound parameter ($1, cast to the type) from node code and reads it back,
// through an executed workflow. Each row checks the Starlark value the node
// sees (its type, and equality with the value sent) and the value as it
// reaches the client in Execution.result.
//
// How values look in a result (docs/node-api.md, "Out of the code"):
// integers and floats are JSON numbers (float64 in a Struct); json/jsonb
// come back as the decoded structure; arrays as lists; bytea (Starlark
// bytes) as a standard base64 string; timestamptz, timestamp and date
// (Starlark time values, date at midnight UTC) as RFC 3339 strings with
// nanoseconds, e.g. "2024-03-05T13:14:15.5Z"; interval (a Starlark
// duration) as a Go duration string "1h30m0s"; uuid as its string.
func TestDatabaseTypeMapping(t *testing.T) {
	db := newPGDB(t, testenv.Postgres(t))
	s := startStack(t, stackOptions{})
	rawBytes := []byte("\x00\x01binary\xff")
	tests := []typeCase{
		{pgType: "int2", in: "7", typ: "int", want: 7.0},
		{pgType: "int4", in: "-2147483648", typ: "int", want: -2147483648.0},
		{pgType: "int8", in: "9007199254740991", typ: "int", want: 9007199254740991.0},
		{pgType: "float4", in: "1.5", typ: "float", want: 1.5},
		{pgType: "float8", in: "-3.25e10", typ: "float", want: -3.25e10},
		{pgType: "numeric", in: "12.5", typ: "float", want: 12.5},
		{pgType: "numeric", in: "10", typ: "float", want: 10.0},
		{pgType: "text", in: `"héllo ☃ 'quoted'"`, typ: "string", want: "héllo ☃ 'quoted'"},
		{pgType: "varchar", in: `"v"`, typ: "string", want: "v"},
		{pgType: "bool", in: "True", typ: "bool", want: true},
		{pgType: "bool", in: "False", typ: "bool", want: false},
		{pgType: "text", in: "None", typ: "NoneType", want: nil},
		{pgType: "int8", in: "None", typ: "NoneType", want: nil},
		{pgType: "json", in: `{"a": 1, "b": [1.5, "x", None, True]}`, typ: "dict",
			want: map[string]any{"a": 1.0, "b": []any{1.5, "x", nil, true}}},
		{pgType: "jsonb", in: `{"n": {"deep": [1, 2]}, "s": "t"}`, typ: "dict",
			want: map[string]any{"n": map[string]any{"deep": []any{1.0, 2.0}}, "s": "t"}},
		{pgType: "jsonb", in: `[1, "two", None]`, typ: "list", want: []any{1.0, "two", nil}},
		{pgType: "int4[]", in: "[1, 2, 3]", typ: "list", want: []any{1.0, 2.0, 3.0}},
		{pgType: "int8[]", in: "[]", typ: "list", want: []any{}},
		{pgType: "text[]", in: `["a", "b c"]`, typ: "list", want: []any{"a", "b c"}},
		{pgType: "timestamptz", in: `time.parse_time("2024-03-05T13:14:15.5Z")`,
			typ: "time.time", wantTime: "2024-03-05T13:14:15.5Z"},
		{pgType: "date", in: `time.parse_time("2024-02-29T00:00:00Z")`, typ: "time.time", wantTime: "2024-02-29T00:00:00Z"},
		{pgType: "interval", in: "time.parse_duration('1h30m')", typ: "time.duration", want: "1h30m0s"},
		{pgType: "uuid", in: `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`, typ: "string", want: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
		{pgType: "bytea", in: `b"\x00\x01binary\xff"`, typ: "bytes", want: base64.StdEncoding.EncodeToString(rawBytes)},
	}
	var code strings.Builder
	code.WriteString("db = get_resource(\"db\")\nout = {}\n")
	for i, tt := range tests {
		fmt.Fprintf(&code, `sent = %s
row = db.fetchrow("SELECT $1::%s AS v, pg_typeof($1::%s)::text AS pg", sent)
out["%d"] = {"value": row["v"], "type": type(row["v"]), "equal": row["v"] == sent, "pg": row["pg"]}
`, tt.in, tt.pgType, tt.pgType, i)
	}
	// A list parameter for = ANY($1), for integers and text.
	code.WriteString(`
db.execute("CREATE TABLE t (id int8, tag text)")
db.executemany("INSERT INTO t VALUES ($1, $2)", [(1, "a"), (2, "b"), (3, "c"), (4, "d")])
out["any_int"] = [r["id"] for r in db.fetch("SELECT id FROM t WHERE id = ANY($1) ORDER BY id", [1, 3, 9])]
out["any_text"] = db.fetchval("SELECT array_agg(id ORDER BY id) FROM t WHERE tag = ANY($1)", ["b", "d", "z"])
out["any_empty"] = db.fetch("SELECT id FROM t WHERE id = ANY($1)", [])
result = out
`)
	got := s.runNode(t, "types", code.String(), map[string]*kgwv1.ResourceSpec{"db": db.spec(t, nil)}, nil)

	for i, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s", tt.pgType, tt.in), func(t *testing.T) {
			r, ok := got[strconv.Itoa(i)].(map[string]any)
			if !ok {
				t.Fatalf("no result for row %d: %v", i, got)
			}
			tt.check(t, r)
		})
	}
	diffResult(t, map[string]any{"any_int": got["any_int"], "any_text": got["any_text"], "any_empty": got["any_empty"]},
		map[string]any{"any_int": []any{1.0, 3.0}, "any_text": []any{2.0, 4.0}, "any_empty": []any{}})
}

// A typeCase is one value of TestDatabaseTypeMapping: sent as pgType,
// read back and returned in the execution's result.
type typeCase struct {
	pgType   string
	in       string // Starlark expression bound as $1
	typ      string // type() of the value read back
	want     any    // in Execution.result
	wantTime string // for time values: the instant, compared after parsing
}

// check checks the result row r of tt: the Starlark type, equality with
// the value sent, PostgreSQL's name of the type, and the value.
func (tt typeCase) check(t *testing.T, r map[string]any) {
	wantPG := strings.NewReplacer("int2", "smallint", "int4", "integer", "int8", "bigint", "float4", "real",
		"float8", "double precision", "varchar", "character varying", "bool", "boolean", "timestamptz",
		"timestamp with time zone").Replace(tt.pgType)
	if r["type"] != tt.typ || r["equal"] != true || r["pg"] != wantPG {
		t.Errorf("read back as Starlark %v (equal to the value sent: %v), PostgreSQL type %v; want %s, equal, %s",
			r["type"], r["equal"], r["pg"], tt.typ, wantPG)
	}
	if tt.wantTime != "" {
		s, _ := r["value"].(string)
		gotT, err := time.Parse(time.RFC3339Nano, s)
		wantT, _ := time.Parse(time.RFC3339Nano, tt.wantTime)
		if err != nil || !gotT.Equal(wantT) {
			t.Errorf("result value %q, want an RFC 3339 time equal to %s", r["value"], tt.wantTime)
		}
		return
	}
	if diff := cmp.Diff(tt.want, r["value"], cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("result value (-want +got):\n%s", diff)
	}
}

// respConn is a raw RESP connection to Redis, for a subscriber whose
// subscription is confirmed before the node publishes.
type respConn struct {
	c net.Conn
	r *bufio.Reader
}

func (rc *respConn) send(args ...string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	_, err := io.WriteString(rc.c, b.String())
	return err
}

// read reads one reply: arrays as []any, bulk and simple strings as
// string, integers as int64.
func (rc *respConn) read() (any, error) {
	line, err := rc.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, fmt.Errorf("empty RESP line")
	}
	switch line[0] {
	case '+', '-':
		return line[1:], nil
	case ':':
		return strconv.ParseInt(line[1:], 10, 64)
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(rc.r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return nil, err
		}
		out := make([]any, 0, max(n, 0))
		for range n {
			v, err := rc.read()
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected RESP line %q", line)
}

func TestCacheHandleMethods(t *testing.T) {
	r := testenv.Redis(t)
	prefix := r.KeyPrefix(t)
	channel := prefix + "events"
	s := startStack(t, stackOptions{})

	// A subscriber on the channel the node publishes to.
	nc, err := net.Dial("tcp", r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub := &respConn{c: nc, r: bufio.NewReader(nc)}
	if err := sub.send("SUBSCRIBE", channel); err != nil {
		t.Fatal(err)
	}
	if ack, err := sub.read(); err != nil || fmt.Sprint(ack) != fmt.Sprint([]any{"subscribe", channel, int64(1)}) {
		t.Fatalf("SUBSCRIBE = %v, %v", ack, err)
	}

	got := s.runNode(t, "cache_methods", cacheMethodsNode, map[string]*kgwv1.ResourceSpec{"cache": {Type: "cache", Config: params(t, map[string]any{"host": "127.0.0.1", "port": r.Port})}},
		map[string]any{"p": prefix, "channel": channel})

	if w, _ := got["wrongtype"].(string); !strings.Contains(w, "WRONGTYPE") {
		t.Errorf("lpush on a string = %q, want a WRONGTYPE error", w)
	}
	delete(got, "wrongtype")
	diffResult(t, got, map[string]any{
		"set": true, "get": "v1", "get_missing": nil,
		"set_nx_exists": nil, "set_xx_missing": nil, "set_xx": true,
		"set_ex": true, "set_px": true, "setex": true,
		"ttl_persistent": -1.0, "ttl_missing": -2.0, "expire": true, "expire_missing": false, "ttl_in_range": true,
		"exists": 2.0,
		"incr":   1.0, "incr_amount": 6.0, "incrby": 16.0, "decr": 15.0, "decr_amount": 10.0,
		"mset": true, "mget": []any{"a", nil, "2"}, "mget_list": []any{"2", "a"},
		"lpush": 2.0, "rpush": 5.0, "lrange": []any{"a", "b", "c", "d", "e"},
		"lpop": "a", "rpop": "e", "lpop_count": []any{"b", "c"}, "rpop_missing": nil,
		"rpush_more": 4.0, "ltrim": true, "llen": 3.0,
		"hset": 1.0, "hset_mapping": 2.0, "hget": "v2", "hget_missing": nil, "hdel": 1.0,
		"hgetall": map[string]any{"f2": "v2", "f3": "3"},
		"sadd":    3.0, "srem": 1.0, "smembers": []any{"x", "y"}, "sismember": true, "sismember_not": false,
		"zadd": 3.0, "zadd_nx": 1.0, "zrange": []any{"new", "low", "mid", "high"},
		"zrange_scores": []any{[]any{"new", 0.0}, []any{"low", 1.0}},
		"publish":       1.0,
		"do_ping":       "PONG", "do_hincrby": 7.0, "do_strlen": 2.0, "do_lrange": []any{"d", "x", "y"}, "do_nil": nil,
		"do_select_refused": false,
		"delete":            2.0,
	})

	// The subscriber got the message.
	if err := nc.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	msg, err := sub.read()
	if m, ok := msg.([]any); err != nil || !ok || len(m) != 3 || m[0] != "message" || m[1] != channel || !strings.HasPrefix(m[2].(string), "hello ") {
		t.Errorf("subscriber read %v, %v; want the published message", msg, err)
	}

	checkCacheEffects(t, r.Addr, prefix)
}

// cacheMethodsNode calls every method of the cache handle "cache", on keys
// prefixed p, and publishes to channel; TestCacheHandleMethods checks its
// result and checkCacheEffects what it left in Redis.
const cacheMethodsNode = `
c = get_resource("cache")
def k(name):
    return p + name
out = {}
out["set"] = c.set(k("s"), "v1")
out["get"] = c.get(k("s"))
out["get_missing"] = c.get(k("missing"))
out["set_nx_exists"] = c.set(k("s"), "v2", nx=True)
out["set_xx_missing"] = c.set(k("xx"), "v", xx=True)
out["set_xx"] = c.set(k("s"), "v3", xx=True)
out["set_ex"] = c.set(k("ex"), 42, ex=100)
out["set_px"] = c.set(k("px"), 1.5, px=200000)
out["setex"] = c.setex(k("setex"), 300, "sv")
out["ttl_persistent"] = c.ttl(k("s"))
out["ttl_missing"] = c.ttl(k("missing"))
out["expire"] = c.expire(k("s"), 500)
out["expire_missing"] = c.expire(k("missing"), 5)
ttl = c.ttl(k("s"))
out["ttl_in_range"] = ttl > 0 and ttl <= 500
out["exists"] = c.exists(k("s"), k("ex"), k("missing"))
out["incr"] = c.incr(k("n"))
out["incr_amount"] = c.incr(k("n"), 5)
out["incrby"] = c.incrby(k("n"), 10)
out["decr"] = c.decr(k("n"))
out["decr_amount"] = c.decr(k("n"), 5)
out["mset"] = c.mset({k("m1"): "a", k("m2"): 2})
out["mget"] = c.mget(k("m1"), k("missing"), k("m2"))
out["mget_list"] = c.mget([k("m2"), k("m1")])
out["lpush"] = c.lpush(k("l"), "b", "a")
out["rpush"] = c.rpush(k("l"), "c", "d", "e")
out["lrange"] = c.lrange(k("l"), 0, -1)
out["lpop"] = c.lpop(k("l"))
out["rpop"] = c.rpop(k("l"))
out["lpop_count"] = c.lpop(k("l"), 2)
out["rpop_missing"] = c.rpop(k("missing"))
out["rpush_more"] = c.rpush(k("l"), "x", "y", "z")
out["ltrim"] = c.ltrim(k("l"), 0, 2)
out["llen"] = c.llen(k("l"))
out["hset"] = c.hset(k("h"), "f1", "v1")
out["hset_mapping"] = c.hset(k("h"), mapping={"f2": "v2", "f3": 3})
out["hget"] = c.hget(k("h"), "f2")
out["hget_missing"] = c.hget(k("h"), "nope")
out["hdel"] = c.hdel(k("h"), "f1", "nope")
out["hgetall"] = c.hgetall(k("h"))
out["sadd"] = c.sadd(k("set"), "x", "y", "z", "x")
out["srem"] = c.srem(k("set"), "z", "w")
out["smembers"] = c.smembers(k("set"))
out["sismember"] = c.sismember(k("set"), "x")
out["sismember_not"] = c.sismember(k("set"), "z")
out["zadd"] = c.zadd(k("z"), {"low": 1, "high": 10, "mid": 5.5})
out["zadd_nx"] = c.zadd(k("z"), {"low": 100, "new": 0}, nx=True)
out["zrange"] = c.zrange(k("z"), 0, -1)
out["zrange_scores"] = c.zrange(k("z"), 0, 1, withscores=True)
out["publish"] = c.publish(channel, "hello " + execution.id)
out["do_ping"] = c.do("PING")
out["do_hincrby"] = c.do("HINCRBY", k("h"), "counter", 7)
out["do_strlen"] = c.do("STRLEN", k("s"))
out["do_lrange"] = c.do("LRANGE", k("l"), 0, -1)
out["do_nil"] = c.do("GET", k("missing"))
out["do_select_refused"] = catch(c.do, "SELECT", 1).ok
out["delete"] = c.delete(k("m1"), k("m2"), k("missing"))
out["wrongtype"] = catch(c.lpush, k("s"), "x").error
result = out
`

// checkCacheEffects reads what cacheMethodsNode left in the Redis server at
// addr (keys prefixed prefix) with a client of its own.
func checkCacheEffects(t *testing.T, addr, prefix string) {
	t.Helper()
	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	ctx := t.Context()
	str := func(cmd rueidis.Completed) string {
		t.Helper()
		v, err := rc.Do(ctx, cmd).ToString()
		if err != nil && !rueidis.IsRedisNil(err) {
			t.Fatal(err)
		}
		return v
	}
	num := func(cmd rueidis.Completed) int64 {
		t.Helper()
		v, err := rc.Do(ctx, cmd).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	b := rc.B()
	if v := str(b.Get().Key(prefix + "s").Build()); v != "v3" {
		t.Errorf("GET s = %q, want v3", v)
	}
	for _, tc := range []struct {
		key      string
		min, max int64 // milliseconds
		want     string
	}{
		{"s", 1, 500_000, "v3"}, {"ex", 1, 100_000, "42"}, {"px", 1, 200_000, "1.5"}, {"setex", 1, 300_000, "sv"},
	} {
		pttl := num(b.Pttl().Key(prefix + tc.key).Build())
		v := str(b.Get().Key(prefix + tc.key).Build())
		if pttl < tc.min || pttl > tc.max || v != tc.want {
			t.Errorf("%s: PTTL %d ms, value %q; want %d..%d ms and %q", tc.key, pttl, v, tc.min, tc.max, tc.want)
		}
	}
	if v := str(b.Get().Key(prefix + "n").Build()); v != "10" {
		t.Errorf("GET n = %q, want 10", v)
	}
	if n := num(b.Exists().Key(prefix+"m1", prefix+"m2", prefix+"xx").Build()); n != 0 {
		t.Errorf("EXISTS m1 m2 xx = %d, want 0 (deleted / never written)", n)
	}
	list, err := rc.Do(ctx, b.Lrange().Key(prefix+"l").Start(0).Stop(-1).Build()).AsStrSlice()
	if err != nil || !slices.Equal(list, []string{"d", "x", "y"}) {
		t.Errorf("LRANGE l = %v, %v; want [d x y]", list, err)
	}
	hash, err := rc.Do(ctx, b.Hgetall().Key(prefix+"h").Build()).AsStrMap()
	if diff := cmp.Diff(map[string]string{"f2": "v2", "f3": "3", "counter": "7"}, hash); err != nil || diff != "" {
		t.Errorf("HGETALL h (-want +got), %v:\n%s", err, diff)
	}
	members, err := rc.Do(ctx, b.Smembers().Key(prefix+"set").Build()).AsStrSlice()
	slices.Sort(members)
	if err != nil || !slices.Equal(members, []string{"x", "y"}) {
		t.Errorf("SMEMBERS set = %v, %v; want [x y]", members, err)
	}
	zs, err := rc.Do(ctx, b.Zrange().Key(prefix+"z").Min("0").Max("-1").Withscores().Build()).AsZScores()
	var zGot []string
	for _, z := range zs {
		zGot = append(zGot, fmt.Sprintf("%s=%g", z.Member, z.Score))
	}
	if err != nil || !slices.Equal(zGot, []string{"new=0", "low=1", "mid=5.5", "high=10"}) {
		t.Errorf("ZRANGE z WITHSCORES = %v, %v; want new=0 low=1 mid=5.5 high=10", zGot, err)
	}
}

// seenRequest is a request the test HTTP server received.
type seenRequest struct {
	Method, Path, Query, ContentType, Body string
	Auth, Custom, Default, UserAgent       string
}

// recorder is an httptest handler that records every request.
type recorder struct {
	mu   sync.Mutex
	seen []seenRequest
	done chan struct{} // closed at cleanup: releases /slow
}

func (rec *recorder) requests() []seenRequest {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.seen)
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	sr := seenRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, ContentType: r.Header.Get("Content-Type"),
		Body: string(body), Auth: r.Header.Get("Authorization"), Custom: r.Header.Get("X-Custom"),
		Default: r.Header.Get("X-Default"), UserAgent: r.Header.Get("User-Agent")}
	rec.mu.Lock()
	rec.seen = append(rec.seen, sr)
	rec.mu.Unlock()
	w.Header().Set("X-Served-By", "recorder")
	switch {
	case strings.HasSuffix(r.URL.Path, "/missing"):
		http.Error(w, "no such thing", http.StatusNotFound)
	case strings.HasSuffix(r.URL.Path, "/slow"):
		select { // until the client gives up (or the test ends)
		case <-r.Context().Done():
		case <-rec.done:
		}
	case strings.HasSuffix(r.URL.Path, "/text"):
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "plain text")
	case strings.HasSuffix(r.URL.Path, "/bytes"):
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write([]byte{0, 1, 0xff})
	case strings.HasSuffix(r.URL.Path, "/redirect"):
		http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
	default:
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"method": r.Method, "path": r.URL.Path, "query": r.URL.RawQuery, "body": string(body)})
	}
}

// newRecorder starts a recording HTTP server listening on addr (host:0),
// closed at cleanup.
func newRecorder(t *testing.T, addr string) (*recorder, *httptest.Server) {
	t.Helper()
	rec := &recorder{done: make(chan struct{})}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	srv := httptest.NewUnstartedServer(rec)
	srv.Listener.Close()
	srv.Listener = lis
	srv.Start()
	t.Cleanup(func() {
		close(rec.done)
		srv.Close()
	})
	return rec, srv
}

func TestHTTPClientHandleMethods(t *testing.T) {
	rec, srv := newRecorder(t, "127.0.0.1:0")
	s := startStack(t, stackOptions{})
	const token = "tok-Hq2-never-shown"
	if _, err := s.sec.StoreSecret(t.Context(), &kgwv1.StoreSecretRequest{Name: "api_token", AllowedHosts: []string{"127.0.0.1"},
		Value: params(t, map[string]any{"token": token})}); err != nil {
		t.Fatalf("StoreSecret: %v", err)
	}
	spec := &kgwv1.ResourceSpec{Type: "http_client", CredentialsRef: "api_token", Config: params(t, map[string]any{
		"base_url": srv.URL + "/api/v1", "headers": map[string]any{"X-Default": "d"}, "timeout": 10,
	})}
	got := s.runNode(t, "http_methods", httpMethodsNode, map[string]*kgwv1.ResourceSpec{"api": spec}, nil)

	raise404, _ := got["raise_404"].(string)
	timeout, _ := got["timeout"].(string)
	if !strings.Contains(raise404, "404 Client Error") || !strings.Contains(raise404, "/api/v1/missing") {
		t.Errorf("raise_for_status on 404 = %q, want a 404 Client Error naming the URL", raise404)
	}
	if !strings.Contains(timeout, "api.get") || !strings.Contains(strings.ToLower(timeout), "timeout") &&
		!strings.Contains(strings.ToLower(timeout), "deadline") {
		t.Errorf("request over its timeout = %q, want an api.get timeout error", timeout)
	}
	delete(got, "raise_404")
	delete(got, "timeout")
	echo := func(method, path, query, body string) map[string]any {
		return map[string]any{"method": method, "path": path, "query": query, "body": body}
	}
	diffResult(t, got, map[string]any{
		"get": map[string]any{"status": 200.0, "status_code": 200.0, "ok": true, "reason": "OK",
			"json": echo("GET", "/api/v1/echo", "multi=x&multi=y&q=a+b", ""), "served_by": "recorder",
			"content_type": "application/json", "url_ends": true},
		"post":      echo("POST", "/api/v1/echo", "", `{"amount":100,"tags":["a"]}`),
		"put":       echo("PUT", "/api/v1/echo/1", "", "raw text"),
		"put_bytes": "PUT",
		"patch":     echo("PATCH", "/api/v1/echo/1", "", "a=1&b=two"),
		"delete":    echo("DELETE", "/api/v1/echo/1", "hard=yes", ""),
		"head":      map[string]any{"status": 200.0, "text": "", "served_by": "recorder"},
		"options":   echo("OPTIONS", "/api/v1/echo", "", ""),
		// bytes reach the result as standard base64.
		"text":          map[string]any{"text": "plain text", "multi": "a, b", "body": base64.StdEncoding.EncodeToString([]byte("plain text")), "is_bytes": true},
		"bytes":         base64.StdEncoding.EncodeToString([]byte{0, 1, 0xff}),
		"missing":       map[string]any{"status": 404.0, "ok": false, "text": "no such thing\n", "reason": "Not Found"},
		"raise_200":     nil,
		"json_and_data": false,
	})

	checkHTTPRequestsSeen(t, rec.requests(), token)
}

// httpMethodsNode calls every method of the HTTP client handle "api"
// against the recorder of newRecorder; TestHTTPClientHandleMethods checks
// its result and checkHTTPRequestsSeen what the recorder saw.
const httpMethodsNode = `
api = get_resource("api")
out = {}
r = api.get("echo", params={"q": "a b", "multi": ["x", "y"]}, headers={"X-Custom": "c1"})
out["get"] = {"status": r.status, "status_code": r.status_code, "ok": r.ok, "reason": r.reason, "json": r.json(),
              "served_by": r.headers["x-served-by"], "content_type": r.headers["content-type"],
              "url_ends": r.url.endswith("/api/v1/echo?multi=x&multi=y&q=a+b")}
out["post"] = api.post("/echo", json={"amount": 100, "tags": ["a"]}).json()
out["put"] = api.put("echo/1", data="raw text").json()
out["put_bytes"] = api.put("echo/2", data=b"\x00\x01").json()["method"]
out["patch"] = api.patch("echo/1", data={"a": "1", "b": "two"}).json()
out["delete"] = api.delete("echo/1", params={"hard": "yes"}).json()
r = api.head("echo")
out["head"] = {"status": r.status, "text": r.text, "served_by": r.headers["x-served-by"]}
out["options"] = api.request("OPTIONS", "echo", timeout=5, headers={"X-Custom": "opt"}).json()
r = api.get("text")
out["text"] = {"text": r.text, "multi": r.headers["x-multi"], "body": r.body, "is_bytes": type(r.body) == "bytes"}
out["bytes"] = api.get("bytes").body
r = api.get("missing")
out["missing"] = {"status": r.status, "ok": r.ok, "text": r.text, "reason": r.reason}
out["raise_404"] = catch(r.raise_for_status).error
out["raise_200"] = api.get("echo").raise_for_status()
out["timeout"] = catch(api.get, "slow", timeout=0.2).error
out["json_and_data"] = catch(api.post, "echo", json={}, data="x").ok
result = out
`

// checkHTTPRequestsSeen checks the requests seen by the recorder while
// httpMethodsNode ran with the bearer token token.
func checkHTTPRequestsSeen(t *testing.T, seen []seenRequest, token string) {
	t.Helper()
	// What the server saw: every request with the token, the default header
	// and kgw's User-Agent; bodies with their content types.
	type key struct{ Method, Path string }
	byReq := map[key]seenRequest{}
	for _, r := range seen {
		if r.Auth != "Bearer "+token || r.Default != "d" || r.UserAgent != "kgw" {
			t.Errorf("request %s %s carried Authorization %q, X-Default %q, User-Agent %q; want the bearer token, d and kgw",
				r.Method, r.Path, r.Auth, r.Default, r.UserAgent)
		}
		byReq[key{r.Method, r.Path}] = r
	}
	for _, tc := range []struct {
		method, path, contentType, body, custom string
	}{
		{"GET", "/api/v1/echo", "", "", ""},
		{"POST", "/api/v1/echo", "application/json", `{"amount":100,"tags":["a"]}`, ""},
		{"PUT", "/api/v1/echo/1", "text/plain; charset=utf-8", "raw text", ""},
		{"PUT", "/api/v1/echo/2", "application/octet-stream", "\x00\x01", ""},
		{"PATCH", "/api/v1/echo/1", "application/x-www-form-urlencoded", "a=1&b=two", ""},
		{"DELETE", "/api/v1/echo/1", "", "", ""},
		{"HEAD", "/api/v1/echo", "", "", ""},
		{"OPTIONS", "/api/v1/echo", "", "", "opt"},
		{"GET", "/api/v1/slow", "", "", ""},
	} {
		r, ok := byReq[key{tc.method, tc.path}]
		if !ok {
			t.Errorf("the server saw no %s %s (saw %v)", tc.method, tc.path, seen)
			continue
		}
		if r.ContentType != tc.contentType || r.Body != tc.body || tc.custom != "" && r.Custom != tc.custom {
			t.Errorf("%s %s: Content-Type %q, body %q, X-Custom %q; want %q, %q, %q", tc.method, tc.path, r.ContentType, r.Body, r.Custom,
				tc.contentType, tc.body, tc.custom)
		}
	}
	// The first GET carried its per-call header.
	if len(seen) == 0 || seen[0].Custom != "c1" || seen[0].Query != "multi=x&multi=y&q=a+b" {
		t.Errorf("first request = %+v, want X-Custom c1 and the encoded params", seen)
	}
	// The json=/data= mistake sent nothing: 13 requests in all.
	if len(seen) != 13 {
		t.Errorf("the server saw %d requests, want 13: %+v", len(seen), seen)
	}
}
