package node_test

import (
	"context"
	"testing"

	"github.com/kailash-gateway/kgw/executor/node"
)

// BenchmarkTrivialNode measures one attempt of a trivial node with its
// program already compiled (the per-node overhead of the runtime).
func BenchmarkTrivialNode(b *testing.B) {
	p, err := node.Compile("bench", `result = {"x": 1}`)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	a := &node.Attempt{NodeID: "bench"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Run(ctx, a); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScopeNode measures a node that reads parameters and inputs and
// uses a module.
func BenchmarkScopeNode(b *testing.B) {
	p, err := node.Compile("bench", `result = {"sum": a + b, "s": json.encode(parameters)}`)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	a := &node.Attempt{NodeID: "bench", Parameters: map[string]any{"a": 1.0, "x": "y"}, Inputs: map[string]any{"b": 2.0}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Run(ctx, a); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompileCached measures Compile of code already in the cache.
func BenchmarkCompileCached(b *testing.B) {
	code := `result = {"x": 1}`
	b.ReportAllocs()
	for b.Loop() {
		if _, err := node.Compile("bench", code); err != nil {
			b.Fatal(err)
		}
	}
}
