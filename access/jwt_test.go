package access_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kailash-gateway/kgw/access"
)

var b64 = base64.RawURLEncoding

// signer makes JWTs with one key and publishes it as a JWK.
type signer struct {
	kid string
	alg string
	key crypto.Signer
}

func (s *signer) jwk(withAlg bool) map[string]any {
	m := map[string]any{"kid": s.kid, "use": "sig"}
	if withAlg {
		m["alg"] = s.alg
	}
	switch k := s.key.Public().(type) {
	case *rsa.PublicKey:
		m["kty"], m["n"], m["e"] = "RSA", b64.EncodeToString(k.N.Bytes()), b64.EncodeToString(big.NewInt(int64(k.E)).Bytes())
	case *ecdsa.PublicKey:
		enc, _ := k.Bytes()
		size := (k.Curve.Params().BitSize + 7) / 8
		m["kty"], m["crv"], m["x"], m["y"] = "EC", k.Curve.Params().Name, b64.EncodeToString(enc[1:1+size]), b64.EncodeToString(enc[1+size:])
	case ed25519.PublicKey:
		m["kty"], m["crv"], m["x"] = "OKP", "Ed25519", b64.EncodeToString(k)
	}
	return m
}

func (s *signer) sign(t *testing.T, header map[string]any, claims map[string]any) string {
	t.Helper()
	if header == nil {
		header = map[string]any{"alg": s.alg, "kid": s.kid, "typ": "JWT"}
	}
	hb, _ := json.Marshal(header)
	cb, _ := json.Marshal(claims)
	signed := b64.EncodeToString(hb) + "." + b64.EncodeToString(cb)
	var sig []byte
	var err error
	switch k := s.key.(type) {
	case ed25519.PrivateKey:
		sig = ed25519.Sign(k, []byte(signed))
	case *ecdsa.PrivateKey:
		d := sha256.Sum256([]byte(signed))
		r, ss, e := ecdsa.Sign(rand.Reader, k, d[:])
		err = e
		sig = append(r.FillBytes(make([]byte, 32)), ss.FillBytes(make([]byte, 32))...)
	case *rsa.PrivateKey:
		d := sha256.Sum256([]byte(signed))
		sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, d[:])
	}
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + b64.EncodeToString(sig)
}

// jwksServer serves a JWKS on loopback; keys and availability change at
// run time.
type jwksServer struct {
	mu   sync.Mutex
	keys []map[string]any
	down bool
	hits int
	srv  *httptest.Server
}

func newJWKS(t *testing.T, keys ...map[string]any) *jwksServer {
	j := &jwksServer{keys: keys}
	j.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		j.mu.Lock()
		defer j.mu.Unlock()
		j.hits++
		if j.down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"keys": j.keys})
	}))
	t.Cleanup(j.srv.Close)
	return j
}

func (j *jwksServer) count() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.hits
}

func (j *jwksServer) set(down bool, keys ...map[string]any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.down = down
	if keys != nil {
		j.keys = keys
	}
}

const (
	issuer   = "https://idp.test"
	audience = "kgw"
)

func claims(now time.Time, mod func(map[string]any)) map[string]any {
	c := map[string]any{"iss": issuer, "aud": []string{"other", audience}, "sub": "alice", "exp": now.Add(time.Hour).Unix(),
		"nbf": now.Add(-time.Minute).Unix(), "iat": now.Unix(), "roles": []string{"executor", "viewer", "root"}}
	if mod != nil {
		mod(c)
	}
	return c
}

