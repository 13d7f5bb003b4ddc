package executor

import (
	"context"
	"errors"
	"fmt"
	"go.opentelemetry.io/otel/trace"
	"log/slog"
	"math"
	"runtime/debug"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/kailash-gateway/kgw/executor/node"
	"github.com/kailash-gateway/kgw/secrets"
	"github.com/kailash-gateway/kgw/store"
)

// A run is one execution in progress (or recently finished) in this process.
// The run goroutine (loop) owns scheduling; node goroutines report to it.
// Everything under mu may be read by Get, Subscribe and the journal writer.
type run struct {
	e       *Executor
	id      string
	key     string // idempotency index key, "" if none
	counted bool   // counts towards MaxRunsPerCaller (guarded by e.mu)
	// slot: the run holds one of the Executor's MaxConcurrentExecutions
	// slots (guarded by e.mu); reserved: its starter reserved it before
	// admit (see Executor.takeSlotLocked).
	slot, reserved bool
	wf             *store.Workflow
	p              *plan
	req            *Request
	durable        bool
	resumed        bool // continues a journalled execution (see Executor.resume)
	queued         bool // resumed from the backlog before it ever started
	// lazy: the run waits for the journal only before a node opens a
	// resource (the effect barrier, barrier.go), before a retry and at its
	// end; not for its creation before its first node, nor for a node's
	// completion before its downstream nodes. Its items are queued as usual
	// (the creation first) and go into the journal writer's next commit:
	// the one the run waits for, or the one the writer makes once its
	// gather window (maxGatherDelay, 1 ms) has passed. Only for Execute
	// without an idempotency key: its caller learns the id and the result
	// only from the end, which is committed before the reply; nobody else
	// sees an event before it is committed; no key has to be checked
	// against the store first; and no node acts on the world (through a
	// resource) before everything before it is committed. A crash before
	// the first commit loses an execution that never acted on the world and
	// whose caller got an error; after it, the execution resumes as any
	// other (docs/durability.md).
	//
	// A no-op execution at one caller is then one commit instead of two, a
	// three-node chain one instead of four. make bench-external, this
	// binary against the one before, in turns, 3 runs on the shared 2-core
	// machine (medians of the paired ratios, range): at one caller the
	// no-op p50 0.85× (0.81–0.90) and gateway CPU per call 0.84×, the
	// chain3 p50 0.71× (0.65–0.78), throughput 1.50× (1.44–1.67) and CPU
	// per call 0.64×; at 64 callers no-op throughput 1.17× (1.16–1.41).
	// In process, BenchmarkLoneNoopDurable: 137 µs instead of 330 µs.
	lazy    bool
	redact  *secrets.Redactor // of this execution (Config.NewRedactor)
	span    trace.Span        // "Execution <workflow>" (set by loop)
	cache   *node.WorkflowCache
	timeout time.Duration // of the whole execution

	// ctx ends when the run is cancelled: the cause says why
	// (errCancelled, errFailFast, ErrClosed from Close, errWorkflowTimeout
	// once deadline has passed). It has no timer: each attempt's context,
	// derived from it, ends at the run's deadline at the latest, and
	// whoever waits between attempts watches the deadline (see expired,
	// acquire and runNode). Nor is it a child of the Executor's context:
	// Close cancels the runs itself (interruptRuns). A run context with a
	// timer of its own, as a child of the Executor's context, made
	// BenchmarkTrivialNode 13% slower in CPU time (median of the ratios of
	// 7 alternating runs of both binaries, 30000 executions each: 9.7 µs
	// against 8.5 µs per execution) and 38% in wall time (24.7 µs against
	// 20.5 µs medians, on a loaded machine).
	ctx       context.Context
	cancelCtx context.CancelCauseFunc
	deadline  time.Time

	// For runs without a journal both are closedChan: nothing to wait for.
	journalledCreate chan struct{} // closed by the journal writer once the create is answered
	created          chan struct{} // closed once the run is journalled, or failed to be
	createErr        error         // set before created is closed
	resultBytes      int           // guarded by mu: ValueSize of the completed nodes' results
	redirect         string        // idempotency hit found in the store
	// redirectFingerprint is the request fingerprint of the redirect.
	redirectFingerprint string
	done                chan struct{} // closed when the run has ended
	failedBefore        []int32       // resumed runs: failed attempts per node before the resume

	mu  sync.Mutex
	x   *store.Execution // live state
	seq int64            // last assigned event seq
	// committed is the last seq the journal committed (lazy runs; see
	// waitJournalled).
	committed int64
	history   []*store.Event // published events; history[i].Seq == i+1
	subs      map[*Subscription]struct{}
	ended     bool             // no event will follow (terminal published, or Close)
	final     *store.Execution // x once ended, never modified again (nil if interrupted by Close)
	err       error            // journal failure or ErrClosed
	failed    string           // id of the node that failed the execution
	fenced    bool             // lost to another process: nothing more is published
}

// outcome is what a node goroutine reports to the scheduler.
type outcome struct {
	i           int
	result      map[string]any // completed
	err         *store.ExecError
	interrupted bool // stopped by the run's context, not by its own failure
}

// resumeFrom is the journalled state a resumed run continues from: the
// claimed execution and its events.
type resumeFrom struct {
	x      *store.Execution
	events []*store.Event
}

