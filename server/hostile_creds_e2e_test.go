package server_test

// Hostile node code against credentials and pooled sessions (issue 16,
// items 3–5), through the gRPC API of a whole gateway.

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"google.golang.org/protobuf/types/known/structpb"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
	"github.com/kailash-gateway/kgw/internal/testenv"
)

// TestHostileRecoversEchoedToken: an upstream echoes the Authorization
// header; node code encodes, hashes, reverses and slices what it got and
// returns it all, and stores it in workflow_cache for a later execution.
// No form of the token appears in any result.
func TestHostileRecoversEchoedToken(t *testing.T) {
	const token = "sk_live_Zr8Kq2Vx7Lm4"
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Echo", r.Header.Get("Authorization"))
		fmt.Fprintf(w, `{"auth": %q}`, r.Header.Get("Authorization"))
	}))
	defer up.Close()
	s := startStack(t, stackOptions{})
	value, _ := structpb.NewStruct(map[string]any{"token": token})
	if _, err := s.sec.StoreSecret(t.Context(), &kgwv1.StoreSecretRequest{Name: "api", Value: value}); err != nil {
		t.Fatal(err)
	}
	res := map[string]*kgwv1.ResourceSpec{"api": {Type: "http_client", Config: params(t, map[string]any{"base_url": up.URL}), CredentialsRef: "api"}}
	got := s.runNode(t, "steal", `
r = get_resource("api").get("/")
forms = [r.text, r.headers["x-echo"], r.json()["auth"], str(r.body)]
out = {}
for i, f in enumerate(forms):
    tok = f.replace("Bearer ", "")
    out["b64_%d" % i] = base64.b64encode(tok)
    out["b64full_%d" % i] = base64.b64encode(f)
    out["sha_%d" % i] = hashlib.sha256(tok)
    out["rev_%d" % i] = "".join(reversed(tok.elems()))
    out["codes_%d" % i] = [ord(c) for c in tok.elems()]
    out["halves_%d" % i] = [tok[:8], tok[8:]]
    out["spaced_%d" % i] = " ".join(tok.elems())
workflow_cache.set("loot", forms)
result = out
`, res, nil)
	later := s.runNode(t, "steal_later", `result = {"loot": workflow_cache.get("loot")}`, nil, nil)
	dump, _ := json.Marshal([]any{got, later})
	text := string(dump)
	rev := []rune(token)
	slices.Reverse(rev)
	sum := sha256.Sum256([]byte(token))
	forms := map[string]string{
		"token": token, "reversed": string(rev), "base64": base64.StdEncoding.EncodeToString([]byte(token)),
		"base64 bearer": base64.StdEncoding.EncodeToString([]byte("Bearer " + token)), "sha256": hex.EncodeToString(sum[:]),
		"first half": token[:8], "second half": token[8:], "spaced": strings.Join(strings.Split(token, ""), " "),
		"first code points": fmt.Sprintf("%d,%d,%d,%d", token[0], token[1], token[2], token[3]),
	}
	for what, f := range forms {
		if strings.Contains(text, f) {
			t.Errorf("the results hold the token's %s: %s", what, text)
		}
	}
	if !strings.Contains(text, "[REDACTED]") {
		t.Errorf("results %s: want the masked token", text)
	}
}

