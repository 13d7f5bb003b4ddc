package kgw

import (
	"fmt"
	"maps"
	"math"
	"regexp"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
)

var (
	workflowNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	nodeIDRE       = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]{0,62}$`)
	identRE        = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)
	resourceNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
)

// A WorkflowBuilder assembles a workflow definition step by step, in the
// shape of the Python SDK's AsyncWorkflowBuilder:
//
//	wf, err := kgw.NewWorkflow("hello_db").
//		AddCode("query", `result = {"message": get_resource("db").fetchval("SELECT 1")}`,
//			kgw.RequiredResources("db")).
//		Build()
//
// Methods record the definition and return the builder; Build checks it and
// reports every problem at once. A WorkflowBuilder is not safe for
// concurrent use; after Build it may be changed and built again.
type WorkflowBuilder struct {
	wf       *kgwv1.Workflow
	problems []FieldViolation
}

// NewWorkflow starts a workflow named name (`[a-z0-9][a-z0-9_-]{0,62}`).
func NewWorkflow(name string) *WorkflowBuilder {
	return &WorkflowBuilder{wf: &kgwv1.Workflow{Name: name}}
}

// Describe sets the workflow's description.
func (b *WorkflowBuilder) Describe(description string) *WorkflowBuilder {
	b.wf.Description = description
	return b
}

// Timeout limits a whole execution (the gateway's default is 300 s).
func (b *WorkflowBuilder) Timeout(d time.Duration) *WorkflowBuilder {
	if d <= 0 {
		b.problem("workflow.timeout", "must be positive, got %v", d)
		return b
	}
	b.wf.Timeout = durationpb.New(d)
	return b
}

// Label sets a label of the workflow.
func (b *WorkflowBuilder) Label(key, value string) *WorkflowBuilder {
	if b.wf.Labels == nil {
		b.wf.Labels = map[string]string{}
	}
	b.wf.Labels[key] = value
	return b
}

// DisableJournal runs executions of the workflow without a journal: less
// latency, but no recovery after a restart and no Watch after they end.
// Use it only for side-effect-free work.
func (b *WorkflowBuilder) DisableJournal() *WorkflowBuilder {
	b.wf.DisableJournal = true
	return b
}

// A NodeOption configures a node added with AddCode.
type NodeOption func(*nodeConfig)

type nodeConfig struct {
	node     *kgwv1.Node
	problems []FieldViolation
}

// RequiredResources names the request resources the node may reach with
// get_resource.
func RequiredResources(names ...string) NodeOption {
	return func(c *nodeConfig) { c.node.RequiredResources = append(c.node.RequiredResources, names...) }
}

// NodeTimeout limits one attempt of the node (the gateway's default is 30 s).
func NodeTimeout(d time.Duration) NodeOption {
	return func(c *nodeConfig) {
		if d <= 0 {
			c.problems = append(c.problems, FieldViolation{"timeout", fmt.Sprintf("must be positive, got %v", d)})
			return
		}
		c.node.Timeout = durationpb.New(d)
	}
}

// Retry runs the node up to maxAttempts times in all, waiting initial before
// the first retry and multiplying the wait by multiplier after each retry,
// up to max. Zero values take the gateway's defaults (1 s, 60 s, 2).
func Retry(maxAttempts int, initial, max time.Duration, multiplier float64) NodeOption {
	return func(c *nodeConfig) {
		bad := func(field, format string, args ...any) {
			c.problems = append(c.problems, FieldViolation{"retry." + field, fmt.Sprintf(format, args...)})
		}
		r := &kgwv1.RetryPolicy{Multiplier: multiplier}
		switch {
		case maxAttempts < 1:
			bad("max_attempts", "must be at least 1, got %d", maxAttempts)
		case maxAttempts > math.MaxInt32:
			bad("max_attempts", "too large: %d", maxAttempts)
		default:
			r.MaxAttempts = int32(maxAttempts)
		}
		if initial < 0 {
			bad("initial_backoff", "must not be negative, got %v", initial)
		} else if initial > 0 {
			r.InitialBackoff = durationpb.New(initial)
		}
		if max < 0 {
			bad("max_backoff", "must not be negative, got %v", max)
		} else if max > 0 {
			r.MaxBackoff = durationpb.New(max)
		}
		if math.IsNaN(multiplier) || math.IsInf(multiplier, 0) || multiplier != 0 && multiplier < 1 {
			bad("multiplier", "must be 0 (the default, 2) or a finite number >= 1, got %v", multiplier)
		}
		c.node.Retry = r
	}
}

// NodeDescription sets the node's description.
func NodeDescription(description string) NodeOption {
	return func(c *nodeConfig) { c.node.Description = description }
}

// AddCode adds a Starlark code node. Its top-level variable `result` (a dict)
// is its output. This is the Python SDK's add_async_code.
func (b *WorkflowBuilder) AddCode(nodeID, code string, opts ...NodeOption) *WorkflowBuilder {
	c := nodeConfig{node: &kgwv1.Node{Id: nodeID, Code: code}}
	for _, o := range opts {
		o(&c)
	}
	prefix := fmt.Sprintf("workflow.nodes[%d].", len(b.wf.Nodes))
	for _, p := range c.problems {
		b.problem(prefix+p.Field, "node '%s': %s", nodeID, p.Description)
	}
	b.wf.Nodes = append(b.wf.Nodes, c.node)
	return b
}

// Connect carries fromNode's result into toNode. With fromOutput set, the
// value result[fromOutput] becomes the variable toInput of toNode (or
// fromOutput when toInput is empty). With fromOutput empty ("pass all", the
// Python SDK's None, None), every key of fromNode's result, and everything
// fromNode itself received through pass-all connections, becomes a variable
// of toNode; toInput must then be empty too.
func (b *WorkflowBuilder) Connect(fromNode, fromOutput, toNode, toInput string) *WorkflowBuilder {
	b.wf.Connections = append(b.wf.Connections, &kgwv1.Connection{
		FromNode: fromNode, FromOutput: fromOutput, ToNode: toNode, ToInput: toInput,
	})
	return b
}

func (b *WorkflowBuilder) problem(field, format string, args ...any) {
	b.problems = append(b.problems, FieldViolation{Field: field, Description: fmt.Sprintf(format, args...)})
}

// Build checks the definition and returns a copy of it, ready for
// Client.Register. The checks are the structural ones the gateway also makes
// (names, unique node ids, connections naming existing nodes, no cycles, no
// input fed twice); whether the code compiles is only known on Register.
// Every problem is reported at once in an *Error with code INVALID_ARGUMENT,
// reason INVALID_WORKFLOW and one violation per problem, exactly like the
// gateway's answer, so errors.Is(err, ErrInvalidWorkflow) holds.
func (b *WorkflowBuilder) Build() (*kgwv1.Workflow, error) {
	v := append([]FieldViolation(nil), b.problems...)
	v = append(v, checkWorkflow(b.wf)...)
	if len(v) > 0 {
		msg := "invalid workflow: " + v[0].Field + ": " + v[0].Description
		if len(v) > 1 {
			msg = fmt.Sprintf("invalid workflow: %d problems", len(v))
		}
		return nil, &Error{Op: "Build", Code: codes.InvalidArgument, Reason: ReasonInvalidWorkflow, Domain: "kgw", Message: msg, Violations: v}
	}
	wf := proto.Clone(b.wf).(*kgwv1.Workflow)
	if b.wf.Labels != nil {
		wf.Labels = maps.Clone(b.wf.Labels)
	}
	return wf, nil
}

// checkWorkflow makes the structural checks of Build, naming fields as the
// gateway does.
func checkWorkflow(wf *kgwv1.Workflow) []FieldViolation {
	var v violations
	switch {
	case wf.GetName() == "":
		v.add("workflow.name", "required")
	case !workflowNameRE.MatchString(wf.GetName()):
		v.add("workflow.name", "%q is not a valid workflow name: want [a-z0-9][a-z0-9_-]{0,62}", wf.GetName())
	}
	if len(wf.GetNodes()) == 0 {
		v.add("workflow.nodes", "a workflow needs at least one node")
	}
	index := v.checkNodes(wf.GetNodes())
	next := v.checkConnections(wf.GetConnections(), index)
	if cycle := findCycle(wf.GetNodes(), next); cycle != nil {
		v.add("workflow.connections", "cycle: %s", joinArrow(cycle))
	}
	return v
}

// violations collects the problems checkWorkflow finds.
type violations []FieldViolation

func (v *violations) add(field, format string, args ...any) {
	*v = append(*v, FieldViolation{field, fmt.Sprintf(format, args...)})
}

// checkNodes checks each node's id, code and resource names, and returns
// the index of each valid id (the first, for a duplicate).
func (v *violations) checkNodes(nodes []*kgwv1.Node) map[string]int {
	index := map[string]int{}
	for i, n := range nodes {
		p := fmt.Sprintf("workflow.nodes[%d]", i)
		switch id := n.GetId(); {
		case id == "":
			v.add(p+".id", "required")
		case !nodeIDRE.MatchString(id):
			v.add(p+".id", "%q is not a valid node id: want [A-Za-z_][A-Za-z0-9_-]{0,62}", id)
		default:
			if j, dup := index[id]; dup {
				v.add(p+".id", "duplicate node id '%s' (also workflow.nodes[%d])", id, j)
			} else {
				index[id] = i
			}
		}
		if n.GetCode() == "" {
			v.add(p+".code", "node '%s': code is required", n.GetId())
		}
		seen := map[string]bool{}
		for j, r := range n.GetRequiredResources() {
			f := fmt.Sprintf("%s.required_resources[%d]", p, j)
			switch {
			case !resourceNameRE.MatchString(r):
				v.add(f, "node '%s': %q is not a valid resource name: want [a-z][a-z0-9_]{0,62}", n.GetId(), r)
			case seen[r]:
				v.add(f, "node '%s': resource '%s' listed twice", n.GetId(), r)
			}
			seen[r] = true
		}
	}
	return index
}

// checkConnections checks each connection's ends (against the node index)
// and the input it feeds, and returns the graph of the valid ones (node id
// to the ids it feeds).
func (v *violations) checkConnections(conns []*kgwv1.Connection, index map[string]int) map[string][]string {
	fed := map[[2]string]int{} // (to_node, input) -> connection index
	next := map[string][]string{}
	for i, c := range conns {
		p := fmt.Sprintf("workflow.connections[%d]", i)
		_, okFrom := index[c.GetFromNode()]
		_, okTo := index[c.GetToNode()]
		if !okFrom {
			v.add(p+".from_node", "unknown node '%s'", c.GetFromNode())
		}
		if !okTo {
			v.add(p+".to_node", "unknown node '%s'", c.GetToNode())
		}
		if okFrom && okTo && c.GetFromNode() == c.GetToNode() {
			v.add(p, "node '%s' is connected to itself", c.GetFromNode())
			continue
		}
		if c.GetFromOutput() == "" {
			if c.GetToInput() != "" {
				v.add(p+".to_input", "must be empty when from_output is empty (pass all)")
			}
		} else {
			input := c.GetToInput()
			if input == "" {
				input = c.GetFromOutput()
			}
			if !identRE.MatchString(input) {
				v.add(p+".to_input", "%q is not a valid variable name", input)
			} else if j, dup := fed[[2]string{c.GetToNode(), input}]; dup {
				v.add(p+".to_input", "input '%s' of node '%s' is already fed by workflow.connections[%d]", input, c.GetToNode(), j)
			} else {
				fed[[2]string{c.GetToNode(), input}] = i
			}
		}
		if okFrom && okTo {
			next[c.GetFromNode()] = append(next[c.GetFromNode()], c.GetToNode())
		}
	}
	return next
}

// findCycle returns the node ids of one cycle of the graph, or nil.
func findCycle(nodes []*kgwv1.Node, next map[string][]string) []string {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var visit func(id string) []string
	visit = func(id string) []string {
		color[id] = grey
		stack = append(stack, id)
		for _, n := range next[id] {
			switch color[n] {
			case grey:
				for i, s := range stack {
					if s == n {
						return append(append([]string(nil), stack[i:]...), n)
					}
				}
			case white:
				if c := visit(n); c != nil {
					return c
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[id] = black
		return nil
	}
	for _, n := range nodes {
		if color[n.GetId()] == white {
			if c := visit(n.GetId()); c != nil {
				return c
			}
		}
	}
	return nil
}

func joinArrow(ids []string) string {
	s := ""
	for i, id := range ids {
		if i > 0 {
			s += " -> "
		}
		s += id
	}
	return s
}
