package resources_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/redis/rueidis"
	"go.starlark.net/starlark"

	"github.com/kailash-gateway/kgw/internal/testenv"
	"github.com/kailash-gateway/kgw/secrets"
	"github.com/kailash-gateway/kgw/store"
)

// recoverAttempts is node code that tries to get a credential out of the
// string text (and, for HTTP, out of the response r): every way of taking
// it apart that plain Starlark offers. Its globals are then searched for
// the credential in any form.
const recoverAttempts = `
rev = "".join(reversed(text.elems()))
chars = list(text.elems())
codes = [ord(c) for c in text.elems()]
halves = [text[:len(text)//2], text[len(text)//2:]]
every_other = [text[0::2], text[1::2]]
stripped = text.replace("Bearer ", "").replace("[", "").replace("]", "")
words = text.split(" ")
upper = text.upper()
quoted = repr(text)
`

// leaks reports the forms of secret found in the values: the secret, its
// reverse, upper case, base64, a run of its code points, or any 6-byte
// window of it.
func leaks(secret string, values starlark.StringDict) []string {
	var b strings.Builder
	for name, v := range values {
		fmt.Fprintf(&b, "%s=%s\n", name, v.String())
		if s, ok := v.(starlark.String); ok {
			b.WriteString(string(s) + "\n")
		}
	}
	dump := b.String()
	rev := []rune(secret)
	slices.Reverse(rev)
	var codes []string
	for _, c := range secret {
		codes = append(codes, fmt.Sprint(int(c)))
	}
	forms := map[string]string{
		"plain": secret, "reversed": string(rev), "upper": strings.ToUpper(secret),
		"base64": base64.StdEncoding.EncodeToString([]byte(secret)), "code points": strings.Join(codes, ", "),
	}
	for i := 0; i+6 <= len(secret); i++ {
		forms[fmt.Sprintf("window %d", i)] = secret[i : i+6]
	}
	var found []string
	for what, f := range forms {
		if strings.Contains(dump, f) {
			found = append(found, what)
		}
	}
	slices.Sort(found)
	return found
}

