// Package store is the persistence contract of the gateway: the domain types
// it keeps (workflows and their versions, executions with their node states
// and events, encrypted secrets, named resources) and the Store interface that
// every backend implements. Backends live in store/sqlite and store/postgres;
// store/storetest is the conformance suite both pass.
//
// The store never sees protobuf types and never sees a secret in clear text.
// JSON-like values (parameters, results, configs) are map[string]any holding
// only JSON-compatible Go values: nil, bool, float64, int64, string, []any and
// map[string]any. Backends may return whole numbers as float64 after a round
// trip; consumers must accept either.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors that callers branch on. Backends translate driver errors into these.
var (
	// ErrNotFound reports that the named thing does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists reports a duplicate create (same key or version).
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict reports a write that lost a race (stale version or seq).
	ErrConflict = errors.New("conflict")
	// ErrFenced reports journal writes refused because the writer's epoch
	// (JournalBatch.Epochs) is no longer the execution's: another process
	// has claimed it since. Errors wrapping it are *FencedError.
	ErrFenced = errors.New("fenced: the execution has been claimed by a newer owner")
)

// FencedError is what WriteJournal returns when it refused the writes of
// some executions of a batch (JournalBatch.Epochs): the writes of the
// executions named in IDs were not applied, and every other write of the
// batch was, in the same transaction. errors.Is(err, ErrFenced) holds.
type FencedError struct {
	IDs []string
}

func (e *FencedError) Error() string {
	return fmt.Sprintf("%v: %s", ErrFenced, strings.Join(e.IDs, ", "))
}

// Is makes errors.Is(err, ErrFenced) hold.
func (e *FencedError) Is(target error) bool { return target == ErrFenced }

