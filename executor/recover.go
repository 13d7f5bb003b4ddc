package executor

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kailash-gateway/kgw/store"
)

// retentionInterval is how often the maintenance loop deletes expired
// executions.
const retentionInterval = 10 * time.Minute

// defaultOwner returns an owner id unique to this process: host name,
// process id and a random part (a restarted process on the same host may
// reuse its pid).
func defaultOwner() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "kgw"
	}
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), rand.Text()[:8])
}

// heartbeatLoop records every Config.HeartbeatInterval that the owner is
// alive, starting at once; beating is closed after the first attempt.
// When no heartbeat has succeeded for the lease timeout (StaleAfter) minus
// one interval, other processes may be about to take the executions over:
// the process fences itself (selfFence) and is not Ready until a
// heartbeat succeeds again.
func (e *Executor) heartbeatLoop() {
	defer e.loops.Done()
	t := time.NewTicker(e.cfg.HeartbeatInterval)
	defer t.Stop()
	first := true
	lastOK := time.Now()
	var lost []store.Execution // headers of the runs stopped by selfFence
	for {
		began := time.Now()
		err := e.heartbeat(e.loopCtx)
		switch {
		case err == nil:
			lastOK = began
			e.elect()
			if e.leaseLost.Load() {
				lost = e.releaseLost(lost)
				if len(lost) == 0 {
					e.leaseLost.Store(false)
					e.log.Info("executor lease renewed; ready again", "owner", e.cfg.Owner)
				}
			}
		case e.loopCtx.Err() == nil:
			e.log.Error("executor heartbeat failed; other replicas may take over this process's executions",
				"owner", e.cfg.Owner, "error", err)
			if time.Since(lastOK) >= e.cfg.StaleAfter-e.cfg.HeartbeatInterval && !e.leaseLost.Load() {
				e.leaseLost.Store(true)
				lost = append(lost, e.selfFence()...)
			}
		}
		if first {
			close(e.beating)
			first = false
		}
		select {
		case <-t.C:
		case <-e.loopCtx.Done():
			return
		}
	}
}

// Ready reports whether the Executor holds its lease: false while it
// cannot renew it (see Config.StaleAfter).
func (e *Executor) Ready() bool { return !e.leaseLost.Load() }

// selfFence stops every durable run with ErrFenced (they write, publish
// and report nothing more) and returns their headers, to be released once
// the store is reachable again.
func (e *Executor) selfFence() []store.Execution {
	e.mu.Lock()
	runs := make([]*run, 0, len(e.runs))
	for _, r := range e.runs {
		runs = append(runs, r)
	}
	e.mu.Unlock()
	var out []store.Execution
	for _, r := range runs {
		if !r.durable {
			continue
		}
		r.mu.Lock()
		if !r.ended {
			h := *r.x
			h.Nodes, h.Request, h.Owner = nil, store.ExecutionRequest{}, ""
			out = append(out, h)
			r.fenceLocked()
		}
		r.mu.Unlock()
	}
	e.log.Error("executor lease lost: stopped this process's executions; it is not ready until the store answers again",
		"owner", e.cfg.Owner, "stopped", len(out), "lease_timeout", e.cfg.StaleAfter)
	return out
}

// releaseLost releases the executions stopped by selfFence (owner "",
// fenced by their epoch: one another process took meanwhile is left
// alone), so that any process claims them at once. It returns those it
// could not release yet.
func (e *Executor) releaseLost(lost []store.Execution) []store.Execution {
	var left []store.Execution
	for i := range lost {
		h := &lost[i]
		ctx, cancel := context.WithTimeout(e.loopCtx, e.cfg.HeartbeatInterval)
		err := e.st.WriteJournal(ctx, &store.JournalBatch{Executions: []*store.Execution{h}, Epochs: map[string]int64{h.ID: h.Epoch}})
		cancel()
		if err != nil && !errors.Is(err, store.ErrFenced) {
			left = append(left, *h)
		}
	}
	return left
}

// heartbeat records that the owner is alive now.
func (e *Executor) heartbeat(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.HeartbeatInterval)
	defer cancel()
	return e.st.Heartbeat(ctx, e.cfg.Owner, e.now())
}

// stopLoops stops the heartbeat and maintenance loops and waits for them.
func (e *Executor) stopLoops() {
	e.loopCancel()
	e.loops.Wait()
}

