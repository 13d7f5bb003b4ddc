package executor

import (
	"context"
	"errors"
	"fmt"
	"go.opentelemetry.io/otel/trace"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/kailash-gateway/kgw/executor/node"
	"github.com/kailash-gateway/kgw/secrets"
	"github.com/kailash-gateway/kgw/store"
)

// Defaults of DESIGN.md §3 and §4 and of Config.
const (
	// DefaultWorkflowTimeout bounds an execution whose request and workflow
	// set no timeout.
	DefaultWorkflowTimeout = 300 * time.Second
	// DefaultNodeTimeout bounds each attempt of a node that sets no timeout.
	DefaultNodeTimeout = 30 * time.Second
	// DefaultMaxConcurrentNodes is the default of Config.MaxConcurrentNodes.
	DefaultMaxConcurrentNodes = 64
	// DefaultMaxParallelPerExecution is the default of
	// Config.MaxParallelPerExecution.
	DefaultMaxParallelPerExecution = 8
	// DefaultSubscriberBuffer is the default of Config.SubscriberBuffer.
	DefaultSubscriberBuffer = 256
	// DefaultWorkflowCacheEntries is the default of
	// Config.WorkflowCacheEntries.
	DefaultWorkflowCacheEntries = 1000
	// DefaultHeartbeatInterval is the default of Config.HeartbeatInterval.
	DefaultHeartbeatInterval = 5 * time.Second
	// DefaultStaleAfter is the default of Config.StaleAfter.
	DefaultStaleAfter = 30 * time.Second
	// DefaultRecoveryInterval is the default of Config.RecoveryInterval.
	DefaultRecoveryInterval = 15 * time.Second
	// DefaultRetention is the default of Config.Retention.
	DefaultRetention = 7 * 24 * time.Hour
	// DefaultMaxResultBytes is the default of Config.MaxResultBytes: 16
	// MiB leaves room for the rest of the terminal event below gRPC's
	// 64 MiB send limit.
	DefaultMaxResultBytes = 16 << 20
	// DefaultMaxNodeRestarts is the default of Config.MaxNodeRestarts.
	DefaultMaxNodeRestarts = 3
	// DefaultMaxConcurrentExecutions is the default of
	// Config.MaxConcurrentExecutions: four times DefaultMaxConcurrentNodes,
	// so that node slots, not executions, bound a replica whose
	// executions mostly wait on I/O, while a replica flooded with starts
	// leaves the excess in the shared backlog for the others.
	DefaultMaxConcurrentExecutions = 4 * DefaultMaxConcurrentNodes
	// DefaultBacklogPollInterval is the default of
	// Config.BacklogPollInterval.
	DefaultBacklogPollInterval = 2 * time.Second
)

// Retry defaults of DESIGN.md §3 and the size of the finished-run cache.
const (
	defaultInitialBackoff = time.Second
	defaultMaxBackoff     = 60 * time.Second
	defaultMultiplier     = 2.0
	recentRuns            = 256 // finished runs kept in memory for Get/Subscribe
)

// A ResourceBroker lends resources to node attempts. It is defined here, by
// its consumer; package resources implements it. Safe for concurrent use.
type ResourceBroker interface {
	// Session returns the resources of one node attempt of execution execID,
	// built from the request's specs. Values the broker resolves (secrets)
	// are registered with redact so they never leave the execution.
	Session(execID string, specs map[string]store.ResourceSpec, redact *secrets.Redactor) AttemptResources
}

// AttemptResources are the resources of one node attempt: the runtime's
// node.ResourceOpener (Open may be called from several goroutines of the
// attempt, and a name the request lacks gives node.ErrNotProvided), and
// Close, called once when the attempt ends to release everything Open
// lent.
type AttemptResources interface {
	node.ResourceOpener
	// Close releases the handles of the attempt.
	Close()
}

