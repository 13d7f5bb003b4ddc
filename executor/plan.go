package executor

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/kailash-gateway/kgw/executor/node"
	"github.com/kailash-gateway/kgw/store"
)

// A plan is a workflow version prepared for running: nodes indexed in
// workflow order, their compiled programs and their edges. It owns copies
// of the definitions it was built from, so that it can be cached and
// shared by concurrent runs; it is never modified after plan returns it.
type plan struct {
	nodes []planNode
	conns []store.Connection // as planned (see matches)
	roots []int              // nodes without upstreams, in workflow order; cap == len
	topo  []int              // every node, upstreams before downstreams
	order []int              // 0, 1, …, len(nodes)-1 (see self)
}

type planNode struct {
	def     store.Node // a copy; RequiredResources is the plan's own
	prog    *node.Program
	in      []edge // incoming connections, in workflow order
	out     []int  // distinct downstream nodes
	indeg   int    // distinct upstream nodes
	passAll bool   // has at least one pass-all connection
	timeout time.Duration
	retry   store.RetryPolicy // defaults applied
}

// edge is one incoming connection of a node.
type edge struct {
	from   int
	output string // "" = pass all
	input  string // variable it binds (output when the connection names none)
}

// plan returns the plan of w: the cached plan of w's name and version when
// it was built from the same definition, else a new one (see buildPlan).
// Versions are immutable in the store, so the cache normally always hits;
// the comparison keeps callers that reuse a name and version for another
// definition (tests, embedders without a store) correct.
func (e *Executor) plan(w *store.Workflow) (*plan, error) {
	k := planKey{w.Name, w.Version}
	e.plans.mu.Lock()
	p := e.plans.m[k]
	e.plans.mu.Unlock()
	if p != nil && p.matches(w) {
		return p, nil
	}
	p, err := e.buildPlan(w)
	if err != nil {
		return nil, err
	}
	e.plans.mu.Lock()
	if len(e.plans.m) >= maxPlans {
		clear(e.plans.m)
	}
	e.plans.m[k] = p
	e.plans.mu.Unlock()
	return p, nil
}

// planCache keeps the plans of workflow versions. It is bounded; when full
// it starts over, which only costs planning again.
type planCache struct {
	mu sync.Mutex
	m  map[planKey]*plan
}

type planKey struct {
	name    string
	version int32
}

const maxPlans = 1024

// matches reports whether p was built from a definition equal to w's in
// everything a plan and a run use: node ids, code, resources, timeouts,
// retry policies and connections.
func (p *plan) matches(w *store.Workflow) bool {
	if len(w.Nodes) != len(p.nodes) || !slices.Equal(w.Connections, p.conns) {
		return false
	}
	for i := range w.Nodes {
		a, b := &w.Nodes[i], &p.nodes[i].def
		if a.ID != b.ID || a.Code != b.Code || a.Timeout != b.Timeout || a.Retry != b.Retry ||
			!slices.Equal(a.RequiredResources, b.RequiredResources) {
			return false
		}
	}
	return true
}

