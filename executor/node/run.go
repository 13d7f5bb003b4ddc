package node

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/kailash-gateway/kgw/internal/starval"
	"github.com/kailash-gateway/kgw/store"
)

// codeFilename is the file name of node code in positions and tracebacks.
const codeFilename = "node.star"

const runKey = "kgw.run"

// run is the state of one attempt, shared by its threads (parallel.map
// runs several). Everything in it is safe for concurrent use.
type run struct {
	prog   *Program
	a      *Attempt
	lim    Limits
	budget budget

	callDepthExceeded atomic.Bool

	// memTrip is set when the memory watchdog stops the attempt; it then
	// cancels the main thread and the running parallel.map calls.
	memTrip  atomic.Pointer[memTrip]
	stopMu   sync.Mutex
	main     *starlark.Thread
	stoppers map[*context.CancelCauseFunc]struct{} // of running parallel.map calls

	logMu    sync.Mutex
	logLines int

	resMu     sync.Mutex
	resources map[string]starlark.Value
}

// runOf returns the attempt state of th.
func runOf(th *starlark.Thread) *run {
	r, _ := th.Local(runKey).(*run)
	return r
}

// Run runs one attempt of the program and returns the node's result: the
// top-level dict `result` converted to JSON-compatible Go values ({} when
// unset). Run is safe for concurrent use. It honours ctx: cancellation and
// the deadline stop the code within a Starlark step or an interruptible
// builtin. While it runs, the memory watchdog (see MemoryConfig) may stop
// it with code MEMORY_LIMIT. Every failure, including a Go panic inside a builtin, is an
// *Error with one of the Code constants; Run never panics.
func (p *Program) Run(ctx context.Context, a *Attempt) (result map[string]any, err error) {
	r := &run{prog: p, a: a, lim: a.Limits.withDefaults()}
	r.budget.left.Store(int64(min(r.lim.MaxSteps, 1<<62)))
	th := r.newThread(ctx, a.NodeID)
	r.main = th
	stop := context.AfterFunc(ctx, func() { th.Cancel(context.Cause(ctx).Error()) })
	defer stop()
	watch.register(r)
	defer watch.unregister(r)
	defer func() {
		if v := recover(); v != nil {
			result, err = nil, r.classify(ctx, recovered("node runtime", v))
		}
	}()

	env, err := r.bind(p.names)
	if err != nil {
		return nil, r.classify(ctx, err)
	}
	globals, err := p.prog.Init(th, env)
	if err != nil {
		return nil, r.classify(ctx, err)
	}
	return r.result(ctx, globals["result"])
}

// result converts the node's result value.
func (r *run) result(ctx context.Context, v starlark.Value) (map[string]any, error) {
	if v == nil {
		return map[string]any{}, nil
	}
	if _, ok := v.(*starlark.Dict); !ok {
		return nil, &Error{
			NodeID:  r.a.NodeID,
			Code:    CodeResultInvalid,
			Message: fmt.Sprintf("node '%s': result must be a dict, got %s; write result = {\"key\": value}", r.a.NodeID, v.Type()),
			Err:     fmt.Errorf("result is a %s", v.Type()),
		}
	}
	out, err := starval.FromStarlarkOptions(v, starval.Options{
		MaxDepth: r.lim.MaxDepth,
		MaxBytes: r.lim.MaxResultBytes,
		Root:     "result",
	})
	if err != nil {
		return nil, r.classify(ctx, err)
	}
	return out.(map[string]any), nil
}

// newThread returns a thread of the attempt bound to ctx, drawing on the
// attempt's step budget. The caller bridges cancellation.
func (r *run) newThread(ctx context.Context, name string) *starlark.Thread {
	th := &starlark.Thread{
		Name:  name,
		Print: func(_ *starlark.Thread, msg string) { r.log(store.LogInfo, msg, nil) },
	}
	th.SetLocal(runKey, r)
	starval.SetContext(th, ctx)
	r.budget.attach(th, r)
	return th
}

// log forwards one line to Attempt.Log, up to MaxLogLines lines.
func (r *run) log(level store.LogLevel, msg string, fields map[string]any) {
	r.logMu.Lock()
	defer r.logMu.Unlock()
	if r.logLines > r.lim.MaxLogLines {
		return
	}
	r.logLines++
	if r.a.Log == nil {
		return
	}
	if r.logLines > r.lim.MaxLogLines {
		r.a.Log(store.LogWarning, fmt.Sprintf("log limit reached: node '%s' logged more than %d lines; further lines are dropped", r.a.NodeID, r.lim.MaxLogLines), nil)
		return
	}
	r.a.Log(level, msg, fields)
}

// stepChunk is how many steps a thread draws from the shared budget at a
// time; between draws the runtime also checks the call depth.
const stepChunk = 4096

// budget is the step budget of an attempt, shared by all its threads.
type budget struct {
	left      atomic.Int64
	exhausted atomic.Bool
}

