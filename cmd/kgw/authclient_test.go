package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kailash-gateway/kgw/internal/testenv"
	"github.com/kailash-gateway/kgw/internal/testpki"
)

// TestCLIAuthAgainstGateway drives `kgw auth` and the TLS client flags
// against a real gateway with --auth required and mTLS: an admin key made
// offline creates and revokes keys and bindings, a SPIFFE client
// certificate gets its roles from a pattern binding, and a revoked key
// stops working.
func TestCLIAuthAgainstGateway(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "mesh root")
	caFile := ca.WriteCert(t, dir, "ca.crt")
	srvCert, srvKey := ca.Server(t).WriteFiles(t, dir, "server")
	cliCert, cliKey := ca.Issue(t, testpki.LeafOptions{CommonName: "payments-api", URIs: []string{"spiffe://mesh.example/ns/payments/sa/api"}, Client: true}).WriteFiles(t, dir, "client")
	store := "sqlite://" + filepath.Join(dir, "kgw.db")
	masterKey := filepath.Join(dir, "master.key")

	a := &authCLI{}
	code, adminKey, errs := a.run(t, map[string]string{}, "auth", "create-key", "--store", store, "--master-key-file", masterKey, "--role", "admin", "--name", "bootstrap")
	adminKey = strings.TrimSpace(adminKey)
	if code != 0 || !strings.HasPrefix(adminKey, "kgw_") {
		t.Fatalf("auth create-key = %d, %q, %q", code, adminKey, errs)
	}

	gw := testenv.Gateway(t, testenv.WithGatewayStore(store), testenv.WithGatewayArgs(
		"--master-key-file", masterKey, "--auth", "required",
		"--tls-cert-file", srvCert, "--tls-key-file", srvKey, "--tls-client-ca-file", caFile))

	// The client flags come from the environment, as a deployment sets them.
	admin := map[string]string{"KGW_ADDR": gw.Addr, "KGW_TLS_CA": caFile, "KGW_TLS_CERT": cliCert, "KGW_TLS_KEY": cliKey, "KGW_TOKEN": adminKey}
	a.admin, a.adminKey = admin, adminKey

	var who struct {
		Principal, Method string
		Roles             []string
	}
	if err := json.Unmarshal([]byte(a.ok(t, a.admin, "auth", "whoami", "-o", "json")), &who); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(who.Principal, "key:") || who.Method != "api_key" || strings.Join(who.Roles, ",") != "admin" {
		t.Errorf("whoami with the admin key = %+v, want key:<id>, api_key, [admin]", who)
	}

	out := a.ok(t, a.admin, "auth", "keys", "create", "--name", "ci", "--role", "executor", "--ttl", "24h")
	m := regexp.MustCompile(`created API key (\S+) .*\nkey: (kgw_\S+)\n`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("auth keys create output = %q, want the id and the key", out)
	}
	ciID, ciKey := m[1], m[2]
	if list := a.ok(t, a.admin, "auth", "keys", "list"); !strings.Contains(list, ciID) || !strings.Contains(list, "executor") || strings.Contains(list, ciKey) {
		t.Errorf("auth keys list = %q, want the ci key's id and role, never the key", list)
	}
	ci := a.with(map[string]string{"KGW_TOKEN": ciKey})
	if out := a.ok(t, ci, "auth", "whoami"); !strings.Contains(out, "key:"+ciID) || !strings.Contains(out, "executor") {
		t.Errorf("whoami with the ci key = %q", out)
	}
	if code, _, errs := a.run(t, ci, "auth", "keys", "list"); code != exitRPC || !strings.Contains(errs, "PERMISSION_DENIED") {
		t.Errorf("auth keys list with an executor key = %d %q, want PERMISSION_DENIED", code, errs)
	}

	a.checkBindings(t)
	a.checkGrants(t, ciID)
	a.checkRevoked(t, ci, ciID)
	a.checkTLSRequired(t)
}

// authCLI runs kgw's commands in-process against the gateway of
// TestCLIAuthAgainstGateway: admin is the environment of the admin
// (address, TLS files, KGW_TOKEN adminKey).
type authCLI struct {
	admin    map[string]string
	adminKey string
}

// run runs kgw args with the environment env and returns its exit code,
// stdout and stderr.
func (a *authCLI) run(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := dispatch(t.Context(), &cli{stdout: &out, stderr: &errb, getenv: envOf(env)}, args)
	return code, out.String(), errb.String()
}

