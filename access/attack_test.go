package access_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kailash-gateway/kgw/access"
	"github.com/kailash-gateway/kgw/store"
	"github.com/kailash-gateway/kgw/store/sqlite"
)

// TestForwardedPrincipalAttacks: headers a caller could forge or a
// certificate could carry that must not name someone else. Each was
// accepted before (issue 14 attack review): an escaped ',' inside another
// attribute produced a CN, ".." segments and "*" passed as SPIFFE ids, and
// the first of several ids was picked.
func TestForwardedPrincipalAttacks(t *testing.T) {
	for _, h := range []string{
		// RFC 4514: "\," is part of the O value; there is no CN here.
		`Hash=1;Subject="O=evil\,CN=victim"`,
		`Hash=1;Subject="O=evil\2CCN=victim"`,
		// Several CNs: which one is the caller is not clear.
		`Hash=1;Subject="CN=victim,CN=evil"`,
		`Hash=1;Subject="CN=victim+CN=evil"`,
		// Not an RFC 4514 name (a part without '=').
		`Hash=1;Subject="CN=batch,O=Org, Inc."`,
		// CNs that look like patterns.
		`Hash=1;Subject="CN=team-*"`,
		`Hash=1;Subject="CN=*"`,
		// SPIFFE ids that are not valid: a binding to spiffe://m/ns/a/* must
		// not match them.
		`URI=spiffe://m/ns/a/../b`,
		`URI=spiffe://m/ns/a/./b`,
		`URI=spiffe://m/ns/a//b`,
		`URI=spiffe://m/ns/a/*`,
		`URI=spiffe://m/ns/a/%2e%2e/b`,
		`URI=spiffe://m/ns/a/b?x=1`,
		`URI=spiffe://m/ns/a/b#f`,
		`URI=spiffe://m:443/ns/a`,
		`URI=spiffe://u@m/ns/a`,
		`URI=spiffe://M/ns/a`,
		`URI=spiffe://m`,
		`URI=spiffe://m/`,
		`URI=spiffe:///ns/a`,
		`URI="spiffe://m/ns/a/b,c"`,
		`URI=spiffe://m/ns/é`,
		`URI=spiffe://m/` + strings.Repeat("a", 2100),
		// Two SPIFFE ids in the element the sidecar verified.
		`URI=spiffe://m/ns/a;URI=spiffe://m/ns/admin`,
		// An invalid SPIFFE id does not fall back to the CN.
		`Subject="CN=ok";URI=spiffe://m/ns/a/../b`,
	} {
		if p, err := access.ForwardedPrincipal(h); err == nil {
			t.Errorf("ForwardedPrincipal(%q) = %q; want refused", h, p.Name)
		}
	}
	for h, want := range map[string]string{
		`Subject="CN=a\,b,O=x"`:                   "cert:a,b",
		`Subject="CN=batch,O=Org\, Inc."`:         "cert:batch",
		`Subject="O=x,CN=batch"`:                  "cert:batch",
		`URI=spiffe://m.example/ns/a-b/sa/c_d.e`:  "spiffe://m.example/ns/a-b/sa/c_d.e",
		`URI=https://other/x;URI=spiffe://m/ns/a`: "spiffe://m/ns/a",
	} {
		p, err := access.ForwardedPrincipal(h)
		if err != nil || p.Name != want {
			t.Errorf("ForwardedPrincipal(%q) = %v, %v; want %s", h, p, err, want)
		}
	}
}

// TestCertPrincipalAttacks: the same rules for a verified client
// certificate.
func TestCertPrincipalAttacks(t *testing.T) {
	cert := func(cn string, uris ...string) *x509.Certificate {
		c := &x509.Certificate{Subject: pkix.Name{CommonName: cn}}
		for _, u := range uris {
			pu, err := url.Parse(u)
			if err != nil {
				t.Fatal(err)
			}
			c.URIs = append(c.URIs, pu)
		}
		return c
	}
	for name, c := range map[string]*x509.Certificate{
		"two SPIFFE ids":      cert("", "spiffe://m/ns/a", "spiffe://m/ns/admin"),
		"dot-dot segment":     cert("", "spiffe://m/ns/a/../b"),
		"star segment":        cert("", "spiffe://m/ns/a/*"),
		"percent-encoded":     cert("", "spiffe://m/ns/a%2Fb"),
		"uppercase domain":    cert("", "spiffe://M/ns/a"),
		"no path":             cert("", "spiffe://m"),
		"invalid, CN present": cert("ok", "spiffe://m/ns/../x"),
		"CN with star":        cert("team-*"),
		"CN star alone":       cert("*"),
		"CN with space":       cert("a b"),
	} {
		if p, err := access.CertPrincipal(c); err == nil {
			t.Errorf("%s: CertPrincipal = %q; want refused", name, p.Name)
		}
	}
	for want, c := range map[string]*x509.Certificate{
		"spiffe://m/ns/a": cert("x", "https://web/x", "spiffe://m/ns/a"),
		"cert:batch":      cert("batch"),
	} {
		if p, err := access.CertPrincipal(c); err != nil || p.Name != want {
			t.Errorf("CertPrincipal = %v, %v; want %s", p, err, want)
		}
	}
}

