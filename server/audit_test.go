package server_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kailash-gateway/kgw/access"
	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
)

// TestAuditAndJWT: authentication failures and denials are logged (with
// reason or principal, never the token) and counted in
// kgw_auth_failures_total{reason}; a JWT caller gets roles from its claim
// and from bindings; key and binding changes are logged.
func TestAuditAndJWT(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	b64 := base64.RawURLEncoding
	jwks, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": b64.EncodeToString(pub)}}})
	keysFile := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(keysFile, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := access.NewJWTVerifier(t.Context(), access.JWTConfig{KeysFile: keysFile, Issuer: "https://idp.test", Audience: "kgw", RolesClaim: "roles"})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(claims map[string]any) string {
		h, _ := json.Marshal(map[string]any{"alg": "EdDSA", "kid": "k1"})
		c, _ := json.Marshal(claims)
		signed := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
		return signed + "." + b64.EncodeToString(ed25519.Sign(priv, []byte(signed)))
	}

	logs := &lockedBuffer{}
	reg := prometheus.NewRegistry()
	s := startStack(t, stackOptions{authRequired: true, jwt: v, metrics: reg,
		logger: slog.New(slog.NewJSONHandler(logs, nil))})
	ctx := t.Context()
	acc := kgwv1.NewAccessServiceClient(s.conn)
	if _, err := acc.CreateRoleBinding(ctx, &kgwv1.CreateRoleBindingRequest{Principal: "jwt:ali*", Roles: []string{"developer"}}); err != nil {
		t.Fatal(err)
	}
	tok := sign(map[string]any{"iss": "https://idp.test", "aud": "kgw", "sub": "alice", "exp": time.Now().Add(time.Hour).Unix(), "roles": "viewer"})
	who, err := kgwv1.NewAccessServiceClient(s.dialAs(t, tok)).WhoAmI(ctx, &kgwv1.WhoAmIRequest{})
	if err != nil || who.GetPrincipal() != "jwt:alice" || strings.Join(who.GetRoles(), ",") != "developer,viewer" || who.GetMethod() != "jwt" {
		t.Fatalf("WhoAmI with a JWT = %v, %v", who, err)
	}
	expired := sign(map[string]any{"iss": "https://idp.test", "aud": "kgw", "sub": "alice", "exp": time.Now().Add(-time.Hour).Unix()})
	if _, err := kgwv1.NewAccessServiceClient(s.dialAs(t, expired)).WhoAmI(ctx, &kgwv1.WhoAmIRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("expired JWT: %v", err)
	}
	if _, err := kgwv1.NewAccessServiceClient(s.dial(t)).WhoAmI(ctx, &kgwv1.WhoAmIRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("no token: %v", err)
	}
	viewerKey := s.key(t, access.RoleViewer)
	if _, err := kgwv1.NewSecretServiceClient(s.dialAs(t, viewerKey)).StoreSecret(ctx, &kgwv1.StoreSecretRequest{Name: "x"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("viewer storing a secret: %v", err)
	}
	made, err := acc.CreateApiKey(ctx, &kgwv1.CreateApiKeyRequest{Name: "n", Roles: []string{"viewer"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acc.RevokeApiKey(ctx, &kgwv1.RevokeApiKeyRequest{Id: made.GetApiKey().GetId()}); err != nil {
		t.Fatal(err)
	}

	for reason, want := range map[string]float64{"expired": 1, "missing_credentials": 1, "permission_denied": 1} {
		got := authFailures(t, reg, reason)
		if got != want {
			t.Errorf("kgw_auth_failures_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
	out := logs.String()
	for _, want := range []string{
		`"msg":"audit: authentication failed"`, `"reason":"expired"`, `"reason":"missing_credentials"`,
		`"msg":"audit: permission denied"`, `"msg":"audit: api key created"`, `"msg":"audit: api key revoked"`,
		`"msg":"audit: role binding created"`, `"key_id":"` + made.GetApiKey().GetId() + `"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %s", want)
		}
	}
	for _, secret := range []string{tok, expired, viewerKey, made.GetKey(), made.GetKey()[len(made.GetKey())-64:], tok[len(tok)-40:]} {
		if strings.Contains(out, secret) {
			t.Errorf("logs contain a token or key")
		}
	}
}

func authFailures(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "kgw_auth_failures_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
