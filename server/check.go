package server

import (
	"errors"
	"fmt"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
)

// A WorkflowProblem is one problem CheckWorkflow found in a definition.
type WorkflowProblem struct {
	// Field is the path of the offending field, e.g. "workflow.nodes[0].code".
	Field string
	// Node is the index of the node whose code does not compile, or -1 for
	// every other problem.
	Node int
	// Line and Col place a code problem in the node's code (1-based); 0
	// for other problems.
	Line, Col int
	// Message says what is wrong; for code problems it does not repeat the
	// position.
	Message string
}

// CheckWorkflow runs every check RegisterWorkflow makes on a definition
// (names, limits, connections, cycles, allowed callers, and compiling each
// node's code with CompileNode) without a store or a gateway, and returns
// the problems found, none when RegisterWorkflow would accept it. It is
// what `kgw workflow validate` runs offline. It is safe for concurrent use.
func CheckWorkflow(w *kgwv1.Workflow) []WorkflowProblem {
	var out []WorkflowProblem
	var v validationErrors
	checkCallers(&v, "workflow.allowed_callers", w.GetAllowedCallers())
	for _, x := range v {
		out = append(out, WorkflowProblem{Field: x.Field, Node: -1, Message: x.Description})
	}
	if err := validateWorkflow(w, nil); err != nil {
		var ie *invalidError
		if !errors.As(err, &ie) {
			return append(out, WorkflowProblem{Field: "workflow", Node: -1, Message: err.Error()})
		}
		for _, x := range ie.violations {
			out = append(out, WorkflowProblem{Field: x.Field, Node: -1, Message: x.Description})
		}
	}
	if len(w.GetNodes()) > maxNodes {
		return out
	}
	for i, n := range w.GetNodes() {
		if n.GetCode() == "" || len(n.GetCode()) > maxCodeBytes {
			continue // already reported
		}
		for _, p := range CompileNode(n.GetId(), n.GetCode()) {
			out = append(out, WorkflowProblem{
				Field: fmt.Sprintf("workflow.nodes[%d].code", i), Node: i,
				Line: p.Line, Col: p.Col, Message: p.Message,
			})
		}
	}
	return out
}
