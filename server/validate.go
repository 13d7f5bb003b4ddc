package server

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/durationpb"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
)

// Limits on workflow definitions (DESIGN.md §9 "input limits").
const (
	maxNodes           = 200
	maxConnections     = 2000
	maxCodeBytes       = 256 << 10
	maxDescription     = 4 << 10
	maxLabels          = 64
	maxLabelValue      = 256
	maxResourcesByNode = 64
	maxWorkflowTimeout = 24 * time.Hour
	maxNodeTimeout     = 24 * time.Hour
	maxBackoff         = time.Hour
	maxAttempts        = 20
	maxMultiplier      = 100
)

var (
	workflowNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	nodeIDRE       = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]{0,62}$`)
	identRE        = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)
	resourceNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
	labelKeyRE     = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,62}$`)
)

// starlarkReserved are words Starlark reserves; none can name a variable.
var starlarkReserved = map[string]bool{
	"and": true, "as": true, "assert": true, "async": true, "await": true, "break": true,
	"class": true, "continue": true, "def": true, "del": true, "elif": true, "else": true,
	"except": true, "finally": true, "for": true, "from": true, "global": true, "if": true,
	"import": true, "in": true, "is": true, "lambda": true, "load": true, "nonlocal": true,
	"not": true, "or": true, "pass": true, "raise": true, "return": true, "try": true,
	"while": true, "with": true, "yield": true,
}

// CompileProblem is one problem found compiling a node's Starlark code.
type CompileProblem struct {
	Line, Col int
	Message   string
}

// CompileFunc checks that code, the source of node nodeID, compiles, and
// returns the problems found (none when it compiles). It must be safe for
// concurrent use.
type CompileFunc func(nodeID, code string) []CompileProblem

// validationErrors collects violations.
type validationErrors []violation

func (v *validationErrors) add(field, format string, args ...any) {
	*v = append(*v, violation{Field: field, Description: fmt.Sprintf(format, args...)})
}

// validateWorkflowName checks a workflow name in field.
func validateWorkflowName(v *validationErrors, field, name string) {
	switch {
	case name == "":
		v.add(field, "required")
	case !workflowNameRE.MatchString(name):
		v.add(field, "%q is not a valid workflow name: want [a-z0-9][a-z0-9_-]{0,62}", clip(name))
	}
}

// validateWorkflow checks a workflow definition completely and returns an
// *invalidError with one violation per problem, or nil. compile may be nil.
func validateWorkflow(w *kgwv1.Workflow, compile CompileFunc) error {
	var v validationErrors
	if w == nil {
		v.add("workflow", "required")
		return &invalidError{reason: ReasonInvalidWorkflow, violations: v}
	}
	validateWorkflowName(&v, "workflow.name", w.GetName())
	if len(w.GetDescription()) > maxDescription {
		v.add("workflow.description", "longer than %d bytes", maxDescription)
	}
	checkDuration(&v, "workflow.timeout", w.GetTimeout(), maxWorkflowTimeout)
	validateLabels(&v, w.GetLabels())

	nodes := w.GetNodes()
	switch {
	case len(nodes) == 0:
		v.add("workflow.nodes", "a workflow needs at least one node")
	case len(nodes) > maxNodes:
		v.add("workflow.nodes", "%d nodes, at most %d allowed", len(nodes), maxNodes)
	}
	index := map[string]int{} // node id -> first index
	for i, n := range nodes {
		validateNode(&v, i, n, index)
	}
	validateConnections(&v, w.GetConnections(), nodes, index)

	if compile != nil && len(nodes) <= maxNodes {
		for i, n := range nodes {
			if n.GetCode() == "" || len(n.GetCode()) > maxCodeBytes {
				continue // already reported
			}
			for _, p := range compile(n.GetId(), n.GetCode()) {
				v.add(fmt.Sprintf("workflow.nodes[%d].code", i), "node '%s' line %d:%d: %s", clip(n.GetId()), p.Line, p.Col, p.Message)
			}
		}
	}
	if len(v) == 0 {
		return nil
	}
	return &invalidError{reason: ReasonInvalidWorkflow, violations: v}
}

