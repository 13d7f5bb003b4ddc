package examples_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/rueidis"

	kgw "github.com/kailash-gateway/kgw/clients/go"
	"github.com/kailash-gateway/kgw/examples/internal/upstream"
	"github.com/kailash-gateway/kgw/internal/testenv"
)

// Secrets the suite stores once.
const (
	dbSecret  = "examples_db"  // PostgreSQL credentials of every example
	apiSecret = "examples_api" // bearer token of the HTTP upstreams
)

// suite is what every example test shares: one gateway, one PostgreSQL
// server, one Redis server and a client of each.
type suite struct {
	addr     string        // gRPC address of the gateway
	logs     func() string // the gateway's log so far
	client   *kgw.Client
	pg       *testenv.PostgresServer
	redis    rueidis.Client
	redisSrv *testenv.RedisServer
	apiToken string
}

// newSuite starts the gateway and the servers and stores the shared secrets.
func newSuite(t *testing.T) *suite {
	t.Helper()
	s := &suite{
		pg:       testenv.Postgres(t),
		redisSrv: testenv.Redis(t),
		apiToken: "tok_" + randomHex(t),
	}
	gw := testenv.Gateway(t) // the real kgw binary, built once
	s.addr, s.logs = gw.Addr, gw.Logs
	c, err := kgw.Dial(t.Context(), s.addr)
	if err != nil {
		t.Fatalf("kgw.Dial(%s): %v", s.addr, err)
	}
	t.Cleanup(func() { c.Close() })
	s.client = c
	r, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{s.redisSrv.Addr}, DisableCache: true})
	if err != nil {
		t.Fatalf("connect to redis %s: %v", s.redisSrv.Addr, err)
	}
	t.Cleanup(r.Close)
	s.redis = r

	u, err := url.Parse(s.pg.DSN)
	if err != nil {
		t.Fatalf("parse PostgreSQL DSN: %v", err)
	}
	creds := map[string]any{"user": u.User.Username()}
	if pw, ok := u.User.Password(); ok {
		creds["password"] = pw
	}
	s.storeSecret(t, dbSecret, creds)
	s.storeSecret(t, apiSecret, map[string]any{"token": s.apiToken})
	return s
}