// TestMaskHTTPEcho: an upstream that echoes the Authorization header back
// — in the body, JSON-escaped in a JSON body, in a response header and in
// an error body — gives node code "[REDACTED]" everywhere, so no
// transformation of what node code gets can recover the token.
func TestMaskHTTPEcho(t *testing.T) {
	const token = "tQ7zXk9Lm2Vw-live"
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		w.Header().Set("X-Seen-Auth", auth)
		w.Header().Set("X-Token-"+"Copy", strings.TrimPrefix(auth, "Bearer "))
		switch r.URL.Path {
		case "/json":
			// \u-escape every character: the body holds no literal token,
			// the decoded JSON does.
			var esc strings.Builder
			for _, c := range auth {
				fmt.Fprintf(&esc, `\u%04x`, c)
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"auth": "%s", "%s": 1}`, esc.String(), esc.String())
		case "/fail":
			http.Error(w, "bad credentials "+auth, http.StatusUnauthorized)
		default:
			fmt.Fprintf(w, "you sent %s", auth)
		}
	}))
	defer up.Close()
	e := newEnv(t, nil)
	e.putSecret(t, "api", map[string]any{"token": token})
	red := secrets.NewRedactor()
	sess := e.broker.Session(map[string]store.ResourceSpec{
		"api": {Type: "http_client", Config: map[string]any{"base_url": up.URL}, CredentialsRef: "api"},
	}, red)
	defer sess.Close()
	for _, code := range []string{
		`r = get_resource("api").get("/echo")
text = r.text`,
		`r = get_resource("api").get("/echo")
text = str(r.body)
b = r.body
sl = b[3:]`,
		`r = get_resource("api").get("/echo")
text = r.headers["x-seen-auth"] + " " + r.headers["x-token-copy"]
hs = r.headers`,
		`r = get_resource("api").get("/json")
d = r.json()
text = d["auth"] + " " + str(d)`,
		`r = get_resource("api").get("/fail")
text = r.text + " " + str(r) + " " + r.reason`,
		`api = get_resource("api")
f = api.get
text = f("/echo").text`,
	} {
		g, err := exec(t.Context(), sess, code+recoverAttempts)
		if err != nil {
			t.Fatalf("%s: %v", code, err)
		}
		if !strings.Contains(g["text"].String(), secrets.Redacted) {
			t.Errorf("%s: text = %s, want the echoed token masked", code, g["text"])
		}
		if found := leaks(token, g); len(found) > 0 {
			t.Errorf("%s: node code recovered the token as %v", code, found)
		}
	}
	// raise_for_status's error (and any error) is masked too.
	_, err := exec(t.Context(), sess, `get_resource("api").get("/fail").raise_for_status()`)
	if err == nil || strings.Contains(err.Error(), token) {
		t.Errorf("raise_for_status = %v", err)
	}
}

// TestMaskDatabaseRows: a row holding the password (a table the operator
// filled, a column aliased to it) comes back masked through every method
// and value kind, and in errors; identity fields such as the user name
// are ordinary data.
func TestMaskDatabaseRows(t *testing.T) {
	const password = "pw-Row-8f3Kq2Zx"
	dsn := testenv.Postgres(t).NewDatabase(t)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `CREATE TABLE creds (id int, v text, b bytea, j jsonb, a text[])`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO creds VALUES (1, $1, convert_to($1, 'UTF8'), jsonb_build_object('pw', $1::text, $1::text, 2), ARRAY[$1::text, 'x'])`, password); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, nil)
	cfg := pgConfig(t, dsn, nil) // user postgres: trusted, the password is not checked
	e.putSecret(t, "db", map[string]any{"user": cfg["user"], "password": password})
	red := secrets.NewRedactor()
	sess := e.broker.Session(map[string]store.ResourceSpec{
		"db": {Type: "database", Config: cfg, CredentialsRef: "db"},
	}, red)
	defer sess.Close()
	for _, code := range []string{
		`text = get_resource("db").fetchval("SELECT v FROM creds")`,
		`row = get_resource("db").fetchrow("SELECT * FROM creds")
text = str(row)`,
		`rows = get_resource("db").fetch("SELECT v, b, j, a FROM creds")
text = str(rows) + str(rows[0]["b"]) + rows[0]["a"][0] + str(rows[0]["j"])`,
		`text = get_resource("db").fetchval("SELECT 'prefix:' || v || ':suffix' FROM creds")`,
		`text = str(get_resource("db").fetchrow("SELECT 1 AS " + '"' + "x" + '"' + ", v AS col FROM creds"))`,
		`text = get_resource("db").transaction(lambda tx: tx.fetchval("SELECT v FROM creds"))`,
		`c = get_resource("db").acquire()
text = c.fetchval("SELECT v FROM creds")
c.release()`,
		`def f(tx):
    return str(tx.fetch("SELECT v FROM creds"))
text = get_resource("db").transaction(f)`,
	} {
		g, err := exec(t.Context(), sess, code+recoverAttempts)
		if err != nil {
			t.Fatalf("%s: %v", code, err)
		}
		if !strings.Contains(g["text"].String(), secrets.Redacted) {
			t.Errorf("%s: text = %s, want the password masked", code, g["text"])
		}
		if found := leaks(password, g); len(found) > 0 {
			t.Errorf("%s: node code recovered the password as %v", code, found)
		}
	}
	// The server's error quotes the value: masked too.
	_, err = exec(t.Context(), sess, `get_resource("db").fetchval("SELECT v::int FROM creds")`)
	if err == nil || strings.Contains(err.Error(), password) || !strings.Contains(err.Error(), "invalid input syntax") {
		t.Errorf("error quoting the password = %v", err)
	}
	// Identity fields are data: the user is postgres, and so is a database
	// or a string of that name.
	g, err := exec(t.Context(), sess, `
u = get_resource("db").fetchval("SELECT current_user")
s = get_resource("db").fetchval("SELECT 'postgres'")
d = get_resource("db").fetchval("SELECT datname FROM pg_database WHERE datname = 'postgres'")
`)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, g["u"], `"postgres"`)
	expect(t, g["s"], `"postgres"`)
	expect(t, g["d"], `"postgres"`)
}