// newRun returns the run of req, planned as p: a new execution, or with
// from the journalled execution it resumes. It does not start it (see
// Executor.admit).
func (e *Executor) newRun(req *Request, p *plan, from *resumeFrom) *run {
	w := req.Workflow
	r := &run{
		e:       e,
		wf:      w,
		p:       p,
		req:     req,
		durable: e.st != nil && !w.DisableJournal,
		resumed: from != nil,
		redact:  e.cfg.NewRedactor(),

		journalledCreate: closedChan,
		created:          closedChan,
		done:             make(chan struct{}),
		// A run emits at least two events per node and two of its own.
		history: make([]*store.Event, 0, 2*len(p.nodes)+2),
	}
	if r.durable {
		r.created = make(chan struct{})
		if from == nil {
			r.journalledCreate = make(chan struct{})
		}
	}
	if req.IdempotencyKey != "" {
		r.key = req.Caller + "\x00" + req.IdempotencyKey
	}
	r.timeout = req.Timeout
	if r.timeout <= 0 {
		r.timeout = w.Timeout
	}
	if r.timeout <= 0 {
		r.timeout = DefaultWorkflowTimeout
	}
	created := e.now()
	r.x = &store.Execution{
		Workflow: w.Name,
		Version:  w.Version,
		Status:   store.ExecutionPending,
		Request: store.ExecutionRequest{
			Parameters:  req.Parameters,
			Resources:   req.Resources,
			Context:     req.Context,
			Timeout:     req.Timeout,
			Fingerprint: req.Fingerprint,
		},
		Nodes:          make([]*store.NodeState, len(p.nodes)),
		CreateTime:     created,
		IdempotencyKey: req.IdempotencyKey,
		Caller:         req.Caller,
		Owner:          e.cfg.Owner,
		Epoch:          1, // as the store journals a new execution
	}
	if r.durable { // only the journal reads it (trace.go)
		journalTrace(req, &r.x.Request)
	}
	states := make([]store.NodeState, len(p.nodes))
	for i := range p.nodes {
		states[i] = store.NodeState{NodeID: p.nodes[i].def.ID, Status: store.NodePending}
		r.x.Nodes[i] = &states[i]
	}
	if from == nil {
		r.id = newID()
		r.x.ID = r.id
		r.initContext(time.Now().Add(r.timeout))
		return r
	}
	r.restore(from)
	// The time before the crash counts.
	r.initContext(time.Now().Add(r.timeout - e.now().Sub(r.x.StartTime)))
	return r
}

// restore sets the state of a resumed run from the journal: node states
// in workflow order, the results' size, failed attempts per node, the
// history and the last seq.
func (r *run) restore(from *resumeFrom) {
	x, p := from.x, r.p
	r.id = x.ID
	byID := make(map[string]*store.NodeState, len(x.Nodes))
	for _, s := range x.Nodes {
		byID[s.NodeID] = s
	}
	r.failedBefore = make([]int32, len(p.nodes))
	for i := range p.nodes {
		if s := byID[p.nodes[i].def.ID]; s != nil {
			c := *s
			r.x.Nodes[i] = &c
			if c.Status == store.NodeCompleted {
				r.resultBytes += node.ValueSize(c.Result)
			}
		}
	}
	for _, ev := range from.events {
		if ev.Kind == store.EventNodeRetrying {
			if i, ok := p.index(ev.NodeID); ok {
				r.failedBefore[i]++
			}
		}
	}
	start := x.StartTime
	if start.IsZero() {
		start = x.CreateTime
	}
	if len(from.events) == 0 && x.StartTime.IsZero() {
		// Taken from the backlog before it ever ran: it starts now, and
		// its time in the backlog does not count against its timeout.
		r.queued, start = true, r.e.now()
	}
	r.x.ID, r.x.Status = x.ID, store.ExecutionRunning
	r.x.Epoch, r.x.Restarts = x.Epoch, x.Restarts
	r.x.CreateTime, r.x.StartTime = x.CreateTime, start
	r.x.Request = x.Request
	r.history = from.events
	for _, ev := range from.events {
		r.seq = max(r.seq, ev.Seq)
	}
	if len(from.events) > 0 && int64(len(from.events)) != r.seq {
		r.e.log.Warn("journalled events of a resumed execution have gaps", "execution_id", x.ID,
			"events", len(from.events), "last_seq", r.seq)
	}
}

// closedChan stands for the channels of a run that are closed from the
// start (see run.created).
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// closeChan closes c unless it is closedChan.
func closeChan(c chan struct{}) {
	if c != closedChan {
		close(c)
	}
}

// initContext makes the run's context (see run.ctx), ending at deadline.
func (r *run) initContext(deadline time.Time) {
	r.deadline = deadline
	r.ctx, r.cancelCtx = context.WithCancelCause(context.Background())
	if !time.Now().Before(deadline) {
		r.cancel(errWorkflowTimeout)
	}
}

// cancel ends the run's context (and so its attempts') with cause, unless
// it has ended.
func (r *run) cancel(cause error) { r.cancelCtx(cause) }

