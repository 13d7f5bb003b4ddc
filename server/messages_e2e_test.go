package server_test

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
)

// TestMessagesNamedOnce: every error message names its node and its
// resource once, whichever layers wrapped it (issue 18 item 5). The
// messages are compared whole, so a repeated prefix fails.
func TestMessagesNamedOnce(t *testing.T) {
	s := startStack(t, stackOptions{})
	s.register(t, &kgwv1.Workflow{Name: "msgs", Nodes: []*kgwv1.Node{{Id: "n", RequiredResources: []string{"db"},
		Code: `result = {"v": get_resource("db").fetchval("SELECT 1")}`}}})
	tests := []struct {
		name string
		spec *kgwv1.ResourceSpec
		want string
	}{
		{"missing secret", &kgwv1.ResourceSpec{Type: "database", CredentialsRef: "nosuch",
			Config: params(t, map[string]any{"host": "127.0.0.1", "port": 1, "database": "x"})},
			"node 'n' failed at 1:28: resource 'db': secret 'nosuch' not found"},
		{"refused", &kgwv1.ResourceSpec{Type: "database",
			Config: params(t, map[string]any{"host": "127.0.0.1", "port": 1, "database": "x", "user": "x", "timeout": 2})},
			"node 'n' failed at 1:43: db.fetchval: failed to connect to `user=x database=x`:\n" +
				"\t127.0.0.1:1 (127.0.0.1): dial error: dial tcp 127.0.0.1:1: connect: connection refused\n" +
				"\t127.0.0.1:1 (127.0.0.1): dial error: dial tcp 127.0.0.1:1: connect: connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := s.run(t, &kgwv1.ExecuteWorkflowRequest{Workflow: "msgs", Resources: map[string]*kgwv1.ResourceSpec{"db": tt.spec}})
			if e := mustFail(t, x, "RESOURCE_ERROR", ""); e.GetMessage() != tt.want {
				t.Errorf("message\n %q, want\n %q", e.GetMessage(), tt.want)
			}
		})
	}
}

// TestSpecsThatCannotWork: a resource spec that would fail at every use
// is INVALID_ARGUMENT at the request, with one field violation carrying
// the fix, through ExecuteWorkflow, PutResource and CheckResource alike.
func TestSpecsThatCannotWork(t *testing.T) {
	s := startStack(t, stackOptions{})
	s.register(t, &kgwv1.Workflow{Name: "specs", Nodes: []*kgwv1.Node{{Id: "n", RequiredResources: []string{"r"}, Code: `result = {}`}}})
	tests := []struct {
		name  string
		spec  *kgwv1.ResourceSpec
		field string // under the spec's own field
		want  string
	}{
		{"http credentials without base_url", &kgwv1.ResourceSpec{Type: "http_client", CredentialsRef: "api_token",
			Config: params(t, map[string]any{"timeout": 5})}, ".config.base_url",
			`http_client credentials need a base_url: they are only sent to its origin; add config.base_url (e.g. "https://api.example.com") and request relative paths, or drop credentials_ref`},
		{"password in config", &kgwv1.ResourceSpec{Type: "database",
			Config: params(t, map[string]any{"host": "127.0.0.1", "database": "x", "user": "x", "password": "hunter2-not-a-secret"})}, ".config.password",
			`"password" is a credential and config is not secret: store it in a secret (StoreSecret, kgw secrets put) and name that secret in credentials_ref`},
		{"token in http config", &kgwv1.ResourceSpec{Type: "http_client",
			Config: params(t, map[string]any{"base_url": "https://api.example.com", "token": "tok-not-a-secret"})}, ".config.token",
			`"token" is a credential and config is not secret: store it in a secret (StoreSecret, kgw secrets put) and name that secret in credentials_ref`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := func(rpc, field string, err error) {
				t.Helper()
				code, _, br := details(t, err)
				fv := br.GetFieldViolations()
				if code != codes.InvalidArgument || len(fv) != 1 || fv[0].GetField() != field || fv[0].GetDescription() != tt.want {
					t.Fatalf("%s = %v %v,\nwant INVALID_ARGUMENT with one violation on %s: %q", rpc, code, br, field, tt.want)
				}
				if msg := status.Convert(err).Message(); strings.Contains(msg, "not-a-secret") || !strings.Contains(msg, tt.want) {
					t.Errorf("%s message %q: want the fix, and no value from config", rpc, msg)
				}
			}
			_, err := s.ex.ExecuteWorkflow(t.Context(), &kgwv1.ExecuteWorkflowRequest{Workflow: "specs",
				Resources: map[string]*kgwv1.ResourceSpec{"r": tt.spec}})
			check("ExecuteWorkflow", `resources["r"]`+tt.field, err)
			_, err = s.res.PutResource(t.Context(), &kgwv1.PutResourceRequest{Name: "r", Spec: tt.spec})
			check("PutResource", "spec"+tt.field, err)
			_, err = s.res.CheckResource(t.Context(), &kgwv1.CheckResourceRequest{Target: &kgwv1.CheckResourceRequest_Spec{Spec: tt.spec}})
			check("CheckResource", "spec"+tt.field, err)
		})
	}
}