// TestHostileSessionPoisoning: one workflow calls a function that sets
// search_path, the role and a custom setting for the session
// (set_config(…, false)); another workflow, on the same one-connection
// pool, sees none of it.
func TestHostileSessionPoisoning(t *testing.T) {
	db := newPGDB(t, testenv.Postgres(t))
	db.exec(t, "CREATE SCHEMA evil")
	db.exec(t, "CREATE TABLE public.accounts (owner text)")
	db.exec(t, "INSERT INTO public.accounts VALUES ('real')")
	db.exec(t, "CREATE TABLE evil.accounts (owner text)")
	db.exec(t, "INSERT INTO evil.accounts VALUES ('attacker')")
	db.exec(t, `CREATE FUNCTION poison() RETURNS text LANGUAGE sql AS $$
		SELECT set_config('search_path', 'evil, public', false) || set_config('app.tenant', 'stolen', false) $$`)
	s := startStack(t, stackOptions{})
	res := map[string]*kgwv1.ResourceSpec{"db": db.spec(t, map[string]any{"max_size": 1})}
	// The attacker poisons its connection through an acquired connection
	// (where the change lasts until release) and through a pooled call.
	attacker := s.runNode(t, "attacker", `
db = get_resource("db")
c = db.acquire()
c.fetchval("SELECT poison()")
result = {"pid": c.fetchval("SELECT pg_backend_pid()"), "owner": c.fetchval("SELECT owner FROM accounts")}
c.release()
db.fetchval("SELECT poison()")
`, res, nil)
	if attacker["owner"] != "attacker" {
		t.Fatalf("the poisoning did not take in its own execution: %v", attacker)
	}
	victim := s.runNode(t, "victim", `
db = get_resource("db")
result = {"pid": db.fetchval("SELECT pg_backend_pid()"), "owner": db.fetchval("SELECT owner FROM accounts"),
          "path": db.fetchval("SHOW search_path"), "tenant": db.fetchval("SELECT current_setting('app.tenant', true)")}
`, res, nil)
	if victim["owner"] != "real" || victim["path"] != `"$user", public` || (victim["tenant"] != nil && victim["tenant"] != "") {
		t.Errorf("victim sees %v, want the real owner, the default search_path and no tenant", victim)
	}
	if victim["pid"] != attacker["pid"] {
		t.Errorf("the connection was replaced (pid %v → %v): the reset should have kept it", attacker["pid"], victim["pid"])
	}
}

// TestHostileCacheAdmin: administrative cache commands fail the node with
// a clear error.
func TestHostileCacheAdmin(t *testing.T) {
	r := testenv.NewRedis(t)
	s := startStack(t, stackOptions{})
	res := map[string]*kgwv1.ResourceSpec{"cache": {Type: "cache", Config: params(t, map[string]any{"host": "127.0.0.1", "port": r.Port})}}
	s.register(t, &kgwv1.Workflow{Name: "admin", Nodes: []*kgwv1.Node{{Id: "n", RequiredResources: []string{"cache"},
		Code: `result = {"v": get_resource("cache").do(*parameters["cmd"])}`}}})
	for _, cmd := range [][]any{{"CONFIG", "GET", "masterauth"}, {"ACL", "LIST"}, {"FLUSHALL"}, {"EVAL", "return 1", "0"}, {"CLIENT", "KILL", "TYPE", "normal"}} {
		x := s.run(t, &kgwv1.ExecuteWorkflowRequest{Workflow: "admin", Resources: res, Parameters: params(t, map[string]any{"cmd": cmd})})
		mustFail(t, x, "NODE_ERROR", fmt.Sprintf("%s is not available to workflow code", cmd[0]))
	}
}

// TestIdentityFieldsNotRedacted: a secret whose user is postgres does not
// turn a database called postgres into [REDACTED] in results; its password
// still is.
func TestIdentityFieldsNotRedacted(t *testing.T) {
	pg := testenv.Postgres(t)
	s := startStack(t, stackOptions{})
	value, _ := structpb.NewStruct(map[string]any{"user": "postgres", "password": "pw-ident-7Hq2", "database": "postgres"})
	if _, err := s.sec.StoreSecret(t.Context(), &kgwv1.StoreSecretRequest{Name: "pg", Value: value}); err != nil {
		t.Fatal(err)
	}
	res := map[string]*kgwv1.ResourceSpec{"db": {Type: "database", Config: params(t, map[string]any{"host": "127.0.0.1", "port": pg.Port}), CredentialsRef: "pg"}}
	got := s.runNode(t, "ident", `
db = get_resource("db")
result = {"db": db.fetchval("SELECT current_database()"), "user": db.fetchval("SELECT current_user"),
          "pw": db.fetchval("SELECT $1::text", parameters["guess"])}
`, res, map[string]any{"guess": "pw-ident-7Hq2"})
	diffResult(t, got, map[string]any{"db": "postgres", "user": "postgres", "pw": "[REDACTED]"})
}