// expired reports whether the run's context has ended, first ending it if
// the run's deadline has passed.
func (r *run) expired() bool {
	if r.ctx.Err() != nil {
		return true
	}
	if time.Now().Before(r.deadline) {
		return false
	}
	r.cancel(errWorkflowTimeout)
	return true
}

// acquire takes one of the Executor's node slots. It reports false, with
// no slot taken, when the run's context ends first or has ended.
func (r *run) acquire() bool {
	select {
	case r.e.sem <- struct{}{}:
		if r.ctx.Err() != nil { // the scheduler checked the deadline
			<-r.e.sem
			return false
		}
		return true
	default:
	}
	t := time.NewTimer(time.Until(r.deadline))
	defer t.Stop()
	select {
	case r.e.sem <- struct{}{}:
		return true
	case <-r.ctx.Done():
		return false
	case <-t.C:
		r.cancel(errWorkflowTimeout)
		return false
	}
}

// stop releases the run's context.
func (r *run) stop() { r.cancel(context.Canceled) }

// wait waits for the end of the run (or ctx) and returns its final state,
// shared with the terminal event and every other waiter: it must not be
// modified.
func (r *run) wait(ctx context.Context) (*store.Execution, error) {
	select {
	case <-r.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for execution %s: %w", r.id, ctx.Err())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.final == nil {
		return nil, fmt.Errorf("execution %s: %w", r.id, r.err)
	}
	return r.final, r.err
}

// snapshot returns a copy of the live state.
func (r *run) snapshot() *store.Execution {
	r.mu.Lock()
	defer r.mu.Unlock()
	return copyExecution(r.x)
}

// begin marks the run started and emits ExecutionStarted. For a new
// durable run the same journal write creates the execution
// (journalledCreate is closed when it is answered); a resumed run's event
// has Resumed set and journals the execution's new header.
func (r *run) begin() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.resumed {
		r.commitLocked(&store.Event{
			Kind: store.EventExecutionStarted, Time: r.e.now(),
			Workflow: r.wf.Name, Version: r.wf.Version, Resumed: !r.queued,
		}, nil, true, nil)
		return
	}
	now := r.x.CreateTime // taken in newRun, a moment ago
	r.x.Status = store.ExecutionRunning
	r.x.StartTime = now
	ev := &store.Event{Kind: store.EventExecutionStarted, Time: now, Workflow: r.wf.Name, Version: r.wf.Version}
	if !r.durable {
		r.commitLocked(ev, nil, false, nil) // journalledCreate is closedChan
		return
	}
	r.seq++
	ev.ExecutionID, ev.Seq = r.id, r.seq
	it := &journalItem{run: r, event: ev, create: copyExecution(r.x), wait: r.journalledCreate}
	if r.lazy {
		it.wait = nil // journalledCreate is closedChan
	}
	r.e.journal.enqueue(it)
}

// loop runs the execution from start to end. It is the run's goroutine.
func (r *run) loop() {
	defer r.e.wg.Done()
	<-r.journalledCreate
	if r.createErr != nil {
		r.abandon()
		return
	}
	closeChan(r.created)
	r.cache = r.e.workflowCache(r.wf.Name)

	r.e.cfg.Observer.ExecutionStarted(r.wf.Name)
	r.startExecutionSpan()
	failure := r.schedule()
	r.finish(failure)
	r.observeStop()
	r.endExecutionSpan()

	r.e.finished(r)
	r.stop()
	close(r.done)
}

// abandon ends a run whose execution could not be journalled. If the
// store refused it for a duplicate idempotency key, created leads to the
// execution that has the key (redirect).
func (r *run) abandon() {
	err := r.createErr
	if r.key != "" && errors.Is(err, store.ErrAlreadyExists) {
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		x, ferr := r.e.st.FindExecutionByIdempotencyKey(ctx, r.req.Caller, r.req.IdempotencyKey)
		cancel()
		if ferr == nil {
			r.redirect, r.redirectFingerprint = x.ID, x.Request.Fingerprint
		}
	}
	r.createErr = fmt.Errorf("journal new execution: %w", err)
	e := r.e
	e.mu.Lock()
	e.uncountLocked(r)
	e.dropSlotLocked(r)
	delete(e.runs, r.id)
	if e.byKey[r.key] == r {
		delete(e.byKey, r.key)
	}
	e.mu.Unlock()
	r.mu.Lock()
	r.err = r.createErr
	r.endedLocked(r.createErr)
	r.mu.Unlock()
	closeChan(r.created)
	r.stop()
	close(r.done)
}

