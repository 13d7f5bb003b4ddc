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