// impostorPG is a PostgreSQL impostor on loopback: it declines TLS, asks
// every client for its password with ask, and counts the passwords that
// arrive.
type impostorPG struct {
	addr      string
	startups  atomic.Int64
	passwords atomic.Int64
}

func newImpostorPG(t *testing.T, ask pgproto3.BackendMessage) *impostorPG {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &impostorPG{addr: l.Addr().String()}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				be := pgproto3.NewBackend(c, c)
				for {
					msg, err := be.ReceiveStartupMessage()
					if err != nil {
						return
					}
					if _, ok := msg.(*pgproto3.StartupMessage); ok {
						break
					}
					if _, err := c.Write([]byte("N")); err != nil { // no TLS, no GSS encryption
						return
					}
				}
				f.startups.Add(1)
				be.Send(ask)
				if be.Flush() != nil {
					return
				}
				if _, ok := ask.(*pgproto3.AuthenticationMD5Password); ok {
					be.SetAuthType(pgproto3.AuthTypeMD5Password)
				} else {
					be.SetAuthType(pgproto3.AuthTypeCleartextPassword)
				}
				if msg, err := be.Receive(); err == nil {
					if _, ok := msg.(*pgproto3.PasswordMessage); ok {
						f.passwords.Add(1)
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); wg.Wait() })
	return f
}

// TestHostileImpostorDatabase: a workflow points a database resource
// with a stored secret at a server that asks for the password in clear
// text or MD5; the execution fails and CheckResource reports it, and the
// server never receives a password.
func TestHostileImpostorDatabase(t *testing.T) {
	s := startStack(t, stackOptions{})
	value, _ := structpb.NewStruct(map[string]any{"user": "app", "password": "pw-impostor-9Jd"})
	if _, err := s.sec.StoreSecret(t.Context(), &kgwv1.StoreSecretRequest{Name: "pg", Value: value}); err != nil {
		t.Fatal(err)
	}
	s.register(t, &kgwv1.Workflow{Name: "impostor", Nodes: []*kgwv1.Node{{Id: "n", RequiredResources: []string{"db"},
		Code: `result = {"v": get_resource("db").fetchval("SELECT 1")}`}}})
	for _, ask := range []pgproto3.BackendMessage{&pgproto3.AuthenticationCleartextPassword{}, &pgproto3.AuthenticationMD5Password{Salt: [4]byte{9, 8, 7, 6}}} {
		f := newImpostorPG(t, ask)
		host, port, _ := net.SplitHostPort(f.addr)
		spec := &kgwv1.ResourceSpec{Type: "database", CredentialsRef: "pg",
			Config: params(t, map[string]any{"host": host, "port": port, "database": "x", "timeout": 5})}
		x := s.run(t, &kgwv1.ExecuteWorkflowRequest{Workflow: "impostor", Resources: map[string]*kgwv1.ResourceSpec{"db": spec}})
		mustFail(t, x, "RESOURCE_ERROR", "require_auth")
		chk, err := s.res.CheckResource(t.Context(), &kgwv1.CheckResourceRequest{Target: &kgwv1.CheckResourceRequest_Spec{Spec: spec}})
		if err != nil || chk.GetHealthy() || !strings.Contains(chk.GetMessage(), "require_auth") {
			t.Errorf("CheckResource = %v, %v, want unhealthy with the require_auth refusal", chk, err)
		}
		if f.startups.Load() == 0 {
			t.Fatalf("%T: the impostor saw no client", ask)
		}
		if n := f.passwords.Load(); n != 0 {
			t.Errorf("%T: the impostor received %d passwords", ask, n)
		}
	}
}