func TestJWTVerify(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	rs := &signer{kid: "rsa1", alg: "RS256", key: rsaKey}
	es := &signer{kid: "ec1", alg: "ES256", key: ecKey}
	ed := &signer{kid: "ed1", alg: "EdDSA", key: edKey}
	// Keys without alg: the algorithm is inferred from the key type.
	jw := newJWKS(t, rs.jwk(false), es.jwk(false), ed.jwk(true))
	now := time.Now()
	v, err := access.NewJWTVerifier(t.Context(), access.JWTConfig{JWKSURL: jw.srv.URL, Issuer: issuer, Audience: audience,
		RolesClaim: "roles", MinRefreshInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*signer{rs, es, ed} {
		p, err := v.Verify(t.Context(), s.sign(t, nil, claims(now, nil)))
		if err != nil {
			t.Fatalf("valid %s token: %v", s.alg, err)
		}
		if p.Name != "jwt:alice" || p.Method != access.MethodJWT || strings.Join(p.Roles, ",") != "executor,viewer" {
			t.Errorf("valid %s token = %+v, want jwt:alice with executor,viewer", s.alg, p)
		}
	}

	pubDER := rsaKey.Public().(*rsa.PublicKey).N.Bytes()
	hs := func() string { // HS256 "signed" with the RSA public key as the secret
		hb, _ := json.Marshal(map[string]any{"alg": "HS256", "kid": "rsa1"})
		cb, _ := json.Marshal(claims(now, nil))
		signed := b64.EncodeToString(hb) + "." + b64.EncodeToString(cb)
		m := hmac.New(sha256.New, pubDER)
		m.Write([]byte(signed))
		return signed + "." + b64.EncodeToString(m.Sum(nil))
	}()
	none := func() string {
		hb, _ := json.Marshal(map[string]any{"alg": "none", "kid": "rsa1"})
		cb, _ := json.Marshal(claims(now, nil))
		return b64.EncodeToString(hb) + "." + b64.EncodeToString(cb) + "."
	}()
	tests := []struct {
		name, token, reason string
	}{
		{"expired", rs.sign(t, nil, claims(now, func(c map[string]any) { c["exp"] = now.Add(-2 * time.Minute).Unix() })), access.ReasonExpired},
		{"no exp", rs.sign(t, nil, claims(now, func(c map[string]any) { delete(c, "exp") })), access.ReasonInvalidToken},
		{"not yet valid", rs.sign(t, nil, claims(now, func(c map[string]any) { c["nbf"] = now.Add(5 * time.Minute).Unix() })), access.ReasonInvalidToken},
		{"wrong issuer", rs.sign(t, nil, claims(now, func(c map[string]any) { c["iss"] = "https://evil.test" })), access.ReasonInvalidToken},
		{"wrong audience", rs.sign(t, nil, claims(now, func(c map[string]any) { c["aud"] = "someone-else" })), access.ReasonInvalidToken},
		{"no sub", rs.sign(t, nil, claims(now, func(c map[string]any) { delete(c, "sub") })), access.ReasonInvalidToken},
		{"alg none", none, access.ReasonInvalidToken},
		{"HS256 with the public key", hs, access.ReasonInvalidToken},
		{"alg not the key's", es.sign(t, map[string]any{"alg": "ES384", "kid": "ec1"}, claims(now, nil)), access.ReasonInvalidToken},
		{"RS key under ES kid", rs.sign(t, map[string]any{"alg": "RS256", "kid": "ec1"}, claims(now, nil)), access.ReasonInvalidToken},
		{"tampered", rs.sign(t, nil, claims(now, nil))[:40] + "x" + rs.sign(t, nil, claims(now, nil))[41:], access.ReasonInvalidToken},
		{"garbage", "a.b", access.ReasonInvalidToken},
	}
	for _, tt := range tests {
		_, err := v.Verify(t.Context(), tt.token)
		var ae *access.AuthError
		if !errors.As(err, &ae) || ae.Reason != tt.reason {
			t.Errorf("%s: err = %v, want reason %s", tt.name, err, tt.reason)
			continue
		}
		if strings.Contains(err.Error(), tt.token) || len(tt.token) > 20 && strings.Contains(err.Error(), tt.token[len(tt.token)-20:]) {
			t.Errorf("%s: error repeats the token", tt.name)
		}
	}
	// Leeway: expired 10 s ago is still accepted.
	if _, err := v.Verify(t.Context(), rs.sign(t, nil, claims(now, func(c map[string]any) { c["exp"] = now.Add(-10 * time.Second).Unix() }))); err != nil {
		t.Errorf("token expired within the leeway: %v", err)
	}
}

func TestJWTKeyRotationAndOutage(t *testing.T) {
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s1 := &signer{kid: "k1", alg: "ES256", key: k1}
	s2 := &signer{kid: "k2", alg: "ES256", key: k2}
	jw := newJWKS(t, s1.jwk(true))
	now := time.Now()
	v, err := access.NewJWTVerifier(t.Context(), access.JWTConfig{JWKSURL: jw.srv.URL, Issuer: issuer, Audience: audience,
		MinRefreshInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), s1.sign(t, nil, claims(now, nil))); err != nil {
		t.Fatal(err)
	}
	// A token with a kid the JWKS does not have yet fails (after a refetch).
	hits := jw.count()
	time.Sleep(5 * time.Millisecond)
	if _, err := v.Verify(t.Context(), s2.sign(t, nil, claims(now, nil))); err == nil {
		t.Fatalf("token of an unpublished key accepted")
	}
	if jw.count() == hits {
		t.Errorf("an unknown kid did not refetch the JWKS")
	}
	// The issuer rotates: the unknown kid refetches and now verifies.
	jw.set(false, s2.jwk(true))
	time.Sleep(5 * time.Millisecond)
	if _, err := v.Verify(t.Context(), s2.sign(t, nil, claims(now, nil))); err != nil {
		t.Fatalf("token of the rotated-in key: %v", err)
	}
	// The JWKS goes down: the cached keys keep working.
	jw.set(true)
	time.Sleep(5 * time.Millisecond)
	if _, err := v.Verify(t.Context(), s2.sign(t, nil, claims(now, nil))); err != nil {
		t.Errorf("cached key while the JWKS is down: %v", err)
	}
	if _, err := v.Verify(t.Context(), s1.sign(t, nil, claims(now, nil))); err == nil {
		t.Errorf("the rotated-out key still verifies")
	}
	jw.srv.Close()
	time.Sleep(5 * time.Millisecond)
	if _, err := v.Verify(t.Context(), s2.sign(t, nil, claims(now, nil))); err != nil {
		t.Errorf("cached key with the JWKS server gone: %v", err)
	}
}

func TestJWTConfigRefused(t *testing.T) {
	jw := newJWKS(t, map[string]any{"kty": "oct", "k": "c2VjcmV0", "kid": "h"})
	for name, cfg := range map[string]access.JWTConfig{
		"symmetric keys only": {JWKSURL: jw.srv.URL, Issuer: issuer, Audience: audience},
		"no issuer":           {JWKSURL: jw.srv.URL, Audience: audience},
		"no audience":         {JWKSURL: jw.srv.URL, Issuer: issuer},
		"plain http":          {JWKSURL: "http://idp.example/jwks", Issuer: issuer, Audience: audience},
		"no source":           {Issuer: issuer, Audience: audience},
	} {
		if _, err := access.NewJWTVerifier(t.Context(), cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	jw2 := newJWKS(t, (&signer{kid: "s", alg: "RS256", key: small}).jwk(true))
	if _, err := access.NewJWTVerifier(t.Context(), access.JWTConfig{JWKSURL: jw2.srv.URL, Issuer: issuer, Audience: audience}); err == nil {
		t.Errorf("a JWKS with only a 1024-bit RSA key was accepted")
	}
}

// TestJWTUnknownKidRateLimited: tokens naming unknown kids re-read the JWKS
// at most once per MinRefreshInterval, however many arrive at once.
func TestJWTUnknownKidRateLimited(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	known := &signer{kid: "k1", alg: "ES256", key: k}
	jw := newJWKS(t, known.jwk(true))
	v, err := access.NewJWTVerifier(t.Context(), access.JWTConfig{JWKSURL: jw.srv.URL, Issuer: issuer, Audience: audience,
		MinRefreshInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	before := jw.count()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := &signer{kid: "unknown-" + string(rune('a'+i)), alg: "ES256", key: k}
			if _, err := v.Verify(t.Context(), s.sign(t, nil, claims(time.Now(), nil))); err == nil {
				t.Errorf("token with an unknown kid accepted")
			}
		}()
	}
	wg.Wait()
	if got := jw.count() - before; got != 0 {
		t.Errorf("20 unknown kids within MinRefreshInterval of the first read fetched the JWKS %d times, want 0", got)
	}
	if _, err := v.Verify(t.Context(), known.sign(t, nil, claims(time.Now(), nil))); err != nil {
		t.Errorf("known kid: %v", err)
	}
}
