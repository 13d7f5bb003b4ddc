package node

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/kailash-gateway/kgw/internal/starval"
)

// codeFilename is the file name of node code in positions and tracebacks.
const codeFilename = "node.star"

const runKey = "kgw.run"

// run is the state of one attempt, shared by its threads (parallel.map
// runs several). Everything in it is safe for concurrent use, except
// mainThread, which belongs to the main thread.
type run struct {
	prog   *Program
	a      *Attempt
	lim    Limits
	budget budget
	mem    meter

	mainThread threadState

	callDepthExceeded atomic.Bool

	// memTrip is set when the memory watchdog stops the attempt; it then
	// cancels the main thread and the running parallel.map calls.
	memTrip  atomic.Pointer[memTrip]
	stopMu   sync.Mutex
	main     *starlark.Thread
	stoppers map[*context.CancelCauseFunc]struct{} // of running parallel.map calls

	logMu    sync.Mutex
	logLines int
	logBytes int
	logShut  bool // a limit was reached: further lines are dropped

	resMu     sync.Mutex
	resources []openResource // opened by get_resource; starts in resBuf
	resBuf    [2]openResource
}

// threadState is the thread-local state of one thread of an attempt.
type threadState struct {
	r     *run
	ctx   context.Context
	limit uint64 // step count at which th draws steps again (SetMaxExecutionSteps)
}

// stateOf returns the state of th, or nil for a thread the runtime did not
// create.
func stateOf(th *starlark.Thread) *threadState {
	ts, _ := th.Local(runKey).(*threadState)
	return ts
}

// openResource is a handle get_resource opened in an attempt.
type openResource struct {
	name string
	v    starlark.Value
}

// runOf returns the attempt state of th.
func runOf(th *starlark.Thread) *run {
	if ts := stateOf(th); ts != nil {
		return ts.r
	}
	return nil
}

