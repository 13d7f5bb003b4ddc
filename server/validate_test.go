package server

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
)

func fuzzSeeds() []*kgwv1.Workflow {
	return []*kgwv1.Workflow{
		{Name: "a", Nodes: []*kgwv1.Node{{Id: "n", Code: "result = {}"}}},
		{
			Name: "abc", Description: "d", Timeout: durationpb.New(time.Minute), Labels: map[string]string{"k": "v"},
			Nodes: []*kgwv1.Node{
				{Id: "a", Code: "result = {'x': 1}", RequiredResources: []string{"db"}, Timeout: durationpb.New(time.Second),
					Retry: &kgwv1.RetryPolicy{MaxAttempts: 3, Multiplier: 2, InitialBackoff: durationpb.New(time.Second)}},
				{Id: "b", Code: "result = {}"},
				{Id: "c", Code: "result = {}"},
			},
			Connections: []*kgwv1.Connection{
				{FromNode: "a", FromOutput: "x", ToNode: "b"},
				{FromNode: "b", ToNode: "c"},
				{FromNode: "c", FromOutput: "y", ToNode: "a", ToInput: "z"},
			},
		},
	}
}

// FuzzWorkflow feeds arbitrary definitions to the validator (which must not
// panic) and checks that every valid one survives the domain → proto →
// domain conversion unchanged.
func FuzzWorkflow(f *testing.F) {
	for _, w := range fuzzSeeds() {
		b, err := proto.Marshal(w)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var w kgwv1.Workflow
		if proto.Unmarshal(b, &w) != nil {
			return
		}
		if err := validateWorkflow(&w, nil); err != nil {
			if _, ok := err.(*invalidError); !ok {
				t.Fatalf("validateWorkflow error %T, want *invalidError", err)
			}
			return
		}
		d := workflowFromProto(&w)
		again := workflowFromProto(workflowToProto(d))
		if diff := cmp.Diff(d, again); diff != "" {
			t.Fatalf("domain → proto → domain changed the workflow (-first +second):\n%s", diff)
		}
	})
}

func TestFindCycles(t *testing.T) {
	// 0→1→2→0 and 2→3→2: two cycles; 4 is isolated.
	adj := [][]edge{{{1, 0}}, {{2, 1}}, {{0, 2}, {3, 3}}, {{2, 4}}, nil}
	got := findCycles(adj)
	if len(got) != 2 {
		t.Fatalf("findCycles = %v, want 2 cycles", got)
	}
	if len(findCycles([][]edge{{{1, 0}}, {{2, 1}}, nil})) != 0 {
		t.Fatal("findCycles on a chain found a cycle")
	}
}
