// Package executor runs workflows: it schedules the nodes of a workflow
// version as a DAG (DESIGN.md §4), runs each attempt of a node in the
// Starlark runtime of package executor/node, retries failed attempts with
// exponential backoff, enforces node and workflow timeouts, and reports every
// step as a store.Event.
//
// An Executor owns its runs: Start returns as soon as the execution is
// journalled and the run continues after the caller's context ends, until it
// finishes, is cancelled with Cancel, or the Executor is closed. Runs
// execute on worker goroutines that wait a while for the next run, so that
// an execution does not grow a fresh goroutine's stack to the depth the
// Starlark interpreter needs (see spawn). Execute with a context that can
// never end (context.Background) runs the execution on the caller's
// goroutine instead: nothing could make it return before the end anyway.
// Each attempt's context derives from its run's (context.WithDeadlineCause)
// and ends at the node's deadline or the workflow's, whichever comes
// first, so that its cause tells a node timeout from a workflow timeout or
// a cancellation. Workflow versions are planned once (cached by name and
// version, checked against the definition) and node programs compiled
// once.
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
// The create of a new execution travels through the journal writer too,
// in the same write as its ExecutionStarted event (store.JournalBatch
// Creates); its first node runs only once that write is committed. The
// writer waits (at most a millisecond) while runs that will soon enqueue
// are active, so that one commit carries the next step of every execution
// in progress (see gather).
// Execution ids are time-ordered UUIDs (version 7), which keeps
// the store's indexes appending instead of touching a random page per
// execution.
//
// # Recovery
//
// A durable execution belongs to the process that runs it
// (Config.Owner), which heart-beats in the store every
// Config.HeartbeatInterval from New until Close. Recover, called once at
// start-up, takes back its own owner's unfinished executions, releases
// into the backlog those of owners that stopped heart-beating
// (Config.StaleAfter; with Config.RecoverAllOnStart, for a store no other
// process uses, of every previous owner at once), claims from the backlog
// what its free slots allow (Config.MaxConcurrentExecutions) and resumes
// them: completed nodes keep their journalled results (pass-all
// scopes are rebuilt from them) and are not run again; the other nodes,
// including the one that was running, run, its attempts numbered on from
// the journalled count (an interrupted attempt does not use up a retry);
// seqs continue after the last journalled event, and an ExecutionStarted
// event with Resumed set marks the resume. The workflow timeout counts from
// the original start. After Recover the Executor repeats the lease scan
// every Config.RecoveryInterval and deletes finished executions older than
// Config.Retention, on a shared store only while it holds the store's
// housekeeping lease (Leader), and claims from the backlog whenever a slot
// is free. Close leaves interrupted durable executions unfinished and
// without an owner, so that another replica can take them over at once.
//
// # Backlog
//
// Start runs at most Config.MaxConcurrentExecutions journalled executions
// at once in this process; past that it journals the execution without an
// owner (PENDING), and whichever process sharing the store has a free slot
// first claims it (store.ClaimQueued) and runs it from its start.
//
// Subscribe follows an execution from any seq. A subscriber has a bounded
// buffer; one that falls behind is closed with ErrLagging, whose message says
// from which seq to resume. Subscribers never slow an execution down.
//
// # Secrets
//
// Node results, log lines and error texts pass through the execution's
// *secrets.Redactor (Config.NewRedactor) before they are stored, emitted or
// returned.
package executor
