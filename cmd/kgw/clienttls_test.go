package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kailash-gateway/kgw/internal/testpki"
)

// TestCLITLS: --tls-ca, --tls-cert, --tls-key (and their KGW_TLS_*
// variables) and --token reach a TLS gateway; the probe answers every call
// with UNIMPLEMENTED once the handshake succeeded.
func TestCLITLS(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "cli root")
	caFile := ca.WriteCert(t, dir, "ca.crt")
	cert, key := ca.Issue(t, testpki.LeafOptions{CommonName: "ops", URIs: []string{"spiffe://mesh.example/ns/ops/sa/cli"}, Client: true}).WriteFiles(t, dir, "client")
	probe := testpki.StartProbe(t, ca.Server(t).TLS, ca.Pool())

	run := func(env map[string]string, args ...string) (int, string) {
		var out, errb bytes.Buffer
		env["KGW_ADDR"] = probe.Addr
		code := dispatch(t.Context(), &cli{stdout: &out, stderr: &errb, getenv: envOf(env)}, args)
		return code, out.String() + errb.String()
	}

	code, out := run(map[string]string{}, "workflow", "get", "w", "--tls-ca", caFile, "--tls-cert", cert, "--tls-key", key, "--token", "kgw_id_tok")
	if code != exitRPC || !strings.Contains(out, "UNIMPLEMENTED") || !strings.Contains(out, "tls probe") {
		t.Fatalf("workflow get over mTLS = %d %q, want exit 3 with the probe's UNIMPLEMENTED", code, out)
	}
	if got := probe.Last(t); got.Authorization != "Bearer kgw_id_tok" || got.ClientCN != "ops" || got.Method != "/kgw.v1.WorkflowService/GetWorkflow" {
		t.Errorf("probe saw %+v, want GetWorkflow with the token and client ops", got)
	}
	if strings.Contains(out, "kgw_id_tok") {
		t.Errorf("output shows the token: %q", out)
	}

	code, out = run(map[string]string{"KGW_TLS_CA": caFile, "KGW_TLS_CERT": cert, "KGW_TLS_KEY": key, "KGW_TOKEN": "kgw_env_tok"}, "secrets", "list")
	if code != exitRPC || !strings.Contains(out, "UNIMPLEMENTED") {
		t.Fatalf("secrets list with KGW_TLS_* = %d %q, want exit 3 with the probe's UNIMPLEMENTED", code, out)
	}
	if got := probe.Last(t); got.Authorization != "Bearer kgw_env_tok" || got.ClientCN != "ops" {
		t.Errorf("probe saw %+v, want the token and client ops from the environment", got)
	}

	// Without the client certificate the handshake fails.
	n := len(probe.Calls())
	if code, out := run(map[string]string{}, "workflow", "list", "--tls-ca", caFile); code != exitRPC || !strings.Contains(out, "UNAVAILABLE") {
		t.Errorf("workflow list without a client certificate = %d %q, want exit 3 UNAVAILABLE", code, out)
	}
	if len(probe.Calls()) != n {
		t.Errorf("a call without a client certificate reached the probe")
	}

	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"workflow", "list", "--tls-cert", cert}, map[string]string{}, "--tls-cert and --tls-key go together"},
		{[]string{"workflow", "list", "--tls-ca", caFile, "--insecure"}, map[string]string{}, "--insecure excludes"},
		{[]string{"workflow", "list", "--insecure"}, map[string]string{"KGW_TLS_CA": caFile}, "--insecure excludes"},
		{[]string{"workflow", "list", "--tls-ca", dir + "/missing.crt"}, map[string]string{}, "read CA file"},
	}
	for _, tt := range tests {
		if code, out := run(tt.env, tt.args...); code != exitUsage || !strings.Contains(out, tt.want) {
			t.Errorf("kgw %q = %d %q, want exit 2 with %q", tt.args, code, out, tt.want)
		}
	}
}