// Config configures an Executor. Zero fields take the documented defaults.
type Config struct {
	// Store journals executions and serves history. Nil means every run is
	// ephemeral (as if its workflow disabled the journal).
	Store store.Store
	// Resources opens resource handles for nodes; nil means no resources.
	Resources ResourceBroker
	// MaxConcurrentNodes bounds node attempts running at once across all
	// executions (default 64).
	MaxConcurrentNodes int
	// MaxParallelPerExecution bounds nodes running at once in one execution
	// (default 8).
	MaxParallelPerExecution int
	// MaxConcurrentExecutions bounds the journalled executions this
	// process runs at once (default DefaultMaxConcurrentExecutions). Start
	// at the limit journals the execution without an owner (PENDING): the
	// store's backlog, from which every process sharing the store claims
	// work while it has free slots (store.ClaimQueued). Execute and the
	// executions taken back at start-up run at once but hold slots too.
	// Executions whose workflow disables the journal are not counted.
	MaxConcurrentExecutions int
	// BacklogPollInterval is how often a process with free slots looks
	// for queued executions when no notification woke it (default 2 s):
	// the fallback for stores or poolers that do not deliver
	// notifications.
	BacklogPollInterval time.Duration
	// SubscriberBuffer is how many events a subscriber may fall behind the
	// live execution before it is closed with ErrLagging (default 256).
	SubscriberBuffer int
	// WorkflowCacheEntries bounds each workflow's workflow_cache (default 1000).
	WorkflowCacheEntries int
	// Limits bound every node attempt; zero fields take the runtime defaults.
	Limits node.Limits
	// Watchdog, if not nil, watches the heap while node attempts run and
	// stops the attempt that has built the most when the heap passes its
	// limit. The caller creates it and closes it after Close.
	Watchdog *node.Watchdog
	// Owner identifies this process in the journal (Execution.Owner) and
	// in heartbeats: its replica name. It must be unique among the live
	// processes on the store; the default (host name, process id and a
	// random part) is. A process started under the owner of an earlier
	// one takes that one's unfinished executions back at its first
	// Recover (store.ReclaimExecutions), so two live processes must never
	// share it.
	Owner string
	// HeartbeatInterval is how often the Executor records in the store
	// that its owner is alive (default 5 s). Heart-beating starts in New.
	HeartbeatInterval time.Duration
	// StaleAfter is how long an owner may go without a heartbeat before
	// other processes take over its unfinished executions (default 30 s):
	// the lease timeout. It must be well above HeartbeatInterval. A
	// process whose heartbeats have all failed for StaleAfter minus one
	// HeartbeatInterval stops its runs itself (ErrFenced) and is not
	// Ready until a heartbeat succeeds again; it then releases those
	// executions so that any process resumes them.
	StaleAfter time.Duration
	// RecoveryInterval is how often, after Recover, the Executor looks for
	// unfinished executions of stale owners (default 15 s).
	RecoveryInterval time.Duration
	// RecoverAllOnStart makes the first Recover take over every unfinished
	// execution of any other owner at once, without waiting for that owner
	// to go stale. Set it when this process is the only user of its store
	// (the embedded SQLite store), so that a restart resumes at once what
	// the previous process left. Never set it on a store shared by
	// replicas: it would take over executions that a live replica runs.
	RecoverAllOnStart bool
	// MaxResultBytes bounds the results of one execution together (about
	// their JSON size, see node.ValueSize), so that the execution with
	// its results fits in one gRPC message. A node whose result would
	// pass it fails with CodeResultTooLarge, and so does the execution.
	// Default DefaultMaxResultBytes.
	MaxResultBytes int
	// MaxNodeRestarts is how many times an execution may be interrupted
	// by the stop of the gateway running it without a release (a crash,
	// SIGKILL, an out-of-memory kill; store.Execution.Restarts) and still
	// be resumed. The next recovery fails it with CodeRestartLimit
	// instead, so that a node that crashes the process at every start
	// cannot crash it forever. 0 means DefaultMaxNodeRestarts; negative
	// means no limit.
	MaxNodeRestarts int
	// Retention is how long finished executions and their events are kept
	// (default 7 days); a negative value keeps them forever. Deletion runs
	// after Recover, periodically, and on DeleteExpired.
	Retention time.Duration
	// MaxRunsPerCaller bounds the executions of one caller (Request.Caller)
	// that this process started and that have not finished; 0 means no
	// limit. Starting one more fails with ErrCallerLimit. Executions resumed
	// after a restart do not count.
	MaxRunsPerCaller int
	// AuthorizeResume, when set, is asked before an execution claimed after
	// a restart resumes; an error fails the execution instead (its message
	// is the execution's error).
	AuthorizeResume func(ctx context.Context, caller string, resources map[string]store.ResourceSpec) error
	// Logger receives node log lines and executor diagnostics
	// (default slog.Default()).
	Logger *slog.Logger
	// Now returns the current time (default time.Now).
	Now func() time.Time
	// NewRedactor returns the redactor of a new execution (default
	// secrets.NewRedactor). The resource broker adds to it the secrets it
	// resolves for the execution (ResourceBroker.Session); node results,
	// log lines and error texts pass through it.
	NewRedactor func() *secrets.Redactor
	// Observer receives execution, node attempt and journal measurements
	// (default: none).
	Observer Observer
	// NoNodeLogs keeps node log lines out of Logger; they remain events.
	NoNodeLogs bool
}