// Store is the persistence contract. Implementations are safe for concurrent
// use by many goroutines (and, for shared backends, many processes).
// Every method honours ctx cancellation.
type Store interface {
	// CreateWorkflowVersion stores w as the next version of w.Name (1 for a new
	// name), setting w.Version and w.CreateTime, and returns the stored copy.
	// Concurrent calls for one name get distinct, dense versions. Versions
	// are never reused: after DeleteWorkflow the name continues from its last
	// version, so a journalled execution can never resume against different
	// code under the same version number.
	CreateWorkflowVersion(ctx context.Context, w *Workflow) (*Workflow, error)
	// GetWorkflow returns one version of a workflow; version 0 means the latest.
	// Unknown names or versions give ErrNotFound.
	GetWorkflow(ctx context.Context, name string, version int32) (*Workflow, error)
	// ListWorkflows returns summaries ordered by name, starting after the name
	// in page.After. The returned cursor is empty when there is nothing more.
	ListWorkflows(ctx context.Context, page Page) ([]*WorkflowSummary, string, error)
	// DeleteWorkflow removes every version of a workflow; ErrNotFound if none.
	DeleteWorkflow(ctx context.Context, name string) error

	// CreateExecution journals a new execution (its header, request and node
	// states). It fails with ErrAlreadyExists when the id exists, or when
	// e.IdempotencyKey is set and another execution of the same e.Caller
	// already has that key. A zero e.CreateTime is set to now (in e).
	CreateExecution(ctx context.Context, e *Execution) error
	// GetExecution returns an execution with its node states and results.
	GetExecution(ctx context.Context, id string) (*Execution, error)
	// FindExecutionByIdempotencyKey returns the execution that caller created
	// with key, or ErrNotFound.
	FindExecutionByIdempotencyKey(ctx context.Context, caller, key string) (*Execution, error)
	// ListExecutions returns executions newest first (by CreateTime, then ID),
	// filtered by q, starting after the opaque cursor in q.Page.After.
	ListExecutions(ctx context.Context, q ExecutionQuery) ([]*Execution, string, error)
	// WriteJournal applies b atomically, in this order: new executions
	// (b.Creates, as by CreateExecution), execution header updates, node
	// state upserts (a node not yet journalled is appended after the others)
	// and appended events. A create that CreateExecution would refuse fails
	// the whole batch with ErrAlreadyExists; an event whose (execution, seq)
	// already exists fails it with ErrConflict; a write to an unknown
	// execution fails it with ErrNotFound. Either way nothing of the batch is
	// applied.
	WriteJournal(ctx context.Context, b *JournalBatch) error
	// ListEvents returns up to limit events of an execution with seq > afterSeq,
	// in seq order (limit <= 0 means the backend's default, 1000). An unknown
	// execution has no events (no error).
	ListEvents(ctx context.Context, executionID string, afterSeq int64, limit int) ([]*Event, error)
	// ReclaimExecutions takes back the unfinished executions that owner
	// itself holds, whatever its heartbeat: what a process restarted
	// under the same owner name calls once at start-up, before it runs
	// anything, since the executions its previous life ran are not
	// running any more. As with ClaimQueued each returned execution's
	// Epoch grows by one (fencing out the previous life, were it still
	// alive) and its Restarts by one (it stopped without releasing them).
	ReclaimExecutions(ctx context.Context, owner string) ([]*Execution, error)
	// ClaimQueued takes up to limit executions from the backlog: unfinished
	// executions without an owner (queued by a start that found its
	// process at capacity, released by a draining process, or released by
	// ReleaseStale), oldest first. In the same statement each one's Owner
	// becomes owner and its Epoch grows by one (Restarts is unchanged: a
	// released execution was counted when it was released). Concurrent
	// claimers never take the same execution. The returned executions
	// carry their nodes. limit <= 0 takes nothing.
	ClaimQueued(ctx context.Context, owner string, limit int) ([]*Execution, error)
	// ReleaseStale puts back into the backlog (Owner "") every unfinished
	// execution whose owner has not heart-beaten since staleBefore (or
	// never did), growing its Restarts by one (the owner stopped without
	// releasing it), and returns how many it released. It is the lease
	// scan; ClaimQueued then spreads the released executions over the
	// processes with capacity, and its epoch increment fences the stale
	// owner out. (Until then the epoch is unchanged: a stale owner that
	// comes back and writes first simply keeps the execution.)
	ReleaseStale(ctx context.Context, staleBefore time.Time) (int, error)
	// Heartbeat records that owner is alive at now (a heartbeat never moves
	// an owner's time backwards).
	Heartbeat(ctx context.Context, owner string, now time.Time) error
	// DeleteExecutionsBefore removes finished executions (and their node states
	// and events) that ended before t, returning how many were removed. A
	// finished execution without an EndTime counts as ended at CreateTime.
	DeleteExecutionsBefore(ctx context.Context, t time.Time) (int, error)

	// InsertSecretVersion stores one encrypted secret version. The caller picks
	// the version (the name and version are bound into the ciphertext), so an
	// existing (name, version) gives ErrAlreadyExists.
	InsertSecretVersion(ctx context.Context, s *SecretRecord) error
	// GetSecret returns one version of a secret; 0 means the latest.
	GetSecret(ctx context.Context, name string, version int32) (*SecretRecord, error)
	// ListSecrets returns the latest version of each secret ordered by name.
	ListSecrets(ctx context.Context, page Page) ([]*SecretRecord, string, error)
	// DeleteSecret removes every version of a secret; ErrNotFound if none.
	DeleteSecret(ctx context.Context, name string) error
	// RewrapSecrets replaces, in one transaction, the WrappedKey of every
	// secret version with rewrap's answer and sets the master-key check value
	// to keyCheck. If rewrap fails, nothing changes and its error is returned
	// wrapped.
	RewrapSecrets(ctx context.Context, rewrap func(*SecretRecord) ([]byte, error), keyCheck []byte) error
	// GetKeyCheck returns the stored master-key check value, or ErrNotFound.
	GetKeyCheck(ctx context.Context) ([]byte, error)
	// PutKeyCheck stores the master-key check value if none exists yet;
	// ErrAlreadyExists otherwise.
	PutKeyCheck(ctx context.Context, keyCheck []byte) error

	// PutResource creates or replaces a named resource. The store sets the
	// times: CreateTime = UpdateTime = now on create; on replace CreateTime is
	// kept and UpdateTime set to now. Returns the stored copy.
	PutResource(ctx context.Context, r *Resource) (*Resource, error)
	// GetResource returns a named resource or ErrNotFound.
	GetResource(ctx context.Context, name string) (*Resource, error)
	// ListResources returns named resources ordered by name.
	ListResources(ctx context.Context, page Page) ([]*Resource, string, error)
	// DeleteResource removes a named resource; ErrNotFound if none.
	DeleteResource(ctx context.Context, name string) error

	// CreateAPIKey stores a new API key; an existing ID gives
	// ErrAlreadyExists. The store keeps only what k holds: a keyed hash,
	// never the key.
	CreateAPIKey(ctx context.Context, k *APIKey) error
	// GetAPIKey returns an API key by id, or ErrNotFound (also once revoked).
	GetAPIKey(ctx context.Context, id string) (*APIKey, error)
	// ListAPIKeys returns the API keys ordered by id.
	ListAPIKeys(ctx context.Context, page Page) ([]*APIKey, string, error)
	// DeleteAPIKey removes (revokes) an API key; ErrNotFound if none.
	DeleteAPIKey(ctx context.Context, id string) error
	// TouchAPIKey sets the last-used time of an API key; ErrNotFound if none.
	TouchAPIKey(ctx context.Context, id string, t time.Time) error
	// CreateRoleBinding stores a new role binding; an existing ID gives
	// ErrAlreadyExists.
	CreateRoleBinding(ctx context.Context, b *RoleBinding) error
	// DeleteRoleBinding removes a role binding; ErrNotFound if none.
	DeleteRoleBinding(ctx context.Context, id string) error
	// ListRoleBindings returns the role bindings ordered by id.
	ListRoleBindings(ctx context.Context, page Page) ([]*RoleBinding, string, error)
	// PutGrant creates or updates the grant of (g.Kind, g.Name): AllowedCallers
	// is replaced; Creator is set on create only (an update keeps the first
	// creator). Returns the stored copy.
	PutGrant(ctx context.Context, g *Grant) (*Grant, error)
	// GetGrant returns the grant of (kind, name), or ErrNotFound.
	GetGrant(ctx context.Context, kind GrantKind, name string) (*Grant, error)
	// DeleteGrant removes the grant of (kind, name); no error if none.
	DeleteGrant(ctx context.Context, kind GrantKind, name string) error

	// Close releases the backend's connections.
	Close() error
}

