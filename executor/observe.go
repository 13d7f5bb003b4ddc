package executor

import (
	"time"

	"github.com/kailash-gateway/kgw/store"
)

// Observer receives the executor's measurements (Config.Observer); the
// server implements it with Prometheus metrics. Its methods are called on
// the executor's hot paths and must not block.
type Observer interface {
	// ExecutionStarted: a run of workflow began (or resumed) in this
	// process.
	ExecutionStarted(workflow string)
	// ExecutionStopped: that run ended. status is its final status
	// (completed, failed, cancelled or timed_out), or "" when the run was
	// left unfinished for recovery (gateway shutdown); d is the time since
	// the execution's start.
	ExecutionStopped(workflow, status string, d time.Duration)
	// NodeAttempt: one attempt of node ended with outcome (completed,
	// failed, timed_out or interrupted) after d.
	NodeAttempt(workflow, node, outcome string, d time.Duration)
	// JournalCommit: one journal transaction of items items took d.
	JournalCommit(items int, d time.Duration)
}

// Outcomes of a node attempt (Observer.NodeAttempt).
const (
	OutcomeCompleted   = "completed"
	OutcomeFailed      = "failed"
	OutcomeTimedOut    = "timed_out"
	OutcomeInterrupted = "interrupted"
)

// nopObserver is the Observer of an Executor without Config.Observer.
type nopObserver struct{}

func (nopObserver) ExecutionStarted(string)                           {}
func (nopObserver) ExecutionStopped(string, string, time.Duration)    {}
func (nopObserver) NodeAttempt(string, string, string, time.Duration) {}
func (nopObserver) JournalCommit(int, time.Duration)                  {}

// observeStop reports the end of r to the Observer and, for a finished
// execution that did not complete, logs one warning naming its workflow,
// status, error code and node.
func (r *run) observeStop() {
	r.mu.Lock()
	x := r.final
	r.mu.Unlock()
	obs := r.e.cfg.Observer
	if x == nil {
		obs.ExecutionStopped(r.wf.Name, "", 0)
		return
	}
	obs.ExecutionStopped(r.wf.Name, statusName(x.Status), x.EndTime.Sub(x.StartTime))
	if x.Status == store.ExecutionCompleted {
		return
	}
	attrs := []any{"execution_id", r.id, "workflow", r.wf.Name, "version", r.wf.Version, "status", statusName(x.Status)}
	if x.Error != nil {
		attrs = append(attrs, "error_code", x.Error.Code, "node", x.Error.NodeID, "error", x.Error.Message)
	}
	attrs = append(attrs, traceAttrs(r.span)...)
	r.e.log.Warn("execution did not complete", attrs...)
}

// statusName is the lower-case name of a final status.
func statusName(s store.ExecutionStatus) string {
	switch s {
	case store.ExecutionCompleted:
		return "completed"
	case store.ExecutionFailed:
		return "failed"
	case store.ExecutionCancelled:
		return "cancelled"
	case store.ExecutionTimedOut:
		return "timed_out"
	default:
		return ""
	}
}

// attemptOutcome classifies the end of an attempt for Observer.NodeAttempt.
func (r *run) attemptOutcome(err error, nodeTimeout bool) string {
	switch {
	case err == nil:
		return OutcomeCompleted
	case r.ctx.Err() != nil:
		return OutcomeInterrupted
	case nodeTimeout:
		return OutcomeTimedOut
	default:
		return OutcomeFailed
	}
}
