package server_test

// Credential safety and resource isolation through the gRPC API. Traffic
// goes only to 127.0.0.0/8; the link-local and metadata cases are refused
// by the dialer's guard before any connection is attempted, and are
// verified by their errors alone.

import (
	"fmt"
	"strings"
	"testing"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
	"github.com/kailash-gateway/kgw/internal/testenv"
)

// fetchOne is a workflow whose node gets resource "api" and GETs path.
func fetchOne(name string) *kgwv1.Workflow {
	return &kgwv1.Workflow{Name: name, Nodes: []*kgwv1.Node{{Id: "n", RequiredResources: []string{"api"}, Code: `
r = get_resource("api").get(path)
result = {"status": r.status}
`}}}
}

// TestCredentialsOnlyToAllowedHosts uses a secret whose allowed_hosts is
// 127.0.0.1 against 127.0.0.1 (allowed) and against 127.0.0.2, another
// loopback address (refused before anything is sent to it), for an
// http_client and a database.
func TestCredentialsOnlyToAllowedHosts(t *testing.T) {
	allowedRec, allowed := newRecorder(t, "127.0.0.1:0")
	otherRec, other := newRecorder(t, "127.0.0.2:0")
	pg := testenv.Postgres(t)
	db := newPGDB(t, pg)
	s := startStack(t, stackOptions{})
	ctx := t.Context()
	const token = "tok-Allowed-7Qx-never-shown"
	for name, value := range map[string]map[string]any{
		"scoped_api": {"token": token},
		"scoped_db":  {"user": "postgres", "password": token},
	} {
		if _, err := s.sec.StoreSecret(ctx, &kgwv1.StoreSecretRequest{Name: name, Value: params(t, value),
			AllowedHosts: []string{"127.0.0.1"}}); err != nil {
			t.Fatalf("StoreSecret: %v", err)
		}
	}
	s.register(t, fetchOne("fetch"))
	api := func(base string) map[string]*kgwv1.ResourceSpec {
		return map[string]*kgwv1.ResourceSpec{"api": {Type: "http_client", CredentialsRef: "scoped_api",
			Config: params(t, map[string]any{"base_url": base})}}
	}
	run := func(res map[string]*kgwv1.ResourceSpec) *kgwv1.Execution {
		t.Helper()
		x := s.run(t, &kgwv1.ExecuteWorkflowRequest{Workflow: "fetch", Resources: res, Parameters: params(t, map[string]any{"path": "x"})})
		noValue(t, "execution", x, token)
		return x
	}

	if r := mustComplete(t, run(api(allowed.URL))); r["status"] != 200.0 {
		t.Fatalf("allowed host: result %v, want status 200", r)
	}
	if seen := allowedRec.requests(); len(seen) != 1 || seen[0].Auth != "Bearer "+token {
		t.Fatalf("allowed host saw %+v, want one request with the token", seen)
	}

	mustFail(t, run(api(other.URL)), "RESOURCE_ERROR", "secret 'scoped_api' may not be sent to host '127.0.0.2:")
	if seen := otherRec.requests(); len(seen) != 0 {
		t.Fatalf("127.0.0.2 saw %+v, want nothing sent to a host the secret does not allow", seen)
	}

	// A database on a host the secret does not allow: refused before
	// connecting (no pool is opened).
	s.register(t, &kgwv1.Workflow{Name: "query", Nodes: []*kgwv1.Node{{Id: "n", RequiredResources: []string{"db"},
		Code: `result = {"v": get_resource("db").fetchval("SELECT 1")}`}}})
	dbSpec := func(host string) map[string]*kgwv1.ResourceSpec {
		spec := db.spec(t, map[string]any{"host": host, "timeout": 2})
		spec.CredentialsRef = "scoped_db"
		return map[string]*kgwv1.ResourceSpec{"db": spec}
	}
	x := s.run(t, &kgwv1.ExecuteWorkflowRequest{Workflow: "query", Resources: dbSpec("127.0.0.2")})
	noValue(t, "execution", x, token)
	mustFail(t, x, "RESOURCE_ERROR", "secret 'scoped_db' may not be sent to host '127.0.0.2:")
	if p := s.pools(t, "database", fmt.Sprintf("127.0.0.2:%d/%s", pg.Port, db.name)); len(p) != 0 {
		t.Fatalf("ListPools has %v for the refused host, want no pool", p)
	}
	if r := mustComplete(t, s.run(t, &kgwv1.ExecuteWorkflowRequest{Workflow: "query", Resources: dbSpec("127.0.0.1")})); r["v"] != 1.0 {
		t.Fatalf("allowed database host: result %v, want v=1", r)
	}
}