// buildPlan prepares w. It checks what the executor relies on (known node
// ids, no cycles, code that compiles) and fails with ErrInvalidWorkflow.
func (e *Executor) buildPlan(w *store.Workflow) (*plan, error) {
	p := &plan{
		nodes: make([]planNode, len(w.Nodes)),
		conns: slices.Clone(w.Connections),
		order: make([]int, len(w.Nodes)),
	}
	index := make(map[string]int, len(w.Nodes))
	for i := range w.Nodes {
		n := &w.Nodes[i]
		if _, dup := index[n.ID]; dup {
			return nil, fmt.Errorf("%w: duplicate node id %q", ErrInvalidWorkflow, n.ID)
		}
		index[n.ID] = i
		p.order[i] = i
		prog, err := e.progs.compile(n.ID, n.Code)
		if _, named := errors.AsType[*node.CompileError](err); named {
			return nil, fmt.Errorf("%w: %w", ErrInvalidWorkflow, err) // it names the node
		} else if err != nil {
			return nil, fmt.Errorf("%w: node %q: %w", ErrInvalidWorkflow, n.ID, err)
		}
		pn := &p.nodes[i]
		pn.def, pn.prog = *n, prog
		pn.def.RequiredResources = slices.Clip(slices.Clone(n.RequiredResources))
		pn.timeout = n.Timeout
		if pn.timeout <= 0 {
			pn.timeout = DefaultNodeTimeout
		}
		pn.retry = withRetryDefaults(n.Retry)
	}
	for _, c := range w.Connections {
		from, ok := index[c.FromNode]
		if !ok {
			return nil, fmt.Errorf("%w: connection from unknown node %q", ErrInvalidWorkflow, c.FromNode)
		}
		to, ok := index[c.ToNode]
		if !ok {
			return nil, fmt.Errorf("%w: connection to unknown node %q", ErrInvalidWorkflow, c.ToNode)
		}
		if from == to {
			return nil, fmt.Errorf("%w: node %q is connected to itself", ErrInvalidWorkflow, c.FromNode)
		}
		in := c.ToInput
		if in == "" {
			in = c.FromOutput
		}
		dst := &p.nodes[to]
		dst.in = append(dst.in, edge{from: from, output: c.FromOutput, input: in})
		if c.FromOutput == "" {
			dst.passAll = true
		}
		src := &p.nodes[from]
		if !containsInt(src.out, to) {
			src.out = append(src.out, to)
			dst.indeg++
		}
	}
	// Kahn's algorithm: every node must be reachable in topological order.
	indeg := make([]int, len(p.nodes))
	queue := make([]int, 0, len(p.nodes))
	for i := range p.nodes {
		indeg[i] = p.nodes[i].indeg
		if indeg[i] == 0 {
			queue = append(queue, i)
		}
	}
	p.roots = slices.Clip(slices.Clone(queue)) // runs append to their copy
	for k := 0; k < len(queue); k++ {
		for _, d := range p.nodes[queue[k]].out {
			if indeg[d]--; indeg[d] == 0 {
				queue = append(queue, d)
			}
		}
	}
	if len(queue) != len(p.nodes) {
		return nil, fmt.Errorf("%w: the connections form a cycle", ErrInvalidWorkflow)
	}
	p.topo = queue
	return p, nil
}

func withRetryDefaults(r store.RetryPolicy) store.RetryPolicy {
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = 1
	}
	if r.InitialBackoff <= 0 {
		r.InitialBackoff = defaultInitialBackoff
	}
	if r.MaxBackoff <= 0 {
		r.MaxBackoff = defaultMaxBackoff
	}
	if r.Multiplier <= 0 {
		r.Multiplier = defaultMultiplier
	}
	return r
}

// backoff returns the wait after failed attempt number attempt (1-based):
// initial × multiplier^(attempt-1), at most the maximum.
func backoff(r store.RetryPolicy, attempt int32) time.Duration {
	d := float64(r.InitialBackoff)
	for i := int32(1); i < attempt; i++ {
		d *= r.Multiplier
		if d >= float64(r.MaxBackoff) {
			return r.MaxBackoff
		}
	}
	return min(time.Duration(d), r.MaxBackoff)
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// programCache keeps compiled programs by (node id, code): the runtime binds
// the node id into its error messages. It is bounded; when full it starts
// over, which only costs recompilation.
type programCache struct {
	mu sync.Mutex
	m  map[progKey]*node.Program
}

type progKey struct{ nodeID, code string }

const maxPrograms = 4096

func (c *programCache) compile(nodeID, code string) (*node.Program, error) {
	k := progKey{nodeID, code}
	c.mu.Lock()
	p := c.m[k]
	c.mu.Unlock()
	if p != nil {
		return p, nil
	}
	p, err := node.Compile(nodeID, code)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.m) >= maxPrograms {
		clear(c.m)
	}
	c.m[k] = p
	c.mu.Unlock()
	return p, nil
}

// index returns the index of the node with id.
func (p *plan) index(id string) (int, bool) {
	for i := range p.nodes {
		if p.nodes[i].def.ID == id {
			return i, true
		}
	}
	return 0, false
}

// self returns the one-element slice {i}, without allocating.
func (p *plan) self(i int) []int { return p.order[i : i+1] }
