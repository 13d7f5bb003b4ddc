package server_test

import (
	"testing"

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