// TestCredentialsOnlyToBaseURLOrigin: an http_client with a token sends it
// to its base_url's origin (relative and absolute URLs), and never to
// another origin, whether named by an absolute URL or reached through a
// redirect.
func TestCredentialsOnlyToBaseURLOrigin(t *testing.T) {
	homeRec, home := newRecorder(t, "127.0.0.1:0")
	otherRec, other := newRecorder(t, "127.0.0.1:0") // same host, another port: another origin
	s := startStack(t, stackOptions{})
	const token = "tok-Origin-3Zp-never-shown"
	if _, err := s.sec.StoreSecret(t.Context(), &kgwv1.StoreSecretRequest{Name: "api_token",
		Value: params(t, map[string]any{"token": token})}); err != nil {
		t.Fatalf("StoreSecret: %v", err)
	}
	got := s.runNode(t, "origins", `
api = get_resource("api")
result = {
    "relative": api.get("rel").status,
    "absolute_same": api.get(home + "/abs").status,
    "absolute_other": api.get(other + "/direct").status,
    "redirect_other": api.get("redirect", params={"to": other + "/redirected"}).status,
    "redirect_home": api.get("redirect", params={"to": home + "/back"}).status,
}
`, map[string]*kgwv1.ResourceSpec{"api": {Type: "http_client", CredentialsRef: "api_token",
		Config: params(t, map[string]any{"base_url": home.URL + "/v1"})}},
		map[string]any{"home": home.URL, "other": other.URL})
	diffResult(t, got, map[string]any{"relative": 200.0, "absolute_same": 200.0, "absolute_other": 200.0,
		"redirect_other": 200.0, "redirect_home": 200.0})

	authByPath := func(rec *recorder) map[string]string {
		m := map[string]string{}
		for _, r := range rec.requests() {
			m[r.Path] = r.Auth
		}
		return m
	}
	bearer := "Bearer " + token
	if diff := diffMaps(authByPath(homeRec), map[string]string{
		"/v1/rel": bearer, "/abs": bearer, "/v1/redirect": bearer, "/back": bearer,
	}); diff != "" {
		t.Errorf("Authorization seen by the base_url origin: %s", diff)
	}
	if diff := diffMaps(authByPath(otherRec), map[string]string{"/direct": "", "/redirected": ""}); diff != "" {
		t.Errorf("Authorization seen by the other origin: %s", diff)
	}
}

