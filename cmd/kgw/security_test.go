package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// TestSecurityFlagCombinations runs parseServeConfig over every
// combination of the listener address and the security flags and checks
// that exactly the safe ones start, and that a refusal names each missing
// or conflicting flag.
func TestSecurityFlagCombinations(t *testing.T) {
	type jwtCase struct {
		name string
		args []string
	}
	jwts := []jwtCase{
		{"none", nil},
		{"url+iss+aud", []string{"--jwt-jwks-url", "https://idp.example/jwks", "--jwt-issuer", "https://idp.example", "--jwt-audience", "kgw"}},
		{"file+iss+aud+roles", []string{"--jwt-keys-file", "/etc/kgw/jwks.json", "--jwt-issuer", "i", "--jwt-audience", "a", "--jwt-roles-claim", "roles"}},
		{"url-only", []string{"--jwt-jwks-url", "https://idp.example/jwks"}},
		{"issuer-only", []string{"--jwt-issuer", "i"}},
		{"url+file", []string{"--jwt-jwks-url", "https://idp.example/jwks", "--jwt-keys-file", "/k", "--jwt-issuer", "i", "--jwt-audience", "a"}},
	}
	n, ok := 0, 0
	for _, loopback := range []bool{true, false} {
		for _, auth := range []string{"none", "required"} {
			for _, tlsMode := range []string{"none", "cert", "key", "both"} {
				for _, insecure := range []bool{false, true} {
					for _, ca := range []bool{false, true} {
						for _, xfcc := range []bool{false, true} {
							for _, jc := range jwts {
								addr := "127.0.0.1:50051"
								if !loopback {
									addr = "0.0.0.0:50051"
								}
								args := []string{"--grpc-addr", addr, "--auth", auth}
								cert := tlsMode == "cert" || tlsMode == "both"
								key := tlsMode == "key" || tlsMode == "both"
								tls := cert && key
								if cert {
									args = append(args, "--tls-cert-file", "/c.pem")
								}
								if key {
									args = append(args, "--tls-key-file", "/k.pem")
								}
								if insecure {
									args = append(args, "--insecure-plaintext")
								}
								if ca {
									args = append(args, "--tls-client-ca-file", "/ca.pem")
								}
								if xfcc {
									args = append(args, "--trust-forwarded-client-cert")
								}
								args = append(args, jc.args...)
								required := auth == "required"

								// Each rule that should refuse, with what the
								// message must name.
								var want []string
								need := func(cond bool, substr string) {
									if cond {
										want = append(want, substr)
									}
								}
								need(cert && !key, "--tls-cert-file needs --tls-key-file")
								need(key && !cert, "--tls-key-file needs --tls-cert-file")
								need(ca && !tls, "--tls-client-ca-file needs --tls-cert-file")
								need(ca && !required, "--tls-client-ca-file needs --auth required")
								need(insecure && (cert || key), "--insecure-plaintext contradicts")
								need(!loopback && !required, "needs --auth required")
								need(!loopback && !tls && !insecure, "needs TLS (--tls-cert-file and --tls-key-file), or --insecure-plaintext")
								need(xfcc && !loopback, "--trust-forwarded-client-cert needs a loopback --grpc-addr")
								need(xfcc && !required, "--trust-forwarded-client-cert needs --auth required")
								need(xfcc && ca, "--trust-forwarded-client-cert contradicts --tls-client-ca-file")
								switch jc.name {
								case "url+iss+aud", "file+iss+aud+roles":
									need(!required, "JWT authentication (--jwt-jwks-url/--jwt-keys-file) needs --auth required")
								case "url-only":
									need(true, "needs --jwt-issuer")
									need(true, "needs --jwt-audience")
									need(!required, "needs --auth required")
								case "issuer-only":
									need(true, "need --jwt-jwks-url or --jwt-keys-file")
								case "url+file":
									need(true, "--jwt-jwks-url and --jwt-keys-file exclude each other")
								}

								name := fmt.Sprintf("loopback=%v auth=%s tls=%s insecure=%v ca=%v xfcc=%v jwt=%s", loopback, auth, tlsMode, insecure, ca, xfcc, jc.name)
								n++
								_, err := parseServeConfig(args, envOf(nil), io.Discard)
								if len(want) == 0 {
									ok++
									if err != nil {
										t.Errorf("%s: refused (%v), want it to start", name, err)
									}
									continue
								}
								if err == nil {
									t.Errorf("%s: started, want a refusal naming %q", name, want)
									continue
								}
								if !errors.Is(err, errInsecure) && !strings.Contains(err.Error(), "refusing to start") {
									t.Errorf("%s: %v, want a refusal", name, err)
								}
								for _, w := range want {
									if !strings.Contains(err.Error(), w) {
										t.Errorf("%s: %v\n  does not name %q", name, err, w)
									}
								}
							}
						}
					}
				}
			}
		}
	}
	if n != 2*2*4*2*2*2*len(jwts) || ok == 0 {
		t.Fatalf("checked %d combinations, %d accepted", n, ok)
	}
	t.Logf("%d combinations, %d accepted", n, ok)
}

// TestSecurityEnv: every security flag has its KGW_* environment variable.
func TestSecurityEnv(t *testing.T) {
	cfg, err := parseServeConfig(nil, envOf(map[string]string{
		"KGW_GRPC_ADDR": "127.0.0.1:1", "KGW_AUTH": "required", "KGW_TLS_CERT_FILE": "/c", "KGW_TLS_KEY_FILE": "/k",
		"KGW_TLS_CLIENT_CA_FILE": "/ca", "KGW_JWT_JWKS_URL": "https://i/jwks", "KGW_JWT_ISSUER": "i", "KGW_JWT_AUDIENCE": "a",
		"KGW_JWT_ROLES_CLAIM": "r", "KGW_MAX_EXECUTIONS_PER_CALLER": "7",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Security
	if s.Auth != "required" || s.TLSCertFile != "/c" || s.TLSKeyFile != "/k" || s.TLSClientCAFile != "/ca" || s.JWKSURL != "https://i/jwks" ||
		s.JWTIssuer != "i" || s.JWTAudience != "a" || s.JWTRolesClaim != "r" || cfg.MaxExecutionsPerCaller != 7 {
		t.Errorf("security from env = %+v, max %d", s, cfg.MaxExecutionsPerCaller)
	}
	cfg, err = parseServeConfig(nil, envOf(map[string]string{"KGW_GRPC_ADDR": "0.0.0.0:1", "KGW_AUTH": "required", "KGW_INSECURE_PLAINTEXT": "true"}), io.Discard)
	if err != nil || !cfg.Security.InsecurePlaintext {
		t.Errorf("KGW_INSECURE_PLAINTEXT: %v, %v", cfg, err)
	}
	cfg, err = parseServeConfig(nil, envOf(map[string]string{"KGW_AUTH": "required", "KGW_TRUST_FORWARDED_CLIENT_CERT": "1"}), io.Discard)
	if err != nil || !cfg.Security.TrustForwarded {
		t.Errorf("KGW_TRUST_FORWARDED_CLIENT_CERT: %v, %v", cfg, err)
	}
	for _, bad := range []map[string]string{{"KGW_AUTH": "maybe"}, {"KGW_MAX_EXECUTIONS_PER_CALLER": "-1"}, {"KGW_INSECURE_PLAINTEXT": "perhaps"}} {
		if _, err := parseServeConfig(nil, envOf(bad), io.Discard); err == nil {
			t.Errorf("parseServeConfig(%v) accepted, want an error", bad)
		}
	}
}