// Page selects one page of a list: at most Limit items after the cursor
// After ("" = from the start); Limit <= 0 means the backend's default
// (1000). Cursors are backend-produced strings; the server wraps them in
// signed page tokens. A returned cursor is empty only when there is nothing
// more, and paging is stable: items created or deleted between pages never
// make another item appear twice or be skipped.
type Page struct {
	After string
	Limit int
}

// Workflow is one registered version of a workflow definition.
type Workflow struct {
	Name           string
	Version        int32
	Description    string
	Nodes          []Node
	Connections    []Connection
	Timeout        time.Duration // 0 = default
	Labels         map[string]string
	CreateTime     time.Time
	DisableJournal bool
}

// Node is one code node of a workflow.
type Node struct {
	ID                string
	Code              string
	RequiredResources []string
	Timeout           time.Duration // 0 = default
	Retry             RetryPolicy
	Description       string
}

// RetryPolicy is a node's retry policy; zero fields mean the defaults.
type RetryPolicy struct {
	MaxAttempts    int32
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	Multiplier     float64
}

// Connection carries an upstream result (or one key of it) to a downstream node.
type Connection struct {
	FromNode   string
	FromOutput string // "" = pass all
	ToNode     string
	ToInput    string // "" = FromOutput
}

// WorkflowSummary is what ListWorkflows reports per workflow (its latest version).
type WorkflowSummary struct {
	Name              string
	LatestVersion     int32
	Description       string
	NodeCount         int
	RequiredResources []string
	Labels            map[string]string
	CreateTime        time.Time
}

