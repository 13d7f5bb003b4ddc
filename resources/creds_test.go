package resources_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kailash-gateway/kgw/internal/testenv"
	"github.com/kailash-gateway/kgw/resources"
	"github.com/kailash-gateway/kgw/secrets"
	"github.com/kailash-gateway/kgw/store"
)

func TestDatabaseCredentials(t *testing.T) {
	dsn := testenv.Postgres(t).NewDatabase(t)
	e := newEnv(t, nil)
	cfg := pgConfig(t, dsn, nil)
	e.putSecret(t, "db_creds", map[string]any{"username": cfg["user"], "password": "pw-not-checked-by-trust"})
	e.putSecret(t, "db_dsn", map[string]any{"dsn": dsn})
	delete(cfg, "user")
	red := secrets.NewRedactor()
	sess := e.broker.Session(map[string]store.ResourceSpec{
		"db":       {Type: "database", Config: cfg, CredentialsRef: "db_creds"},
		"by_dsn":   {Type: "database", Config: map[string]any{"max_size": int64(2)}, CredentialsRef: "db_dsn"},
		"nosecret": {Type: "database", Config: cfg, CredentialsRef: "missing"},
	}, red)
	defer sess.Close()
	g, err := exec(t.Context(), sess, `
a = get_resource("db").fetchval("SELECT current_user")
b = get_resource("by_dsn").fetchval("SELECT current_database()")
`)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, g["a"], `"postgres"`)
	expect(t, g["b"], `"`+cfg["database"].(string)+`"`)
	if got := red.String("password is pw-not-checked-by-trust"); got != "password is [REDACTED]" {
		t.Errorf("redactor did not get the secret: %q", got)
	}
	_, err = sess.Open(t.Context(), "nosecret")
	if !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "secret 'missing' not found") {
		t.Errorf("missing secret = %v", err)
	}
	for _, p := range e.broker.Pools() {
		if strings.Contains(p.Target, "pw-") || p.Secret == "" || p.SecretVersion != 1 {
			t.Errorf("pool stats = %+v", p)
		}
	}
}

// countingListener accepts connections on 127.0.0.1 and counts them.
func countingListener(t *testing.T) (addr string, accepted *atomic.Int64) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = &atomic.Int64{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().String(), accepted
}

// TestAllowedHosts: a secret limited to other hosts is refused before any
// connection is made.
func TestAllowedHosts(t *testing.T) {
	e := newEnv(t, nil)
	addr, accepted := countingListener(t)
	host, port, _ := net.SplitHostPort(addr)
	e.putSecret(t, "limited", map[string]any{"password": "p4ss-limited", "token": "tok-limited"}, "db.example.com", "*.internal.example")
	specs := map[string]store.ResourceSpec{
		"db":    {Type: "database", Config: map[string]any{"host": host, "port": port}, CredentialsRef: "limited"},
		"cache": {Type: "cache", Config: map[string]any{"host": host, "port": port}, CredentialsRef: "limited"},
		"api":   {Type: "http_client", Config: map[string]any{"base_url": "http://" + addr}, CredentialsRef: "limited"},
	}
	sess := e.broker.Session(specs, nil)
	defer sess.Close()
	for name := range specs {
		_, err := sess.Open(t.Context(), name)
		if !errors.Is(err, resources.ErrHostNotAllowed) {
			t.Errorf("Open(%s) = %v, want ErrHostNotAllowed", name, err)
		} else if strings.Contains(err.Error(), "p4ss") || strings.Contains(err.Error(), "tok-limited") {
			t.Errorf("error leaks the secret: %v", err)
		}
	}
	if err := e.broker.Check(t.Context(), specs["db"]); !errors.Is(err, resources.ErrHostNotAllowed) {
		t.Errorf("Check = %v, want ErrHostNotAllowed", err)
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("%d connections reached the refused host", n)
	}
}

