package server

import (
	"errors"

	"github.com/kailash-gateway/kgw/executor/node"
)

// CompileNode is the CompileFunc of the gateway: it compiles code with the
// Starlark node runtime (node.Compile, which caches programs) and reports
// every problem it finds, with Python-habit hints. It is the default when
// Config.Compile is nil.
func CompileNode(nodeID, code string) []CompileProblem {
	_, err := node.Compile(nodeID, code)
	if err == nil {
		return nil
	}
	var ce *node.CompileError
	if !errors.As(err, &ce) {
		return []CompileProblem{{Message: "code does not compile"}}
	}
	out := make([]CompileProblem, 0, len(ce.Problems))
	for _, p := range ce.Problems {
		out = append(out, CompileProblem{Line: p.Line, Col: p.Col, Message: p.Message})
	}
	return out
}