func (b *budget) take() uint64 {
	for {
		n := b.left.Load()
		if n <= 0 {
			return 0
		}
		g := min(n, stepChunk)
		if b.left.CompareAndSwap(n, n-g) {
			return uint64(g)
		}
	}
}

// charge counts n steps of work done outside the interpreter (see
// charged) on th, which must be the calling thread: from what th drew and
// has not used, then from the shared budget. It reports false, cancels th
// and marks the budget exhausted if there were not enough.
func (b *budget) charge(th *starlark.Thread, n int64) bool {
	limit, ok := th.Local(limitKey).(*uint64)
	if !ok {
		return true
	}
	var own int64
	if *limit > th.Steps {
		own = int64(min(*limit-th.Steps, math.MaxInt64))
	}
	if need := n - own; need > 0 {
		for {
			left := b.left.Load()
			if left < need {
				b.exhausted.Store(true)
				th.Cancel("too many steps")
				return false
			}
			if b.left.CompareAndSwap(left, left-need) {
				break
			}
		}
		*limit += uint64(need)
		th.SetMaxExecutionSteps(*limit)
	}
	th.Steps += uint64(n)
	return true
}

const limitKey = "kgw.steplimit"

// attach makes th draw its steps from b and enforces the call depth limit.
func (b *budget) attach(th *starlark.Thread, r *run) {
	limit := new(uint64)
	*limit = b.take()
	if *limit == 0 {
		b.exhausted.Store(true)
		th.Cancel("too many steps")
		*limit = 1 // 0 would mean unlimited
	}
	th.SetLocal(limitKey, limit)
	th.SetMaxExecutionSteps(*limit)
	th.OnMaxSteps = func(th *starlark.Thread) {
		if th.CallStackDepth() > r.lim.MaxCallDepth {
			r.callDepthExceeded.Store(true)
			th.Cancel(callDepthReason)
		}
		g := b.take()
		if g == 0 {
			b.exhausted.Store(true)
			th.Cancel("too many steps")
			return
		}
		*limit += g
		th.SetMaxExecutionSteps(*limit)
	}
}

// giveBack returns the steps th drew but did not use. th must have
// stopped running.
func (b *budget) giveBack(th *starlark.Thread) {
	if limit, ok := th.Local(limitKey).(*uint64); ok && *limit > th.ExecutionSteps() {
		b.left.Add(int64(*limit - th.ExecutionSteps()))
	}
}

// bind builds the predeclared environment of an attempt: only the names
// the code reads, each looked up in order in the reserved names
// (parameters, inputs, context, execution), the inputs, the parameters,
// the builtins and the Starlark universe. A name found nowhere stays
// unbound, so the code fails only when it reads it.
func (r *run) bind(names []string) (starlark.StringDict, error) {
	env := make(starlark.StringDict, len(names))
	for _, name := range names {
		v, err := r.lookup(name)
		if err != nil {
			return nil, err
		}
		if v != nil {
			env[name] = v
		}
	}
	return env, nil
}

func (r *run) lookup(name string) (starlark.Value, error) {
	a := r.a
	switch name {
	case "parameters":
		return frozenValue("parameters", a.Parameters)
	case "inputs":
		return frozenValue("inputs", a.Inputs)
	case "context":
		return frozenValue("context", a.Context)
	case "execution":
		s := starlarkstruct.FromStringDict(starlarkstruct.Default, starlark.StringDict{
			"id":       starlark.String(a.Execution.ID),
			"workflow": starlark.String(a.Execution.Workflow),
			"version":  starlark.MakeInt64(int64(a.Execution.Version)),
			"node":     starlark.String(a.NodeID),
			"attempt":  starlark.MakeInt64(int64(a.Execution.Attempt)),
		})
		s.Freeze()
		return s, nil
	case "workflow_cache":
		c := a.Cache
		if c == nil {
			c = NewWorkflowCache(1000)
		}
		return &cacheValue{c: c}, nil
	}
	if v, ok := a.Inputs[name]; ok {
		return frozenValue("input '"+name+"'", v)
	}
	if v, ok := a.Parameters[name]; ok {
		return frozenValue("parameter '"+name+"'", v)
	}
	if v, ok := builtins[name]; ok {
		return v, nil
	}
	if v, ok := starlark.Universe[name]; ok {
		return v, nil
	}
	return nil, nil
}

// frozenValue converts a Go value for the code and freezes it. A nil map
// becomes an empty dict.
func frozenValue(what string, v any) (starlark.Value, error) {
	if m, ok := v.(map[string]any); ok && m == nil {
		v = map[string]any{}
	}
	sv, err := starval.ToStarlark(v)
	if err != nil {
		return nil, fmt.Errorf("convert %s: %w", what, err)
	}
	sv.Freeze()
	return sv, nil
}