// TestHTTPCredentials: credentials go only to the origin of base_url, also
// across redirects.
func TestHTTPCredentials(t *testing.T) {
	home, other := newEcho(t), newEcho(t)
	e := newEnv(t, nil)
	e.putSecret(t, "api_token", map[string]any{"token": "tok-123", "headers": map[string]any{"X-Api-Key": "key-456"}})
	e.putSecret(t, "api_basic", map[string]any{"basic": map[string]any{"user": "u", "password": "p"}})
	e.putSecret(t, "multi", map[string]any{"localhost": "tok-local", "stripe": "tok-stripe"})
	e.putSecret(t, "multi_map", map[string]any{"one": map[string]any{"api_key": "k1"}, "two": "k2"})
	_, homePort, _ := net.SplitHostPort(strings.TrimPrefix(home.URL, "http://"))
	red := secrets.NewRedactor()
	sess := e.broker.Session(map[string]store.ResourceSpec{
		"api":   {Type: "http_client", Config: map[string]any{"base_url": home.URL}, CredentialsRef: "api_token"},
		"basic": {Type: "http_client", Config: map[string]any{"base_url": home.URL}, CredentialsRef: "api_basic"},
		"multi": {Type: "http_client", Config: map[string]any{"base_url": "http://localhost:" + homePort}, CredentialsRef: "multi"},
		"keyed": {Type: "http_client", Config: map[string]any{"base_url": home.URL}, CredentialsRef: "multi_map", CredentialsKey: "one"},
	}, red)
	defer sess.Close()
	g, err := exec(t.Context(), sess, `
api = get_resource("api")
home = api.get("/x").json()["auth"]
absolute_other = api.get("`+other.URL+`/y").json()["auth"]
redirected = api.get("/redirect", params={"to": "`+other.URL+`/z"}).json()["auth"]
back_home = api.get("/redirect", params={"to": "/w"}).json()["auth"]
basic = get_resource("basic").get("/").json()["auth"]
multi = get_resource("multi").get("/").json()["auth"]
keyed = get_resource("keyed").get("/").json()["auth"]
`)
	if err != nil {
		t.Fatal(err)
	}
	// The echoed credentials are masked before node code sees them; what
	// the servers received is checked below.
	expect(t, g["home"], `"[REDACTED]"`)
	expect(t, g["absolute_other"], `""`)
	expect(t, g["redirected"], `""`)
	expect(t, g["back_home"], `"[REDACTED]"`)
	expect(t, g["basic"], `"[REDACTED]"`)
	expect(t, g["multi"], `"[REDACTED]"`)
	expect(t, g["keyed"], `"[REDACTED]"`)
	received := map[string]bool{}
	for _, r := range home.requests() {
		received[r.Header.Get("Authorization")] = true
	}
	for _, want := range []string{"Bearer tok-123", "Basic dTpw", "Bearer tok-local", "Bearer k1"} {
		if !received[want] {
			t.Errorf("the home origin never received Authorization %q (got %v)", want, received)
		}
	}
	for _, r := range other.requests() {
		if r.Header.Get("Authorization") != "" || r.Header.Get("X-Api-Key") != "" {
			t.Errorf("request to the other origin %s carried credentials: %v", r.URL, r.Header)
		}
	}
	var sawKey bool
	for _, r := range home.requests() {
		sawKey = sawKey || r.Header.Get("X-Api-Key") == "key-456"
	}
	if !sawKey {
		t.Error("credential header X-Api-Key never reached the home origin")
	}
	if got := red.String("Basic dTpw"); got != "[REDACTED]" {
		t.Errorf("derived Basic header not redacted: %q", got)
	}
}

// TestSecretRotation: a new secret version gets a new pool; the old one
// drains (its holder keeps working) and closes when released.
func TestSecretRotation(t *testing.T) {
	dsn := testenv.Postgres(t).NewDatabase(t)
	e := newEnv(t, nil)
	cfg := pgConfig(t, dsn, nil)
	e.putSecret(t, "rot", map[string]any{"user": cfg["user"], "password": "v1"})
	specs := map[string]store.ResourceSpec{"db": {Type: "database", Config: cfg, CredentialsRef: "rot"}}

	old := e.broker.Session(specs, nil)
	if _, err := exec(t.Context(), old, `c = get_resource("db").acquire()`); err != nil {
		t.Fatal(err)
	}
	e.putSecret(t, "rot", map[string]any{"user": cfg["user"], "password": "v2"})
	mustExec(t, e.broker, specs, `get_resource("db").fetchval("SELECT 1")`)

	pools := e.broker.Pools()
	if len(pools) != 2 {
		t.Fatalf("pools after rotation = %+v, want 2", pools)
	}
	versions := map[int32]bool{}
	for _, p := range pools {
		versions[p.SecretVersion] = p.Retired
	}
	if retired, ok := versions[1]; !ok || !retired || versions[2] {
		t.Errorf("versions/retired = %v, want v1 retired and v2 live", versions)
	}
	// The old pool still serves its holder.
	if _, err := exec(t.Context(), old, `v = get_resource("db").fetchval("SELECT 1")`); err != nil {
		t.Errorf("old session after rotation: %v", err)
	}
	old.Close()
	pools = e.broker.Pools()
	if len(pools) != 1 || pools[0].SecretVersion != 2 {
		t.Errorf("pools after draining = %+v, want only version 2", pools)
	}
}

func TestIdlePoolsClose(t *testing.T) {
	dsn := testenv.Postgres(t).NewDatabase(t)
	e := newEnv(t, func(c *resources.Config) { c.IdleTimeout = 20 * time.Millisecond })
	mustExec(t, e.broker, map[string]store.ResourceSpec{"db": dbSpec(t, dsn, nil)}, `get_resource("db").fetchval("SELECT 1")`)
	for range 500 {
		if len(e.broker.Pools()) == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("idle pool still open: %+v", e.broker.Pools())
}

func TestCheck(t *testing.T) {
	dsn := testenv.Postgres(t).NewDatabase(t)
	e := newEnv(t, nil)
	e.putSecret(t, "pw", map[string]any{"password": "hunter2-secret"})
	if err := e.broker.Check(t.Context(), dbSpec(t, dsn, nil)); err != nil {
		t.Errorf("Check(healthy) = %v", err)
	}
	// A port nobody listens on.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := e.broker.Check(ctx, store.ResourceSpec{Type: "database",
		Config: map[string]any{"host": "127.0.0.1", "port": port, "timeout": 2}, CredentialsRef: "pw"})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Check(closed port) = %v, want an error without the password", err)
	}
	if len(e.broker.Pools()) != 0 {
		t.Errorf("Check left pools behind: %+v", e.broker.Pools())
	}
	if err := e.broker.Check(ctx, store.ResourceSpec{Type: "nosql"}); !errors.Is(err, resources.ErrInvalidSpec) {
		t.Errorf("Check(bad type) = %v, want ErrInvalidSpec", err)
	}
}
