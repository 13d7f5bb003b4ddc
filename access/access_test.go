package access_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kailash-gateway/kgw/access"
	"github.com/kailash-gateway/kgw/store"
	"github.com/kailash-gateway/kgw/store/sqlite"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), t.TempDir()+"/kgw.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func reason(err error) string {
	var ae *access.AuthError
	if errors.As(err, &ae) {
		return ae.Reason
	}
	return ""
}

// TestAPIKeys: create, authenticate, wrong secret, malformed, expiry,
// revocation seen by another replica within KeyTTL, last-used written at
// most once a minute.
func TestAPIKeys(t *testing.T) {
	st := openStore(t)
	ctx := t.Context()
	clk := &clock{t: time.Now()}
	mac := []byte("0123456789abcdef0123456789abcdef")
	a := access.NewKeys(st, mac, clk.now)
	b := access.NewKeys(st, mac, clk.now) // another replica
	rec, key, err := a.Create(ctx, access.CreateRequest{Name: "ci", Roles: []string{"executor", "viewer"}, Creator: "key:root"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(key, "kgw_"+rec.ID+"_") || len(key) != len("kgw_")+16+1+64 {
		t.Fatalf("key shape %d chars, want kgw_<16 hex>_<64 hex>", len(key))
	}
	stored, _ := st.GetAPIKey(ctx, rec.ID)
	if strings.Contains(string(stored.Hash), key[len(key)-64:]) || len(stored.Hash) != 32 {
		t.Errorf("the store keeps something other than a 32-byte keyed hash")
	}
	p, err := b.Authenticate(ctx, key)
	if err != nil || p.Name != "key:"+rec.ID || strings.Join(p.Roles, ",") != "executor,viewer" || p.Method != access.MethodAPIKey {
		t.Fatalf("Authenticate = %+v, %v", p, err)
	}
	wrong := key[:len(key)-1] + string("0123456789abcdef"[(strings.IndexByte("0123456789abcdef", key[len(key)-1])+1)%16])
	if _, err := b.Authenticate(ctx, wrong); reason(err) != access.ReasonWrongKey {
		t.Errorf("wrong secret: %v", err)
	}
	if _, err := b.Authenticate(ctx, "kgw_ffffffffffffffff_"+strings.Repeat("a", 64)); reason(err) != access.ReasonUnknownKey {
		t.Errorf("unknown id: %v", err)
	}
	for _, bad := range []string{"kgw_", "kgw_xyz_abc", key + "0", strings.ToUpper(key), "Bearer " + key} {
		if _, err := b.Authenticate(ctx, bad); reason(err) != access.ReasonMalformed {
			t.Errorf("malformed %.10q…: %v", bad, err)
		}
	}
	// Another key with a different HMAC key (a gateway with another master
	// key) does not verify.
	if _, err := access.NewKeys(st, []byte("another-key-another-key-another-"), clk.now).Authenticate(ctx, key); reason(err) != access.ReasonWrongKey {
		t.Errorf("key checked under another HMAC key: %v", err)
	}

	checkLastUsed(t, st, b, clk, rec.ID, key)
	checkRevokeAndExpire(t, a, b, clk, rec.ID, key)
}

// checkLastUsed: a key's last-used time (key id, secret key, authenticated
// on b) is written on first use, not again within a minute.
func checkLastUsed(t *testing.T, st store.Store, b *access.Keys, clk *clock, id, key string) {
	ctx := t.Context()
	k1, _ := st.GetAPIKey(ctx, id)
	if k1.LastUsedTime.IsZero() {
		t.Fatalf("last-used time not written")
	}
	clk.add(30 * time.Second)
	b.Authenticate(ctx, key)
	k2, _ := st.GetAPIKey(ctx, id)
	if !k2.LastUsedTime.Equal(k1.LastUsedTime) {
		t.Errorf("last-used time rewritten within a minute")
	}
	clk.add(31 * time.Second)
	b.Authenticate(ctx, key)
	k3, _ := st.GetAPIKey(ctx, id)
	if !k3.LastUsedTime.After(k1.LastUsedTime) {
		t.Errorf("last-used time not rewritten after a minute")
	}
}

// checkRevokeAndExpire: a key revoked on replica a is refused by replica
// b, which has it cached, once KeyTTL has passed; a key expires at its
// expire time; an unknown role is refused.
func checkRevokeAndExpire(t *testing.T, a, b *access.Keys, clk *clock, id, key string) {
	ctx := t.Context()
	if err := a.Revoke(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(ctx, key); err == nil {
		t.Errorf("revoked key accepted on the revoking replica")
	}
	clk.add(access.KeyTTL)
	if _, err := b.Authenticate(ctx, key); reason(err) != access.ReasonUnknownKey {
		t.Errorf("revoked key on another replica after KeyTTL: %v", err)
	}
	if access.KeyTTL > 5*time.Second {
		t.Errorf("KeyTTL %v exceeds the 5 s revocation bound", access.KeyTTL)
	}

	// Expiry.
	_, exp, err := a.Create(ctx, access.CreateRequest{Name: "short", Roles: []string{"viewer"}, ExpireTime: clk.now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(ctx, exp); err != nil {
		t.Fatal(err)
	}
	clk.add(time.Hour)
	if _, err := a.Authenticate(ctx, exp); reason(err) != access.ReasonExpired {
		t.Errorf("expired key: %v", err)
	}
	if _, _, err := a.Create(ctx, access.CreateRequest{Name: "x", Roles: []string{"king"}}); err == nil {
		t.Errorf("unknown role accepted")
	}
}

func TestBindingsAndGrants(t *testing.T) {
	st := openStore(t)
	ctx := t.Context()
	bs := access.NewBindings(st, nil)
	if _, err := bs.Create(ctx, "spiffe://mesh/ns/payments/*", []string{"executor"}, "key:a"); err != nil {
		t.Fatal(err)
	}
	if _, err := bs.Create(ctx, "jwt:alice", []string{"viewer", "executor"}, "key:a"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "*", "a*b*", "has space", strings.Repeat("x", 600)} {
		if _, err := bs.Create(ctx, bad, []string{"viewer"}, ""); err == nil {
			t.Errorf("binding for %q accepted", bad)
		}
	}
	roles, _ := bs.RolesFor(ctx, "spiffe://mesh/ns/payments/sa/api")
	if strings.Join(roles, ",") != "executor" {
		t.Errorf("roles of a matching SPIFFE id = %v", roles)
	}
	if roles, _ := bs.RolesFor(ctx, "spiffe://mesh/ns/paymentsX"); len(roles) != 0 {
		t.Errorf("roles of a non-matching id = %v", roles)
	}

	p := func(name string, roles ...string) *access.Principal {
		return &access.Principal{Name: name, Roles: roles}
	}
	g := &store.Grant{Creator: "key:owner", AllowedCallers: []string{"spiffe://mesh/ns/payments/*", "role:operator"}}
	tests := []struct {
		who  *access.Principal
		g    *store.Grant
		want bool
	}{
		{p("key:x", "admin"), g, true},
		{p("key:owner", "developer"), g, true},
		{p("spiffe://mesh/ns/payments/sa/api", "executor"), g, true},
		{p("spiffe://mesh/ns/other/sa/api", "executor"), g, false},
		{p("key:y", "operator"), g, true},
		{p("key:y", "secrets-admin"), g, false},
		{p("key:y", "secrets-admin"), nil, true}, // predates access control
		{p("key:y", "executor"), nil, false},     // predates access control
		{p("key:y", "secrets-admin"), &store.Grant{Creator: "local"}, true},
		{p("key:y", "executor"), &store.Grant{Creator: "key:z"}, false}, // empty: creator and admins only
	}
	for i, tt := range tests {
		if got := access.MayUse(tt.who, tt.g); got != tt.want {
			t.Errorf("%d: MayUse(%s %v) = %v, want %v", i, tt.who.Name, tt.who.Roles, got, tt.want)
		}
	}
	if !access.MayExecute(p("key:any", "executor"), &store.Grant{Creator: "key:z"}) || access.MayExecute(p("key:any", "executor"), g) {
		t.Errorf("MayExecute: empty callers must admit any executor, a list only those listed")
	}
	if access.MayChange(p("key:any", "developer"), g) || !access.MayChange(p("key:owner", "developer"), g) || access.MayChange(p("key:any", "developer"), nil) {
		t.Errorf("MayChange: only the creator and admins")
	}
}

func TestForwardedPrincipal(t *testing.T) {
	tests := []struct{ header, want string }{
		{`By=spiffe://m/gw;Hash=1;URI=spiffe://m/ns/a/sa/b`, "spiffe://m/ns/a/sa/b"},
		{`Hash=1;Subject="CN=batch,O=Org\, Inc.";URI=`, "cert:batch"},
		{`URI=spiffe://m/first,By=x;URI=spiffe://m/second`, "spiffe://m/second"},
	}
	for _, tt := range tests {
		p, err := access.ForwardedPrincipal(tt.header)
		if err != nil || p.Name != tt.want {
			t.Errorf("ForwardedPrincipal(%q) = %v, %v; want %s", tt.header, p, err, tt.want)
		}
	}
	for _, bad := range []string{"", "Hash=1", `Subject="O=NoCN"`} {
		if _, err := access.ForwardedPrincipal(bad); err == nil {
			t.Errorf("ForwardedPrincipal(%q) accepted", bad)
		}
	}
}

func FuzzForwardedPrincipal(f *testing.F) {
	f.Add(`By=spiffe://m/gw;Hash=1;URI=spiffe://m/ns/a/sa/b`)
	f.Add(`Subject="CN=a\",b";URI=`)
	f.Fuzz(func(t *testing.T, h string) {
		p, err := access.ForwardedPrincipal(h)
		if err == nil && (p.Name == "" || strings.ContainsAny(p.Name, " \t\n")) {
			t.Errorf("ForwardedPrincipal(%q) = %q", h, p.Name)
		}
	})
}