func validateNode(v *validationErrors, i int, n *kgwv1.Node, index map[string]int) {
	p := fmt.Sprintf("workflow.nodes[%d]", i)
	id := n.GetId()
	switch {
	case id == "":
		v.add(p+".id", "required")
	case !nodeIDRE.MatchString(id):
		v.add(p+".id", "%q is not a valid node id: want [A-Za-z_][A-Za-z0-9_-]{0,62}", clip(id))
	default:
		if first, dup := index[id]; dup {
			v.add(p+".id", "duplicate node id '%s' (also nodes[%d])", id, first)
		} else {
			index[id] = i
		}
	}
	switch code := n.GetCode(); {
	case strings.TrimSpace(code) == "":
		v.add(p+".code", "required")
	case len(code) > maxCodeBytes:
		v.add(p+".code", "%d bytes, at most %d allowed", len(code), maxCodeBytes)
	}
	if len(n.GetDescription()) > maxDescription {
		v.add(p+".description", "longer than %d bytes", maxDescription)
	}
	res := n.GetRequiredResources()
	if len(res) > maxResourcesByNode {
		v.add(p+".required_resources", "%d resources, at most %d allowed", len(res), maxResourcesByNode)
	}
	seen := map[string]bool{}
	for k, r := range res {
		f := fmt.Sprintf("%s.required_resources[%d]", p, k)
		switch {
		case !resourceNameRE.MatchString(r):
			v.add(f, "%q is not a valid resource name: want [a-z][a-z0-9_]{0,62}", clip(r))
		case seen[r]:
			v.add(f, "resource '%s' listed twice", r)
		}
		seen[r] = true
	}
	checkDuration(v, p+".timeout", n.GetTimeout(), maxNodeTimeout)
	if r := n.GetRetry(); r != nil {
		rp := p + ".retry"
		if a := r.GetMaxAttempts(); a < 0 || a > maxAttempts {
			v.add(rp+".max_attempts", "%d is out of range: want 0 (default 1) to %d", a, maxAttempts)
		}
		if m := r.GetMultiplier(); math.IsNaN(m) || m != 0 && (m < 1 || m > maxMultiplier) {
			v.add(rp+".multiplier", "%v is out of range: want 0 (default 2) or 1 to %d", m, maxMultiplier)
		}
		okInit := checkDuration(v, rp+".initial_backoff", r.GetInitialBackoff(), maxBackoff)
		okMax := checkDuration(v, rp+".max_backoff", r.GetMaxBackoff(), maxBackoff)
		if okInit && okMax && r.GetMaxBackoff() != nil && r.GetInitialBackoff() != nil &&
			r.GetMaxBackoff().AsDuration() > 0 && r.GetInitialBackoff().AsDuration() > r.GetMaxBackoff().AsDuration() {
			v.add(rp+".initial_backoff", "%s is longer than max_backoff %s",
				r.GetInitialBackoff().AsDuration(), r.GetMaxBackoff().AsDuration())
		}
	}
}

func validateConnections(v *validationErrors, conns []*kgwv1.Connection, nodes []*kgwv1.Node, index map[string]int) {
	if len(conns) > maxConnections {
		v.add("workflow.connections", "%d connections, at most %d allowed", len(conns), maxConnections)
		return
	}
	type inputKey struct{ node, input string }
	fed := map[inputKey]int{}
	adj := make([][]edge, len(nodes))
	for i, c := range conns {
		p := fmt.Sprintf("workflow.connections[%d]", i)
		from, okFrom := endpoint(v, p+".from_node", c.GetFromNode(), index)
		to, okTo := endpoint(v, p+".to_node", c.GetToNode(), index)
		selfLoop := okFrom && okTo && from == to
		if selfLoop {
			v.add(p+".to_node", "node '%s' is connected to itself", c.GetToNode())
		}
		out, in := c.GetFromOutput(), c.GetToInput()
		if out != "" {
			checkIdent(v, p+".from_output", out)
		}
		if in != "" {
			if out == "" {
				v.add(p+".to_input", "must be empty for a pass-all connection (empty from_output)")
			} else {
				checkIdent(v, p+".to_input", in)
			}
		}
		if okTo && out != "" {
			name, field := in, p+".to_input"
			if name == "" {
				name, field = out, p+".from_output"
			}
			k := inputKey{c.GetToNode(), name}
			if first, dup := fed[k]; dup {
				v.add(field, "input '%s' of node '%s' is already fed by connections[%d] (from '%s')",
					name, k.node, first, conns[first].GetFromNode())
			} else {
				fed[k] = i
			}
		}
		if okFrom && okTo && !selfLoop {
			adj[from] = append(adj[from], edge{to: to, conn: i})
		}
	}
	for _, cyc := range findCycles(adj) {
		names := make([]string, len(cyc.path))
		for k, n := range cyc.path {
			names[k] = nodes[n].GetId()
		}
		v.add(fmt.Sprintf("workflow.connections[%d]", cyc.conn), "connections form a cycle: %s", strings.Join(names, " -> "))
	}
}

