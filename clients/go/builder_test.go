package kgw_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	kgw "github.com/kailash-gateway/kgw/clients/go"
	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
)

func TestBuilderBuild(t *testing.T) {
	b := kgw.NewWorkflow("etl").
		Describe("three steps").
		Timeout(2*time.Minute).
		Label("team", "data").
		AddCode("extract", `result = {"rows": [1, 2]}`, kgw.RequiredResources("db"), kgw.NodeTimeout(5*time.Second)).
		AddCode("transform", `result = {"n": len(rows)}`,
			kgw.Retry(3, 100*time.Millisecond, time.Second, 2), kgw.NodeDescription("count")).
		AddCode("load", `result = {"total": total}`).
		Connect("extract", "", "transform", "").
		Connect("transform", "n", "load", "total")
	got, err := b.Build()
	if err != nil {
		t.Fatalf("Build() error = %v", err)
	}
	want := &kgwv1.Workflow{
		Name:        "etl",
		Description: "three steps",
		Timeout:     durationpb.New(2 * time.Minute),
		Labels:      map[string]string{"team": "data"},
		Nodes: []*kgwv1.Node{
			{Id: "extract", Code: `result = {"rows": [1, 2]}`, RequiredResources: []string{"db"}, Timeout: durationpb.New(5 * time.Second)},
			{Id: "transform", Code: `result = {"n": len(rows)}`, Description: "count", Retry: &kgwv1.RetryPolicy{
				MaxAttempts: 3, InitialBackoff: durationpb.New(100 * time.Millisecond), MaxBackoff: durationpb.New(time.Second), Multiplier: 2,
			}},
			{Id: "load", Code: `result = {"total": total}`},
		},
		Connections: []*kgwv1.Connection{
			{FromNode: "extract", ToNode: "transform"},
			{FromNode: "transform", FromOutput: "n", ToNode: "load", ToInput: "total"},
		},
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("Build() mismatch (-want +got):\n%s", diff)
	}

	// The built workflow is a copy: changing the builder later leaves it alone.
	b.Label("team", "other").AddCode("extra", "result = {}")
	if got.GetLabels()["team"] != "data" || len(got.GetNodes()) != 3 {
		t.Errorf("Build() result changed by later builder calls: %v", got)
	}
}

func TestBuilderProblems(t *testing.T) {
	tests := []struct {
		name   string
		b      *kgw.WorkflowBuilder
		fields []string // want exactly these violation fields
	}{
		{"bad name", kgw.NewWorkflow("Bad Name").AddCode("a", "result = {}"), []string{"workflow.name"}},
		{"no name", kgw.NewWorkflow("").AddCode("a", "result = {}"), []string{"workflow.name"}},
		{"no nodes", kgw.NewWorkflow("w"), []string{"workflow.nodes"}},
		{"duplicate id", kgw.NewWorkflow("w").AddCode("a", "x = 1").AddCode("a", "x = 2"), []string{"workflow.nodes[1].id"}},
		{"bad id and empty code", kgw.NewWorkflow("w").AddCode("1a", ""), []string{"workflow.nodes[0].code", "workflow.nodes[0].id"}},
		{"bad resource", kgw.NewWorkflow("w").AddCode("a", "x = 1", kgw.RequiredResources("DB", "db", "db")),
			[]string{"workflow.nodes[0].required_resources[0]", "workflow.nodes[0].required_resources[2]"}},
		{"bad options", kgw.NewWorkflow("w").Timeout(-time.Second).
			AddCode("a", "x = 1", kgw.NodeTimeout(0), kgw.Retry(0, -time.Second, time.Second, 0.5)),
			[]string{"workflow.nodes[0].retry.initial_backoff", "workflow.nodes[0].retry.max_attempts", "workflow.nodes[0].retry.multiplier", "workflow.nodes[0].timeout", "workflow.timeout"}},
		{"unknown nodes", kgw.NewWorkflow("w").AddCode("a", "x = 1").Connect("a", "x", "b", "").Connect("c", "", "a", ""),
			[]string{"workflow.connections[0].to_node", "workflow.connections[1].from_node"}},
		{"self loop", kgw.NewWorkflow("w").AddCode("a", "x = 1").Connect("a", "x", "a", "y"), []string{"workflow.connections[0]"}},
		{"input fed twice", kgw.NewWorkflow("w").AddCode("a", "x = 1").AddCode("b", "y = 1").AddCode("c", "z = 1").
			Connect("a", "x", "c", "v").Connect("b", "y", "c", "v"), []string{"workflow.connections[1].to_input"}},
		{"pass-all with input", kgw.NewWorkflow("w").AddCode("a", "x = 1").AddCode("b", "y = 1").Connect("a", "", "b", "v"),
			[]string{"workflow.connections[0].to_input"}},
		{"cycle", kgw.NewWorkflow("w").AddCode("a", "x = 1").AddCode("b", "y = 1").AddCode("c", "z = 1").
			Connect("a", "x", "b", "").Connect("b", "y", "c", "").Connect("c", "z", "a", ""), []string{"workflow.connections"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wf, err := tt.b.Build()
			if err == nil {
				t.Fatalf("Build() = %v, want an error", wf)
			}
			if !errors.Is(err, kgw.ErrInvalidWorkflow) || !kgw.IsInvalidArgument(err) {
				t.Errorf("Build() error %v does not match ErrInvalidWorkflow and ErrInvalidArgument", err)
			}
			var e *kgw.Error
			if !errors.As(err, &e) {
				t.Fatalf("Build() error %T is not a *kgw.Error", err)
			}
			if e.Code != codes.InvalidArgument || e.Op != "Build" {
				t.Errorf("Build() error code, op = %v, %q, want InvalidArgument, Build", e.Code, e.Op)
			}
			var fields []string
			for _, v := range e.Violations {
				if v.Description == "" {
					t.Errorf("violation %q has no description", v.Field)
				}
				fields = append(fields, v.Field)
			}
			slices.Sort(fields)
			if diff := cmp.Diff(tt.fields, fields); diff != "" {
				t.Errorf("violation fields mismatch (-want +got):\n%s\nerror: %v", diff, err)
			}
		})
	}
}
