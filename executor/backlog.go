package executor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kailash-gateway/kgw/store"
)

// housekeepingLease names the leader lease (store.LeaderLeases) whose
// holder runs the lease scan and retention for every replica.
const housekeepingLease = "housekeeping"

// The shared backlog (docs/cluster.md). A process runs at most
// Config.MaxConcurrentExecutions journalled executions at once; each holds
// one of its slots (run.slot) from admit until it has ended. Start, at
// capacity, journals the new execution without an owner instead of
// running it: that is the backlog, shared by every process on the store.
// Each process claims from it (store.ClaimQueued) as many executions as it
// has free slots, woken by the store's backlog notifications, by a slot
// freed here and by a poll every Config.BacklogPollInterval.

// reserveForClaim reserves every free slot for a claim from the backlog
// and returns how many; endClaim ends the claim. While a claim is in
// flight its reservation does not count against Start (reserveForStart
// waits for the claim's outcome), or a start arriving during a claim would
// be queued by a process that is not at its limit.
func (e *Executor) reserveForClaim() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	got := e.cfg.MaxConcurrentExecutions - e.slots
	if got <= 0 || e.closed {
		return 0
	}
	e.slots += got
	e.claiming += got
	return got
}

// endClaim ends a claim that reserved n slots and filled used of them.
func (e *Executor) endClaim(n, used int) {
	e.mu.Lock()
	e.slots -= n - used
	e.claiming -= n
	e.mu.Unlock()
	e.claimDone.Broadcast()
}

// reserveForStart reserves one slot for a new execution, waiting for the
// claims in flight to free what they did not fill; it reports false when
// the process is at its limit (or closed).
func (e *Executor) reserveForStart() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for {
		switch {
		case e.closed:
			return false
		case e.slots < e.cfg.MaxConcurrentExecutions:
			e.slots++
			return true
		case e.claiming == 0:
			return false
		}
		e.claimDone.Wait()
	}
}

// releaseSlots gives back n reserved slots that no run took. It does not
// wake the backlog loop: the loop itself releases what a claim did not
// fill, and waking it for that would make it spin.
func (e *Executor) releaseSlots(n int) {
	if n <= 0 {
		return
	}
	e.mu.Lock()
	e.slots -= n
	e.mu.Unlock()
}

// takeSlotLocked gives r its slot when it is admitted: the one reserved
// for it (r.reserved), or a new one whatever the limit (runs of Execute and
// executions taken back at start-up are not refused).
func (e *Executor) takeSlotLocked(r *run) {
	if !r.durable {
		return
	}
	if !r.reserved {
		e.slots++
	}
	r.slot = true
}

// dropSlotLocked ends r's slot, once, and wakes the backlog loop if the
// backlog may hold work (backlogMaybe): a process that is not at its
// limit with an empty backlog does not query the store at the end of
// every execution.
func (e *Executor) dropSlotLocked(r *run) {
	if !r.slot {
		return
	}
	r.slot = false
	e.slots--
	if e.backlogMaybe.Load() {
		e.wakeBacklog()
	}
}

// Running returns how many journalled executions this process runs (the
// slots of Config.MaxConcurrentExecutions in use).
func (e *Executor) Running() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.slots
}

// backlogQueued notes that the backlog may hold work (a notification,
// a local enqueue or release) and wakes the backlog loop.
func (e *Executor) backlogQueued() {
	e.backlogMaybe.Store(true)
	e.wakeBacklog()
}

// wakeBacklog makes the backlog loop look for work, without blocking.
func (e *Executor) wakeBacklog() {
	select {
	case e.backlogWake <- struct{}{}:
	default:
	}
}

// enqueue journals the execution of req without an owner (status PENDING),
// for whichever process has a free slot first, and returns its id. A
// duplicate idempotency key returns the existing execution's id, or an
// *IdempotencyMismatchError for a different request.
func (e *Executor) enqueue(ctx context.Context, req *Request, p *plan) (string, error) {
	e.mu.Lock()
	closed := e.closed
	running := e.perCaller[req.Caller]
	e.mu.Unlock()
	if closed {
		return "", fmt.Errorf("start execution: %w", ErrClosed)
	}
	if limit := e.cfg.MaxRunsPerCaller; limit > 0 && running >= limit {
		// A caller at its own limit here does not get around it by
		// queueing more.
		return "", fmt.Errorf("start execution: %w (limit %d)", ErrCallerLimit, limit)
	}
	r := e.newRun(req, p, nil)
	r.stop()
	x := r.x
	x.Owner, x.Status = "", store.ExecutionPending
	err := e.st.CreateExecution(ctx, x)
	if errors.Is(err, store.ErrAlreadyExists) && req.IdempotencyKey != "" {
		found, ferr := e.st.FindExecutionByIdempotencyKey(ctx, req.Caller, req.IdempotencyKey)
		if ferr == nil {
			if fp := found.Request.Fingerprint; fp != "" && fp != req.Fingerprint {
				return "", &IdempotencyMismatchError{Key: req.IdempotencyKey, ExecutionID: found.ID}
			}
			return found.ID, nil
		}
	}
	if err != nil {
		return "", fmt.Errorf("start execution: journal new execution: %w", err)
	}
	e.backlogQueued()
	e.log.Debug("execution queued: this replica is at its limit of concurrent executions",
		"execution_id", x.ID, "workflow", x.Workflow, "limit", e.cfg.MaxConcurrentExecutions)
	return x.ID, nil
}