// endpoint resolves a connection end to a node index, reporting problems.
func endpoint(v *validationErrors, field, id string, index map[string]int) (int, bool) {
	if id == "" {
		v.add(field, "required")
		return 0, false
	}
	i, ok := index[id]
	if !ok {
		v.add(field, "no node with id '%s'", clip(id))
	}
	return i, ok
}

func checkIdent(v *validationErrors, field, s string) {
	switch {
	case !identRE.MatchString(s):
		v.add(field, "%q is not a valid Starlark identifier: want [A-Za-z_][A-Za-z0-9_]{0,62}", clip(s))
	case starlarkReserved[s]:
		v.add(field, "%q is a reserved word in Starlark", s)
	}
}

type edge struct{ to, conn int }

type cycle struct {
	path []int // node indices, first == last
	conn int   // connection that closes the cycle
}

// findCycles returns one cycle per back edge found by a depth-first search,
// deduplicated; an acyclic graph gives none.
func findCycles(adj [][]edge) []cycle {
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(adj))
	var stack []int
	var out []cycle
	seen := map[string]bool{}
	var visit func(n int)
	visit = func(n int) {
		color[n] = grey
		stack = append(stack, n)
		for _, e := range adj[n] {
			switch color[e.to] {
			case white:
				visit(e.to)
			case grey:
				start := slices.Index(stack, e.to)
				path := append(slices.Clone(stack[start:]), e.to)
				key := canonicalCycle(path[:len(path)-1])
				if !seen[key] {
					seen[key] = true
					out = append(out, cycle{path: path, conn: e.conn})
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
	}
	for n := range adj {
		if color[n] == white {
			visit(n)
		}
	}
	return out
}

// canonicalCycle names a cycle independently of where it starts.
func canonicalCycle(nodes []int) string {
	lo := 0
	for i, n := range nodes {
		if n < nodes[lo] {
			lo = i
		}
	}
	var b strings.Builder
	for i := range nodes {
		b.WriteString(strconv.Itoa(nodes[(lo+i)%len(nodes)]))
		b.WriteByte(',')
	}
	return b.String()
}

func validateLabels(v *validationErrors, labels map[string]string) {
	if len(labels) > maxLabels {
		v.add("workflow.labels", "%d labels, at most %d allowed", len(labels), maxLabels)
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f := "workflow.labels[" + strconv.Quote(clip(k)) + "]"
		if !labelKeyRE.MatchString(k) {
			v.add(f, "%q is not a valid label key: want [a-z][a-z0-9_.-]{0,62}", clip(k))
		}
		if len(labels[k]) > maxLabelValue {
			v.add(f, "value longer than %d bytes", maxLabelValue)
		}
	}
}

// checkDuration reports a malformed, negative or too long duration; nil is
// fine (the default). It reports whether d is usable.
func checkDuration(v *validationErrors, field string, d *durationpb.Duration, max time.Duration) bool {
	if d == nil {
		return true
	}
	if err := d.CheckValid(); err != nil {
		v.add(field, "malformed duration")
		return false
	}
	switch got := d.AsDuration(); {
	case got < 0:
		v.add(field, "%s is negative", got)
		return false
	case got > max:
		v.add(field, "%s is longer than the maximum %s", got, max)
		return false
	}
	return true
}

// clip shortens user-supplied text quoted back in messages.
func clip(s string) string {
	const n = 80
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
