package node

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"

	"go.starlark.net/starlark"

	"github.com/kailash-gateway/kgw/internal/starval"
)

// Error codes of *Error. They are stable and reach clients.
const (
	CodeNodeError     = "NODE_ERROR"     // the code failed (fail(), a bad operation, ...)
	CodeStepLimit     = "STEP_LIMIT"     // the attempt ran out of Starlark steps
	CodeTimeout       = "TIMEOUT"        // the context's deadline passed
	CodeCancelled     = "CANCELLED"      // the context was cancelled
	CodeResultInvalid = "RESULT_INVALID" // result is not a JSON-compatible dict within the limits
	CodeResourceError = "RESOURCE_ERROR" // get_resource or a resource handle's method failed
	CodePanic         = "PANIC"          // a Go panic in a builtin or conversion
	CodeMemoryLimit   = "MEMORY_LIMIT"   // the attempt exceeded its memory budget (Limits.MaxMemory), or the heap watchdog stopped it
)

// Error is a failed attempt. Message names the node, the line:col and the
// cause, and is safe to show to clients; Err keeps the underlying chain
// (for a panic, it includes the Go stack, for server logs only).
type Error struct {
	NodeID    string
	Code      string // one of the Code constants
	Message   string
	Line, Col int    // position in the node code; 0 when unknown
	Traceback string // Starlark traceback; may be empty
	Err       error
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// panicError is a recovered Go panic.
type panicError struct {
	where string
	value any
	stack []byte
}

func (e *panicError) Error() string {
	return fmt.Sprintf("internal error in %s: %v", e.where, e.value)
}

// recovered turns a recovered panic value into an error.
func recovered(where string, v any) error {
	return &panicError{where: where, value: v, stack: debug.Stack()}
}

// resourceError marks get_resource failures.
type resourceError struct{ err error }

func (e *resourceError) Error() string { return e.err.Error() }
func (e *resourceError) Unwrap() error { return e.err }

// errCallDepth is the cancellation reason of runaway recursion.
const callDepthReason = "call depth limit exceeded (runaway recursion?)"

var undefinedRE = regexp.MustCompile(`(?:internal error: )?predeclared variable (\S+) is uninitialized`)

// deepestEval returns the innermost *starlark.EvalError of err's chain.
func deepestEval(err error) *starlark.EvalError {
	var found *starlark.EvalError
	for e := err; e != nil; {
		var ev *starlark.EvalError
		if !errors.As(e, &ev) {
			break
		}
		found = ev
		e = ev.Unwrap()
	}
	return found
}

// position returns the innermost position of the node's code in the stack.
func position(ev *starlark.EvalError) (line, col int) {
	for i := len(ev.CallStack) - 1; i >= 0; i-- {
		if p := ev.CallStack[i].Pos; p.Filename() == codeFilename {
			return int(p.Line), int(p.Col)
		}
	}
	return 0, 0
}

// errorPosition returns the innermost position in the node's code of the
// *starlark.EvalError values of err's chain: a builtin called directly by
// parallel.map in its own thread has none of its own, so the position is
// that of the parallel.map call.
func errorPosition(err error) (line, col int) {
	var chain []*starlark.EvalError
	for e := err; e != nil; {
		var ev *starlark.EvalError
		if !errors.As(e, &ev) {
			break
		}
		chain = append(chain, ev)
		e = ev.Unwrap()
	}
	for i := len(chain) - 1; i >= 0; i-- {
		if line, col = position(chain[i]); line > 0 {
			return line, col
		}
	}
	return 0, 0
}

// describe returns the user-facing cause of err, turning the interpreter's
// "predeclared variable x is uninitialized" into a Python-like NameError.
func (r *run) describe(err error) string {
	var msg string
	if ev := deepestEval(err); ev != nil {
		msg = ev.Msg
	} else {
		msg = err.Error()
	}
	if m := undefinedRE.FindStringSubmatch(msg); m != nil {
		return r.undefinedMessage(m[1])
	}
	// fail("x") reads "x", as a Python exception message would.
	return timeHint(strings.TrimPrefix(msg, "fail: "))
}

// timeMixRE matches the interpreter's errors for an operator between a
// time (or duration) and a string, in either order: "unknown binary op:
// time.time - string", "time.time < string not implemented".
var timeMixRE = regexp.MustCompile(`^(?:unknown binary op: )?(time\.time|time\.duration|string) \S+ (time\.time|time\.duration|string)(?: not implemented)?$`)

// timeHint adds to an error between a time and a string the conversion
// that makes it work: a string does not become a time by itself (Python
// code often compares ISO strings with datetimes it parsed elsewhere).
func timeHint(msg string) string {
	m := timeMixRE.FindStringSubmatch(msg)
	if m == nil || (m[1] == "string") == (m[2] == "string") {
		return msg
	}
	if m[1] == "time.duration" || m[2] == "time.duration" {
		return msg + `; turn the string into a duration first: time.parse_duration("1h30m")`
	}
	return msg + `; turn the string into a time first: time.parse_time("2024-01-01T00:00:00Z") (RFC 3339), or format the time with t.format(...)`
}

func (r *run) undefinedMessage(name string) string {
	var avail []string
	for k := range r.a.Parameters {
		avail = append(avail, k)
	}
	for k := range r.a.Inputs {
		if _, dup := r.a.Parameters[k]; !dup {
			avail = append(avail, k)
		}
	}
	slices.Sort(avail)
	list := "none"
	if len(avail) > 0 {
		list = strings.Join(avail, ", ")
	}
	return fmt.Sprintf("name '%s' is not defined: node '%s' received no '%s' from its parameters or inputs (available: %s)", name, r.a.NodeID, name, list)
}

// classify turns the error of a run into an *Error.
func (r *run) classify(ctx context.Context, err error) *Error {
	e := &Error{NodeID: r.a.NodeID, Err: err}
	var cause string
	var pe *panicError
	var re *resourceError
	var ce *starval.Error
	switch {
	case errors.As(err, &pe):
		e.Code, cause = CodePanic, pe.Error()
		e.Err = fmt.Errorf("%w\n%s", err, pe.stack)
	case r.mem.exceeded.Load() != nil:
		e.Code, cause = CodeMemoryLimit, budgetMessage(r.mem.exceeded.Load())
		e.Err = fmt.Errorf("%w (%w)", err, errMemoryBudget)
	case r.memTrip.Load() != nil:
		e.Code, cause = CodeMemoryLimit, memoryMessage(r.memTrip.Load())
		e.Err = fmt.Errorf("%w (%w)", err, errMemoryLimit)
	case r.budget.exhausted.Load():
		e.Code = CodeStepLimit
		cause = fmt.Sprintf("too many steps: the node exceeded its limit of %d Starlark steps (an endless loop?)", r.lim.MaxSteps)
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		e.Code, cause = CodeTimeout, "timed out: "+context.Cause(ctx).Error()
		e.Err = fmt.Errorf("%w (%w)", err, ctx.Err())
	case ctx.Err() != nil:
		e.Code, cause = CodeCancelled, "cancelled: "+context.Cause(ctx).Error()
		e.Err = fmt.Errorf("%w (%w)", err, ctx.Err())
	case errors.As(err, &re) || starval.IsResourceError(err):
		e.Code, cause = CodeResourceError, r.describe(err)
	case errors.As(err, &ce):
		e.Code, cause = CodeResultInvalid, ce.Error()
	default:
		e.Code, cause = CodeNodeError, r.describe(err)
		if r.callDepthExceeded.Load() {
			cause = fmt.Sprintf("%s: more than %d nested calls", callDepthReason, r.lim.MaxCallDepth)
		}
	}
	var outer *starlark.EvalError
	if errors.As(err, &outer) {
		e.Traceback = undefinedRE.ReplaceAllStringFunc(compactTraceback(backtrace(outer)), func(m string) string {
			return r.undefinedMessage(undefinedRE.FindStringSubmatch(m)[1])
		})
	}
	e.Line, e.Col = errorPosition(err)
	if e.Line > 0 {
		e.Message = fmt.Sprintf("node '%s' failed at %d:%d: %s", r.a.NodeID, e.Line, e.Col, cause)
	} else {
		e.Message = fmt.Sprintf("node '%s' failed: %s", r.a.NodeID, cause)
	}
	return e
}

// hiddenErrorRE matches the last line of a traceback whose error a
// hidden builtin (see rewrite.go) reported for the interpreter.
var hiddenErrorRE = regexp.MustCompile(`(?m)^Error in \$[a-z]+: `)

// backtrace is ev.Backtrace() as the code was written: an error of an
// operator that rewrite routed through a hidden builtin reads "Error:
// ...", as the interpreter's own.
func backtrace(ev *starlark.EvalError) string {
	return hiddenErrorRE.ReplaceAllString(ev.Backtrace(), "Error: ")
}

// maxTracebackLines bounds a traceback after repeats are collapsed.
const maxTracebackLines = 200

// compactTraceback collapses runs of identical lines (runaway recursion)
// as Python does, and bounds the number of lines.
func compactTraceback(tb string) string {
	lines := strings.Split(tb, "\n")
	var out []string
	for i := 0; i < len(lines); {
		j := i + 1
		for j < len(lines) && lines[j] == lines[i] {
			j++
		}
		out = append(out, lines[i])
		switch n := j - i - 1; {
		case n > 2:
			out = append(out, lines[i], lines[i], fmt.Sprintf("  [previous line repeated %d more times]", n-2))
		case n > 0:
			out = append(out, lines[i:j-1]...)
		}
		i = j
	}
	if len(out) > maxTracebackLines {
		omitted := len(out) - maxTracebackLines
		out = append(append(out[:maxTracebackLines/2:maxTracebackLines/2], fmt.Sprintf("  [%d lines omitted]", omitted)), out[len(out)-maxTracebackLines/2:]...)
	}
	return strings.Join(out, "\n")
}
