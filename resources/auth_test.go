package resources_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/kailash-gateway/kgw/internal/testenv"
	"github.com/kailash-gateway/kgw/resources"
	"github.com/kailash-gateway/kgw/secrets"
	"github.com/kailash-gateway/kgw/store"
)

// fakePG is a PostgreSQL impostor on loopback: it answers an SSL request
// with "no", then asks every client for its password the way ask says
// (clear text or MD5) and records what arrives.
type fakePG struct {
	addr string
	mu   sync.Mutex
	got  []string // passwords received
	seen int      // startup messages received
}

func newFakePG(t *testing.T, ask pgproto3.BackendMessage) *fakePG {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakePG{addr: l.Addr().String()}
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
				f.serve(c, ask)
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); wg.Wait() })
	return f
}

func (f *fakePG) serve(c net.Conn, ask pgproto3.BackendMessage) {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	be := pgproto3.NewBackend(c, c)
	for {
		msg, err := be.ReceiveStartupMessage()
		if err != nil {
			return
		}
		switch msg.(type) {
		case *pgproto3.SSLRequest, *pgproto3.GSSEncRequest:
			if _, err := c.Write([]byte("N")); err != nil {
				return
			}
			continue
		case *pgproto3.StartupMessage:
		default:
			return
		}
		break
	}
	f.mu.Lock()
	f.seen++
	f.mu.Unlock()
	be.Send(ask)
	if err := be.Flush(); err != nil {
		return
	}
	be.SetAuthType(authType(ask))
	msg, err := be.Receive()
	if err != nil {
		return
	}
	if p, ok := msg.(*pgproto3.PasswordMessage); ok {
		f.mu.Lock()
		f.got = append(f.got, p.Password)
		f.mu.Unlock()
	}
	be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "28P01", Message: "password authentication failed"})
	_ = be.Flush()
}

func authType(m pgproto3.BackendMessage) uint32 {
	switch m.(type) {
	case *pgproto3.AuthenticationCleartextPassword:
		return pgproto3.AuthTypeCleartextPassword
	case *pgproto3.AuthenticationMD5Password:
		return pgproto3.AuthTypeMD5Password
	}
	return 0
}

func (f *fakePG) counts() (startups int, passwords []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seen, append([]string(nil), f.got...)
}

// TestInsecurePasswordAuthRefused: a server that asks for a clear-text or
// MD5 password gets nothing — through a session, through Check, with the
// credentials as fields or as a dsn, whatever sslmode the config names
// short of verify-full — unless the config opts in with
// insecure_password_auth, which the last case shows the fake would notice.
func TestInsecurePasswordAuthRefused(t *testing.T) {
	const password = "pw-impostor-bait-77"
	asks := map[string]pgproto3.BackendMessage{
		"cleartext": &pgproto3.AuthenticationCleartextPassword{},
		"md5":       &pgproto3.AuthenticationMD5Password{Salt: [4]byte{1, 2, 3, 4}},
	}
	for askName, ask := range asks {
		t.Run(askName, func(t *testing.T) {
			f := newFakePG(t, ask)
			host, port, _ := net.SplitHostPort(f.addr)
			e := newEnv(t, nil)
			e.putSecret(t, "fields", map[string]any{"user": "app", "password": password})
			e.putSecret(t, "dsn", map[string]any{"dsn": fmt.Sprintf("postgres://app:%s@%s/db?require_auth=password,md5", password, f.addr)})
			variants := []struct {
				name string
				spec store.ResourceSpec
			}{
				{"fields", store.ResourceSpec{Type: "database", Config: map[string]any{"host": host, "port": port, "timeout": 5}, CredentialsRef: "fields"}},
				{"sslmode disable", store.ResourceSpec{Type: "database", Config: map[string]any{"host": host, "port": port, "sslmode": "disable", "timeout": 5}, CredentialsRef: "fields"}},
				{"sslmode require", store.ResourceSpec{Type: "database", Config: map[string]any{"host": host, "port": port, "sslmode": "prefer", "timeout": 5}, CredentialsRef: "fields"}},
				{"dsn asking for password auth", store.ResourceSpec{Type: "database", Config: map[string]any{"timeout": 5}, CredentialsRef: "dsn"}},
				{"opt-in false", store.ResourceSpec{Type: "database", Config: map[string]any{"host": host, "port": port, "timeout": 5, "insecure_password_auth": false}, CredentialsRef: "fields"}},
			}
			for _, v := range variants {
				sess := e.broker.Session(map[string]store.ResourceSpec{"db": v.spec}, nil)
				_, err := exec(t.Context(), sess, `get_resource("db").fetchval("SELECT 1")`)
				sess.Close()
				if err == nil || !strings.Contains(err.Error(), "require_auth") {
					t.Errorf("%s: fetchval error = %v, want a require_auth refusal", v.name, err)
				}
				if err := e.broker.Check(t.Context(), v.spec); err == nil {
					t.Errorf("%s: Check = nil, want a refusal", v.name)
				}
			}
			startups, got := f.counts()
			if startups == 0 {
				t.Fatal("the fake server saw no client: the test proves nothing")
			}
			if len(got) != 0 {
				t.Fatalf("the impostor received %d passwords: %q", len(got), got)
			}

			// Opting in sends the password (in the asked form): the fake
			// would have seen it above.
			optIn := store.ResourceSpec{Type: "database", Config: map[string]any{"host": host, "port": port, "timeout": 5, "insecure_password_auth": true}, CredentialsRef: "fields"}
			if err := e.broker.Check(t.Context(), optIn); err == nil {
				t.Error("Check against the impostor succeeded")
			}
			if _, got := f.counts(); len(got) != 1 {
				t.Errorf("with insecure_password_auth the fake got %d passwords, want 1", len(got))
			} else if askName == "cleartext" && got[0] != password {
				t.Errorf("clear-text password = %q", got[0])
			}
		})
	}
}

