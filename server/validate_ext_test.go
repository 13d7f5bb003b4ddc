package server_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
	"github.com/kailash-gateway/kgw/server"
)

func node(id, code string) *kgwv1.Node { return &kgwv1.Node{Id: id, Code: code} }

func conn(from, out, to, in string) *kgwv1.Connection {
	return &kgwv1.Connection{FromNode: from, FromOutput: out, ToNode: to, ToInput: in}
}

// abc returns a valid three-node workflow that a case then breaks.
func abc(edit func(w *kgwv1.Workflow)) *kgwv1.Workflow {
	w := &kgwv1.Workflow{
		Name:  "abc",
		Nodes: []*kgwv1.Node{node("a", "result = {'x': 1}"), node("b", "result = {'y': x}"), node("c", "result = {}")},
		Connections: []*kgwv1.Connection{
			conn("a", "x", "b", ""),
			conn("b", "", "c", ""),
		},
	}
	if edit != nil {
		edit(w)
	}
	return w
}

func TestRegisterWorkflowInvalid(t *testing.T) {
	ts := start(t, server.Config{}, nil)
	manyNodes := make([]*kgwv1.Node, 201)
	for i := range manyNodes {
		manyNodes[i] = node("n"+strings.Repeat("x", i%50)+string(rune('a'+i%26))+strings.Repeat("y", i/26), "result = {}")
	}

	tests := []struct {
		name   string
		w      *kgwv1.Workflow
		fields []string // the violations, in order
		substr string   // in the first violation's description
	}{
		{"missing workflow", nil, []string{"workflow"}, "required"},
		{"empty name", abc(func(w *kgwv1.Workflow) { w.Name = "" }), []string{"workflow.name"}, "required"},
		{"upper-case name", abc(func(w *kgwv1.Workflow) { w.Name = "Hello" }), []string{"workflow.name"}, "not a valid workflow name"},
		{"name too long", abc(func(w *kgwv1.Workflow) { w.Name = strings.Repeat("a", 64) }), []string{"workflow.name"}, "not a valid workflow name"},
		{"no nodes", abc(func(w *kgwv1.Workflow) { w.Nodes, w.Connections = nil, nil }), []string{"workflow.nodes"}, "at least one node"},
		{"too many nodes", &kgwv1.Workflow{Name: "big", Nodes: manyNodes}, []string{"workflow.nodes"}, "at most 200"},
		{"empty node id", abc(func(w *kgwv1.Workflow) { w.Nodes[2].Id = ""; w.Connections = w.Connections[:1] }), []string{"workflow.nodes[2].id"}, "required"},
		{"bad node id", abc(func(w *kgwv1.Workflow) { w.Nodes[0].Id = "1a"; w.Connections = nil }), []string{"workflow.nodes[0].id"}, "not a valid node id"},
		{"duplicate node id", abc(func(w *kgwv1.Workflow) { w.Nodes[2].Id = "a"; w.Connections = w.Connections[:1] }), []string{"workflow.nodes[2].id"}, "duplicate node id 'a'"},
		{"empty code", abc(func(w *kgwv1.Workflow) { w.Nodes[1].Code = "  \n" }), []string{"workflow.nodes[1].code"}, "required"},
		{"code too big", abc(func(w *kgwv1.Workflow) { w.Nodes[0].Code = "x = 1\n" + strings.Repeat("#", 256<<10) }), []string{"workflow.nodes[0].code"}, "at most 262144"},
		{"code does not compile", abc(func(w *kgwv1.Workflow) { w.Nodes[1].Code = "result = {\n  'y': ," }), []string{"workflow.nodes[1].code"}, "node 'b' line 2:"},
		{"python import", abc(func(w *kgwv1.Workflow) { w.Nodes[0].Code = "import json\nresult = {'x': 1}" }),
			[]string{"workflow.nodes[0].code"}, "node 'a' line 1:1: `json` is already available"},
		{"two problems in one node", abc(func(w *kgwv1.Workflow) { w.Nodes[2].Code = "x = f'hi {y}'\nclass A:\n  pass\n" }),
			[]string{"workflow.nodes[2].code", "workflow.nodes[2].code"}, "node 'c' line 1:5: Starlark has no f-strings"},
		{"unknown to_node", abc(func(w *kgwv1.Workflow) { w.Connections[0].ToNode = "zz" }), []string{"workflow.connections[0].to_node"}, "no node with id 'zz'"},
		{"unknown from_node", abc(func(w *kgwv1.Workflow) { w.Connections[1].FromNode = "" }), []string{"workflow.connections[1].from_node"}, "required"},
		{"self loop", abc(func(w *kgwv1.Workflow) { w.Connections[0].ToNode = "a" }), []string{"workflow.connections[0].to_node"}, "connected to itself"},
		{"cycle", abc(func(w *kgwv1.Workflow) { w.Connections = append(w.Connections, conn("c", "z", "a", "")) }),
			[]string{"workflow.connections[2]"}, "cycle: a -> b -> c -> a"},
		{"two upstreams feed one input", abc(func(w *kgwv1.Workflow) {
			w.Connections = []*kgwv1.Connection{conn("a", "x", "c", "v"), conn("b", "y", "c", "v")}
		}), []string{"workflow.connections[1].to_input"}, "input 'v' of node 'c' is already fed by connections[0] (from 'a')"},
		{"two upstreams feed one output name", abc(func(w *kgwv1.Workflow) {
			w.Connections = []*kgwv1.Connection{conn("a", "x", "c", ""), conn("b", "x", "c", "")}
		}), []string{"workflow.connections[1].from_output"}, "input 'x' of node 'c'"},
		{"bad to_input", abc(func(w *kgwv1.Workflow) { w.Connections[0].ToInput = "my-var" }), []string{"workflow.connections[0].to_input"}, "not a valid Starlark identifier"},
		{"reserved from_output", abc(func(w *kgwv1.Workflow) { w.Connections[0].FromOutput = "for" }), []string{"workflow.connections[0].from_output"}, "reserved word"},
		{"pass-all with to_input", abc(func(w *kgwv1.Workflow) { w.Connections[1].ToInput = "v" }), []string{"workflow.connections[1].to_input"}, "pass-all"},
		{"bad resource name", abc(func(w *kgwv1.Workflow) { w.Nodes[1].RequiredResources = []string{"Orders-DB"} }),
			[]string{"workflow.nodes[1].required_resources[0]"}, "not a valid resource name"},
		{"duplicate resource", abc(func(w *kgwv1.Workflow) { w.Nodes[0].RequiredResources = []string{"db", "db"} }),
			[]string{"workflow.nodes[0].required_resources[1]"}, "listed twice"},
		{"negative node timeout", abc(func(w *kgwv1.Workflow) { w.Nodes[0].Timeout = durationpb.New(-time.Second) }), []string{"workflow.nodes[0].timeout"}, "negative"},
		{"huge workflow timeout", abc(func(w *kgwv1.Workflow) { w.Timeout = durationpb.New(48 * time.Hour) }), []string{"workflow.timeout"}, "longer than the maximum"},
		{"too many attempts", abc(func(w *kgwv1.Workflow) { w.Nodes[2].Retry = &kgwv1.RetryPolicy{MaxAttempts: 21} }), []string{"workflow.nodes[2].retry.max_attempts"}, "out of range"},
		{"multiplier below one", abc(func(w *kgwv1.Workflow) { w.Nodes[2].Retry = &kgwv1.RetryPolicy{Multiplier: 0.5} }), []string{"workflow.nodes[2].retry.multiplier"}, "out of range"},
		{"negative backoff", abc(func(w *kgwv1.Workflow) {
			w.Nodes[2].Retry = &kgwv1.RetryPolicy{InitialBackoff: durationpb.New(-time.Millisecond)}
		}), []string{"workflow.nodes[2].retry.initial_backoff"}, "negative"},
		{"bad label key", abc(func(w *kgwv1.Workflow) { w.Labels = map[string]string{"Bad Key": "v"} }), []string{`workflow.labels["Bad Key"]`}, "not a valid label key"},
		{"several problems at once", abc(func(w *kgwv1.Workflow) {
			w.Name = "Bad"
			w.Nodes[1].Id = "a"
			w.Connections[0].ToNode = "nowhere"
		}), []string{"workflow.name", "workflow.nodes[1].id", "workflow.connections[0].to_node", "workflow.connections[1].from_node"}, "not a valid workflow name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ts.wf.RegisterWorkflow(t.Context(), &kgwv1.RegisterWorkflowRequest{Workflow: tt.w})
			wantInvalidWorkflow(t, err, tt.fields, tt.substr)
		})
	}
	// None of the invalid definitions was stored.
	resp, err := ts.wf.ListWorkflows(t.Context(), &kgwv1.ListWorkflowsRequest{})
	if err != nil || len(resp.GetWorkflows()) != 0 {
		t.Fatalf("ListWorkflows after invalid registrations = %v, %v, want none", resp.GetWorkflows(), err)
	}
}

