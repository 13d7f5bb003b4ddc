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
								c := securityCombo{loopback, auth, tlsMode, insecure, ca, xfcc, jc}
								n++
								if c.check(t) {
									ok++
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

type jwtCase struct {
	name string
	args []string
}

// A securityCombo is one combination of the security flags of kgw serve.
type securityCombo struct {
	loopback           bool   // --grpc-addr on loopback, else the wildcard
	auth, tlsMode      string // --auth; which of --tls-cert-file, --tls-key-file: none, cert, key or both
	insecure, ca, xfcc bool   // --insecure-plaintext, --tls-client-ca-file, --trust-forwarded-client-cert
	jwt                jwtCase
}

func (c securityCombo) String() string {
	return fmt.Sprintf("loopback=%v auth=%s tls=%s insecure=%v ca=%v xfcc=%v jwt=%s", c.loopback, c.auth, c.tlsMode, c.insecure, c.ca, c.xfcc, c.jwt.name)
}

// args are the command-line arguments of c.
func (c securityCombo) args() []string {
	addr := "127.0.0.1:50051"
	if !c.loopback {
		addr = "0.0.0.0:50051"
	}
	args := []string{"--grpc-addr", addr, "--auth", c.auth}
	if c.tlsMode == "cert" || c.tlsMode == "both" {
		args = append(args, "--tls-cert-file", "/c.pem")
	}
	if c.tlsMode == "key" || c.tlsMode == "both" {
		args = append(args, "--tls-key-file", "/k.pem")
	}
	if c.insecure {
		args = append(args, "--insecure-plaintext")
	}
	if c.ca {
		args = append(args, "--tls-client-ca-file", "/ca.pem")
	}
	if c.xfcc {
		args = append(args, "--trust-forwarded-client-cert")
	}
	return append(args, c.jwt.args...)
}

// refusals are what the refusal of c must name, one per rule c breaks;
// none when c must start.
func (c securityCombo) refusals() []string {
	cert := c.tlsMode == "cert" || c.tlsMode == "both"
	key := c.tlsMode == "key" || c.tlsMode == "both"
	tls := cert && key
	required := c.auth == "required"
	loopback, insecure, ca, xfcc := c.loopback, c.insecure, c.ca, c.xfcc
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
	switch c.jwt.name {
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
	return want
}

// check parses c's flags: a combination that breaks no rule starts (check
// returns true), any other is refused with a message naming each rule it
// breaks.
func (c securityCombo) check(t *testing.T) (accepted bool) {
	t.Helper()
	want := c.refusals()
	_, err := parseServeConfig(c.args(), envOf(nil), io.Discard)
	if len(want) == 0 {
		if err != nil {
			t.Errorf("%s: refused (%v), want it to start", c, err)
		}
		return true
	}
	if err == nil {
		t.Errorf("%s: started, want a refusal naming %q", c, want)
		return false
	}
	if !errors.Is(err, errInsecure) && !strings.Contains(err.Error(), "refusing to start") {
		t.Errorf("%s: %v, want a refusal", c, err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: %v\n  does not name %q", c, err, w)
		}
	}
	return false
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
