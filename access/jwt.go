package access

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// JWTConfig configures a JWTVerifier. Exactly one of JWKSURL and KeysFile;
// Issuer and Audience are required.
type JWTConfig struct {
	// JWKSURL is fetched (https, or http on a loopback host) and cached.
	JWKSURL string
	// KeysFile is a JWKS document on disk, re-read when a token names an
	// unknown kid.
	KeysFile string
	// Issuer must equal the token's iss.
	Issuer string
	// Audience must be one of the token's aud.
	Audience string
	// RolesClaim names a claim holding roles (a list of strings or a
	// space-separated string); "" takes no roles from tokens.
	RolesClaim string
	// Leeway is the clock skew allowed on exp and nbf; 0 means 30 s.
	Leeway time.Duration
	// RefreshEvery is how often keys are re-read in the background of
	// requests; 0 means 5 minutes.
	RefreshEvery time.Duration
	// MinRefreshInterval bounds re-reads caused by unknown kids; 0 means 10 s.
	MinRefreshInterval time.Duration
	// HTTPClient fetches JWKSURL; nil means a client with a 10 s timeout.
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// A JWTVerifier verifies JWTs against a JWKS: asymmetric algorithms only
// (RS256/384/512, PS256/384/512, ES256/384, EdDSA), each key used only with
// its own `alg` (inferred from its type when absent: RSA → RS256, P-256 →
// ES256, P-384 → ES384, Ed25519 → EdDSA). It keeps the last good keys while
// the JWKS cannot be read. It is safe for concurrent use.
type JWTVerifier struct {
	cfg JWTConfig

	mu        sync.Mutex
	keys      map[string]*jwk // by kid ("" for a key without kid)
	fetched   time.Time
	lastTry   time.Time
	fetchErr  error
	fetchLock sync.Mutex
}

type jwk struct {
	alg string
	key crypto.PublicKey
}

// NewJWTVerifier checks cfg and loads the keys once; a JWKS that cannot be
// read at start is an error (so a typo fails start-up), later failures keep
// the last good keys.
func NewJWTVerifier(ctx context.Context, cfg JWTConfig) (*JWTVerifier, error) {
	switch {
	case (cfg.JWKSURL == "") == (cfg.KeysFile == ""):
		return nil, errors.New("jwt: give exactly one of a JWKS URL and a keys file")
	case cfg.Issuer == "":
		return nil, errors.New("jwt: an issuer is required")
	case cfg.Audience == "":
		return nil, errors.New("jwt: an audience is required")
	}
	if cfg.JWKSURL != "" {
		if err := CheckJWKSURL(cfg.JWKSURL); err != nil {
			return nil, err
		}
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.RefreshEvery == 0 {
		cfg.RefreshEvery = 5 * time.Minute
	}
	if cfg.MinRefreshInterval == 0 {
		cfg.MinRefreshInterval = 10 * time.Second
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	v := &JWTVerifier{cfg: cfg}
	if err := v.refresh(ctx); err != nil {
		return nil, err
	}
	return v, nil
}

// CheckJWKSURL accepts https URLs, and http URLs on a loopback host.
func CheckJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return errors.New("jwt: JWKS URL is not an absolute URL")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if ip := net.ParseIP(h); h == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
		return errors.New("jwt: the JWKS URL must be https (http only on loopback)")
	}
	return errors.New("jwt: the JWKS URL must be https")
}

// refresh reads the JWKS and replaces the keys; on error the old keys stay.
func (v *JWTVerifier) refresh(ctx context.Context) error {
	v.fetchLock.Lock()
	defer v.fetchLock.Unlock()
	return v.fetch(ctx)
}

// fetch is refresh with fetchLock held.
func (v *JWTVerifier) fetch(ctx context.Context) error {
	v.mu.Lock()
	v.lastTry = v.cfg.Now()
	v.mu.Unlock()
	body, err := v.read(ctx)
	var keys map[string]*jwk
	if err == nil {
		keys, err = parseJWKS(body)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.fetchErr = err
	if err != nil {
		return err
	}
	v.keys, v.fetched = keys, v.cfg.Now()
	return nil
}

func (v *JWTVerifier) read(ctx context.Context) ([]byte, error) {
	if v.cfg.KeysFile != "" {
		b, err := os.ReadFile(v.cfg.KeysFile)
		if err != nil {
			return nil, fmt.Errorf("jwt: read keys file: %w", err)
		}
		return b, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.cfg.JWKSURL, nil)
	if err != nil {
		return nil, fmt.Errorf("jwt: JWKS request: %w", err)
	}
	resp, err := v.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, errors.New("jwt: fetch JWKS: the JWKS URL did not answer")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwt: fetch JWKS: HTTP %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, errors.New("jwt: fetch JWKS: read failed")
	}
	return b, nil
}

// key returns the key for kid. An unknown kid re-reads the JWKS (callers
// wait for one read at a time, and a read happens at most once per
// MinRefreshInterval); keys older than RefreshEvery are re-read by one
// caller while the others go on with the keys they have.
func (v *JWTVerifier) key(ctx context.Context, kid string) *jwk {
	v.mu.Lock()
	k := v.pick(kid)
	stale := v.cfg.Now().Sub(v.fetched) >= v.cfg.RefreshEvery
	v.mu.Unlock()
	switch {
	case k == nil:
		v.fetchLock.Lock()
		v.refreshLocked(ctx)
		v.fetchLock.Unlock()
	case stale:
		if !v.fetchLock.TryLock() {
			return k // another caller is reading
		}
		v.refreshLocked(ctx)
		v.fetchLock.Unlock()
	default:
		return k
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.pick(kid)
}

// refreshLocked re-reads the JWKS unless that was tried less than
// MinRefreshInterval ago. The caller holds fetchLock. On error the last
// good keys stay.
func (v *JWTVerifier) refreshLocked(ctx context.Context) {
	v.mu.Lock()
	recent := v.cfg.Now().Sub(v.lastTry) < v.cfg.MinRefreshInterval
	v.mu.Unlock()
	if !recent {
		_ = v.fetch(ctx)
	}
}

func (v *JWTVerifier) pick(kid string) *jwk {
	if k, ok := v.keys[kid]; ok {
		return k
	}
	if kid == "" && len(v.keys) == 1 {
		for _, k := range v.keys {
			return k
		}
	}
	return nil
}

type jwtHeader struct {
	Alg  string   `json:"alg"`
	Kid  string   `json:"kid"`
	Crit []string `json:"crit"`
}

// Verify checks a JWT and returns its principal jwt:<sub> with the roles of
// the roles claim. Failures are *AuthError whose messages never repeat the
// token.
func (v *JWTVerifier) Verify(ctx context.Context, token string) (*Principal, error) {
	bad := func(msg string) (*Principal, error) { return nil, authErr(ReasonInvalidToken, "invalid JWT: "+msg) }
	if len(token) > 16<<10 {
		return bad("longer than 16 KiB")
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return bad("not three dot-separated parts")
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return bad("header is not base64url")
	}
	var h jwtHeader
	if err := json.Unmarshal(hb, &h); err != nil {
		return bad("header is not JSON")
	}
	if _, ok := hashOf[h.Alg]; !ok && h.Alg != "EdDSA" {
		return bad(fmt.Sprintf("algorithm %q is not accepted (asymmetric algorithms only)", clip(h.Alg)))
	}
	if len(h.Crit) > 0 {
		return bad("critical header extensions are not supported")
	}
	k := v.key(ctx, h.Kid)
	if k == nil {
		return bad("no key with this kid")
	}
	if k.alg != h.Alg {
		return bad(fmt.Sprintf("algorithm %q does not match the key's %q", clip(h.Alg), k.alg))
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return bad("signature is not base64url")
	}
	if !verifySig(k, []byte(parts[0]+"."+parts[1]), sig) {
		return bad("signature does not verify")
	}
	pb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return bad("payload is not base64url")
	}
	var claims map[string]any
	dec := json.NewDecoder(strings.NewReader(string(pb)))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil || claims == nil {
		return bad("payload is not a JSON object")
	}
	now := v.cfg.Now()
	if iss, _ := claims["iss"].(string); iss != v.cfg.Issuer {
		return bad("wrong issuer")
	}
	if !hasAudience(claims["aud"], v.cfg.Audience) {
		return bad("wrong audience")
	}
	exp, ok := numericDate(claims["exp"])
	if !ok {
		return bad("no exp claim")
	}
	if !now.Before(exp.Add(v.cfg.Leeway)) {
		return nil, authErr(ReasonExpired, "invalid JWT: expired")
	}
	if nbf, ok := numericDate(claims["nbf"]); ok && now.Add(v.cfg.Leeway).Before(nbf) {
		return bad("not valid yet (nbf)")
	}
	if _, present := claims["nbf"]; present {
		if _, ok := numericDate(claims["nbf"]); !ok {
			return bad("nbf is not a number")
		}
	}
	sub, _ := claims["sub"].(string)
	if sub == "" || CheckPattern(sub) != nil || strings.HasSuffix(sub, "*") {
		return bad("missing or unusable sub")
	}
	p := &Principal{Name: "jwt:" + sub, Method: MethodJWT}
	if v.cfg.RolesClaim != "" {
		p.Roles = normalizeRoles(rolesFromClaim(claims[v.cfg.RolesClaim]))
	}
	return p, nil
}

var hashOf = map[string]crypto.Hash{
	"RS256": crypto.SHA256, "RS384": crypto.SHA384, "RS512": crypto.SHA512,
	"PS256": crypto.SHA256, "PS384": crypto.SHA384, "PS512": crypto.SHA512,
	"ES256": crypto.SHA256, "ES384": crypto.SHA384,
}

func verifySig(k *jwk, signed, sig []byte) bool {
	if k.alg == "EdDSA" {
		pub, ok := k.key.(ed25519.PublicKey)
		return ok && ed25519.Verify(pub, signed, sig)
	}
	hf := hashOf[k.alg]
	h := hf.New()
	h.Write(signed)
	digest := h.Sum(nil)
	switch pub := k.key.(type) {
	case *rsa.PublicKey:
		if strings.HasPrefix(k.alg, "PS") {
			return rsa.VerifyPSS(pub, hf, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
		}
		return strings.HasPrefix(k.alg, "RS") && rsa.VerifyPKCS1v15(pub, hf, digest, sig) == nil
	case *ecdsa.PublicKey:
		size := (pub.Curve.Params().BitSize + 7) / 8
		if !strings.HasPrefix(k.alg, "ES") || len(sig) != 2*size {
			return false
		}
		r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		return ecdsa.Verify(pub, digest, r, s)
	}
	return false
}

func hasAudience(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return a == want
	case []any:
		for _, x := range a {
			if s, ok := x.(string); ok && s == want {
				return true
			}
		}
	}
	return false
}

func numericDate(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || f < 0 || f > 1e11 {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

func rolesFromClaim(v any) []string {
	switch r := v.(type) {
	case string:
		return strings.Fields(r)
	case []any:
		var out []string
		for _, x := range r {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

type rawJWK struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS reads the usable signature keys of a JWKS document. Symmetric
// keys (kty oct), encryption keys and keys whose alg does not fit their
// type are skipped; a document with no usable key is an error.
func parseJWKS(b []byte) (map[string]*jwk, error) {
	var doc struct {
		Keys []rawJWK `json:"keys"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, errors.New("jwt: JWKS is not JSON with a keys array")
	}
	out := make(map[string]*jwk)
	for _, r := range doc.Keys {
		if r.Use != "" && r.Use != "sig" {
			continue
		}
		k, err := r.parse()
		if err != nil {
			continue
		}
		if _, dup := out[r.Kid]; !dup {
			out[r.Kid] = k
		}
	}
	if len(out) == 0 {
		return nil, errors.New("jwt: JWKS holds no usable signature key (RSA ≥ 2048 bits, EC P-256/P-384, Ed25519)")
	}
	return out, nil
}

func (r rawJWK) parse() (*jwk, error) {
	dec := base64.RawURLEncoding.DecodeString
	switch r.Kty {
	case "RSA":
		n, err1 := dec(r.N)
		e, err2 := dec(r.E)
		if err1 != nil || err2 != nil || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("bad RSA key")
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if pub.N.BitLen() < 2048 || pub.E < 3 {
			return nil, errors.New("weak RSA key")
		}
		alg := r.Alg
		if alg == "" {
			alg = "RS256"
		}
		if !slices.Contains([]string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}, alg) {
			return nil, errors.New("alg does not fit RSA")
		}
		return &jwk{alg: alg, key: pub}, nil
	case "EC":
		var curve elliptic.Curve
		var alg string
		switch r.Crv {
		case "P-256":
			curve, alg = elliptic.P256(), "ES256"
		case "P-384":
			curve, alg = elliptic.P384(), "ES384"
		default:
			return nil, errors.New("unsupported curve")
		}
		if r.Alg != "" && r.Alg != alg {
			return nil, errors.New("alg does not fit the curve")
		}
		x, err1 := dec(r.X)
		y, err2 := dec(r.Y)
		size := (curve.Params().BitSize + 7) / 8
		if err1 != nil || err2 != nil || len(x) != size || len(y) != size {
			return nil, errors.New("bad EC key")
		}
		// Check the point through the uncompressed encoding (rejects
		// points off the curve).
		enc := append(append([]byte{4}, x...), y...)
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, enc)
		if err != nil {
			return nil, err
		}
		return &jwk{alg: alg, key: pub}, nil
	case "OKP":
		if r.Crv != "Ed25519" || (r.Alg != "" && r.Alg != "EdDSA") {
			return nil, errors.New("unsupported OKP key")
		}
		x, err := dec(r.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("bad Ed25519 key")
		}
		return &jwk{alg: "EdDSA", key: ed25519.PublicKey(x)}, nil
	}
	return nil, errors.New("unsupported key type")
}