// schedule runs the nodes as their upstreams complete and returns the
// outcome that failed the execution, if any. It returns only when no node
// goroutine is left.
func (r *run) schedule() *outcome {
	nodes := r.p.nodes
	n := len(nodes)
	both := make([]map[string]any, 2*n)
	results := both[:n:n]
	passed := both[n:] // received through pass-all
	waiting, ready, failure := r.resumePoint(results, passed)
	if failure != nil {
		return failure
	}
	var outcomes chan outcome // made for the first node run on its own goroutine
	limit := r.e.cfg.MaxParallelPerExecution
	running := 0

	for {
		var o outcome
		inline := false
		for failure == nil && running < limit && len(ready) > 0 && !r.expired() {
			i := ready[0]
			ready = ready[1:]
			inputs, pa, xe := r.scope(i, results, passed)
			if xe != nil {
				r.nodeFailed(i, 0, xe, store.NodeFailed)
				failure = &outcome{i: i, err: xe}
				r.failFast(failure)
				break
			}
			passed[i] = pa
			running++
			if running == 1 && len(ready) == 0 {
				// The only node that can run: run it on this goroutine,
				// saving a goroutine start and stack growth per node.
				o, inline = r.runNode(i, inputs), true
				break
			}
			if outcomes == nil {
				outcomes = make(chan outcome, n) // never blocks a node goroutine
			}
			ch := outcomes // not outcomes itself, which would move it to the heap
			go func() { ch <- r.runNode(i, inputs) }()
		}
		if running == 0 {
			return failure
		}
		if !inline {
			o = <-outcomes
		}
		running--
		switch {
		case o.err == nil && !o.interrupted:
			results[o.i] = o.result
			for _, d := range nodes[o.i].out {
				if waiting[d]--; waiting[d] == 0 {
					ready = append(ready, d)
				}
			}
		case failure == nil && !o.interrupted:
			f := o
			failure = &f
			r.failFast(failure)
		}
	}
}

// resumePoint prepares scheduling from the journalled node states: the
// results of completed nodes (and, in topological order, what they
// received through pass-all connections), the count of upstreams each node
// still waits for, and the nodes ready to run. For a new run no node is
// completed and the roots are ready. A node journalled FAILED or TIMED_OUT
// (a resumed run that crashed while failing) is returned as the failure.
func (r *run) resumePoint(results, passed []map[string]any) (waiting, ready []int, failure *outcome) {
	nodes := r.p.nodes
	r.mu.Lock()
	fresh := true
	for _, s := range r.x.Nodes {
		fresh = fresh && s.Status == store.NodePending
	}
	r.mu.Unlock()
	if fresh { // a new run: the roots are ready
		waiting = make([]int, len(nodes))
		for i := range nodes {
			waiting[i] = nodes[i].indeg
		}
		return waiting, r.p.roots, nil // roots has no spare capacity: appending copies
	}
	completed := make([]bool, len(nodes))
	r.mu.Lock()
	for i, s := range r.x.Nodes {
		switch s.Status {
		case store.NodeCompleted:
			completed[i] = true
			results[i] = s.Result
			if results[i] == nil {
				results[i] = map[string]any{}
			}
		case store.NodeFailed, store.NodeTimedOut:
			if failure == nil {
				xe := s.Error
				if xe == nil {
					xe = &store.ExecError{NodeID: s.NodeID, Code: CodeNodeError, Message: fmt.Sprintf("node '%s' failed", s.NodeID)}
				}
				failure = &outcome{i: i, err: xe}
			}
		}
	}
	r.mu.Unlock()
	if failure != nil {
		r.mu.Lock()
		r.failed = nodes[failure.i].def.ID
		r.mu.Unlock()
		return nil, nil, failure
	}
	waiting = make([]int, len(nodes)) // upstreams not yet completed
	for _, i := range r.p.topo {
		if completed[i] {
			if nodes[i].passAll {
				_, passed[i], _ = r.scope(i, results, passed)
			}
			for _, d := range nodes[i].out {
				waiting[d]--
			}
		}
	}
	for _, i := range r.p.topo {
		waiting[i] += nodes[i].indeg
	}
	for i := range nodes {
		if !completed[i] && waiting[i] == 0 {
			ready = append(ready, i)
		}
	}
	return waiting, ready, nil
}

// failFast records the node that failed the execution and cancels the rest.
func (r *run) failFast(o *outcome) {
	r.mu.Lock()
	r.failed = r.p.nodes[o.i].def.ID
	r.mu.Unlock()
	r.cancel(errFailFast)
}

// runNode runs the attempts of node i until one succeeds, the retries are
// exhausted or the run is interrupted.
func (r *run) runNode(i int, inputs map[string]any) (o outcome) {
	defer r.containNodePanic(i, &o)
	pn := &r.p.nodes[i]
	r.mu.Lock()
	epoch := int32(min(r.attemptBase(), math.MaxInt32/2))
	r.mu.Unlock()
	var failed int32 // attempts that failed; an interrupted one does not count
	if r.failedBefore != nil {
		failed = r.failedBefore[i]
	}
	var last int32 // the attempt that ran last in this run (0: none)
	for {
		// Attempt numbers are epoch + failed attempts (docs/durability.md):
		// a retry starts only once the failure before it is journalled, so
		// the first attempt after a claim is numbered above every attempt
		// that may have run under an earlier epoch, journalled or not.
		attempt := epoch + failed
		if !r.acquire() {
			return r.interrupted(i, last)
		}
		last = attempt
		a := r.runAttempt(i, attempt, inputs)
		err, nodeTimeout := a.err, a.nodeTimeout
		if err == nil {
			return r.completed(i, attempt, a.res, a.started)
		}
		if r.ctx.Err() != nil {
			return r.interrupted(i, attempt)
		}
		xe := r.execError(pn, err, nodeTimeout)
		if failed++; failed >= pn.retry.MaxAttempts {
			status := store.NodeFailed
			if nodeTimeout {
				status = store.NodeTimedOut
			}
			r.nodeFailed(i, attempt, xe, status)
			return outcome{i: i, err: xe}
		}
		if !r.retryAfter(i, attempt, xe, failed) {
			return r.interrupted(i, attempt)
		}
	}
}