// ExecutionStatus is the lifecycle state of an execution. Values match kgw.v1.
type ExecutionStatus int32

// Execution statuses.
const (
	ExecutionUnspecified ExecutionStatus = iota
	ExecutionPending
	ExecutionRunning
	ExecutionCompleted
	ExecutionFailed
	ExecutionCancelled
	ExecutionTimedOut
)

// Terminal reports whether s is a final state.
func (s ExecutionStatus) Terminal() bool { return s >= ExecutionCompleted }

// NodeStatus is the lifecycle state of one node. Values match kgw.v1.
type NodeStatus int32

// Node statuses.
const (
	NodeUnspecified NodeStatus = iota
	NodePending
	NodeRunning
	NodeRetrying
	NodeCompleted
	NodeFailed
	NodeSkipped
	NodeCancelled
	NodeTimedOut
)

// ResourceSpec describes a resource in a request or a named resource.
// It never holds credentials, only the name of the secret that does.
type ResourceSpec struct {
	Type           string         `json:"type,omitempty"`
	Config         map[string]any `json:"config,omitempty"`
	CredentialsRef string         `json:"credentials_ref,omitempty"`
	CredentialsKey string         `json:"credentials_key,omitempty"`
	Ref            string         `json:"ref,omitempty"`
}

// ExecutionRequest is what a caller asked to run, as journalled.
type ExecutionRequest struct {
	Parameters map[string]any          `json:"parameters,omitempty"`
	Resources  map[string]ResourceSpec `json:"resources,omitempty"`
	Context    map[string]any          `json:"context,omitempty"`
	Timeout    time.Duration           `json:"timeout,omitempty"`
	// Fingerprint identifies the request as the caller sent it (workflow,
	// version as written, parameters, context, resources, timeout), so a
	// second request with the same idempotency key can be compared with
	// the first. Opaque to the store.
	Fingerprint string `json:"fingerprint,omitempty"`
	// TraceParent and TraceState are the W3C trace context (traceparent
	// and tracestate headers) of the caller's span, so that a run resumed
	// after a restart or on another replica continues the caller's trace;
	// TraceLink records that the run's span was a new root linked to that
	// span rather than its child. Empty when the call carried no trace or
	// tracing is off. Baggage is never stored. Opaque to the store.
	TraceParent string `json:"traceparent,omitempty"`
	TraceState  string `json:"tracestate,omitempty"`
	TraceLink   bool   `json:"trace_link,omitempty"`
}

// ExecError describes a failure of a node or an execution.
type ExecError struct {
	NodeID    string `json:"node_id,omitempty"`
	Code      string `json:"code,omitempty"`
	Message   string `json:"message,omitempty"`
	Traceback string `json:"traceback,omitempty"`
}

// Execution is one run of one workflow version.
type Execution struct {
	ID             string
	Workflow       string
	Version        int32
	Status         ExecutionStatus
	Request        ExecutionRequest
	Error          *ExecError
	Nodes          []*NodeState // in workflow order; results live here
	CreateTime     time.Time
	StartTime      time.Time
	EndTime        time.Time
	IdempotencyKey string
	Caller         string // authenticated principal that created it ("" = anonymous)
	Owner          string // gateway process that runs it
	// Epoch numbers the executions's ownerships: 1 when created, one more
	// at every claim that takes it (ClaimQueued, ReclaimExecutions). It only
	// grows, and it is committed before the new owner runs anything, so
	// an owner's epoch is above that of every earlier owner: node attempt
	// numbers are built on it, and a lease fencing token can be. Only
	// those methods change it; creates and journal writes ignore the
	// field.
	Epoch int64
	// Restarts counts the claims that took the execution from an owner
	// that had not released it: the times a gateway stopped (crashed, was
	// killed) while running it. A graceful drain releases its executions
	// (Owner "") and does not count. Only ReclaimExecutions and
	// ReleaseStale change it.
	Restarts int32
}

// NodeState is the journalled state of one node of an execution.
type NodeState struct {
	NodeID    string
	Status    NodeStatus
	Attempts  int32
	StartTime time.Time
	EndTime   time.Time
	Error     *ExecError
	Result    map[string]any // set when Status == NodeCompleted
}