// Request asks the Executor to run one workflow version.
type Request struct {
	// Workflow is the version to run, as stored (its Name and Version are
	// journalled with the execution).
	Workflow *store.Workflow
	// Parameters become variables of every node and its `parameters` dict.
	Parameters map[string]any
	// Context is visible to every node as `context`.
	Context map[string]any
	// Resources are the request's resource specs by name.
	Resources map[string]store.ResourceSpec
	// Timeout bounds the whole execution; 0 takes the workflow's timeout,
	// which defaults to 300 s.
	Timeout time.Duration
	// IdempotencyKey, when set, makes a second request of the same Caller
	// with the same key attach to the first execution instead of running
	// the workflow again.
	IdempotencyKey string
	// Caller is the authenticated principal ("" = anonymous).
	Caller string
	// Fingerprint identifies the request as its caller wrote it (see
	// store.ExecutionRequest.Fingerprint). A request whose IdempotencyKey
	// names an execution with another fingerprint is refused with an
	// *IdempotencyMismatchError. An execution journalled without a
	// fingerprint (by an older gateway) accepts any request.
	Fingerprint string
	// Trace is the caller's span (the gRPC server span): the execution's
	// span is its child, or with TraceLink a new root linked to it (for a
	// run that outlives the call).
	Trace     trace.SpanContext
	TraceLink bool
	// OnCaller makes Execute run the execution on its caller's goroutine
	// instead of handing it to a worker and waiting, as it does when ctx
	// can never end: two goroutine switches fewer per execution. Execute
	// then returns only once the run has ended, even when ctx ends first
	// (with ctx's error, or the result, which the caller may ignore). For
	// callers whose goroutines are reused, so that their stacks have grown
	// to what the Starlark interpreter needs: the gRPC server's
	// ExecuteWorkflow on its stream workers, whose client has gone when
	// its context ends. Measured through gRPC (tools/loadgen, one caller,
	// three paired runs against handing the run to a worker): no-op p50
	// 0.90x, gateway CPU per call 0.93x.
	OnCaller bool
}

// An Executor runs workflows. It is safe for concurrent use. Close must be
// called to stop it; it waits for every goroutine the Executor started.
type Executor struct {
	// watchers are the subscriptions reading an execution from the store
	// (it runs elsewhere), woken by the store's event notifications.
	watchers remoteWatchers
	// onWorkflow is called with the name of a workflow that another process
	// registered or deleted (store.Listener); see OnWorkflowChange.
	onWorkflow atomic.Pointer[func(name string)]
	cfg        Config
	st         store.Store
	log        *slog.Logger
	now        func() time.Time
	// realClock: now is time.Now, so its readings may also serve timers
	// (which always use the real clock).
	realClock bool
	sem       chan struct{} // global node slots
	journal   *journal      // nil without a store
	progs     programCache
	plans     planCache

	baseCtx    context.Context
	baseCancel context.CancelCauseFunc
	wg         sync.WaitGroup // runs
	handoff    chan *run      // to an idle worker (see spawn)
	workers    sync.WaitGroup // run goroutines
	closeOnce  sync.Once

	// Background loops (heartbeat; recovery and retention after Recover).
	loopCtx    context.Context
	loopCancel context.CancelFunc
	loops      sync.WaitGroup
	beating    chan struct{} // closed after the first heartbeat attempt
	recovering sync.Once     // starts the maintenance loop
	firstPass  bool          // guarded by mu: the first Recover has claimed
	// leaseLost is set while this process cannot renew its lease (see
	// heartbeatLoop): it has stopped its runs and is not ready.
	leaseLost atomic.Bool
	// backlogWake wakes the backlog loop (a slot freed, work queued).
	backlogWake chan struct{}
	// scanNow wakes the maintenance loop for a lease scan (just elected).
	scanNow chan struct{}
	// clockBase is a monotonic origin for leaderUntil.
	clockBase time.Time
	// leaderUntil is, as time since clockBase, when this process's hold
	// on the housekeeping lease ends unless renewed (see elect).
	leaderUntil atomic.Int64

	mu     sync.Mutex
	closed bool
	slots  int // slots of MaxConcurrentExecutions in use or reserved
	// claiming counts the slots reserved by claims from the backlog in
	// flight; claimDone (on mu) is signalled when one ends.
	claiming  int
	claimDone *sync.Cond
	// claimMu orders claims from the backlog (until their runs are
	// admitted) with cancels of queued executions (cancelQueued).
	claimMu sync.Mutex
	// backlogMaybe: the backlog may hold work (see dropSlotLocked).
	backlogMaybe atomic.Bool
	runs         map[string]*run // live and recently finished, by id
	byKey        map[string]*run // idempotency index: caller + "\x00" + key
	// perCaller counts the runs started here that have not finished, by
	// caller, when Config.MaxRunsPerCaller is set.
	perCaller map[string]int
	recent    []*run // ring of finished runs, oldest first
	caches    map[string]*node.WorkflowCache
}