// backlogLoop claims work from the backlog whenever this process has free
// slots, until Close.
func (e *Executor) backlogLoop() {
	defer e.loops.Done()
	select {
	case <-e.beating: // claims are made only once the owner is heart-beating
	case <-e.loopCtx.Done():
		return
	}
	poll := time.NewTicker(e.cfg.BacklogPollInterval)
	defer poll.Stop()
	for {
		if !e.leaseLost.Load() {
			e.claimBacklog(e.loopCtx)
		}
		select {
		case <-e.backlogWake:
		case <-poll.C:
		case <-e.loopCtx.Done():
			return
		}
	}
}

// claimBacklog claims queued executions while this process has free slots
// and starts them; it returns how many it started.
func (e *Executor) claimBacklog(ctx context.Context) int {
	started := 0
	for {
		n := e.reserveForClaim()
		if n == 0 {
			return started
		}
		e.claimMu.Lock() // against cancelQueued, until the claimed runs are admitted
		// Cleared before the claim, so that work queued meanwhile sets it
		// again; a claim that filled every slot may have left more.
		e.backlogMaybe.Store(false)
		claimed, err := e.st.ClaimQueued(ctx, e.cfg.Owner, n)
		e.endClaim(n, len(claimed))
		if err != nil || len(claimed) == n {
			e.backlogMaybe.Store(true)
		}
		if err != nil {
			e.claimMu.Unlock()
			if ctx.Err() == nil {
				e.log.Error("claiming queued executions failed", "error", err)
			}
			return started
		}
		for _, x := range claimed {
			ok, err := e.resume(ctx, x, true)
			if err != nil {
				e.log.Error("starting a queued execution failed; it is left for a later attempt",
					"execution_id", x.ID, "workflow", x.Workflow, "version", x.Version, "error", err)
				e.release(x)
			}
			if ok {
				started++
			} else {
				e.releaseSlots(1)
			}
		}
		e.claimMu.Unlock()
		if len(claimed) < n {
			return started
		}
	}
}

// elect keeps or takes the housekeeping lease (store.LeaderLeases); the
// heartbeat loop calls it after every successful heartbeat. A process that
// becomes the leader scans at once.
func (e *Executor) elect() {
	ll, ok := e.st.(store.LeaderLeases)
	if !ok {
		return
	}
	began := time.Since(e.clockBase)
	ctx, cancel := context.WithTimeout(e.loopCtx, e.cfg.HeartbeatInterval)
	got, err := ll.AcquireLease(ctx, housekeepingLease, e.cfg.Owner, e.cfg.StaleAfter)
	cancel()
	switch {
	case err != nil:
		// Keep what we have until it lapses (leaderUntil).
		if e.loopCtx.Err() == nil {
			e.log.Warn("renewing the housekeeping lease failed", "owner", e.cfg.Owner, "error", err)
		}
	case got:
		// The lease ends at the store's clock StaleAfter after the
		// statement; counting from before it was sent ends this
		// process's belief no later.
		was := e.Leader()
		e.leaderUntil.Store(int64(began + e.cfg.StaleAfter))
		if !was {
			e.log.Info("elected to run the lease scan and retention", "owner", e.cfg.Owner)
			select {
			case e.scanNow <- struct{}{}:
			default:
			}
		}
	default:
		if e.Leader() {
			e.log.Info("another replica runs the lease scan and retention now", "owner", e.cfg.Owner)
		}
		e.leaderUntil.Store(0)
	}
}

// Leader reports whether this process runs the lease scan and retention:
// it holds the store's housekeeping lease (store.LeaderLeases), or the
// store serves it alone.
func (e *Executor) Leader() bool {
	if e.st == nil {
		return false
	}
	if _, ok := e.st.(store.LeaderLeases); !ok {
		return true
	}
	return time.Since(e.clockBase) < time.Duration(e.leaderUntil.Load())
}

// resignLeader gives the housekeeping lease up at Close, so that another
// replica takes it at once.
func (e *Executor) resignLeader() {
	ll, ok := e.st.(store.LeaderLeases)
	if !ok || !e.Leader() {
		return
	}
	e.leaderUntil.Store(0)
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	if err := ll.ReleaseLease(ctx, housekeepingLease, e.cfg.Owner); err != nil {
		e.log.Warn("giving up the housekeeping lease failed; another replica takes it when it expires", "error", err)
	}
}

// cancelQueued cancels execution id if it waits in the backlog: it ends it
// CANCELLED in the journal, fenced by the epoch it read, so that a claim
// by another process in between wins (the cancel then goes to that
// process); claims of this one wait (claimMu). It returns the final
// execution, or nil when id is not queued (any more).
func (e *Executor) cancelQueued(ctx context.Context, id string) (*store.Execution, error) {
	e.claimMu.Lock()
	defer e.claimMu.Unlock()
	if e.lookup(id) != nil {
		return nil, nil // claimed here meanwhile
	}
	x, err := e.st.GetExecution(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("cancel: %w", err)
	}
	if x.Owner != "" || x.Status.Terminal() {
		return nil, nil
	}
	events, err := e.loadEvents(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("cancel: %w", err)
	}
	xe := &store.ExecError{Code: CodeCancelled, Message: "execution cancelled"}
	err = e.endStored(ctx, x, events, store.ExecutionCancelled, xe)
	if errors.Is(err, store.ErrFenced) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cancel: %w", err)
	}
	return e.st.GetExecution(ctx, id)
}
