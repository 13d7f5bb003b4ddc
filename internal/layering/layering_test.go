package layering

import (
	"os/exec"
	"strings"
	"testing"
)

// TestModule checks the module's packages against the rules: a new import
// against DESIGN.md §2 fails it (and so `make lint`).
func TestModule(t *testing.T) {
	mod := goOut(t, "list", "-m")
	out := goOut(t, "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", mod+"/...")
	graph := map[string][]string{}
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		from, ok := strings.CutPrefix(f[0], mod+"/")
		if !ok {
			continue
		}
		graph[from] = nil
		for _, imp := range f[1:] {
			if to, ok := strings.CutPrefix(imp, mod+"/"); ok {
				graph[from] = append(graph[from], to)
			}
		}
	}
	if len(graph) < 10 || graph["server"] == nil {
		t.Fatalf("go list found %d packages, server importing %v: not the module's graph", len(graph), graph["server"])
	}
	for _, v := range Check(graph) {
		t.Error(v)
	}
}

func goOut(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		t.Fatalf("go %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}

// TestRules shows each rule catching a wrong import, and allowed imports
// passing.
func TestRules(t *testing.T) {
	for _, tc := range []struct {
		from, to string
		rule     string // "" = allowed
	}{
		{"cmd/kgw", "server", ""},
		{"cmd/kgw", "store/sqlite", ""},
		{"server", "executor", ""},
		{"server", "resources", ""},
		{"server", "gen/go/kgw/v1", ""},
		{"executor", "executor/node", ""},
		{"executor", "store", ""},
		{"executor/node", "internal/starval", ""},
		{"resources", "resources/postgres", ""},
		{"resources/postgres", "resources/internal/confmap", ""},
		{"secrets", "store", ""},
		{"server", "access", ""},
		{"access", "store", ""},
		{"access", "server", "imports flow"},
		{"executor", "access", ""},
		{"store/sqlite", "store/internal/codec", ""},
		{"clients/go", "gen/go/kgw/v1", ""},
		{"cmd/kgw", "resources/netguard", ""},
		{"server", "resources/netguard", ""},

		{"store", "secrets", "imports flow"},
		{"secrets", "resources", "imports flow"},
		{"executor", "server", "imports flow"},
		{"resources", "server", "imports flow"},
		{"server", "cmd/kgw", "imports flow"},
		{"executor", "resources", "never import each other"},
		{"resources", "executor", "never import each other"},
		{"resources", "executor/node", "never import each other"},
		{"server", "resources/postgres", "only through package resources"},
		{"cmd/kgw", "resources/redis", "only through package resources"},
		{"executor/node", "store", "executor/node imports neither"},
		{"executor/node", "resources", "executor/node imports neither"},
		{"executor", "gen/go/kgw/v1", "generated code"},
		{"store", "gen/go/kgw/v1", "generated code"},
		{"examples", "server", "not a layer"},
	} {
		vs := Check(map[string][]string{tc.from: {tc.to}})
		switch {
		case tc.rule == "" && len(vs) > 0:
			t.Errorf("%s → %s refused (%v), want allowed", tc.from, tc.to, vs)
		case tc.rule != "" && len(vs) != 1:
			t.Errorf("%s → %s: %d violations %v, want one (%s)", tc.from, tc.to, len(vs), vs, tc.rule)
		case tc.rule != "" && !strings.Contains(vs[0].Rule, tc.rule):
			t.Errorf("%s → %s refused by %q, want the rule %q", tc.from, tc.to, vs[0].Rule, tc.rule)
		}
	}
}
