// Package node is the Starlark runtime of workflow nodes (DESIGN.md §5).
//
// Compile turns the code of a node into a *Program (cached by code, so
// identical code compiles once) or a *CompileError that lists every
// problem, with hints for Python habits that Starlark lacks. (*Program).Run
// runs one attempt in its own starlark.Thread with the node's parameters,
// inputs, context and the predeclared builtins, and returns the node's
// top-level `result` dict as JSON-compatible Go values. Failures are
// *Error values with a stable Code, the node id, line:col and a Starlark
// traceback. A name the code reads but nobody provided fails only when
// the reading line runs, as in Python.
//
// Limits (steps, call depth, memory, result size, nesting depth, log
// lines) come from Attempt.Limits; the node timeout and cancellation come
// from the context given to Run. Starlark does not account for memory, so
// Compile rewrites the syntax tree before compiling it (rewrite.go): the
// operators, slices and methods that can build large values go through
// builtins that charge the estimated size of the result to the attempt's
// memory budget (Limits.MaxMemory) before building it, and an attempt past
// its budget fails with code MEMORY_LIMIT. A Watchdog (NewWatchdog, passed
// as Attempt.Watchdog) is the backstop: when the Go heap passes its limit
// it stops the running attempt that has charged the most. Errors of
// resource handles that wrap a *starval.ResourceError are reported with
// code RESOURCE_ERROR. docs/node-api.md describes what node code sees.
package node