// diffMaps describes how got differs from want, or returns "".
func diffMaps(got, want map[string]string) string {
	var b strings.Builder
	for k, w := range want {
		if g, ok := got[k]; !ok {
			fmt.Fprintf(&b, "%s: no request; ", k)
		} else if g != w {
			fmt.Fprintf(&b, "%s: %q, want %q; ", k, g, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			fmt.Fprintf(&b, "%s: unexpected request; ", k)
		}
	}
	return b.String()
}

// TestResourceNotDeclared: a node reaches only its required_resources,
// even when the request provides more; a declared resource the request
// lacks is a clear error. Neither opens anything.
func TestResourceNotDeclared(t *testing.T) {
	rec, srv := newRecorder(t, "127.0.0.1:0")
	s := startStack(t, stackOptions{})
	s.register(t, &kgwv1.Workflow{Name: "sneaky", Nodes: []*kgwv1.Node{{Id: "n", RequiredResources: []string{"api", "absent"},
		Code: `result = {"status": get_resource(name).get("x").status}`}}})
	res := map[string]*kgwv1.ResourceSpec{
		"api":   {Type: "http_client", Config: params(t, map[string]any{"base_url": srv.URL + "/declared"})},
		"other": {Type: "http_client", Config: params(t, map[string]any{"base_url": srv.URL + "/undeclared"})},
	}
	run := func(name string) *kgwv1.Execution {
		return s.run(t, &kgwv1.ExecuteWorkflowRequest{Workflow: "sneaky", Resources: res, Parameters: params(t, map[string]any{"name": name})})
	}
	mustFail(t, run("other"), "RESOURCE_ERROR", "resource 'other' is not in required_resources of node 'n'")
	// The condition is told once, by the node runtime, whatever the broker's
	// own wording (its ErrNotProvided becomes the runtime's in server).
	const absent = "resource 'absent' was not provided in the request"
	if e := mustFail(t, run("absent"), "RESOURCE_ERROR", absent); e.GetMessage() != "node 'n' failed at 1:33: "+absent {
		t.Errorf("message %q, want %q", e.GetMessage(), "node 'n' failed at 1:33: "+absent)
	}
	if seen := rec.requests(); len(seen) != 0 {
		t.Fatalf("the server saw %+v, want nothing", seen)
	}
	if r := mustComplete(t, run("api")); r["status"] != 200.0 {
		t.Fatalf("declared resource: %v, want status 200", r)
	}
	if seen := rec.requests(); len(seen) != 1 || seen[0].Path != "/declared/x" {
		t.Fatalf("the server saw %+v, want only the declared resource's request", seen)
	}
}

// TestGuardRefusesLinkLocal: inline specs pointing at a cloud metadata
// endpoint or another link-local address fail with the guard's error for
// every resource type, and CheckResource reports them unhealthy. The
// guard runs in the dialer's Control hook, after the socket is created and
// before connect(2): nothing is sent. These cases are verified by their
// errors only.
func TestGuardRefusesLinkLocal(t *testing.T) {
	s := startStack(t, stackOptions{})
	tests := []struct {
		name string
		spec *kgwv1.ResourceSpec
		node string // the node's code
		want string // in the node's error and CheckResource's message
	}{
		{"http metadata", &kgwv1.ResourceSpec{Type: "http_client",
			Config: params(t, map[string]any{"base_url": "http://169.254.169.254/latest", "timeout": 2})},
			`result = {"status": get_resource("r").get("meta-data/").status}`,
			"169.254.169.254 is a cloud metadata address"},
		{"database metadata", &kgwv1.ResourceSpec{Type: "database",
			Config: params(t, map[string]any{"host": "169.254.169.254", "port": 5432, "database": "x", "user": "x", "timeout": 2})},
			`result = {"v": get_resource("r").fetchval("SELECT 1")}`,
			"169.254.169.254 is a cloud metadata address"},
		{"cache link-local", &kgwv1.ResourceSpec{Type: "cache",
			Config: params(t, map[string]any{"host": "169.254.7.7", "port": 6379})},
			`result = {"v": get_resource("r").get("k")}`,
			"169.254.7.7 is a link-local address"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wf := fmt.Sprintf("guarded%d", i)
			s.register(t, &kgwv1.Workflow{Name: wf, Nodes: []*kgwv1.Node{{Id: "n", RequiredResources: []string{"r"}, Code: tt.node}}})
			x := s.run(t, &kgwv1.ExecuteWorkflowRequest{Workflow: wf, Resources: map[string]*kgwv1.ResourceSpec{"r": tt.spec}})
			e := mustFail(t, x, "RESOURCE_ERROR", tt.want)
			if !strings.Contains(e.GetMessage(), "address not allowed") {
				t.Errorf("error %q, want the guard's refusal (address not allowed)", e.GetMessage())
			}
			chk, err := s.res.CheckResource(t.Context(), &kgwv1.CheckResourceRequest{Target: &kgwv1.CheckResourceRequest_Spec{Spec: tt.spec}})
			if err != nil {
				t.Fatalf("CheckResource: %v", err)
			}
			if chk.GetHealthy() || !strings.Contains(chk.GetMessage(), tt.want) {
				t.Errorf("CheckResource = %v, want unhealthy with %q", chk, tt.want)
			}
		})
	}
}