// ExecutionQuery filters ListExecutions.
type ExecutionQuery struct {
	Workflow string          // "" = any
	Status   ExecutionStatus // ExecutionUnspecified = any
	Caller   string          // "" = any
	Page     Page
	// OmitResults leaves the Result of every node state nil (the rest of
	// the node states is returned): the results are not even read.
	OmitResults bool
}

// JournalBatch is a set of journal writes applied atomically.
type JournalBatch struct {
	// Creates are new executions, journalled as by CreateExecution (a zero
	// CreateTime is set to now, in the Execution) before the rest of the
	// batch, so that the batch may carry their first events.
	Creates []*Execution
	// Executions whose header fields (Status, Error, StartTime, EndTime, Owner)
	// are updated. Request, Nodes and identity fields are ignored.
	Executions []*Execution
	// Node state upserts.
	Nodes []NodeUpdate
	// Events to append.
	Events []*Event
	// Epochs fences the batch: for each execution listed, its header
	// update, node states and events in the batch are applied only if the
	// execution's stored Epoch still equals the one given (the writer's,
	// from its claim or creation), checked in the statements that write
	// them while the execution's row is locked against claims. Writes of
	// executions not listed (and Creates) are not checked. Refused
	// writes make WriteJournal return a *FencedError naming their
	// executions; the rest of the batch is applied. Backends that serve
	// one process only (SQLite) do not check epochs: nobody else can
	// claim their executions.
	Epochs map[string]int64
}

// NodeUpdate is one node state upsert in a JournalBatch.
type NodeUpdate struct {
	ExecutionID string
	State       *NodeState
}

// EventKind says what an Event reports.
type EventKind int32

// Event kinds; the terminal ones carry the final execution.
const (
	EventUnspecified EventKind = iota
	EventExecutionStarted
	EventNodeStarted
	EventNodeLog
	EventNodeRetrying
	EventNodeCompleted
	EventNodeFailed
	EventExecutionCompleted
	EventExecutionFailed
	EventExecutionCancelled
	EventExecutionTimedOut
)

// Terminal reports whether k ends an execution's event stream.
func (k EventKind) Terminal() bool { return k >= EventExecutionCompleted }

// LogLevel is the severity of a node log line. Values match kgw.v1.
type LogLevel int32

// Log levels.
const (
	LogUnspecified LogLevel = iota
	LogDebug
	LogInfo
	LogWarning
	LogError
)

// Event is one step of an execution: the single event type the executor
// emits, the journal stores and the streams deliver. Which fields are set
// depends on Kind.
type Event struct {
	ExecutionID string
	Seq         int64
	Time        time.Time
	Kind        EventKind

	Workflow string // ExecutionStarted
	Version  int32  // ExecutionStarted
	Resumed  bool   // ExecutionStarted

	NodeID   string         // node events
	Attempt  int32          // node events
	Level    LogLevel       // NodeLog
	Message  string         // NodeLog
	Fields   map[string]any // NodeLog
	Result   map[string]any // NodeCompleted
	Error    *ExecError     // NodeRetrying, NodeFailed
	Backoff  time.Duration  // NodeRetrying
	Duration time.Duration  // NodeCompleted

	Execution *Execution // terminal kinds: the final execution
}

// SecretRecord is one encrypted secret version as stored. The value exists
// only as Ciphertext, sealed with a data key that exists only as WrappedKey.
type SecretRecord struct {
	Name         string
	Version      int32
	Keys         []string // names of the value's fields, sorted
	Description  string
	CreateTime   time.Time
	ExpireTime   time.Time // zero = never
	AllowedHosts []string
	WrappedKey   []byte // data key sealed by the master key
	Ciphertext   []byte // value sealed by the data key
}

// Resource is a named, server-side resource.
type Resource struct {
	Name       string
	Spec       ResourceSpec
	CreateTime time.Time
	UpdateTime time.Time
}