// wantInvalidWorkflow checks that err is RegisterWorkflow's
// INVALID_ARGUMENT for an invalid workflow, with violations on exactly
// fields, in order, the first description containing substr.
func wantInvalidWorkflow(t *testing.T, err error, fields []string, substr string) {
	t.Helper()
	code, info, br := details(t, err)
	if code != codes.InvalidArgument {
		t.Fatalf("RegisterWorkflow code = %v (%v), want INVALID_ARGUMENT", code, err)
	}
	if info.GetReason() != server.ReasonInvalidWorkflow || info.GetDomain() != "kgw" {
		t.Fatalf("ErrorInfo = %v, want reason %s domain kgw", info, server.ReasonInvalidWorkflow)
	}
	var got []string
	for _, v := range br.GetFieldViolations() {
		got = append(got, v.GetField())
	}
	if !slices.Equal(got, fields) {
		t.Fatalf("violations on %q, want %q (all: %v)", got, fields, br.GetFieldViolations())
	}
	if d := br.GetFieldViolations()[0].GetDescription(); !strings.Contains(d, substr) {
		t.Fatalf("description %q, want it to contain %q", d, substr)
	}
}

func TestRegisterWorkflowValid(t *testing.T) {
	ts := start(t, server.Config{}, nil)
	tests := []struct {
		name string
		w    *kgwv1.Workflow
	}{
		{"three nodes", abc(nil)},
		{"diamond with pass-all", &kgwv1.Workflow{
			Name:  "diamond_1",
			Nodes: []*kgwv1.Node{node("top", "result = {}"), node("left", "result = {}"), node("right", "result = {}"), node("Bottom-1", "result = {}")},
			Connections: []*kgwv1.Connection{
				conn("top", "", "left", ""), conn("top", "", "right", ""),
				conn("left", "", "Bottom-1", ""), conn("right", "", "Bottom-1", ""),
				conn("left", "v", "Bottom-1", "l"), conn("right", "v", "Bottom-1", "r"),
			},
		}},
		{"full options", &kgwv1.Workflow{
			Name: "opts", Timeout: durationpb.New(time.Hour), Labels: map[string]string{"team.name": "core"},
			Nodes: []*kgwv1.Node{{
				Id: "n", Code: "result = {}", RequiredResources: []string{"orders_db", "cache"},
				Timeout: durationpb.New(time.Minute),
				Retry: &kgwv1.RetryPolicy{MaxAttempts: 20, Multiplier: 1.5,
					InitialBackoff: durationpb.New(time.Second), MaxBackoff: durationpb.New(time.Minute)},
			}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := ts.wf.RegisterWorkflow(t.Context(), &kgwv1.RegisterWorkflowRequest{Workflow: tt.w})
			if err != nil {
				t.Fatalf("RegisterWorkflow: %v", err)
			}
			got := proto.Clone(resp.GetWorkflow()).(*kgwv1.Workflow)
			if got.GetCreator() != "local" {
				t.Errorf("creator = %q, want local (--auth none)", got.GetCreator())
			}
			got.Version, got.CreateTime, got.Creator = 0, nil, ""
			if !proto.Equal(got, tt.w) {
				t.Fatalf("stored workflow = %v, want %v", got, tt.w)
			}
		})
	}
}

// TestRegisterWorkflowValidateOnly: validate_only answers as a registration
// would (violations for an invalid definition, the definition for a valid
// one) and stores nothing.
func TestRegisterWorkflowValidateOnly(t *testing.T) {
	ts := start(t, server.Config{}, nil)
	ctx := t.Context()
	w := abc(nil)
	resp, err := ts.wf.RegisterWorkflow(ctx, &kgwv1.RegisterWorkflowRequest{Workflow: w, ValidateOnly: true})
	if err != nil {
		t.Fatalf("RegisterWorkflow(validate_only) error = %v", err)
	}
	got := resp.GetWorkflow()
	if got.GetVersion() != 0 || got.GetCreateTime() != nil || got.GetName() != w.GetName() || len(got.GetNodes()) != len(w.GetNodes()) {
		t.Errorf("RegisterWorkflow(validate_only) = %v, want the definition with version 0 and no create_time", got)
	}
	if _, err := ts.wf.GetWorkflow(ctx, &kgwv1.GetWorkflowRequest{Name: w.GetName()}); status.Code(err) != codes.NotFound {
		t.Errorf("GetWorkflow after validate_only = %v, want NOT_FOUND (nothing stored)", err)
	}
	// A second validate_only and a real registration: version 1, not 2.
	if _, err := ts.wf.RegisterWorkflow(ctx, &kgwv1.RegisterWorkflowRequest{Workflow: w, ValidateOnly: true}); err != nil {
		t.Fatal(err)
	}
	stored, err := ts.wf.RegisterWorkflow(ctx, &kgwv1.RegisterWorkflowRequest{Workflow: w})
	if err != nil || stored.GetWorkflow().GetVersion() != 1 {
		t.Fatalf("RegisterWorkflow after validate_only = %v, %v; want version 1", stored, err)
	}
	bad := proto.Clone(w).(*kgwv1.Workflow)
	bad.Nodes[0].Code = "import json"
	_, err = ts.wf.RegisterWorkflow(ctx, &kgwv1.RegisterWorkflowRequest{Workflow: bad, ValidateOnly: true})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "Starlark has no import") {
		t.Errorf("RegisterWorkflow(validate_only, invalid) error = %v, want INVALID_ARGUMENT naming the import", err)
	}
	if got, err := ts.wf.GetWorkflow(ctx, &kgwv1.GetWorkflowRequest{Name: w.GetName()}); err != nil || got.GetWorkflow().GetVersion() != 1 {
		t.Errorf("latest version after validate_only = %v, %v; want 1", got, err)
	}
}