// attemptResult is what one attempt of a node returned: its result, or its
// error (nodeTimeout: the node's own timeout ended it), and when it started.
type attemptResult struct {
	res         map[string]any
	err         error
	nodeTimeout bool
	started     time.Time
}

// containNodePanic, deferred by runNode, turns a panic while running node
// i outside its attempts (attempt turns those into node errors) into the
// node's failure with CodePanic: the execution fails, not the process.
func (r *run) containNodePanic(i int, o *outcome) {
	p := recover()
	if p == nil {
		return
	}
	id := r.p.nodes[i].def.ID
	msg := r.redact.String(fmt.Sprint(p))
	r.e.log.Error("panic while running a node", "execution_id", r.id, "node", id, "panic", msg, "stack", string(debug.Stack()))
	xe := &store.ExecError{NodeID: id, Code: CodePanic, Message: "internal error: " + msg}
	*o = outcome{i: i, err: xe}
	defer func() {
		if p := recover(); p != nil { // recording the failure panicked too: it fails in memory only
			r.e.log.Error("panic while recording a node's panic", "execution_id", r.id, "node", id)
		}
	}()
	r.nodeFailed(i, 0, xe, store.NodeFailed)
}

// runAttempt runs one attempt of node i, holding a node slot it releases,
// under its RunNode span, and reports it to the Observer.
func (r *run) runAttempt(i int, attempt int32, inputs map[string]any) attemptResult {
	pn := &r.p.nodes[i]
	a, span := r.attemptInSlot(i, attempt, inputs)
	how := r.attemptOutcome(a.err, a.nodeTimeout)
	r.e.cfg.Observer.NodeAttempt(r.wf.Name, pn.def.ID, how, r.e.now().Sub(a.started))
	if span.IsRecording() {
		var xe *store.ExecError
		if how == OutcomeFailed || how == OutcomeTimedOut {
			xe = r.execError(pn, a.err, a.nodeTimeout)
		}
		r.endNodeSpan(span, pn.def.ID, attempt, how, xe)
	} else {
		span.End()
	}
	return a
}

// attemptInSlot starts the attempt of node i and runs it, releasing the
// node slot acquire took on every path: a panic here (see
// containNodePanic) must not keep the slot.
func (r *run) attemptInSlot(i int, attempt int32, inputs map[string]any) (a attemptResult, span trace.Span) {
	defer func() { <-r.e.sem }()
	a.started = r.nodeStarted(i, attempt)
	spanCtx, span := r.startNodeSpan(r.ctx, r.p.nodes[i].def.ID, attempt)
	a.res, a.err, a.nodeTimeout = r.attempt(spanCtx, i, attempt, inputs, a.started, span)
	return a, span
}

// completed records node i's result: the node fails instead if the result
// is over the execution's result budget.
func (r *run) completed(i int, attempt int32, res map[string]any, started time.Time) outcome {
	res = r.redactResult(res)
	if xe := r.chargeResult(&r.p.nodes[i], res); xe != nil {
		r.nodeFailed(i, attempt, xe, store.NodeFailed)
		return outcome{i: i, err: xe}
	}
	if journalled := r.nodeCompleted(i, attempt, res, started); journalled != nil {
		// Downstream nodes start once this node's result is
		// durable: a crash from then on never runs it again.
		<-journalled
	}
	return outcome{i: i, result: res}
}

// retryAfter records the failed attempt as retrying and waits out its
// backoff. It reports false when the run ends first (cancelled, or its
// deadline comes before the next attempt could start).
func (r *run) retryAfter(i int, attempt int32, xe *store.ExecError, failed int32) bool {
	wait := backoff(r.p.nodes[i].retry, failed)
	if journalled := r.nodeRetrying(i, attempt, xe, wait); journalled != nil {
		// The next attempt starts once this failure is durable, which
		// the attempt numbering relies on.
		<-journalled
	}
	d, late := wait, false // late: the run's deadline comes first
	if left := time.Until(r.deadline); left < d {
		d, late = left, true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		if late {
			r.cancel(errWorkflowTimeout)
			return false
		}
		return true
	case <-r.ctx.Done():
		return false
	}
}

// chargeResult adds the size of a result of pn to the execution's
// results, or returns the error that fails the node when they would pass
// Config.MaxResultBytes together (retrying would give the same result).
func (r *run) chargeResult(pn *planNode, res map[string]any) *store.ExecError {
	size := node.ValueSize(res)
	limit := r.e.cfg.MaxResultBytes
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.resultBytes+size > limit {
		return &store.ExecError{NodeID: pn.def.ID, Code: CodeResultTooLarge, Message: fmt.Sprintf(
			"node '%s' returned a result of about %d bytes; with the %d bytes of results before it the execution's results would exceed the %d bytes allowed (--max-result-bytes): return less, or store large data elsewhere and return a reference",
			pn.def.ID, size, r.resultBytes, limit)}
	}
	r.resultBytes += size
	return nil
}