// New returns an Executor configured by cfg. It starts the journal writer
// goroutine when cfg.Store is set.
func New(cfg Config) *Executor {
	cfg = cfg.withDefaults()
	realClock := cfg.Now == nil
	if realClock {
		cfg.Now = time.Now
	}
	e := &Executor{
		cfg:       cfg,
		realClock: realClock,
		st:        cfg.Store,
		log:       cfg.Logger,
		now:       cfg.Now,
		sem:       make(chan struct{}, cfg.MaxConcurrentNodes),
		runs:      make(map[string]*run),
		byKey:     make(map[string]*run),
		perCaller: make(map[string]int),
		caches:    make(map[string]*node.WorkflowCache),
	}
	e.claimDone = sync.NewCond(&e.mu)
	e.progs.m = make(map[progKey]*node.Program)
	e.plans.m = make(map[planKey]*plan)
	e.baseCtx, e.baseCancel = context.WithCancelCause(context.Background())
	e.handoff = make(chan *run)
	e.loopCtx, e.loopCancel = context.WithCancel(context.Background())
	e.beating = make(chan struct{})
	e.backlogWake = make(chan struct{}, 1)
	e.scanNow = make(chan struct{}, 1)
	e.clockBase = time.Now()
	e.startStoreLoops()
	return e
}