// Recover resumes the unfinished executions of the store that no live
// process runs, and returns how many it resumed. It is what a gateway
// calls once at start-up, after New and before serving:
//
//   - it heart-beats; at the first call it takes back the unfinished
//     executions of its own owner name (store.ReclaimExecutions: a
//     previous life of this process left them);
//   - it releases into the backlog (store.ReleaseStale, the lease scan)
//     every unfinished execution whose owner has not heart-beaten for
//     Config.StaleAfter, or with Config.RecoverAllOnStart (first call
//     only) of any other owner, then claims from the backlog as many as
//     it has free slots (Config.MaxConcurrentExecutions);
//   - each claimed execution resumes: completed nodes keep their journalled
//     results and are not run again, the others (including the one that was
//     running) run, event seqs continue after the last journalled one, and
//     an ExecutionStarted event with Resumed set is emitted. An execution
//     whose workflow version no longer exists fails with an error saying
//     so;
//   - the first call deletes expired executions (Config.Retention) and
//     starts a loop, stopped by Close, that repeats the lease scan every
//     Config.RecoveryInterval (taking over executions of replicas that
//     died) and the deletion every 10 minutes. On a store shared by
//     replicas (store.LeaderLeases) the loop scans and deletes only while
//     this process holds the housekeeping lease (Leader): one replica at
//     a time. An explicit Recover call always scans. The first call also
//     starts the loop that claims from the backlog whenever a slot is
//     free (see Config.MaxConcurrentExecutions): until then, executions
//     queued by Start wait.
//
// Without a store Recover does nothing. After Close it fails with
// ErrClosed. Errors of single executions are logged and the execution is
// left for a later attempt; the error returned is that of the claim.
func (e *Executor) Recover(ctx context.Context) (int, error) {
	if e.st == nil {
		return 0, nil
	}
	e.mu.Lock()
	closed, first := e.closed, !e.firstPass
	all := e.cfg.RecoverAllOnStart && first
	e.firstPass = true
	e.mu.Unlock()
	if closed {
		return 0, fmt.Errorf("recover: %w", ErrClosed)
	}
	n, err := e.recoverPass(ctx, all, first, true)
	e.recovering.Do(func() {
		if e.Leader() { // else the elected replica deletes
			if _, err := e.DeleteExpired(ctx); err != nil {
				e.log.Error("deleting expired executions failed", "error", err)
			}
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		if !e.closed { // Close waits for loops started before it set closed
			e.loops.Add(2)
			go e.maintenanceLoop()
			go e.backlogLoop()
		}
	})
	return n, err
}

// maintenanceLoop repeats recovery and retention until Close.
func (e *Executor) maintenanceLoop() {
	defer e.loops.Done()
	recovery := time.NewTicker(e.cfg.RecoveryInterval)
	defer recovery.Stop()
	retention := time.NewTicker(retentionInterval)
	defer retention.Stop()
	for {
		elected := false
		select {
		case <-recovery.C:
		case <-e.scanNow: // just elected: scan, and delete, at once
			elected = true
		case <-retention.C:
			if !e.Leader() {
				continue
			}
			if _, err := e.DeleteExpired(e.loopCtx); err != nil && e.loopCtx.Err() == nil {
				e.log.Error("deleting expired executions failed", "error", err)
			}
			continue
		case <-e.loopCtx.Done():
			return
		}
		if elected && e.Leader() {
			if _, err := e.DeleteExpired(e.loopCtx); err != nil && e.loopCtx.Err() == nil {
				e.log.Error("deleting expired executions failed", "error", err)
			}
		}
		if e.leaseLost.Load() || !e.Leader() {
			continue // fenced, or another replica scans
		}
		if _, err := e.recoverPass(e.loopCtx, false, false, true); err != nil && e.loopCtx.Err() == nil {
			e.log.Error("recovering executions failed", "error", err)
		}
	}
}

// DeleteExpired deletes the finished executions (with their events) that
// ended more than Config.Retention ago and returns how many it deleted.
// The Executor calls it periodically after Recover; with a negative
// Retention or without a store it does nothing.
func (e *Executor) DeleteExpired(ctx context.Context) (int, error) {
	if e.st == nil || e.cfg.Retention < 0 {
		return 0, nil
	}
	n, err := e.st.DeleteExecutionsBefore(ctx, e.now().Add(-e.cfg.Retention))
	if err != nil {
		return 0, fmt.Errorf("delete expired executions: %w", err)
	}
	if n > 0 {
		e.log.Info("deleted expired executions", "count", n, "retention", e.cfg.Retention)
	}
	return n, nil
}

// recoverPass heart-beats, takes back this owner's executions (first),
// releases those of stale owners into the backlog (scan; with all, of
// every owner that has not heart-beaten since this one did) and claims
// from the backlog what its free slots allow. It returns how many
// executions it started.
func (e *Executor) recoverPass(ctx context.Context, all, first, scan bool) (int, error) {
	now := e.now()
	if err := e.st.Heartbeat(ctx, e.cfg.Owner, now); err != nil {
		return 0, fmt.Errorf("recover: %w", err)
	}
	n := 0
	if first {
		// A process restarted under the same owner name takes back what
		// its previous life left at once, instead of waiting for the
		// lease of a process that is gone.
		own, err := e.st.ReclaimExecutions(ctx, e.cfg.Owner)
		if err != nil {
			return 0, fmt.Errorf("recover: %w", err)
		}
		for _, x := range own {
			if e.lookup(x.ID) != nil {
				continue // runs here already
			}
			started, err := e.resume(ctx, x, false)
			if err != nil {
				e.log.Error("resuming execution failed; it is left for a later attempt",
					"execution_id", x.ID, "workflow", x.Workflow, "version", x.Version, "error", err)
				e.release(x)
				continue
			}
			if started {
				n++
			}
		}
	}
	if scan || all {
		staleBefore := now.Add(-e.cfg.StaleAfter)
		if all {
			staleBefore = now // this owner's heartbeat is at now: not stale
		}
		released, err := e.st.ReleaseStale(ctx, staleBefore)
		if err != nil {
			return n, fmt.Errorf("recover: %w", err)
		}
		if released > 0 {
			e.log.Info("released the executions of stopped replicas into the backlog", "count", released, "owner", e.cfg.Owner)
		}
	}
	claimed := e.claimBacklog(ctx)
	if n+claimed > 0 {
		e.log.Info("recovered executions", "resumed", n+claimed, "owner", e.cfg.Owner)
	}
	return n + claimed, nil
}

// release gives up the ownership of a claimed execution that could not be
// resumed, so that a later pass (of any process) claims it again.
func (e *Executor) release(x *store.Execution) {
	h := *x
	h.Nodes, h.Request, h.Owner = nil, store.ExecutionRequest{}, ""
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	b := &store.JournalBatch{Executions: []*store.Execution{&h}, Epochs: map[string]int64{x.ID: x.Epoch}}
	if err := e.st.WriteJournal(ctx, b); err != nil {
		e.log.Error("releasing execution failed", "execution_id", x.ID, "error", err)
	}
	e.backlogMaybe.Store(true) // a later pass retries it
}

// resume starts a run for the claimed execution x from its journal. It
// reports false when x cannot run any more and was failed instead (or
// runs here already). With reserved, the run takes a slot its caller
// reserved (and gives back when resume reports false).
func (e *Executor) resume(ctx context.Context, x *store.Execution, reserved bool) (bool, error) {
	events, err := e.loadEvents(ctx, x.ID)
	if err != nil {
		return false, err
	}
	if limit := e.cfg.MaxNodeRestarts; limit >= 0 && int(x.Restarts) > limit {
		return false, e.failUnresumable(ctx, x, events, restartLimitError(x, limit))
	}
	what := "resume execution after a restart"
	if len(events) == 0 && x.StartTime.IsZero() {
		what = "start the execution queued in the backlog"
	}
	w, err := e.st.GetWorkflow(ctx, x.Workflow, x.Version)
	if errors.Is(err, store.ErrNotFound) {
		return false, e.failUnresumable(ctx, x, events, &store.ExecError{Code: CodeNodeError, Message: fmt.Sprintf(
			"cannot %s: workflow '%s' version %d was deleted", what, x.Workflow, x.Version)})
	}
	if err != nil {
		return false, fmt.Errorf("load workflow %s v%d: %w", x.Workflow, x.Version, err)
	}
	p, err := e.plan(w)
	if err != nil {
		return false, e.failUnresumable(ctx, x, events, &store.ExecError{Code: CodeNodeError, Message: fmt.Sprintf(
			"cannot %s: workflow '%s' version %d: %v", what, x.Workflow, x.Version, err)})
	}
	if auth := e.cfg.AuthorizeResume; auth != nil {
		if err := auth(ctx, x.Caller, x.Request.Resources); err != nil {
			return false, e.failUnresumable(ctx, x, events, &store.ExecError{Code: CodePermissionDenied,
				Message: "cannot " + what + ": " + err.Error()})
		}
	}
	req := &Request{
		Workflow:       w,
		Parameters:     x.Request.Parameters,
		Context:        x.Request.Context,
		Resources:      x.Request.Resources,
		Timeout:        x.Request.Timeout,
		IdempotencyKey: x.IdempotencyKey,
		Caller:         x.Caller,
		Fingerprint:    x.Request.Fingerprint,
		// The resumed run's span continues the caller's trace as the
		// first run's did: its child, or a new root linked to it.
		Trace:     journalledTrace(&x.Request),
		TraceLink: x.Request.TraceLink,
	}
	r := e.newRun(req, p, &resumeFrom{x: x, events: events})
	r.reserved = reserved
	prev, err := e.admit(r, false)
	if err != nil {
		return false, fmt.Errorf("resume: %w", err)
	}
	return prev == nil, nil
}

// loadEvents reads every journalled event of an execution.
func (e *Executor) loadEvents(ctx context.Context, id string) ([]*store.Event, error) {
	const page = 1000
	var out []*store.Event
	var after int64
	for {
		evs, err := e.st.ListEvents(ctx, id, after, page)
		if err != nil {
			return nil, fmt.Errorf("load events of %s: %w", id, err)
		}
		out = append(out, evs...)
		if len(evs) < page {
			return out, nil
		}
		after = evs[len(evs)-1].Seq
	}
}

// restartLimitError is the error of an execution that the gateway's stops
// interrupted more than limit times. It names the nodes the journal shows
// running (a node whose start was not journalled yet is not known).
func restartLimitError(x *store.Execution, limit int) *store.ExecError {
	var running []string
	for _, s := range x.Nodes {
		if s.Status == store.NodeRunning || s.Status == store.NodeRetrying {
			running = append(running, s.NodeID)
		}
	}
	xe := &store.ExecError{Code: CodeRestartLimit, Message: fmt.Sprintf(
		"execution stopped: the gateway crashed or was killed %d times while running it, more than the %d restarts allowed (--max-node-restarts)",
		x.Restarts, limit)}
	switch len(running) {
	case 0:
	case 1:
		xe.NodeID = running[0]
		xe.Message += fmt.Sprintf("; node '%s' was running", running[0])
	default:
		xe.Message += fmt.Sprintf("; nodes '%s' were running", strings.Join(running, "', '"))
	}
	return xe
}

// failUnresumable ends a claimed execution that cannot run any more with
// a FAILED terminal event carrying xe. Nodes that were running fail with
// xe when its code is CodeRestartLimit (they are why it stops); every other
// unfinished node is skipped.
func (e *Executor) failUnresumable(ctx context.Context, x *store.Execution, events []*store.Event, xe *store.ExecError) error {
	if err := e.endStored(ctx, x, events, store.ExecutionFailed, xe); err != nil {
		return err
	}
	e.log.Error("execution failed at recovery", "execution_id", x.ID, "code", xe.Code, "error", xe.Message)
	return nil
}

// endStored ends execution x, which no process runs, in the journal with
// status and xe and a terminal event after events, fenced by x.Epoch (see
// failUnresumable for the node states).
func (e *Executor) endStored(ctx context.Context, x *store.Execution, events []*store.Event, status store.ExecutionStatus, xe *store.ExecError) error {
	var seq int64
	for _, ev := range events {
		seq = max(seq, ev.Seq)
	}
	now := e.now()
	final := *x
	final.Nodes = make([]*store.NodeState, len(x.Nodes))
	b := &store.JournalBatch{}
	for i, s := range x.Nodes {
		c := *s
		switch {
		case c.Status == store.NodeCompleted || c.Status == store.NodeFailed || c.Status == store.NodeTimedOut:
		case xe.Code == CodeRestartLimit && (c.Status == store.NodeRunning || c.Status == store.NodeRetrying):
			c.Status, c.EndTime, c.Error = store.NodeFailed, now, xe
			b.Nodes = append(b.Nodes, store.NodeUpdate{ExecutionID: x.ID, State: &c})
		default:
			c.Status = store.NodeSkipped
			b.Nodes = append(b.Nodes, store.NodeUpdate{ExecutionID: x.ID, State: &c})
		}
		final.Nodes[i] = &c
	}
	final.Status, final.EndTime, final.Owner = status, now, e.cfg.Owner
	final.Error = xe
	h := final
	h.Nodes, h.Request = nil, store.ExecutionRequest{}
	b.Executions = []*store.Execution{&h}
	b.Events = []*store.Event{{
		ExecutionID: x.ID, Seq: seq + 1, Time: now, Kind: terminalKind(status), Execution: &final,
	}}
	b.Epochs = map[string]int64{x.ID: x.Epoch}
	if err := e.st.WriteJournal(ctx, b); err != nil {
		return fmt.Errorf("end execution %s: %w", x.ID, err)
	}
	return nil
}