// Run runs one attempt of the program and returns the node's result: the
// top-level dict `result` converted to JSON-compatible Go values ({} when
// unset). Run is safe for concurrent use. It honours ctx: cancellation and
// the deadline stop the code within a Starlark step or an interruptible
// builtin. It fails with code MEMORY_LIMIT when its code would build more
// than its memory budget (Limits.MaxMemory), or when a.Watchdog stops it. Every failure, including a Go panic inside a builtin, is an
// *Error with one of the Code constants; Run never panics.
func (p *Program) Run(ctx context.Context, a *Attempt) (result map[string]any, err error) {
	r := &run{prog: p, a: a, lim: a.Limits.withDefaults()}
	r.budget.left.Store(int64(min(r.lim.MaxSteps, 1<<62)))
	r.mem.limit = r.lim.MaxMemory
	th := r.newThread(ctx, a.NodeID, &r.mainThread, reusedThread())
	r.main = th
	defer r.recycleMain() // first deferred: runs after everything else
	// The thread sees the end of ctx when it draws steps (onMaxSteps),
	// every stepChunk steps, and builtins that wait watch ctx themselves;
	// this saves registering a callback with ctx per attempt.
	if ctx.Err() != nil {
		th.Cancel(context.Cause(ctx).Error())
	}
	a.Watchdog.register(r)
	defer a.Watchdog.unregister(r)
	defer func() {
		if v := recover(); v != nil {
			result, err = nil, r.classify(ctx, recovered("node runtime", v))
		}
	}()

	env, err := r.bind(p)
	if err != nil {
		return nil, r.classify(ctx, err)
	}
	globals, err := p.prog.Init(th, env)
	if err == nil && ctx.Err() != nil {
		// ctx ended while a builtin ran (or after the last step drew):
		// the attempt fails as if the thread had been cancelled.
		err = fmt.Errorf("computation cancelled: %w", context.Cause(ctx))
	}
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
// attempt's step budget, with ts (nil: a new one) as its state. th, if not
// nil, is a thread from reusedThread to set up instead of a new one. The
// thread is cancelled when it next draws steps after ctx ended; callers
// that need a prompter stop cancel it themselves.
func (r *run) newThread(ctx context.Context, name string, ts *threadState, th *starlark.Thread) *starlark.Thread {
	if ts == nil {
		ts = new(threadState)
	}
	ts.r, ts.ctx = r, ctx
	if th == nil {
		th = new(starlark.Thread)
	}
	th.Name, th.Print = name, printLine
	th.SetLocal(runKey, ts)
	starval.SetContext(th, ctx)
	r.budget.attach(th, ts)
	return th
}

// mainThreads holds the main threads of ended attempts for reuse: a
// thread keeps its map of thread-locals and its free call frames, which
// each attempt would otherwise allocate again.
var mainThreads sync.Pool

// reusedThread returns a thread of an ended attempt, reset, or nil.
func reusedThread() *starlark.Thread {
	th, _ := mainThreads.Get().(*starlark.Thread)
	return th
}

// recycleMain takes the main thread from the ended attempt and keeps it
// for another one. The thread must have stopped running. After this the
// memory watchdog can no longer cancel it (see stopForMemory).
func (r *run) recycleMain() {
	r.stopMu.Lock()
	th := r.main
	r.main = nil
	r.stopMu.Unlock()
	if th == nil || th.CallStackDepth() != 0 {
		return // unwound abnormally: let it go
	}
	// Drop every reference to the attempt and reset what the next one
	// does not set itself (newThread and budget.attach set the rest).
	th.SetLocal(runKey, nil)
	starval.SetContext(th, nil)
	th.Name, th.Print, th.Load, th.OnMaxSteps = "", nil, nil, nil
	th.Steps = 0
	th.Uncancel()
	mainThreads.Put(th)
}

// printLine implements print: a log line at level INFO.
func printLine(th *starlark.Thread, msg string) {
	if r := runOf(th); r != nil {
		r.log(LogInfo, msg, nil)
	}
}

// log forwards one line to Attempt.Log, up to MaxLogLines lines and
// MaxLogBytes bytes per attempt; a line longer than MaxLogLineBytes is
// truncated first (see clipLine).
func (r *run) log(level LogLevel, msg string, fields map[string]any) {
	msg, fields = clipLine(msg, fields, r.lim.MaxLogLineBytes)
	size := len(msg) + ValueSize(fields)
	r.logMu.Lock()
	defer r.logMu.Unlock()
	if r.logShut {
		return
	}
	var warning string
	switch {
	case r.logLines >= r.lim.MaxLogLines:
		warning = fmt.Sprintf("log limit reached: node '%s' logged more than %d lines; further lines are dropped", r.a.NodeID, r.lim.MaxLogLines)
	case r.logBytes+size > r.lim.MaxLogBytes:
		warning = fmt.Sprintf("log limit reached: node '%s' logged more than %d bytes in this attempt; further lines are dropped", r.a.NodeID, r.lim.MaxLogBytes)
	}
	if warning != "" {
		r.logShut = true
		if r.a.Log != nil {
			r.a.Log(LogWarning, warning, nil)
		}
		return
	}
	r.logLines++
	r.logBytes += size
	if r.a.Log != nil {
		r.a.Log(level, msg, fields)
	}
}

// clipLine bounds a log line to about limit bytes. Fields that take more
// than half of it are replaced by one field saying how large they were;
// the message is cut (at a UTF-8 boundary) to what is left, and ends with
// a note giving its original length.
func clipLine(msg string, fields map[string]any, limit int) (string, map[string]any) {
	fsize := ValueSize(fields)
	if fsize > limit/2 {
		fields = map[string]any{"fields_truncated": fmt.Sprintf(
			"%d bytes of fields dropped: a log line may hold at most %d bytes", fsize, limit)}
		fsize = ValueSize(fields)
	}
	if room := limit - fsize; len(msg) > room {
		note := fmt.Sprintf(" … [log line truncated: %d bytes, at most %d per line]", len(msg), limit)
		cut := max(room-len(note), 0)
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + note
	}
	return msg, fields
}

// ValueSize returns about how many bytes the JSON encoding of v takes,
// for the JSON-like values of node results and log fields (nil, bool,
// numbers, string, []byte, []any, map[string]any). Strings count without
// escapes; values of other types count as 16 bytes. It allocates
// nothing.
func ValueSize(v any) int {
	switch x := v.(type) {
	case nil:
		return 4
	case string:
		return len(x) + 2
	case []byte:
		return len(x)*4/3 + 4
	case map[string]any:
		n := 2
		for k, e := range x {
			n += len(k) + 4 + ValueSize(e)
		}
		return n
	case []any:
		n := 2
		for _, e := range x {
			n += ValueSize(e) + 1
		}
		return n
	default:
		return 16
	}
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
	ts := stateOf(th)
	if ts == nil {
		return true
	}
	limit := &ts.limit
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

// attach makes th, whose state is ts, draw its steps from b; see
// onMaxSteps.
func (b *budget) attach(th *starlark.Thread, ts *threadState) {
	ts.limit = b.take()
	if ts.limit == 0 {
		b.exhausted.Store(true)
		th.Cancel("too many steps")
		ts.limit = 1 // 0 would mean unlimited
	}
	th.SetMaxExecutionSteps(ts.limit)
	th.OnMaxSteps = onMaxSteps
	ts.r.chargeSteps(th, ts.limit)
}

// onMaxSteps runs every time a thread has used the steps it drew: it
// cancels the thread if its context ended or its calls nest too deeply,
// and draws more steps from the attempt's budget.
func onMaxSteps(th *starlark.Thread) {
	ts := stateOf(th)
	r := ts.r
	if err := ts.ctx.Err(); err != nil {
		th.Cancel(context.Cause(ts.ctx).Error())
		return
	}
	if th.CallStackDepth() > r.lim.MaxCallDepth {
		r.callDepthExceeded.Store(true)
		th.Cancel(callDepthReason)
	}
	g := r.budget.take()
	if g == 0 {
		r.budget.exhausted.Store(true)
		th.Cancel("too many steps")
		return
	}
	ts.limit += g
	th.SetMaxExecutionSteps(ts.limit)
	r.chargeSteps(th, g)
}

// giveBack returns the steps th drew but did not use. th must have
// stopped running.
func (b *budget) giveBack(th *starlark.Thread) {
	if ts := stateOf(th); ts != nil && ts.limit > th.ExecutionSteps() {
		b.left.Add(int64(ts.limit - th.ExecutionSteps()))
	}
}

// bind builds the predeclared environment of an attempt: only the names
// the code reads, each looked up in order in the reserved names
// (parameters, inputs, context, execution), the inputs, the parameters,
// the builtins and the Starlark universe. A name found nowhere stays
// unbound, so the code fails only when it reads it. When the code reads
// no reserved name and the inputs and parameters shadow none of the names
// it reads, the environment is the program's shared static one.
func (r *run) bind(p *Program) (starlark.StringDict, error) {
	if !p.dynamic && !r.shadows(p.names) {
		return p.static, nil
	}
	env := make(starlark.StringDict, len(p.names))
	for _, name := range p.names {
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
		return &cacheValue{c: c, redact: a.Redact}, nil
	}
	if v, ok := a.Inputs[name]; ok {
		return frozenValue("input '"+name+"'", v)
	}
	if v, ok := a.Parameters[name]; ok {
		return frozenValue("parameter '"+name+"'", v)
	}
	return builtinValue(name), nil
}

// reservedNames are the names whose value each attempt builds (see lookup).
var reservedNames = []string{"parameters", "inputs", "context", "execution", "workflow_cache"}

// shadows reports whether an input or a parameter has one of names.
func (r *run) shadows(names []string) bool {
	if len(r.a.Inputs) == 0 && len(r.a.Parameters) == 0 {
		return false
	}
	for _, name := range names {
		if _, ok := r.a.Inputs[name]; ok {
			return true
		}
		if _, ok := r.a.Parameters[name]; ok {
			return true
		}
	}
	return false
}

// builtinValue returns the builtin or Starlark universal named name, or nil.
func builtinValue(name string) starlark.Value {
	if v, ok := builtins[name]; ok {
		return v
	}
	if v, ok := starlark.Universe[name]; ok {
		return v
	}
	return nil
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