// withDefaults returns cfg with every unset limit, interval and hook set to
// its default (Now is left to New, which notes whether it was set).
func (cfg Config) withDefaults() Config {
	if cfg.MaxConcurrentNodes <= 0 {
		cfg.MaxConcurrentNodes = DefaultMaxConcurrentNodes
	}
	if cfg.MaxParallelPerExecution <= 0 {
		cfg.MaxParallelPerExecution = DefaultMaxParallelPerExecution
	}
	if cfg.MaxConcurrentExecutions <= 0 {
		cfg.MaxConcurrentExecutions = DefaultMaxConcurrentExecutions
	}
	if cfg.BacklogPollInterval <= 0 {
		cfg.BacklogPollInterval = DefaultBacklogPollInterval
	}
	if cfg.SubscriberBuffer <= 0 {
		cfg.SubscriberBuffer = DefaultSubscriberBuffer
	}
	if cfg.WorkflowCacheEntries <= 0 {
		cfg.WorkflowCacheEntries = DefaultWorkflowCacheEntries
	}
	if cfg.Owner == "" {
		cfg.Owner = defaultOwner()
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = DefaultStaleAfter
	}
	if cfg.RecoveryInterval <= 0 {
		cfg.RecoveryInterval = DefaultRecoveryInterval
	}
	if cfg.Retention == 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.Limits.MaxLogLineBytes <= 0 {
		cfg.Limits.MaxLogLineBytes = node.DefaultMaxLogLineBytes
	}
	if cfg.MaxResultBytes <= 0 {
		cfg.MaxResultBytes = DefaultMaxResultBytes
	}
	if cfg.MaxNodeRestarts == 0 {
		cfg.MaxNodeRestarts = DefaultMaxNodeRestarts
	}
	if cfg.NewRedactor == nil {
		cfg.NewRedactor = secrets.NewRedactor
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	return cfg
}

// startStoreLoops starts, with a store, the journal writer, the heartbeat
// loop and the loop that follows the store's notifications (or its cancel
// relay); without one, nothing needs a heartbeat before executions start.
func (e *Executor) startStoreLoops() {
	if e.st == nil {
		close(e.beating)
		return
	}
	e.journal = newJournal(e.st, e.log, e.cfg.Observer)
	e.loops.Add(1)
	go e.heartbeatLoop()
	if l, ok := e.st.(store.Listener); ok {
		e.loops.Add(1)
		go e.listen(l)
	} else if relay, ok := e.st.(store.CancelRelay); ok {
		e.loops.Add(1)
		go e.listenCancels(relay)
	}
}

// Execute runs req and waits for the end. A workflow that fails is not an
// error: the returned execution has status FAILED (or CANCELLED, TIMED_OUT)
// and an Error. Errors are for requests that cannot run (ErrInvalidWorkflow,
// ErrClosed, a journal failure) and for ctx ending first, in which case the
// run continues and can be followed with Get or Subscribe (with
// Request.OnCaller, Execute returns only after the run). The returned
// execution is shared with other waiters and the terminal event: it must
// not be modified.
func (e *Executor) Execute(ctx context.Context, req *Request) (*store.Execution, error) {
	// A context that can never end (context.Background, as embedders and
	// benchmarks use) cannot make Execute return before the run ends, so
	// the run may as well run on this goroutine: that saves handing it to
	// a worker and back, two goroutine switches per execution.
	// Request.OnCaller asks for the same.
	r, id, mine, err := e.start(ctx, req, ctx.Done() == nil || (req != nil && req.OnCaller), true)
	if err != nil {
		return nil, err
	}
	if mine {
		r.loop()
		r, id, err = e.attachKey(ctx, r, req)
		if err != nil {
			return nil, err
		}
	}
	if r == nil { // attached to an execution this process does not run
		return e.waitStored(ctx, id)
	}
	x, err := r.wait(ctx)
	if errors.Is(err, ErrFenced) {
		// Lost to another process: wait for the end it journals.
		return e.waitStored(ctx, id)
	}
	return x, err
}

// Start starts req and returns the execution id at once. The run belongs to
// the Executor and continues after ctx ends; ctx bounds only the start
// (journalling the new execution). With an IdempotencyKey already used by
// req.Caller it returns the existing execution's id. When this process
// already runs Config.MaxConcurrentExecutions journalled executions, the
// execution is queued in the store instead (status PENDING, no owner) and
// runs on the first process sharing the store that has a free slot.
func (e *Executor) Start(ctx context.Context, req *Request) (string, error) {
	_, id, _, err := e.start(ctx, req, false, false)
	return id, err
}

// Get returns the current state of an execution: from memory while it runs
// here (and shortly after), else from the store. Unknown ids give an error
// satisfying errors.Is(err, store.ErrNotFound). The returned value is a copy;
// its result maps are shared and must not be modified.
func (e *Executor) Get(ctx context.Context, id string) (*store.Execution, error) {
	if r := e.lookup(id); r != nil {
		return r.snapshot(), nil
	}
	if e.st == nil {
		return nil, fmt.Errorf("get execution %s: %w", id, store.ErrNotFound)
	}
	x, err := e.st.GetExecution(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("get execution %s: %w", id, err)
	}
	return x, nil
}

// Cancel cancels a running execution and waits until it has ended (running
// nodes see their context cancelled; the status becomes CANCELLED), or until
// ctx ends. Cancelling a finished execution returns it unchanged. An
// unfinished execution run by another process is cancelled through the
// store when it relays cancel requests (store.CancelRelay, PostgreSQL):
// Cancel then waits until the store shows it ended; other stores give
// ErrNotLocal. An execution that no process runs (queued in the backlog,
// or released) is ended CANCELLED in the store at once. As with
// Execute, the returned execution must not be modified.
func (e *Executor) Cancel(ctx context.Context, id string) (*store.Execution, error) {
	if r := e.lookup(id); r != nil {
		r.cancel(errCancelled)
		return r.wait(ctx)
	}
	x, err := e.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("cancel: %w", err)
	}
	if x.Status.Terminal() {
		return x, nil
	}
	if x.Owner == "" { // queued in the backlog, or released: nobody runs it
		if final, err := e.cancelQueued(ctx, id); err != nil || final != nil {
			return final, err
		}
		if r := e.lookup(id); r != nil { // claimed here meanwhile
			r.cancel(errCancelled)
			return r.wait(ctx)
		}
	}
	relay, ok := e.st.(store.CancelRelay)
	if !ok {
		return x, fmt.Errorf("cancel execution %s: %w", id, ErrNotLocal)
	}
	return e.cancelRemote(ctx, relay, id)
}