func (s *suite) storeSecret(t *testing.T, name string, value map[string]any) {
	t.Helper()
	if _, err := s.client.StoreSecret(t.Context(), name, value); err != nil {
		t.Fatalf("StoreSecret(%s): %v", name, err)
	}
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// example is one example's isolated environment: its database (schema
// applied), its Redis key prefix and its registered workflows.
type example struct {
	*suite
	name   string
	dbName string
	dbHost string
	dbPort int
	db     *pgx.Conn // superuser connection to the example's database, for assertions
	prefix string
}

// setup registers every examples/<name>/workflow*.yaml, creates a fresh
// database with schema.sql applied when the example has one, and picks a
// Redis key prefix.
func (s *suite) setup(t *testing.T, name string) *example {
	t.Helper()
	ex := &example{suite: s, name: name, prefix: s.redisSrv.KeyPrefix(t)}
	files, err := filepath.Glob(filepath.Join(name, "workflow*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no workflow file in examples/%s (%v)", name, err)
	}
	for _, f := range files {
		wf, err := kgw.LoadWorkflowFile(f)
		if err != nil {
			t.Fatalf("LoadWorkflowFile(%s): %v", f, err)
		}
		if _, err := s.client.Register(t.Context(), wf); err != nil {
			t.Fatalf("Register(%s): %v", f, err)
		}
	}
	schema, err := os.ReadFile(filepath.Join(name, "schema.sql"))
	if os.IsNotExist(err) {
		return ex
	}
	if err != nil {
		t.Fatal(err)
	}
	dsn := s.pg.NewDatabase(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("parse database DSN: %v", err)
	}
	ex.dbName = strings.TrimPrefix(u.Path, "/")
	ex.dbHost = u.Hostname()
	ex.dbPort, _ = strconv.Atoi(u.Port())
	if ex.dbPort == 0 {
		ex.dbPort = 5432
	}
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("connect to %s: %v", ex.dbName, err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	if _, err := conn.Exec(t.Context(), string(schema)); err != nil {
		t.Fatalf("apply examples/%s/schema.sql: %v", name, err)
	}
	ex.db = conn
	return ex
}

// dbSpec is the database resource of the example, with credentials from
// the secret named secret (dbSecret when empty).
func (ex *example) dbSpec(secret string, maxSize int) kgw.Spec {
	if secret == "" {
		secret = dbSecret
	}
	return kgw.DatabaseSpec{
		Host: ex.dbHost, Port: ex.dbPort, Database: ex.dbName, SSLMode: "disable",
		MaxSize: maxSize, CredentialsRef: secret,
	}
}

// cacheSpec is the shared Redis server.
func (ex *example) cacheSpec(t *testing.T) kgw.Spec {
	host, port, err := net.SplitHostPort(ex.redisSrv.Addr)
	if err != nil {
		t.Fatalf("redis addr %q: %v", ex.redisSrv.Addr, err)
	}
	p, _ := strconv.Atoi(port)
	return kgw.CacheSpec{Host: host, Port: p}
}

// upstream starts the example HTTP API on 127.0.0.1 for this test, with the
// suite's token required.
func (ex *example) upstream(t *testing.T, cfg upstream.Config) (*upstream.Server, kgw.Spec) {
	cfg.Token = ex.apiToken
	up := upstream.New(cfg)
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	return up, kgw.HTTPClientSpec{BaseURL: srv.URL, CredentialsRef: apiSecret}
}

// run executes workflow and returns the execution; an RPC error fails t.
func (ex *example) run(t *testing.T, workflow string, opts ...kgw.ExecOption) *kgw.Execution {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	exec, err := ex.client.Execute(ctx, workflow, opts...)
	if err != nil {
		t.Fatalf("Execute(%s): %v", workflow, err)
	}
	if strings.Contains(fmt.Sprint(exec.Proto), ex.apiToken) {
		t.Errorf("execution %s of %s reveals the API token", exec.ID, workflow)
	}
	return exec
}

// mustComplete runs workflow and fails t unless it completed.
func (ex *example) mustComplete(t *testing.T, workflow string, opts ...kgw.ExecOption) *kgw.Execution {
	t.Helper()
	exec := ex.run(t, workflow, opts...)
	if exec.Status != kgw.StatusCompleted {
		msg := ""
		if exec.Error != nil {
			msg = exec.Error.Error() + "\n" + exec.Error.Traceback
		}
		t.Fatalf("%s: status %s, want completed: %s", workflow, exec.Status, msg)
	}
	return exec
}

// mustFail runs workflow and fails t unless it failed in node nodeID with
// an error message containing want.
func (ex *example) mustFail(t *testing.T, workflow, nodeID, want string, opts ...kgw.ExecOption) *kgw.Execution {
	t.Helper()
	exec := ex.run(t, workflow, opts...)
	if exec.Status != kgw.StatusFailed {
		t.Fatalf("%s: status %s, want failed (result %v)", workflow, exec.Status, exec.Result)
	}
	if exec.Error == nil || exec.Error.NodeID != nodeID || !strings.Contains(exec.Error.Message, want) {
		t.Fatalf("%s: error %+v, want one of node %q containing %q", workflow, exec.Error, nodeID, want)
	}
	return exec
}

// key is the example's Redis key for name.
func (ex *example) key(name string) string { return ex.prefix + name }

// redisGet returns the value of the example's key name, or "" and false.
func (ex *example) redisGet(t *testing.T, name string) (string, bool) {
	t.Helper()
	v, err := ex.redis.Do(t.Context(), ex.redis.B().Get().Key(ex.key(name)).Build()).ToString()
	if rueidis.IsRedisNil(err) {
		return "", false
	}
	if err != nil {
		t.Fatalf("GET %s: %v", ex.key(name), err)
	}
	return v, true
}

// redisJSON decodes the JSON value of key name; a missing key fails t.
func (ex *example) redisJSON(t *testing.T, name string) map[string]any {
	t.Helper()
	v, ok := ex.redisGet(t, name)
	if !ok {
		t.Fatalf("Redis key %s does not exist", ex.key(name))
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		t.Fatalf("Redis key %s = %q: not a JSON object: %v", ex.key(name), v, err)
	}
	return m
}

// checkTTL fails t unless key name expires within (lo, hi] seconds.
func (ex *example) checkTTL(t *testing.T, name string, lo, hi int64) {
	t.Helper()
	ttl, err := ex.redis.Do(t.Context(), ex.redis.B().Ttl().Key(ex.key(name)).Build()).AsInt64()
	if err != nil {
		t.Fatalf("TTL %s: %v", ex.key(name), err)
	}
	if ttl <= lo || ttl > hi {
		t.Errorf("TTL %s = %d, want in (%d, %d]", ex.key(name), ttl, lo, hi)
	}
}

// redisList returns the whole list at key name.
func (ex *example) redisList(t *testing.T, name string) []string {
	t.Helper()
	v, err := ex.redis.Do(t.Context(), ex.redis.B().Lrange().Key(ex.key(name)).Start(0).Stop(-1).Build()).AsStrSlice()
	if err != nil {
		t.Fatalf("LRANGE %s: %v", ex.key(name), err)
	}
	return v
}

// redisSet sets key name to value.
func (ex *example) redisSet(t *testing.T, name, value string) {
	t.Helper()
	if err := ex.redis.Do(t.Context(), ex.redis.B().Set().Key(ex.key(name)).Value(value).Build()).Error(); err != nil {
		t.Fatalf("SET %s: %v", ex.key(name), err)
	}
}

// queryRow runs sql on the example's database and scans one row.
func (ex *example) queryRow(t *testing.T, sql string, args []any, dest ...any) {
	t.Helper()
	if err := ex.db.QueryRow(t.Context(), sql, args...).Scan(dest...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// exec runs sql on the example's database.
func (ex *example) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := ex.db.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// path walks decoded JSON: path(v, "a", 0, "b") is v["a"][0]["b"]. A
// missing step fails t.
func path(t *testing.T, v any, steps ...any) any {
	t.Helper()
	cur := v
	for i, s := range steps {
		switch s := s.(type) {
		case string:
			m, ok := cur.(map[string]any)
			if !ok {
				t.Fatalf("path %v: step %d: %T is not an object", steps, i, cur)
			}
			if cur, ok = m[s]; !ok {
				t.Fatalf("path %v: step %d: no key %q in %v", steps, i, s, m)
			}
		case int:
			l, ok := cur.([]any)
			if !ok || s >= len(l) {
				t.Fatalf("path %v: step %d: %v has no element %d", steps, i, cur, s)
			}
			cur = l[s]
		}
	}
	return cur
}

// num is path for a number.
func num(t *testing.T, v any, steps ...any) float64 {
	t.Helper()
	x := path(t, v, steps...)
	f, ok := x.(float64)
	if !ok {
		t.Fatalf("path %v = %v (%T), want a number", steps, x, x)
	}
	return f
}

// str is path for a string.
func str(t *testing.T, v any, steps ...any) string {
	t.Helper()
	x := path(t, v, steps...)
	s, ok := x.(string)
	if !ok {
		t.Fatalf("path %v = %v (%T), want a string", steps, x, x)
	}
	return s
}

// gaps returns the times between consecutive requests.
func gaps(reqs []upstream.Request) []time.Duration {
	var out []time.Duration
	for i := 1; i < len(reqs); i++ {
		out = append(out, reqs[i].Time.Sub(reqs[i-1].Time))
	}
	return out
}