// APIKey is one API key as stored: its metadata and a keyed hash (HMAC) of
// its secret part, never the key itself.
type APIKey struct {
	ID           string
	Name         string
	Roles        []string
	Hash         []byte // HMAC of the key's secret part
	CreateTime   time.Time
	ExpireTime   time.Time // zero = never
	LastUsedTime time.Time // zero = never used
	Creator      string    // principal that created it
}

// RoleBinding gives Roles to every principal that Principal matches (a
// principal, or a pattern ending in "*" that matches any suffix).
type RoleBinding struct {
	ID         string
	Principal  string
	Roles      []string
	CreateTime time.Time
	Creator    string
}

// GrantKind is the kind of thing a Grant is about.
type GrantKind string

// Grant kinds.
const (
	GrantSecret   GrantKind = "secret"
	GrantResource GrantKind = "resource"
	GrantWorkflow GrantKind = "workflow"
)

// Grant records who created a secret, named resource or workflow and which
// other callers may use it. A thing without a grant predates access control.
type Grant struct {
	Kind           GrantKind
	Name           string
	Creator        string
	AllowedCallers []string
}

// CancelRelay is implemented by stores shared by replicas (PostgreSQL) to
// pass cancel requests to whichever process runs an execution.
type CancelRelay interface {
	// RequestCancel asks the process that runs execution id to cancel it.
	// Delivery is best effort (a process that is not listening misses
	// it), so callers repeat it until the execution has ended.
	RequestCancel(ctx context.Context, id string) error
	// ListenCancels calls fn with the id of every cancel request until
	// ctx ends, reconnecting after failures; it returns ctx's error.
	ListenCancels(ctx context.Context, fn func(id string)) error
}

// Notifications are the handlers of Listener.Listen; a nil handler leaves
// its kind of notification out. Handlers run on the listening goroutine and
// must not block.
type Notifications struct {
	// Cancel gets the id of every cancel request (CancelRelay).
	Cancel func(id string)
	// Events gets the id of an execution whose new events were committed
	// (by any process), after the commit.
	Events func(id string)
	// Workflows gets the name of a workflow registered or deleted (by any
	// process), after the commit.
	Workflows func(name string)
	// Backlog is called when executions were queued into the backlog
	// (store.Store.ClaimQueued) by any process, after the commit: a new
	// execution created without an owner, one released by a journal
	// write that cleared its owner, or released by ReleaseStale.
	Backlog func()
	// Connected reports whether notifications are being received: true once
	// listening, false when the connection is lost (they may be missed
	// until the next true).
	Connected func(up bool)
}

// WorkflowVersions is implemented by stores shared by replicas (PostgreSQL)
// so that a process's cache of workflow definitions can check cheaply that
// an entry is still current.
type WorkflowVersions interface {
	// WorkflowVersion returns the number of the version that version
	// names (0: the latest), or ErrNotFound if there is none.
	WorkflowVersion(ctx context.Context, name string, version int32) (int32, error)
}

// Listener is implemented by stores shared by replicas (PostgreSQL): one
// listening connection carries every kind of notification between them.
type Listener interface {
	// Listen calls the handlers of h until ctx ends, reconnecting after
	// failures; it returns ctx's error.
	Listen(ctx context.Context, h Notifications) error
}

// LeaderLeases is implemented by stores shared by replicas (PostgreSQL) to
// elect the one process that runs a periodic job (the lease scan and
// retention) with a lease row: the holder renews it, and another process
// takes it once it has expired, by the store's clock. A store without it
// serves one process, which always leads.
type LeaderLeases interface {
	// AcquireLease makes holder the holder of the lease called name for
	// ttl from now (the store's clock) if nobody holds it, its holder's
	// time has run out, or holder holds it already (a renewal), and
	// reports whether holder holds it.
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	// ReleaseLease gives the lease up if holder holds it, so that another
	// process may take it at once.
	ReleaseLease(ctx context.Context, name, holder string) error
	// LeaseHolder returns the holder of the lease and whether its time
	// has not run out yet ("" and false when it was never taken).
	LeaseHolder(ctx context.Context, name string) (holder string, live bool, err error)
}
