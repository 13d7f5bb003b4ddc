package executor

import (
	"errors"
	"fmt"
)

// Errors that callers branch on.
var (
	// ErrClosed reports that the Executor is closed (or closing) and accepts
	// no more work. Runs interrupted by Close end with it too.
	ErrClosed = errors.New("executor closed")
	// ErrCallerLimit reports that the caller already has
	// Config.MaxRunsPerCaller executions running on this process.
	ErrCallerLimit = errors.New("too many running executions for this caller")
	// ErrInvalidWorkflow reports a workflow definition the executor cannot
	// run (unknown node in a connection, a cycle, code that does not compile).
	// Registration validates workflows, so this indicates a bypassed check.
	ErrInvalidWorkflow = errors.New("invalid workflow")
	// ErrLagging reports a subscriber that fell behind its buffer. The error
	// message names the seq to resume from (Subscribe's afterSeq).
	ErrLagging = errors.New("subscriber fell behind")
	// ErrNotLocal reports an unfinished execution that this process does not
	// run (another replica owns it, or it awaits recovery).
	ErrNotLocal = errors.New("execution is not running in this process")
	// ErrFenced ends a run that this process lost: another process claimed
	// the execution (the store refused a journal write carrying this
	// process's epoch, store.ErrFenced), or this process could not renew
	// its lease in time (Config.StaleAfter) and stopped its runs itself.
	// A fenced run reports no result: the process that holds the
	// execution now finishes it.
	ErrFenced = errors.New("execution taken over by another gateway process")
	// ErrIdempotencyMismatch reports a request whose idempotency key
	// names an execution that a different request started (see
	// Request.Fingerprint). The error is an *IdempotencyMismatchError.
	ErrIdempotencyMismatch = errors.New("idempotency key reused with a different request")
)

// IdempotencyMismatchError is the error of a request whose IdempotencyKey
// is already used by an execution that a different request (by
// Request.Fingerprint) started. It satisfies
// errors.Is(err, ErrIdempotencyMismatch).
type IdempotencyMismatchError struct {
	Key         string // the idempotency key, as the caller sent it
	ExecutionID string // the execution that has the key
}

// Error names the key and the execution.
func (e *IdempotencyMismatchError) Error() string {
	return fmt.Sprintf("%v: key %q belongs to execution %s", ErrIdempotencyMismatch, e.Key, e.ExecutionID)
}

// Unwrap returns ErrIdempotencyMismatch.
func (e *IdempotencyMismatchError) Unwrap() error { return ErrIdempotencyMismatch }

// Error codes that the executor puts in store.ExecError.Code. The codes of
// the node runtime (NODE_ERROR, STEP_LIMIT, RESULT_INVALID, RESOURCE_ERROR,
// PANIC, …) pass through unchanged.
const (
	// CodeMissingOutput: a named connection asked for a key the upstream
	// result does not have.
	CodeMissingOutput = "MISSING_OUTPUT"
	// CodeTimeout: a node attempt or the whole execution ran out of time.
	CodeTimeout = "TIMEOUT"
	// CodeCancelled: the execution was cancelled, or a node was cancelled
	// because another node failed.
	CodeCancelled = "CANCELLED"
	// CodePanic: the runtime or a resource panicked during an attempt, or
	// the executor while running the node (containNodePanic).
	CodePanic = "PANIC"
	// CodeNodeError: any other failure of a node.
	CodeNodeError = "NODE_ERROR"
	// CodeResultTooLarge: the node's result would make the execution's
	// results larger than Config.MaxResultBytes together.
	CodeResultTooLarge = "RESULT_TOO_LARGE"
	// CodeRestartLimit: the gateway stopped without releasing the
	// execution (a crash or kill) more often than Config.MaxNodeRestarts
	// allows, so recovery failed it instead of resuming it again.
	CodeRestartLimit = "RESTART_LIMIT"
	// CodePermissionDenied: an execution claimed after a restart was not
	// resumed because Config.AuthorizeResume refused its caller.
	CodePermissionDenied = "PERMISSION_DENIED"
)

// LaggingError is the error a lagging subscription ends with. It satisfies
// errors.Is(err, ErrLagging); ResumeAfter is the seq of the last event the
// subscriber received, to pass as afterSeq to Subscribe.
type LaggingError struct {
	ExecutionID string
	ResumeAfter int64
}

// Error says from which seq to resume.
func (e *LaggingError) Error() string {
	return fmt.Sprintf("%v: execution %s: resume from seq %d", ErrLagging, e.ExecutionID, e.ResumeAfter)
}

// Unwrap returns ErrLagging.
func (e *LaggingError) Unwrap() error { return ErrLagging }

// Run-context causes; they never leave the package.
var (
	errCancelled       = errors.New("execution cancelled")
	errWorkflowTimeout = errors.New("workflow timed out")
	errNodeTimeout     = errors.New("node timed out")
	errFailFast        = errors.New("another node failed")
	errCrashed         = errors.New("executor crashed (test hook)")
)