// TestRuntimeMessages: node code mistakes name what would work: an
// unknown attribute of a module or handle lists the valid ones, and mixing
// a time with a string points at time.parse_time. Exact text.
func TestRuntimeMessages(t *testing.T) {
	_, srv := newRecorder(t, "127.0.0.1:0")
	s := startStack(t, stackOptions{})
	res := map[string]*kgwv1.ResourceSpec{
		// Handles connect on first use; these tests never use them.
		"db":  {Type: "database", Config: params(t, map[string]any{"host": "127.0.0.1", "port": 1, "database": "x", "user": "x"})},
		"api": {Type: "http_client", Config: params(t, map[string]any{"base_url": srv.URL})},
	}
	const timeFix = "; turn the string into a time first: time.parse_time(\"2024-01-01T00:00:00Z\") (RFC 3339), or format the time with t.format(...)"
	tests := []struct{ name, code, want string }{
		{"db method", `result = {"v": get_resource("db").fetchvall("SELECT 1")}`,
			"node 'n' failed at 1:34: database has no .fetchvall field or method; valid: acquire, execute, executemany, fetch, fetchrow, fetchval, freesize, size, transaction (did you mean .fetchval?)"},
		{"db far", `result = {"v": get_resource("db").query("SELECT 1")}`,
			"node 'n' failed at 1:34: database has no .query field or method; valid: acquire, execute, executemany, fetch, fetchrow, fetchval, freesize, size, transaction"},
		{"json", `result = {"v": json.dump({})}`,
			"node 'n' failed at 1:20: module 'json' has no .dump field or method; valid: decode, dumps, encode, indent, loads (did you mean .dumps?)"},
		{"time", `result = {"v": time.nwo()}`,
			"node 'n' failed at 1:20: module 'time' has no .nwo field or method; valid: from_timestamp, hour, is_valid_timezone, microsecond, millisecond, minute, nanosecond, now, parse_duration, parse_time, second, sleep, time"},
		{"response field", `result = {"v": get_resource("api").get("x").status_cod}`,
			"node 'n' failed at 1:44: http_client.response has no .status_cod field or method; valid: body, headers, json, ok, raise_for_status, reason, status, status_code, text, url (did you mean .status_code?)"},
		{"time minus string", `result = {"v": time.now() - "2024-01-01"}`,
			"node 'n' failed at 1:27: unknown binary op: time.time - string" + timeFix},
		{"time less string", `result = {"v": time.now() < "2024-01-01"}`,
			"node 'n' failed at 1:27: time.time < string not implemented" + timeFix},
		{"string minus time", `result = {"v": "2024-01-01" - time.now()}`,
			"node 'n' failed at 1:29: unknown binary op: string - time.time" + timeFix},
		{"duration plus string", `result = {"v": time.parse_duration("1h") + "30m"}`,
			"node 'n' failed at 1:42: unknown binary op: time.duration + string; turn the string into a duration first: time.parse_duration(\"1h30m\")"},
	}
	names := []string{"db", "api"}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wf := fmt.Sprintf("rtmsg%d", i)
			s.register(t, &kgwv1.Workflow{Name: wf, Nodes: []*kgwv1.Node{{Id: "n", RequiredResources: names, Code: tt.code}}})
			x := s.run(t, &kgwv1.ExecuteWorkflowRequest{Workflow: wf, Resources: res})
			if e := x.GetError(); e.GetMessage() != tt.want {
				t.Errorf("message\n %q, want\n %q", e.GetMessage(), tt.want)
			}
		})
	}
}

// TestCheckResourceNamedOnce: CheckResource's message names the
// resource once too.
func TestCheckResourceNamedOnce(t *testing.T) {
	s := startStack(t, stackOptions{})
	spec := &kgwv1.ResourceSpec{Type: "database", CredentialsRef: "nosuch",
		Config: params(t, map[string]any{"host": "127.0.0.1", "port": 1, "database": "x"})}
	resp, err := s.res.CheckResource(t.Context(), &kgwv1.CheckResourceRequest{Target: &kgwv1.CheckResourceRequest_Spec{Spec: spec}})
	if err != nil {
		t.Fatal(err)
	}
	if want := "resource 'check': secret 'nosuch' not found"; resp.GetHealthy() || resp.GetMessage() != want {
		t.Errorf("CheckResource = %v, want unhealthy with %q", resp, want)
	}
}
