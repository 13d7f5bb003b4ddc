package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
)

// TestAuthCreateKeyThenServe: `kgw auth create-key` makes the first admin
// key offline on a fresh data dir; `kgw serve --auth required` accepts it
// and refuses calls without it; after `kgw secrets rotate-master-key` the
// key still works.
func TestAuthCreateKeyThenServe(t *testing.T) {
	dataDir := t.TempDir()
	run := func(args ...string) (int, string, string) {
		var out, errOut strings.Builder
		c := &cli{stdout: &out, stderr: &errOut, getenv: envOf(nil)}
		return dispatch(t.Context(), c, args), out.String(), errOut.String()
	}
	for _, bad := range [][]string{
		{"auth", "create-key", "--data-dir", dataDir, "--role", "admin"},
		{"auth", "create-key", "--data-dir", dataDir, "--name", "x"},
		{"auth", "create-key", "--data-dir", dataDir, "--name", "x", "--role", "root"},
		{"auth", "create-key", "--data-dir", dataDir, "--name", "x", "--role", "admin", "--ttl", "-1h"},
	} {
		if code, _, _ := run(bad...); code != 2 {
			t.Errorf("%v: exit %d, want 2", bad, code)
		}
	}
	code, out, errOut := run("auth", "create-key", "--data-dir", dataDir, "--role", "admin", "--name", "bootstrap")
	if code != 0 {
		t.Fatalf("create-key: exit %d: %s", code, errOut)
	}
	key := strings.TrimSpace(out)
	if !strings.HasPrefix(key, "kgw_") || len(key) != 85 {
		t.Fatalf("create-key printed %d characters, want one kgw_ key", len(key))
	}
	id := strings.Split(key, "_")[1]
	if !strings.Contains(errOut, id) || strings.Contains(errOut, key[len(key)-64:]) {
		t.Errorf("create-key stderr %q: want the id, never the secret part", errOut)
	}

	cfg, err := parseServeConfig([]string{"--grpc-addr", "127.0.0.1:0", "--admin-addr=", "--data-dir", dataDir, "--auth", "required"}, envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ShutdownTimeout = 10 * time.Second
	check := func(phase string) {
		conn, stop, _ := runInProcess(t, cfg)
		defer stop()
		acc := kgwv1.NewAccessServiceClient(conn)
		if _, err := acc.WhoAmI(t.Context(), &kgwv1.WhoAmIRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: WhoAmI without a key: %v, want UNAUTHENTICATED", phase, err)
		}
		ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+key)
		who, err := acc.WhoAmI(ctx, &kgwv1.WhoAmIRequest{})
		if err != nil || who.GetPrincipal() != "key:"+id || strings.Join(who.GetRoles(), ",") != "admin" || who.GetMethod() != "api_key" {
			t.Fatalf("%s: WhoAmI with the bootstrap key = %v, %v", phase, who, err)
		}
		// The admin makes a key for a service through the API.
		made, err := acc.CreateApiKey(ctx, &kgwv1.CreateApiKeyRequest{Name: "billing", Roles: []string{"executor"}})
		if err != nil || !strings.HasPrefix(made.GetKey(), "kgw_"+made.GetApiKey().GetId()+"_") {
			t.Fatalf("%s: CreateApiKey = %v, %v", phase, made, err)
		}
		list, err := acc.ListApiKeys(ctx, &kgwv1.ListApiKeysRequest{})
		if err != nil || len(list.GetApiKeys()) < 2 {
			t.Fatalf("%s: ListApiKeys = %v, %v", phase, list, err)
		}
		if strings.Contains(list.String(), made.GetKey()[len(made.GetKey())-64:]) {
			t.Errorf("%s: ListApiKeys shows a key's secret part", phase)
		}
	}
	check("first start")

	if code, _, errOut := run("secrets", "rotate-master-key", "--data-dir", dataDir); code != 0 {
		t.Fatalf("rotate-master-key: exit %d: %s", code, errOut)
	}
	check("after rotating the master key")
}