// attempt runs one attempt of node i under spanCtx, r.ctx with the
// attempt's span (startNodeSpan). nodeTimeout reports that the node's own
// timeout (not the run's) stopped it.
func (r *run) attempt(spanCtx context.Context, i int, attempt int32, inputs map[string]any, started time.Time, span trace.Span) (res map[string]any, err error, nodeTimeout bool) {
	pn := &r.p.nodes[i]
	if !r.e.realClock {
		started = time.Now()
	}
	// The attempt ends at its own deadline or the run's, whichever comes
	// first, with the matching cause (the run has no timer: see run.ctx).
	deadline, cause := started.Add(pn.timeout), errNodeTimeout
	if r.deadline.Before(deadline) {
		deadline, cause = r.deadline, errWorkflowTimeout
	}
	ctx, cancel := context.WithDeadlineCause(spanCtx, deadline, cause)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			err = &node.Error{NodeID: pn.def.ID, Code: CodePanic, Message: fmt.Sprintf("internal error: %v", p)}
			r.e.log.Error("panic in node attempt", "execution_id", r.id, "node", pn.def.ID, "attempt", attempt, "panic", r.redact.String(fmt.Sprint(p)))
		}
		if err == nil || r.ctx.Err() != nil {
			return
		}
		switch c := context.Cause(ctx); {
		case errors.Is(c, errNodeTimeout):
			nodeTimeout = true
		case errors.Is(c, errWorkflowTimeout):
			// The run's deadline passed: end the run, so that the caller
			// sees the attempt interrupted, not failed.
			r.cancel(errWorkflowTimeout)
		}
	}()
	a := &node.Attempt{
		NodeID: pn.def.ID,
		Execution: node.ExecutionInfo{
			ID: r.id, Workflow: r.wf.Name, Version: r.wf.Version, Attempt: attempt,
		},
		Parameters:        r.req.Parameters,
		Inputs:            inputs,
		Context:           r.req.Context,
		RequiredResources: pn.def.RequiredResources,
		Log: func(level node.LogLevel, msg string, fields map[string]any) {
			r.nodeLog(i, attempt, storeLevel(level), msg, fields, span)
		},
		Cache:    r.cache,
		Limits:   r.e.cfg.Limits,
		Watchdog: r.e.cfg.Watchdog,
		Redact:   r.redact.String,
	}
	if r.e.cfg.Resources != nil && len(pn.def.RequiredResources) > 0 {
		sess := r.e.cfg.Resources.Session(r.id, r.req.Resources, r.redact)
		defer sess.Close()
		a.Resources = sess
		if r.lazy {
			a.Resources = barrierResources{sess, r}
		}
	}
	res, err = pn.prog.Run(ctx, a)
	return res, err, false
}

// execError describes a failed attempt of pn: the node, Starlark line:col,
// the cause, code and traceback, with secrets redacted. The runtime's
// *node.Error already says all that in its Message.
func (r *run) execError(pn *planNode, err error, nodeTimeout bool) *store.ExecError {
	xe := &store.ExecError{NodeID: pn.def.ID, Code: CodeNodeError}
	msg := fmt.Sprintf("node '%s' failed: %v", pn.def.ID, err)
	where := ""
	if ne, ok := errors.AsType[*node.Error](err); ok {
		if ne.Code != "" {
			xe.Code = ne.Code
		}
		if ne.Message != "" {
			msg = ne.Message
		}
		if ne.Line > 0 {
			where = fmt.Sprintf(" at %d:%d", ne.Line, ne.Col)
		}
		xe.Traceback = r.redact.String(ne.Traceback)
	}
	if nodeTimeout {
		xe.Code = CodeTimeout
		msg = fmt.Sprintf("node '%s' timed out after %s%s", pn.def.ID, pn.timeout, where)
	}
	xe.Message = clipText(r.redact.String(msg), maxErrorText)
	xe.Traceback = clipText(xe.Traceback, maxErrorText)
	return xe
}

// maxErrorText bounds the message and the traceback of a node error, so
// that events and executions carrying them stay small (fail() with a
// huge message, deep recursion).
const maxErrorText = 16 << 10

// clipText cuts s to at most limit bytes (at a UTF-8 boundary), with a
// note giving its length.
func clipText(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	note := fmt.Sprintf(" … [truncated: %d bytes]", len(s))
	cut := max(limit-len(note), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + note
}

// interrupted ends node i stopped by the run's context after attempt
// attempts (0: it never started and will be reported SKIPPED).
func (r *run) interrupted(i int, attempt int32) outcome {
	o := outcome{i: i, interrupted: true}
	if attempt == 0 {
		return o
	}
	cause := context.Cause(r.ctx)
	status, code, msg := store.NodeCancelled, CodeCancelled, "execution cancelled"
	switch {
	case errors.Is(cause, errWorkflowTimeout):
		status, code, msg = store.NodeTimedOut, CodeTimeout, fmt.Sprintf("workflow timed out after %s", r.timeout)
	case errors.Is(cause, ErrClosed):
		msg = "gateway shutting down"
	case errors.Is(cause, errFailFast):
		r.mu.Lock()
		msg = fmt.Sprintf("cancelled because node '%s' failed", r.failed)
		r.mu.Unlock()
	}
	o.err = &store.ExecError{NodeID: r.p.nodes[i].def.ID, Code: code, Message: msg}
	r.nodeFailed(i, attempt, o.err, status)
	return o
}

// redactResult applies the redactor to a node result.
func (r *run) redactResult(res map[string]any) map[string]any {
	if res == nil {
		return map[string]any{}
	}
	if m, ok := r.redact.Value(res).(map[string]any); ok {
		return m
	}
	return map[string]any{}
}

// The node transitions: each updates the node state and emits its event in
// one journal item.

func (r *run) nodeStarted(i int, attempt int32) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.e.now()
	s := r.x.Nodes[i]
	if s.StartTime.IsZero() {
		s.StartTime = now
	}
	s.Status, s.Attempts, s.Error = store.NodeRunning, attempt, nil
	r.commitLocked(&store.Event{Kind: store.EventNodeStarted, Time: now, NodeID: s.NodeID, Attempt: attempt},
		r.p.self(i), false, nil)
	return now
}