// TestMaskCacheValues: a cache value set to the password (by someone
// else) comes back masked through every read command.
func TestMaskCacheValues(t *testing.T) {
	const password = "redis-Pw-6yH2nQ"
	r := testenv.Redis(t)
	prefix := r.KeyPrefix(t)
	direct, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{r.Addr}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	ctx := context.Background()
	for _, c := range []rueidis.Completed{
		direct.B().Set().Key(prefix + "k").Value(password).Build(),
		direct.B().Rpush().Key(prefix+"l").Element("a", password).Build(),
		direct.B().Hset().Key(prefix+"h").FieldValue().FieldValue("f", password).FieldValue(password, "v").Build(),
		direct.B().Sadd().Key(prefix + "s").Member(password).Build(),
		direct.B().Set().Key(prefix + password).Value("key named after it").Build(),
	} {
		if err := direct.Do(ctx, c).Error(); err != nil {
			t.Fatal(err)
		}
	}
	e := newEnv(t, nil)
	e.putSecret(t, "cache", map[string]any{"password": password})
	host, port, _ := strings.Cut(r.Addr, ":")
	// The test server has no password: AUTH with one fails, so the
	// credentials are those of an unused second resource.
	red := secrets.NewRedactor()
	sess := e.broker.Session(map[string]store.ResourceSpec{
		"cache": {Type: "cache", Config: map[string]any{"host": host, "port": port}},
		"creds": {Type: "http_client", Config: map[string]any{"base_url": "http://127.0.0.1:1"}, CredentialsRef: "cache"},
	}, red)
	defer sess.Close()
	if _, err := sess.Open(t.Context(), "creds"); err != nil {
		t.Fatal(err)
	}
	p := prefix
	for _, code := range []string{
		`text = get_resource("cache").get("` + p + `k")`,
		`text = str(get_resource("cache").mget("` + p + `k", "` + p + `l"))`,
		`text = str(get_resource("cache").lrange("` + p + `l", 0, -1))`,
		`text = str(get_resource("cache").hgetall("` + p + `h"))`,
		`text = str(get_resource("cache").smembers("` + p + `s"))`,
		`text = get_resource("cache").do("GET", "` + p + `k")`,
		`text = str(get_resource("cache").do("KEYS", "` + p + `*"))`,
		`text = str(get_resource("cache").do("HGETALL", "` + p + `h"))`,
	} {
		g, err := exec(t.Context(), sess, code+recoverAttempts)
		if err != nil {
			t.Fatalf("%s: %v", code, err)
		}
		if !strings.Contains(g["text"].String(), secrets.Redacted) {
			t.Errorf("%s: text = %s, want the password masked", code, g["text"])
		}
		if found := leaks(password, g); len(found) > 0 {
			t.Errorf("%s: node code recovered the password as %v", code, found)
		}
	}
	// An error that quotes it: masked.
	_, err = exec(t.Context(), sess, `get_resource("cache").do("INCR", "`+p+`k")`)
	if err == nil || strings.Contains(err.Error(), password) {
		t.Errorf("error = %v", err)
	}
}

// TestMaskOpenErrors: an error of get_resource itself never shows a
// credential value, even one the spec echoes (here in the host name the
// secret may not be sent to).
func TestMaskOpenErrors(t *testing.T) {
	e := newEnv(t, nil)
	e.putSecret(t, "s", map[string]any{"password": "pwleak7q"}, "127.0.0.1")
	red := secrets.NewRedactor()
	sess := e.broker.Session(map[string]store.ResourceSpec{
		"db": {Type: "database", Config: map[string]any{"host": "pwleak7q.example"}, CredentialsRef: "s"},
	}, red)
	defer sess.Close()
	_, err := sess.Open(t.Context(), "db")
	if err == nil || strings.Contains(err.Error(), "pwleak7q") || !strings.Contains(err.Error(), "[REDACTED].example") {
		t.Errorf("Open = %v, want the refusal with the password masked", err)
	}
}