// cancelRemote asks the process that runs execution id to cancel it
// (store.CancelRelay) and waits until the store shows it ended. The
// request is repeated every second, so that a lost notification or a
// takeover by another process delays the cancel but does not lose it.
func (e *Executor) cancelRemote(ctx context.Context, relay store.CancelRelay, id string) (*store.Execution, error) {
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	var sent time.Time
	for {
		if r := e.lookup(id); r != nil { // taken over by this process meanwhile
			r.cancel(errCancelled)
			return r.wait(ctx)
		}
		if time.Since(sent) >= time.Second {
			if err := relay.RequestCancel(ctx, id); err != nil {
				return nil, fmt.Errorf("cancel execution %s: %w", id, err)
			}
			sent = time.Now()
		}
		select {
		case <-poll.C:
		case <-ctx.Done():
			return nil, fmt.Errorf("cancel execution %s: %w", id, ctx.Err())
		}
		x, err := e.st.GetExecution(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("cancel: %w", err)
		}
		if x.Status.Terminal() {
			return x, nil
		}
		if x.Owner == "" { // released into the backlog meanwhile
			if final, err := e.cancelQueued(ctx, id); err != nil || final != nil {
				return final, err
			}
		}
	}
}

// listenCancels cancels the local runs named by cancel requests from
// other processes until Close.
func (e *Executor) listenCancels(relay store.CancelRelay) {
	defer e.loops.Done()
	_ = relay.ListenCancels(e.loopCtx, func(id string) {
		if r := e.lookup(id); r != nil {
			r.cancel(errCancelled)
		}
	})
}

// listen follows the notifications of a store shared with other processes
// until Close: cancel requests for local runs, and new events of executions
// watched here through the store.
func (e *Executor) listen(l store.Listener) {
	defer e.loops.Done()
	_ = l.Listen(e.loopCtx, store.Notifications{
		Cancel: func(id string) {
			if r := e.lookup(id); r != nil {
				r.cancel(errCancelled)
			}
		},
		Events:  e.watchers.wake,
		Backlog: e.backlogQueued,
		Connected: func(up bool) {
			e.watchers.listening.Store(up)
			if up {
				e.backlogQueued() // what was queued while not listening
			}
		},
		Workflows: func(name string) {
			if fn := e.onWorkflow.Load(); fn != nil {
				(*fn)(name)
			}
		},
	})
}

// OnWorkflowChange sets the function called with the name of every workflow
// registered or deleted through the store by any process, when the store
// announces them (store.Listener); it replaces the previous one. fn must
// not block.
func (e *Executor) OnWorkflowChange(fn func(name string)) {
	e.onWorkflow.Store(&fn)
}

// Close stops accepting work (Start then fails with ErrClosed), stops the
// heartbeat, recovery and retention loops, lets running executions finish
// until ctx ends, then interrupts the rest, and waits for every goroutine of
// the Executor, including the journal writer. Durable runs interrupted by
// Close are left unfinished in the journal without an owner, so that
// recovery (of this store's next process, or at once of another replica)
// resumes them; the others end CANCELLED. Close returns ctx's error if it
// had to interrupt runs. It may be called more than once.
func (e *Executor) Close(ctx context.Context) error {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()

	drained := make(chan struct{})
	go func() { // waited for below on every path
		e.wg.Wait()
		close(drained)
	}()
	var err error
	select {
	case <-drained:
	case <-ctx.Done():
		err = ctx.Err()
		e.interruptRuns()
		<-drained
	}
	e.baseCancel(ErrClosed) // idle workers exit
	e.workers.Wait()
	e.stopLoops() // heart-beating until here keeps draining runs owned
	e.resignLeader()
	e.closeOnce.Do(func() {
		if e.journal != nil {
			e.journal.close()
		}
	})
	return err
}