// TestCLIAuthCommandsCallTheirRPC: each `kgw auth` and access subcommand
// calls its RPC (seen by a TLS probe) with the token; usage mistakes exit 2
// before any call.
func TestCLIAuthCommandsCallTheirRPC(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "cli root")
	caFile := ca.WriteCert(t, dir, "ca.crt")
	probe := testpki.StartProbe(t, ca.Server(t).TLS, nil)
	env := map[string]string{"KGW_ADDR": probe.Addr, "KGW_TLS_CA": caFile, "KGW_TOKEN": "kgw_admin_tok"}
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := dispatch(t.Context(), &cli{stdout: &out, stderr: &errb, getenv: envOf(env)}, args)
		return code, out.String() + errb.String()
	}
	calls := []struct {
		args   []string
		method string
	}{
		{[]string{"auth", "whoami"}, "AccessService/WhoAmI"},
		{[]string{"auth", "keys", "create", "--name", "ci", "--role", "executor", "--ttl", "24h"}, "AccessService/CreateApiKey"},
		{[]string{"auth", "keys", "list"}, "AccessService/ListApiKeys"},
		{[]string{"auth", "keys", "revoke", "abc"}, "AccessService/RevokeApiKey"},
		{[]string{"auth", "bindings", "create", "spiffe://mesh.example/ns/payments/*", "--role", "executor"}, "AccessService/CreateRoleBinding"},
		{[]string{"auth", "bindings", "delete", "7"}, "AccessService/DeleteRoleBinding"},
		{[]string{"auth", "bindings", "list", "-o", "json"}, "AccessService/ListRoleBindings"},
		{[]string{"secrets", "set-access", "db", "--allowed-caller", "role:executor"}, "SecretService/UpdateSecretAccess"},
	}
	for _, tt := range calls {
		code, out := run(tt.args...)
		if code != exitRPC || !strings.Contains(out, "UNIMPLEMENTED") {
			t.Errorf("kgw %q = %d %q, want exit 3 with the probe's UNIMPLEMENTED", tt.args, code, out)
			continue
		}
		name := strings.Join(tt.args[:2], " ")
		if tt.args[1] == "keys" || tt.args[1] == "bindings" {
			name = strings.Join(tt.args[:3], " ")
		}
		if !strings.HasPrefix(out, "kgw "+name+": UNIMPLEMENTED") {
			t.Errorf("kgw %q error %q does not name the command", tt.args, out)
		}
		if got := probe.Last(t); got.Method != "/kgw.v1."+tt.method || got.Authorization != "Bearer kgw_admin_tok" {
			t.Errorf("kgw %q: probe saw %+v, want %s with the token", tt.args, got, tt.method)
		}
	}

	n := len(probe.Calls())
	usage := []struct {
		args []string
		want string
	}{
		{[]string{"auth", "keys", "create", "--role", "admin"}, "missing --name"},
		{[]string{"auth", "keys", "create", "--name", "x"}, "missing --role"},
		{[]string{"auth", "keys", "create", "--name", "x", "--role", "admin", "--ttl", "1h", "--expire-time", "2030-01-01T00:00:00Z"}, "exclude each other"},
		{[]string{"auth", "keys", "create", "--name", "x", "--role", "admin", "--ttl", "-1h"}, "positive duration"},
		{[]string{"auth", "keys", "revoke"}, "missing arguments"},
		{[]string{"auth", "bindings", "create", "cert:ops"}, "missing --role"},
		{[]string{"auth", "keys", "rotate"}, `unknown subcommand "rotate"`},
		{[]string{"auth"}, "Usage: kgw auth <subcommand>"},
	}
	for _, tt := range usage {
		if code, out := run(tt.args...); code != exitUsage || !strings.Contains(out, tt.want) {
			t.Errorf("kgw %q = %d %q, want exit 2 with %q", tt.args, code, out, tt.want)
		}
	}
	if len(probe.Calls()) != n {
		t.Errorf("a usage mistake made a call")
	}
}