// TestScramPassword: a real server that requires SCRAM-SHA-256 accepts the
// pool's password (and refuses a wrong one), through a session and Check.
func TestScramPassword(t *testing.T) {
	pg := testenv.Postgres(t)
	dsn := pg.NewDatabase(t)
	ctx := t.Context()
	user := fmt.Sprintf("scram_user_%d", time.Now().UnixNano())
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	for _, sql := range []string{
		`DO $$ BEGIN CREATE ROLE ` + testenv.ScramRole + ` NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$`,
		`SET password_encryption = 'scram-sha-256'`,
		`CREATE ROLE ` + user + ` LOGIN PASSWORD 'scram-pw-Kx81' IN ROLE ` + testenv.ScramRole,
	} {
		if _, err := admin.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), dsn)
		if err == nil {
			defer c.Close(context.Background())
			_, _ = c.Exec(context.Background(), `DROP ROLE IF EXISTS `+user)
		}
	})
	e := newEnv(t, nil)
	cfg := pgConfig(t, dsn, map[string]any{"timeout": 5})
	delete(cfg, "user")
	e.putSecret(t, "good", map[string]any{"user": user, "password": "scram-pw-Kx81"})
	e.putSecret(t, "bad", map[string]any{"user": user, "password": "wrong-pw-Kx81"})
	good := store.ResourceSpec{Type: "database", Config: cfg, CredentialsRef: "good"}
	bad := store.ResourceSpec{Type: "database", Config: cfg, CredentialsRef: "bad"}
	g := mustExec(t, e.broker, map[string]store.ResourceSpec{"db": good}, `u = get_resource("db").fetchval("SELECT current_user")`)
	expect(t, g["u"], `"`+user+`"`)
	if err := e.broker.Check(ctx, good); err != nil {
		t.Errorf("Check(good) = %v", err)
	}
	err = e.broker.Check(ctx, bad)
	if err == nil {
		t.Fatal("Check(wrong password) = nil: the server did not authenticate, so SCRAM was not exercised")
	}
	if !strings.Contains(err.Error(), "password authentication failed") || strings.Contains(err.Error(), "wrong-pw") {
		t.Errorf("Check(wrong password) = %v", err)
	}
}

