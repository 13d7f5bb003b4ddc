package server_test

import (
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
			`"password" is a credential and config is not secret: store it in a secret (StoreSecret, kgw secret put) and name that secret in credentials_ref`},
		{"token in http config", &kgwv1.ResourceSpec{Type: "http_client",
			Config: params(t, map[string]any{"base_url": "https://api.example.com", "token": "tok-not-a-secret"})}, ".config.token",
			`"token" is a credential and config is not secret: store it in a secret (StoreSecret, kgw secret put) and name that secret in credentials_ref`},
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