// interruptRuns cancels every run with ErrClosed. Called once e is
// closed, when no run can be added any more.
func (e *Executor) interruptRuns() {
	e.mu.Lock()
	runs := make([]*run, 0, len(e.runs))
	for _, r := range e.runs {
		runs = append(runs, r)
	}
	e.mu.Unlock()
	for _, r := range runs {
		r.cancel(ErrClosed)
	}
}

// Results returns the execution result of DESIGN.md §4: node id → the result
// of each completed node.
func Results(x *store.Execution) map[string]any {
	out := make(map[string]any, len(x.Nodes))
	for _, n := range x.Nodes {
		if n.Status == store.NodeCompleted {
			out[n.NodeID] = n.Result
		}
	}
	return out
}

// start registers and starts a run for req, or finds the one req's
// idempotency key names. It returns the run (nil when the execution is not
// run by this process) and its id. With inline, a new run is returned
// before it starts, with mine set: the caller must run its loop.
// With sync (Execute: the caller learns nothing of the run before its end)
// a new execution without an idempotency key is journalled lazily (see
// run.lazy). Without sync (Start), a durable execution that finds no free
// slot is queued in the store's backlog instead (enqueue; r is then nil).
func (e *Executor) start(ctx context.Context, req *Request, inline, sync bool) (r *run, id string, mine bool, err error) {
	if req == nil || req.Workflow == nil {
		return nil, "", false, fmt.Errorf("start execution: %w: no workflow", ErrInvalidWorkflow)
	}
	p, err := e.plan(req.Workflow)
	if err != nil {
		return nil, "", false, fmt.Errorf("start execution of %s v%d: %w", req.Workflow.Name, req.Workflow.Version, err)
	}
	var key string
	if req.IdempotencyKey != "" {
		key = req.Caller + "\x00" + req.IdempotencyKey
	}

	if r := e.runFor(key); r != nil { // fast path: attach without building a run
		r, id, err := e.attachKey(ctx, r, req)
		return r, id, false, err
	}
	durable := e.st != nil && !req.Workflow.DisableJournal
	if durable {
		select { // executions are created only once the owner is heart-beating
		case <-e.beating:
		case <-ctx.Done():
			return nil, "", false, fmt.Errorf("start execution: %w", ctx.Err())
		}
	}
	reserved := false
	if !sync && durable {
		if !e.reserveForStart() {
			id, err := e.enqueue(ctx, req, p)
			return nil, id, false, err
		}
		reserved = true
	}
	r = e.newRun(req, p, nil)
	r.reserved = reserved
	if sync && durable && r.key == "" {
		r.lazy = true
		r.journalledCreate = closedChan
	}
	prev, err := e.admit(r, inline)
	if reserved && (err != nil || prev != nil) {
		e.releaseSlots(1) // not taken by a run
	}
	if err != nil {
		return nil, "", false, fmt.Errorf("start execution: %w", err)
	}
	if prev != nil {
		r, id, err := e.attachKey(ctx, prev, req)
		return r, id, false, err
	}
	if inline {
		return r, r.id, true, nil
	}
	r, id, err = e.attachKey(ctx, r, req)
	return r, id, false, err
}

// attachKey is attach for req, which found r (its own run, or the run or
// stored execution its idempotency key names): a different request with
// the same key is refused.
func (e *Executor) attachKey(ctx context.Context, r *run, req *Request) (*run, string, error) {
	ar, id, err := e.attach(ctx, r)
	if err != nil {
		return ar, id, err
	}
	fp := r.req.Fingerprint
	if r.redirect != "" {
		fp = r.redirectFingerprint
	}
	if fp != "" && fp != req.Fingerprint {
		return nil, "", &IdempotencyMismatchError{Key: req.IdempotencyKey, ExecutionID: id}
	}
	return ar, id, nil
}