// TestCheckSPIFFEID: ids that patterns such as spiffe://td/ns/a/* are
// meant for pass; nothing that could escape such a prefix does.
func TestCheckSPIFFEID(t *testing.T) {
	for _, ok := range []string{"spiffe://td/a", "spiffe://td.example-1_x/ns/a/sa/B.c-d_e"} {
		if err := access.CheckSPIFFEID(ok); err != nil {
			t.Errorf("CheckSPIFFEID(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "spiffe:/td/a", "SPIFFE://td/a", "spiffe://td/a/", "spiffe://td/a/..", "spiffe://td/a/\x00", "spiffe://td/a b", "spiffe://td/a\n"} {
		if err := access.CheckSPIFFEID(bad); err == nil {
			t.Errorf("CheckSPIFFEID(%q) accepted", bad)
		}
	}
}

// TestAPIKeyEncodings: bytes a gRPC client may refuse to send but a raw
// HTTP/2 client can (NUL, non-ASCII, whitespace) never make a key valid.
func TestAPIKeyEncodings(t *testing.T) {
	st := openStore(t)
	keys := access.NewKeys(st, []byte("0123456789abcdef0123456789abcdef"), nil)
	_, key, err := keys.Create(t.Context(), access.CreateRequest{Name: "k", Roles: []string{"viewer"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Authenticate(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		key[:len(key)-1] + "\x00",
		key + "\x00",
		key[:len(key)-2] + "é",
		key[:len(key)-1] + "\uff10", // fullwidth digit zero
		" " + key,
		key + " ",
		key[:20] + "\t" + key[21:],
		strings.Replace(key, "_", "-", 1),
		"kgw_" + strings.Repeat("a", 1<<20),
	} {
		if _, err := keys.Authenticate(t.Context(), bad); reason(err) != access.ReasonMalformed {
			t.Errorf("Authenticate(%.24q…) = %v; want malformed", bad, err)
		}
	}
}

// TestJWTAttacks: header tricks that other JWT libraries have fallen for,
// and claim encodings at the edges. Keys named in the token itself (jwk,
// jku, x5u, x5c) are never used; only the configured JWKS counts.
func TestJWTAttacks(t *testing.T) {
	good, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	evil, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	gs := &signer{kid: "k1", alg: "ES256", key: good}
	es := &signer{kid: "k1", alg: "ES256", key: evil} // same kid, attacker's key
	jw := newJWKS(t, gs.jwk(true))
	now := time.Now()
	v, err := access.NewJWTVerifier(t.Context(), access.JWTConfig{JWKSURL: jw.srv.URL, Issuer: issuer, Audience: audience, MinRefreshInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	evilJWK := es.jwk(true)
	for name, tok := range map[string]string{
		"embedded jwk":         es.sign(t, map[string]any{"alg": "ES256", "kid": "k1", "jwk": evilJWK}, claims(now, nil)),
		"embedded jwk, no kid": es.sign(t, map[string]any{"alg": "ES256", "jwk": evilJWK}, claims(now, nil)),
		"jku":                  es.sign(t, map[string]any{"alg": "ES256", "kid": "k1", "jku": "http://127.0.0.1:1/jwks"}, claims(now, nil)),
		"x5u":                  es.sign(t, map[string]any{"alg": "ES256", "kid": "k1", "x5u": "http://127.0.0.1:1/cert"}, claims(now, nil)),
		"kid traversal":        gs.sign(t, map[string]any{"alg": "ES256", "kid": "../../etc/passwd"}, claims(now, nil)),
		"kid sql":              gs.sign(t, map[string]any{"alg": "ES256", "kid": "k1' OR '1'='1"}, claims(now, nil)),
		"crit":                 gs.sign(t, map[string]any{"alg": "ES256", "kid": "k1", "crit": []string{"exp"}, "exp": 1}, claims(now, nil)),
		"alg RS256 on EC key":  gs.sign(t, map[string]any{"alg": "RS256", "kid": "k1"}, claims(now, nil)),
		"alg EdDSA on EC key":  gs.sign(t, map[string]any{"alg": "EdDSA", "kid": "k1"}, claims(now, nil)),
		"exp as string":        gs.sign(t, nil, claims(now, func(c map[string]any) { c["exp"] = "99999999999" })),
		"exp huge":             gs.sign(t, nil, claims(now, func(c map[string]any) { c["exp"] = 1e300 })),
		"exp negative":         gs.sign(t, nil, claims(now, func(c map[string]any) { c["exp"] = -1 })),
		"nbf as string":        gs.sign(t, nil, claims(now, func(c map[string]any) { c["nbf"] = "0" })),
		"aud not a string":     gs.sign(t, nil, claims(now, func(c map[string]any) { c["aud"] = map[string]any{"kgw": true} })),
		"aud nested array":     gs.sign(t, nil, claims(now, func(c map[string]any) { c["aud"] = []any{[]any{audience}} })),
		"sub pattern":          gs.sign(t, nil, claims(now, func(c map[string]any) { c["sub"] = "ali*" })),
		"sub with space":       gs.sign(t, nil, claims(now, func(c map[string]any) { c["sub"] = "alice admin" })),
		"iss array":            gs.sign(t, nil, claims(now, func(c map[string]any) { c["iss"] = []string{issuer} })),
		"four parts":           gs.sign(t, nil, claims(now, nil)) + ".x",
		"huge":                 "eyJ" + strings.Repeat("A", 20<<10) + ".e30.",
	} {
		if p, err := v.Verify(t.Context(), tok); err == nil {
			t.Errorf("%s: accepted as %s", name, p.Name)
		}
	}
	for name, tok := range map[string]string{
		"exp as float":                 gs.sign(t, nil, claims(now, func(c map[string]any) { c["exp"] = float64(now.Add(time.Hour).Unix()) + 0.5 })),
		"aud as string":                gs.sign(t, nil, claims(now, func(c map[string]any) { c["aud"] = audience })),
		"nbf in the future, in leeway": gs.sign(t, nil, claims(now, func(c map[string]any) { c["nbf"] = now.Add(10 * time.Second).Unix() })),
	} {
		if _, err := v.Verify(t.Context(), tok); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Only one JWKS read happened (at start): unknown kids within
	// MinRefreshInterval do not fetch again, and jku/x5u were not followed.
	if n := jw.count(); n != 1 {
		t.Errorf("JWKS read %d times, want 1", n)
	}
}

// TestJWKSBounded: a JWKS larger than 1 MiB is refused rather than read
// whole.
func TestJWKSBounded(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s := &signer{kid: "k1", alg: "ES256", key: key}
	pad := strings.Repeat("x", 2<<20)
	jw := newJWKS(t, map[string]any{"kid": "pad", "kty": "oct", "k": pad}, s.jwk(true))
	if _, err := access.NewJWTVerifier(t.Context(), access.JWTConfig{JWKSURL: jw.srv.URL, Issuer: issuer, Audience: audience}); err == nil {
		t.Errorf("a JWKS of more than 1 MiB was accepted")
	}
}

// countingKeyStore counts the key reads that reach the (real) store.
type countingKeyStore struct {
	*sqlite.Store
	mu    sync.Mutex
	reads int
}

func (c *countingKeyStore) GetAPIKey(ctx context.Context, id string) (*store.APIKey, error) {
	c.mu.Lock()
	c.reads++
	c.mu.Unlock()
	return c.Store.GetAPIKey(ctx, id)
}

// TestAPIKeyCacheFlood: unauthenticated calls with random key ids fill the
// per-replica cache; the keys in use stay cached (before, the whole cache
// was dropped when full, so every real call went to the store again).
func TestAPIKeyCacheFlood(t *testing.T) {
	st := &countingKeyStore{Store: openStore(t)}
	clk := &clock{t: time.Now()}
	keys := access.NewKeys(st, []byte("0123456789abcdef0123456789abcdef"), clk.now)
	_, key, err := keys.Create(t.Context(), access.CreateRequest{Name: "k", Roles: []string{"viewer"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Authenticate(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10001; i++ {
		fake := fmt.Sprintf("kgw_%016x_%064x", i, i)
		if _, err := keys.Authenticate(t.Context(), fake); reason(err) != access.ReasonUnknownKey {
			t.Fatalf("random id: %v", err)
		}
	}
	st.mu.Lock()
	before := st.reads
	st.mu.Unlock()
	if _, err := keys.Authenticate(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	after := st.reads
	st.mu.Unlock()
	if after != before {
		t.Errorf("the key in use was read from the store again after a flood of unknown ids (%d reads)", after-before)
	}
}

// TestAPIKeyVerifiedDigest: the digest that spares a known key's HMAC on
// later calls (Keys.Authenticate) never lets another secret in. A secret
// differing from the valid one in any single hex digit, before and after
// the valid one was verified, is refused; a wrong secret presented first
// leaves nothing that lets it in later; the digest goes with the record
// it was verified against, so when the stored key changes (here: the
// same id re-created with another secret) the old secret is refused once
// KeyTTL has passed; and a verified key costs no allocation.
func TestAPIKeyVerifiedDigest(t *testing.T) {
	ctx := t.Context()
	st := openStore(t)
	clk := &clock{t: time.Now()}
	mac := []byte("0123456789abcdef0123456789abcdef")
	keys := access.NewKeys(st, mac, clk.now)
	rec, key, err := keys.Create(ctx, access.CreateRequest{Name: "k", Roles: []string{"executor"}})
	if err != nil {
		t.Fatal(err)
	}
	const hexDigits = "0123456789abcdef"
	secretAt := len(key) - 64
	variants := func() []string {
		var out []string
		for i := secretAt; i < len(key); i++ {
			c := hexDigits[(strings.IndexByte(hexDigits, key[i])+1)%16]
			out = append(out, key[:i]+string(c)+key[i+1:])
		}
		return out
	}()
	// Wrong secrets first: nothing is remembered for them.
	for _, v := range variants[:8] {
		for range 2 {
			if _, err := keys.Authenticate(ctx, v); reason(err) != access.ReasonWrongKey {
				t.Fatalf("wrong secret before the valid one: %v", err)
			}
		}
	}
	if _, err := keys.Authenticate(ctx, key); err != nil {
		t.Fatal(err)
	}
	for _, v := range variants {
		if _, err := keys.Authenticate(ctx, v); reason(err) != access.ReasonWrongKey {
			t.Fatalf("secret differing in one digit after the valid one was verified: %v", err)
		}
		if _, err := keys.Authenticate(ctx, key); err != nil {
			t.Fatalf("the valid key after a wrong one: %v", err)
		}
	}
	if n := testing.AllocsPerRun(100, func() {
		if _, err := keys.Authenticate(ctx, key); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("a verified key costs %v allocations per call, want 0 (the HMAC computed again?)", n)
	}

	// The same id re-created with another secret (as only a store writer
	// could): the old secret's digest dies with the old record.
	newSecret := strings.Repeat("5a", 32)
	h := hmac.New(sha256.New, mac)
	h.Write([]byte(rec.ID + "." + newSecret))
	if err := st.DeleteAPIKey(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAPIKey(ctx, &store.APIKey{ID: rec.ID, Name: "k", Roles: []string{"viewer"}, Hash: h.Sum(nil), CreateTime: clk.now().UTC()}); err != nil {
		t.Fatal(err)
	}
	clk.add(access.KeyTTL)
	if _, err := keys.Authenticate(ctx, key); reason(err) != access.ReasonWrongKey {
		t.Errorf("old secret after the key was replaced and KeyTTL passed: %v", err)
	}
	p, err := keys.Authenticate(ctx, "kgw_"+rec.ID+"_"+newSecret)
	if err != nil || strings.Join(p.Roles, ",") != "viewer" {
		t.Errorf("new secret: %+v, %v; want the new record's roles", p, err)
	}
	if _, err := keys.Authenticate(ctx, key); reason(err) != access.ReasonWrongKey {
		t.Errorf("old secret after the new one was verified: %v", err)
	}
}
