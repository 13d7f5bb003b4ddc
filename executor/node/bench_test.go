package node_test

import (
	"context"
	"fmt"
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

// BenchmarkLoopNode measures a node that spends its time in operators
// (each + and % is a call of a charging builtin since the memory budget).
func BenchmarkLoopNode(b *testing.B) {
	p, err := node.Compile("bench", "x = 0\nfor i in range(1000):\n    x = x + i % 7\nresult = {\"x\": x}")
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

// BenchmarkStringNode measures a node that builds text with methods,
// slices and formatting.
func BenchmarkStringNode(b *testing.B) {
	p, err := node.Compile("bench", "parts = []\nfor i in range(100):\n    parts.append(\"%d:%s\" % (i, \"ab\"[i % 2:]))\ns = \",\".join(parts)\nresult = {\"n\": len(s.split(\",\")), \"u\": s.upper()[:10]}")
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

// BenchmarkCompileUncached measures Compile of new code (parse, rewrite,
// resolve, compile).
func BenchmarkCompileUncached(b *testing.B) {
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		code := fmt.Sprintf("x = %d\nparts = [str(i) for i in range(x)]\nresult = {\"s\": \",\".join(parts) + \"!\" * 2, \"t\": parts[1:]}", i)
		if _, err := node.Compile("bench", code); err != nil {
			b.Fatal(err)
		}
	}
}
