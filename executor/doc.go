// Package executor runs workflows: it schedules the nodes of a workflow
// version as a DAG (DESIGN.md §4), runs each attempt of a node in the
// Starlark runtime of package executor/node, retries failed attempts with
// exponential backoff, enforces node and workflow timeouts, and reports every
// step as a store.Event.
//
// An Executor owns its runs: Start returns as soon as the execution is
// journalled and the run continues after the caller's context ends, until it
// finishes, is cancelled with Cancel, or the Executor is closed.
//
// # Events and the journal
//
// Each execution has a dense sequence of events (seq 1, 2, …): one
// ExecutionStarted, per node attempt NodeStarted, NodeLog, NodeRetrying,
// NodeCompleted or NodeFailed, and one terminal event that carries the final
// store.Execution. Unless the workflow disables journalling, the execution is
// created in the store before its first node runs and every state change is
// written with its events through a single journal writer goroutine, which
// commits the changes of many executions in one store.WriteJournal call
// (group commit). Events reach subscribers only after they are journalled, in
// seq order; Execute and Cancel return only after the terminal state is
// journalled.
//
// Subscribe follows an execution from any seq. A subscriber has a bounded
// buffer; one that falls behind is closed with ErrLagging, whose message says
// from which seq to resume. Subscribers never slow an execution down.
//
// # Secrets
//
// Node results, log lines and error texts pass through the execution's
// Redactor (Config.NewRedactor) before they are stored, emitted or returned.
package executor