// admit registers r, a new or resumed run, and begins it; unless inline,
// it starts the run's goroutine. It returns instead, with r stopped, the
// run already registered under r's id or idempotency key (prev), or
// ErrClosed, or (for a new run) ErrCallerLimit.
func (e *Executor) admit(r *run, inline bool) (prev *run, err error) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		r.stop()
		return nil, ErrClosed
	}
	prev = e.runs[r.id]
	if prev == nil && r.key != "" {
		prev = e.byKey[r.key]
	}
	if prev != nil {
		e.mu.Unlock()
		r.stop()
		return prev, nil
	}
	if limit := e.cfg.MaxRunsPerCaller; limit > 0 && !r.resumed { // a resumed run was admitted before
		if e.perCaller[r.req.Caller] >= limit {
			e.mu.Unlock()
			r.stop()
			return nil, fmt.Errorf("%w (limit %d)", ErrCallerLimit, limit)
		}
		e.perCaller[r.req.Caller]++
		r.counted = true
	}
	e.takeSlotLocked(r)
	e.runs[r.id] = r
	if r.key != "" {
		e.byKey[r.key] = r
	}
	e.wg.Add(1)
	e.mu.Unlock()

	r.begin()
	if !inline {
		e.spawn(r)
	}
	return nil, nil
}

// uncountLocked ends r's share of its caller's MaxRunsPerCaller, once.
func (e *Executor) uncountLocked(r *run) {
	if !r.counted {
		return
	}
	r.counted = false
	if n := e.perCaller[r.req.Caller] - 1; n > 0 {
		e.perCaller[r.req.Caller] = n
	} else {
		delete(e.perCaller, r.req.Caller)
	}
}

// runFor returns the run registered under an idempotency index key, or nil.
func (e *Executor) runFor(key string) *run {
	if key == "" {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.byKey[key]
}

// attach returns r once it is journalled (or the execution its duplicate
// idempotency key led to). ctx bounds only the wait: r runs on regardless.
func (e *Executor) attach(ctx context.Context, r *run) (*run, string, error) {
	select {
	case <-r.created:
	case <-ctx.Done():
		return nil, "", fmt.Errorf("attach to execution %s: %w", r.id, ctx.Err())
	}
	if r.redirect != "" {
		return e.attachStored(ctx, r.redirect)
	}
	if r.createErr != nil {
		return nil, "", r.createErr
	}
	return r, r.id, nil
}

// attachStored resolves an execution found in the store by idempotency key.
func (e *Executor) attachStored(_ context.Context, id string) (*run, string, error) {
	if r := e.lookup(id); r != nil {
		return r, id, nil
	}
	return nil, id, nil
}

// waitStored waits for an execution this process does not run by polling
// the store.
func (e *Executor) waitStored(ctx context.Context, id string) (*store.Execution, error) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		if r := e.lookup(id); r != nil {
			return r.wait(ctx)
		}
		x, err := e.Get(ctx, id)
		if err != nil || x.Status.Terminal() {
			return x, err
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for execution %s: %w", id, ctx.Err())
		}
	}
}

// lookup returns the live or recently finished run with id, or nil.
func (e *Executor) lookup(id string) *run {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.runs[id]
}

// finished moves r from the live runs to the ring of recent ones.
// A fenced run is forgotten at once instead: another process holds its
// execution, and Get, Subscribe and waiters must follow that one through
// the store.
func (e *Executor) finished(r *run) {
	r.mu.Lock()
	fenced := r.fenced
	r.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dropSlotLocked(r)
	if fenced {
		if e.runs[r.id] == r {
			delete(e.runs, r.id)
		}
		if r.key != "" && e.byKey[r.key] == r {
			delete(e.byKey, r.key)
		}
		e.uncountLocked(r)
		return
	}
	e.uncountLocked(r)
	e.recent = append(e.recent, r)
	if len(e.recent) <= recentRuns {
		return
	}
	old := e.recent[0]
	e.recent[0] = nil
	e.recent = e.recent[1:]
	delete(e.runs, old.id)
	if old.key != "" && e.byKey[old.key] == old {
		delete(e.byKey, old.key)
	}
}

// workflowCache returns the workflow_cache shared by executions of name.
func (e *Executor) workflowCache(name string) *node.WorkflowCache {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.caches[name]
	if c == nil {
		c = node.NewWorkflowCache(e.cfg.WorkflowCacheEntries)
		e.caches[name] = c
	}
	return c
}

// newID returns a new execution id: a time-ordered UUID (version 7, RFC
// 9562), increasing within the process. Ordered ids keep the store's
// indexes on execution ids appending at their right edge instead of
// touching a random page per execution.
func newID() string { return uuid.Must(uuid.NewV7()).String() }