// ok runs kgw args, which must succeed without printing the admin key,
// and returns its stdout.
func (a *authCLI) ok(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	code, out, errs := a.run(t, env, args...)
	if code != 0 {
		t.Fatalf("kgw %s = exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	if strings.Contains(out+errs, a.adminKey) {
		t.Fatalf("kgw %s printed the admin key", strings.Join(args, " "))
	}
	return out
}

// with is the admin's environment with over's variables set.
func (a *authCLI) with(over map[string]string) map[string]string {
	env := map[string]string{}
	for k, v := range a.admin {
		env[k] = v
	}
	for k, v := range over {
		env[k] = v
	}
	return env
}

// checkBindings: the client certificate alone authenticates by its SPIFFE
// id, which gets the roles of a pattern binding the admin creates, lists
// and deletes.
func (a *authCLI) checkBindings(t *testing.T) {
	t.Helper()
	certOnly := a.with(map[string]string{"KGW_TOKEN": ""})
	if out := a.ok(t, certOnly, "auth", "whoami"); !strings.Contains(out, "spiffe://mesh.example/ns/payments/sa/api") || !strings.Contains(out, "mtls") {
		t.Errorf("whoami with the client certificate = %q", out)
	}
	out := a.ok(t, a.admin, "auth", "bindings", "create", "spiffe://mesh.example/ns/payments/*", "--role", "viewer")
	bm := regexp.MustCompile(`created role binding (\S+):`).FindStringSubmatch(out)
	if bm == nil {
		t.Fatalf("bindings create output = %q", out)
	}
	if out := a.ok(t, certOnly, "auth", "whoami"); !strings.Contains(out, "viewer") {
		t.Errorf("whoami after the binding = %q, want the viewer role", out)
	}
	if out := a.ok(t, a.admin, "auth", "bindings", "list"); !strings.Contains(out, bm[1]) || !strings.Contains(out, "spiffe://mesh.example/ns/payments/*") {
		t.Errorf("bindings list = %q", out)
	}
	a.ok(t, a.admin, "auth", "bindings", "delete", bm[1])
	if out := a.ok(t, a.admin, "auth", "bindings", "list", "-o", "json"); strings.Contains(out, "payments") {
		t.Errorf("bindings list after delete = %q", out)
	}
}

// checkGrants: the admin grants secret db_creds to the ci key (ciID) and
// replaces its allowed callers with set-access.
func (a *authCLI) checkGrants(t *testing.T, ciID string) {
	t.Helper()
	a.ok(t, a.admin, "secrets", "put", "db_creds", "--value", `{"user": "app", "password": "pw"}`, "--allowed-caller", "key:"+ciID)
	a.ok(t, a.admin, "secrets", "set-access", "db_creds", "--allowed-caller", "role:executor", "--allowed-caller", "spiffe://mesh.example/*")
	var got struct {
		Secret struct {
			AllowedCallers []string `json:"allowedCallers"`
		} `json:"secret"`
	}
	if err := json.Unmarshal([]byte(a.ok(t, a.admin, "secrets", "get", "db_creds", "-o", "json")), &got); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got.Secret.AllowedCallers, " ") != "role:executor spiffe://mesh.example/*" {
		t.Errorf("allowed callers after set-access = %v", got.Secret.AllowedCallers)
	}
}

// checkRevoked: the admin revokes the ci key (ciID, environment ci) and the
// gateway refuses it within 10 s.
func (a *authCLI) checkRevoked(t *testing.T, ci map[string]string, ciID string) {
	t.Helper()
	a.ok(t, a.admin, "auth", "keys", "revoke", ciID)
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _, errs := a.run(t, ci, "auth", "whoami")
		if code == exitRPC && strings.Contains(errs, "UNAUTHENTICATED") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("whoami with a revoked key = %d %q, want UNAUTHENTICATED within 10 s", code, errs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkTLSRequired: without the client certificate, or without the CA, no
// call gets through.
func (a *authCLI) checkTLSRequired(t *testing.T) {
	t.Helper()
	if code, _, errs := a.run(t, a.with(map[string]string{"KGW_TLS_CERT": "", "KGW_TLS_KEY": ""}), "auth", "whoami"); code != exitRPC || !strings.Contains(errs, "UNAVAILABLE") {
		t.Errorf("whoami without a client certificate = %d %q, want UNAVAILABLE", code, errs)
	}
	if code, _, errs := a.run(t, a.with(map[string]string{"KGW_TLS_CA": ""}), "auth", "whoami", "--tls"); code != exitRPC || !strings.Contains(errs, "UNAVAILABLE") {
		t.Errorf("whoami trusting the system roots = %d %q, want UNAVAILABLE", code, errs)
	}
	if code, _, errs := a.run(t, a.with(map[string]string{"KGW_TLS_CA": "", "KGW_TLS_CERT": "", "KGW_TLS_KEY": ""}), "auth", "whoami"); code != exitRPC || !strings.Contains(errs, "UNAVAILABLE") {
		t.Errorf("plaintext whoami = %d %q, want UNAVAILABLE", code, errs)
	}
}