// TestDatabaseHostLists: every host pgx would dial is checked against
// allowed_hosts; a list in the host field is refused outright.
func TestDatabaseHostLists(t *testing.T) {
	addr, accepted := countingListener(t)
	host, port, _ := net.SplitHostPort(addr)
	e := newEnv(t, nil)
	e.putSecret(t, "wild", map[string]any{"password": "pw-wild-1234"}, "*.example.com", host)
	e.putSecret(t, "wildport", map[string]any{"password": "pw-wild-1234"}, host+":1")
	e.putSecret(t, "hostlist", map[string]any{"password": "pw-wild-1234", "host": host + ",/x/a.example.com"}, "*.example.com", host)
	dsns := map[string]string{
		"url two hosts":     "postgres://u:pw-dsn-5678@" + addr + ",127.0.0.3:5432/db",
		"url socket escape": "postgres://u:pw-dsn-5678@" + addr + ",%2Fx%2Fa.example.com/db",
		"kv host list":      "host=" + host + ",127.0.0.3 port=" + port + " user=u password=pw-dsn-5678",
		"kv port list":      "host=" + host + "," + host + " port=" + port + ",1 user=u password=pw-dsn-5678",
		"kv socket dir":     "host=/x/a.example.com user=u password=pw-dsn-5678",
		"kv other port":     "host=" + host + " port=1 user=u password=pw-dsn-5678",
		"url query host":    "postgres://u:pw-dsn-5678@" + addr + "/db?host=127.0.0.3",
	}
	i := 0
	for name, dsn := range dsns {
		i++
		secret := fmt.Sprintf("dsn%d", i)
		e.putSecret(t, secret, map[string]any{"dsn": dsn}, "*.example.com", host+":"+port)
		spec := store.ResourceSpec{Type: "database", Config: map[string]any{"timeout": 2}, CredentialsRef: secret}
		sess := e.broker.Session(map[string]store.ResourceSpec{"db": spec}, nil)
		_, err := sess.Open(t.Context(), "db")
		sess.Close()
		if !errors.Is(err, resources.ErrHostNotAllowed) {
			t.Errorf("%s: Open = %v, want ErrHostNotAllowed", name, err)
		} else if strings.Contains(err.Error(), "pw-dsn") {
			t.Errorf("%s: error leaks the password: %v", name, err)
		}
		if err := e.broker.Check(t.Context(), spec); !errors.Is(err, resources.ErrHostNotAllowed) {
			t.Errorf("%s: Check = %v, want ErrHostNotAllowed", name, err)
		}
	}
	for _, tc := range []struct {
		name   string
		spec   store.ResourceSpec
		target error
	}{
		{"config host list", store.ResourceSpec{Type: "database", Config: map[string]any{"host": host + ",/x/a.example.com", "port": port}, CredentialsRef: "wild"}, resources.ErrInvalidSpec},
		{"config host list no secret", store.ResourceSpec{Type: "database", Config: map[string]any{"host": "127.0.0.2,127.0.0.3"}}, resources.ErrInvalidSpec},
		{"secret host list", store.ResourceSpec{Type: "database", Config: map[string]any{"port": port}, CredentialsRef: "hostlist"}, resources.ErrInvalidSpec},
		{"config socket dir", store.ResourceSpec{Type: "database", Config: map[string]any{"host": "/x/a.example.com"}, CredentialsRef: "wild"}, resources.ErrHostNotAllowed},
		{"granted port only", store.ResourceSpec{Type: "database", Config: map[string]any{"host": host, "port": port}, CredentialsRef: "wildport"}, resources.ErrHostNotAllowed},
		{"cache other port", store.ResourceSpec{Type: "cache", Config: map[string]any{"host": host, "port": port}, CredentialsRef: "wildport"}, resources.ErrHostNotAllowed},
		{"http other port", store.ResourceSpec{Type: "http_client", Config: map[string]any{"base_url": "http://" + addr}, CredentialsRef: "wildport"}, resources.ErrHostNotAllowed},
		{"http default port", store.ResourceSpec{Type: "http_client", Config: map[string]any{"base_url": "http://" + host}, CredentialsRef: "wildport"}, resources.ErrHostNotAllowed},
	} {
		sess := e.broker.Session(map[string]store.ResourceSpec{"r": tc.spec}, nil)
		_, err := sess.Open(t.Context(), "r")
		sess.Close()
		if !errors.Is(err, tc.target) {
			t.Errorf("%s: Open = %v, want %v", tc.name, err, tc.target)
		}
		if err := e.broker.Check(t.Context(), tc.spec); !errors.Is(err, tc.target) {
			t.Errorf("%s: Check = %v, want %v", tc.name, err, tc.target)
		}
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("%d connections reached a listener that no spec may use", n)
	}
}

// TestHostPortGrant: a grant with a port allows that port.
func TestHostPortGrant(t *testing.T) {
	dsn := testenv.Postgres(t).NewDatabase(t)
	cfg := pgConfig(t, dsn, nil)
	port := fmt.Sprint(cfg["port"])
	e := newEnv(t, nil)
	e.putSecret(t, "ok", map[string]any{"password": "pw-port-grant"}, "127.0.0.1:"+port)
	e.putSecret(t, "ok6", map[string]any{"password": "pw-port-grant"}, "[::1]:"+port, "127.0.0.1:"+port)
	e.putSecret(t, "dsn", map[string]any{"dsn": dsn}, "127.0.0.1:"+port)
	red := secrets.NewRedactor()
	sess := e.broker.Session(map[string]store.ResourceSpec{
		"a": {Type: "database", Config: cfg, CredentialsRef: "ok"},
		"b": {Type: "database", Config: cfg, CredentialsRef: "ok6"},
		"c": {Type: "database", Config: map[string]any{}, CredentialsRef: "dsn"},
	}, red)
	defer sess.Close()
	g, err := exec(t.Context(), sess, `
a = get_resource("a").fetchval("SELECT 1")
b = get_resource("b").fetchval("SELECT 2")
c = get_resource("c").fetchval("SELECT 3")
`)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, g["a"], "1")
	expect(t, g["b"], "2")
	expect(t, g["c"], "3")
}