// nodeCompleted returns, for a durable run (not lazy) and a node with
// downstream nodes, a channel closed once the completion is journalled.
func (r *run) nodeCompleted(i int, attempt int32, res map[string]any, started time.Time) (journalled chan struct{}) {
	if r.durable && !r.lazy && len(r.p.nodes[i].out) > 0 {
		journalled = make(chan struct{})
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.e.now()
	s := r.x.Nodes[i]
	s.Status, s.EndTime, s.Result, s.Error = store.NodeCompleted, now, res, nil
	r.commitLocked(&store.Event{
		Kind: store.EventNodeCompleted, Time: now, NodeID: s.NodeID, Attempt: attempt,
		Result: res, Duration: now.Sub(started),
	}, r.p.self(i), false, journalled)
	return journalled
}

func (r *run) nodeFailed(i int, attempt int32, xe *store.ExecError, status store.NodeStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.e.now()
	s := r.x.Nodes[i]
	s.Status, s.EndTime, s.Error = status, now, xe
	if attempt > s.Attempts {
		s.Attempts = attempt
	}
	r.commitLocked(&store.Event{Kind: store.EventNodeFailed, Time: now, NodeID: s.NodeID, Attempt: attempt, Error: xe},
		r.p.self(i), false, nil)
}

// nodeRetrying returns, for a durable run, a channel closed once the
// failure is journalled.
func (r *run) nodeRetrying(i int, attempt int32, xe *store.ExecError, wait time.Duration) (journalled chan struct{}) {
	if r.durable {
		journalled = make(chan struct{})
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.e.now()
	s := r.x.Nodes[i]
	s.Status, s.Error = store.NodeRetrying, xe
	r.commitLocked(&store.Event{
		Kind: store.EventNodeRetrying, Time: now, NodeID: s.NodeID, Attempt: attempt,
		Error: xe, Backoff: wait,
	}, r.p.self(i), false, journalled)
	return journalled
}

func (r *run) nodeLog(i int, attempt int32, level store.LogLevel, msg string, fields map[string]any, span trace.Span) {
	// The runtime bounded the line; redaction may lengthen it a little.
	msg = clipText(r.redact.String(msg), r.e.cfg.Limits.MaxLogLineBytes+maxErrorText)
	if len(fields) > 0 {
		if m, ok := r.redact.Value(fields).(map[string]any); ok {
			fields = m
		} else {
			fields = nil
		}
	}
	id := r.p.nodes[i].def.ID
	if lv := slogLevel(level); !r.e.cfg.NoNodeLogs && r.e.log.Enabled(context.Background(), lv) {
		// The ids are top-level attributes, as on every line about an
		// execution; the node's own fields are in the group node_log, where
		// they cannot shadow them.
		attrs := make([]any, 0, len(fields))
		for k, v := range fields {
			attrs = append(attrs, slog.Any(k, v))
		}
		ids := []any{slog.String("execution_id", r.id), slog.String("node", id), slog.Int("attempt", int(attempt))}
		ids = append(ids, traceAttrs(span)...)
		r.e.log.Log(context.Background(), lv, msg, append(ids, slog.Group("node_log", attrs...))...)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.commitLocked(&store.Event{
		Kind: store.EventNodeLog, Time: r.e.now(), NodeID: id, Attempt: attempt,
		Level: level, Message: msg, Fields: fields,
	}, nil, false, nil)
}

// storeLevel returns the journal's level of a node log line.
func storeLevel(l node.LogLevel) store.LogLevel {
	switch l {
	case node.LogDebug:
		return store.LogDebug
	case node.LogWarning:
		return store.LogWarning
	case node.LogError:
		return store.LogError
	default:
		return store.LogInfo
	}
}

func slogLevel(l store.LogLevel) slog.Level {
	switch l {
	case store.LogDebug:
		return slog.LevelDebug
	case store.LogWarning:
		return slog.LevelWarn
	case store.LogError:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// finish decides the final status, marks nodes that never ran SKIPPED and
// emits the terminal event. It waits until that event is journalled.
func (r *run) finish(failure *outcome) {
	if r.counted { // before the terminal event, so its watchers may start again
		r.e.mu.Lock()
		r.e.uncountLocked(r)
		r.e.mu.Unlock()
	}
	r.mu.Lock()
	var cause error
	if r.ctx.Err() != nil {
		cause = context.Cause(r.ctx)
	}
	if r.fenced || errors.Is(cause, ErrFenced) {
		// Lost to another process (or this one lost its lease): stop
		// without writing or publishing anything, whatever its nodes
		// did; the new owner finishes.
		r.fenceLocked()
		r.mu.Unlock()
		return
	}
	status, xe, release := r.endStatusLocked(failure, cause)
	if release {
		r.releaseLocked()
		r.mu.Unlock()
		return
	}
	journalled := r.endLocked(status, xe)
	r.mu.Unlock()
	if journalled != nil {
		<-journalled
	}
}

// endStatusLocked decides how the run ends, given its first failed node
// (if any) and why its context ended (if it did): the final status and
// error, or release for a durable run interrupted by Close, which is left
// unfinished for recovery. r.mu must be held.
func (r *run) endStatusLocked(failure *outcome, cause error) (status store.ExecutionStatus, xe *store.ExecError, release bool) {
	allDone := true
	for _, s := range r.x.Nodes {
		allDone = allDone && s.Status == store.NodeCompleted
	}
	switch {
	case failure != nil:
		status, xe = store.ExecutionFailed, failure.err
		if xe.Code == CodeTimeout {
			status = store.ExecutionTimedOut
		}
	case allDone:
		status = store.ExecutionCompleted
	case errors.Is(cause, errWorkflowTimeout):
		status = store.ExecutionTimedOut
		xe = &store.ExecError{Code: CodeTimeout, Message: fmt.Sprintf("workflow timed out after %s", r.timeout)}
		for _, s := range r.x.Nodes {
			if s.Status == store.NodeTimedOut {
				xe.NodeID = s.NodeID
				xe.Message = fmt.Sprintf("workflow timed out after %s while node '%s' was running", r.timeout, s.NodeID)
				break
			}
		}
	case errors.Is(cause, ErrClosed):
		if r.durable {
			return 0, nil, true
		}
		status = store.ExecutionCancelled
		xe = &store.ExecError{Code: CodeCancelled, Message: "gateway shutting down"}
	case errors.Is(cause, errCancelled):
		status = store.ExecutionCancelled
		xe = &store.ExecError{Code: CodeCancelled, Message: "execution cancelled"}
	default:
		status = store.ExecutionFailed
		xe = &store.ExecError{Code: CodeNodeError, Message: fmt.Sprintf("execution stopped: %v", cause)}
	}
	return status, xe, false
}

// releaseLocked leaves a durable run interrupted by Close unfinished in the
// journal, without an owner, so that recovery (here after a restart, or by
// another replica at once) resumes it. r.mu must be held.
func (r *run) releaseLocked() {
	r.err = ErrClosed
	r.closeSubsLocked(fmt.Errorf("execution %s: %w", r.id, ErrClosed))
	h := *r.x
	h.Nodes, h.Request, h.Owner = nil, store.ExecutionRequest{}, ""
	r.e.journal.enqueue(&journalItem{run: r, header: &h})
}

// endLocked marks the nodes that never ran SKIPPED, sets the final state
// and commits the terminal event. For a durable run it returns a channel
// closed once that event is journalled. r.mu must be held.
func (r *run) endLocked(status store.ExecutionStatus, xe *store.ExecError) (journalled chan struct{}) {
	now := r.e.now()
	var skipped []int
	for i, s := range r.x.Nodes {
		if s.Status == store.NodePending {
			s.Status = store.NodeSkipped
			skipped = append(skipped, i)
		}
	}
	r.x.Status, r.x.Error, r.x.EndTime = status, xe, now
	r.final = r.x // never modified from here on
	if r.durable {
		journalled = make(chan struct{})
	}
	r.commitLocked(&store.Event{Kind: terminalKind(status), Time: now, Execution: r.final}, skipped, true, journalled)
	return journalled
}

func terminalKind(s store.ExecutionStatus) store.EventKind {
	switch s {
	case store.ExecutionCompleted:
		return store.EventExecutionCompleted
	case store.ExecutionCancelled:
		return store.EventExecutionCancelled
	case store.ExecutionTimedOut:
		return store.EventExecutionTimedOut
	default:
		return store.EventExecutionFailed
	}
}

// copyExecution copies x and its node states; result maps are shared.
func copyExecution(x *store.Execution) *store.Execution {
	c := *x
	states := make([]store.NodeState, len(x.Nodes))
	c.Nodes = make([]*store.NodeState, len(x.Nodes))
	for i, s := range x.Nodes {
		states[i] = *s
		c.Nodes[i] = &states[i]
	}
	return &c
}

// attemptBase is the number of the first attempt of each node in this run:
// the epoch, or for an execution taken from the backlog before it ever
// started, the epoch less its claim, so that its first run is attempt 1
// like that of an execution run where it was started. Either way it is
// above every attempt an earlier owner may have run: an earlier owner of a
// never-started execution was itself a claim from the backlog, at an
// epoch lower than this one. r.mu is held.
func (r *run) attemptBase() int64 {
	if r.queued {
		return r.x.Epoch - 1
	}
	return r.x.Epoch
}

// epoch returns the epoch under which this process holds the execution
// (store.Execution.Epoch of its creation or claim); it never changes
// during the run.
func (r *run) epoch() int64 { return r.x.Epoch }
