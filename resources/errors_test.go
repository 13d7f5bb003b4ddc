package resources_test

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/kailash-gateway/kgw/internal/starval"
	"github.com/kailash-gateway/kgw/internal/testenv"
	"github.com/kailash-gateway/kgw/resources"
	"github.com/kailash-gateway/kgw/store"
)

// closedPort returns a loopback port nobody listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// errorCase is Starlark code that must fail; resource tells whether the
// failure is the resource's (a *starval.ResourceError, which the node
// runtime reports as RESOURCE_ERROR) rather than the code's.
type errorCase struct {
	code     string
	want     string // in the message
	resource bool
}

func checkErrors(t *testing.T, sess *resources.Session, cases []errorCase, secrets ...string) {
	t.Helper()
	for _, tc := range cases {
		_, err := exec(t.Context(), sess, tc.code)
		if err == nil {
			t.Errorf("%s: no error", tc.code)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q, want it to contain %q", tc.code, err, tc.want)
		}
		if got := starval.IsResourceError(err); got != tc.resource {
			t.Errorf("%s: IsResourceError(%q) = %v, want %v", tc.code, err, got, tc.resource)
		}
		for _, s := range secrets {
			if strings.Contains(err.Error(), s) {
				t.Errorf("%s: error %q contains the secret %q", tc.code, err, s)
			}
		}
	}
}

// TestDatabaseErrors: failures of PostgreSQL are resource errors; mistakes
// in the arguments are not. Neither carries credentials.
func TestDatabaseErrors(t *testing.T) {
	dsn := testenv.Postgres(t).NewDatabase(t)
	e := newEnv(t, nil)
	e.putSecret(t, "down_creds", map[string]any{"user": "app", "password": "pw-never-shown"})
	down := pgConfig(t, dsn, map[string]any{"port": int64(closedPort(t)), "timeout": int64(2)})
	delete(down, "user")
	sess := e.broker.Session(map[string]store.ResourceSpec{
		"db":   dbSpec(t, dsn, nil),
		"down": {Type: resources.TypeDatabase, Config: down, CredentialsRef: "down_creds"},
	}, nil)
	defer sess.Close()
	checkErrors(t, sess, []errorCase{
		{`get_resource("db").fetch("SELECT * FROM nowhere")`, `db.fetch: ERROR: relation "nowhere" does not exist`, true},
		{`get_resource("db").fetchval("SELECT 1/0")`, "db.fetchval: ERROR: division by zero", true},
		{`get_resource("db").execute("SELECT $1::int", "x")`, "db.execute:", true},
		{`get_resource("db").executemany("INSERT INTO nowhere VALUES ($1)", [[1]])`, "db.executemany:", true},
		{`get_resource("db").transaction(lambda tx: tx.execute("bogus"))`, "db.execute:", true},
		{`get_resource("down").fetch("SELECT 1")`, "down.fetch:", true},
		{`get_resource("db").fetch(1)`, "sql must be a string", false},
		{`get_resource("db").fetch("SELECT $1", len)`, "cannot bind", false},
		{`get_resource("db").transaction(lambda tx: fail("boom"))`, "boom", false},
	}, "pw-never-shown", "password=")
}

// TestCacheErrors: errors replied by Redis and a server that is down are
// resource errors; bad arguments are not.
func TestCacheErrors(t *testing.T) {
	r := testenv.Redis(t)
	b := resources.NewBroker(resources.Config{Logger: quiet})
	defer b.Close()
	prefix := r.KeyPrefix(t)
	sess := b.Session(map[string]store.ResourceSpec{"cache": cacheSpec(r.Addr)}, nil)
	defer sess.Close()
	checkErrors(t, sess, []errorCase{
		{`c = get_resource("cache")
c.set("` + prefix + `s", "x")
c.lpush("` + prefix + `s", "y")`, "cache.lpush: WRONGTYPE", true},
		{`get_resource("cache").incr("` + prefix + `s")`, "cache.incr:", true},
		{`get_resource("cache").do("GET", "a", "b")`, "cache.do:", true},
		{`get_resource("cache").do("NOSUCHCOMMAND")`, "NOSUCHCOMMAND is not available to workflow code", false},
		{`get_resource("cache").set("k", None)`, "cannot send a NoneType", false},
		{`get_resource("cache").do("SELECT", "1")`, "SELECT is not available to workflow code (switching databases)", false},
	})

	// A server that goes away: the command fails as a resource error.
	own := testenv.NewRedis(t)
	spec := map[string]store.ResourceSpec{"down": cacheSpec(own.Addr)}
	mustExec(t, b, spec, `get_resource("down").set("k", "1")`)
	if err := own.Kill(); err != nil {
		t.Fatal(err)
	}
	down := b.Session(spec, nil)
	defer down.Close()
	checkErrors(t, down, []errorCase{{`get_resource("down").get("k")`, "down.get:", true}})
}

// TestHTTPErrors: transport failures and raise_for_status are resource
// errors; mistakes in the request are not.
func TestHTTPErrors(t *testing.T) {
	srv := newEcho(t)
	b := resources.NewBroker(resources.Config{Logger: quiet})
	defer b.Close()
	sess := b.Session(map[string]store.ResourceSpec{
		"api":  httpSpec(srv.URL+"/v1", map[string]any{"max_response_bytes": int64(1024)}),
		"down": httpSpec("http://127.0.0.1:"+strconv.Itoa(closedPort(t)), nil),
	}, nil)
	defer sess.Close()
	checkErrors(t, sess, []errorCase{
		{`get_resource("down").get("/x")`, "down.get:", true},
		{`get_resource("down").request("PURGE", "/x")`, "down.request:", true},
		{`get_resource("api").get("/missing").raise_for_status()`, "api.raise_for_status: 404 Client Error", true},
		{`get_resource("api").get("/broken").raise_for_status()`, "502 Server Error", true},
		{`get_resource("api").get("/big")`, "exceeds max_response_bytes (1024)", true},
		{`get_resource("api").get("ftp://example.com/x")`, "not http or https", false},
		{`get_resource("api").post("x", json={"a": 1}, data="b")`, "not both", false},
		{`get_resource("api").get("/x", timeout=-1)`, "timeout must be a positive number", false},
	})
}
