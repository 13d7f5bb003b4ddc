package kgw

import (
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
)

// Status is the lifecycle state of an execution, as the lower-case strings
// the Python client uses ("completed", "failed", …).
type Status string

// The execution states.
const (
	StatusUnspecified Status = ""
	StatusPending     Status = "pending"
	StatusRunning     Status = "running"
	StatusCompleted   Status = "completed"
	StatusFailed      Status = "failed"
	StatusCancelled   Status = "cancelled"
	StatusTimedOut    Status = "timed_out"
)

// Terminal reports whether s is a final state.
func (s Status) Terminal() bool {
	switch s {
	case StatusCompleted, StatusFailed, StatusCancelled, StatusTimedOut:
		return true
	}
	return false
}

// statusFromProto maps the enum, keeping unknown future values readable.
func statusFromProto(s kgwv1.ExecutionStatus) Status {
	if s == kgwv1.ExecutionStatus_EXECUTION_STATUS_UNSPECIFIED {
		return StatusUnspecified
	}
	return Status(strings.ToLower(strings.TrimPrefix(s.String(), "EXECUTION_STATUS_")))
}

// proto returns the enum value of s, and false for an unknown status.
func (s Status) proto() (kgwv1.ExecutionStatus, bool) {
	if s == StatusUnspecified {
		return kgwv1.ExecutionStatus_EXECUTION_STATUS_UNSPECIFIED, true
	}
	v, ok := kgwv1.ExecutionStatus_value["EXECUTION_STATUS_"+strings.ToUpper(string(s))]
	return kgwv1.ExecutionStatus(v), ok
}

// NodeStatus is the lifecycle state of one node of an execution: "pending",
// "running", "retrying", "completed", "failed", "skipped", "cancelled" or
// "timed_out".
type NodeStatus string

// The node states.
const (
	NodeStatusUnspecified NodeStatus = ""
	NodeStatusPending     NodeStatus = "pending"
	NodeStatusRunning     NodeStatus = "running"
	NodeStatusRetrying    NodeStatus = "retrying"
	NodeStatusCompleted   NodeStatus = "completed"
	NodeStatusFailed      NodeStatus = "failed"
	NodeStatusSkipped     NodeStatus = "skipped"
	NodeStatusCancelled   NodeStatus = "cancelled"
	NodeStatusTimedOut    NodeStatus = "timed_out"
)

func nodeStatusFromProto(s kgwv1.NodeStatus) NodeStatus {
	if s == kgwv1.NodeStatus_NODE_STATUS_UNSPECIFIED {
		return NodeStatusUnspecified
	}
	return NodeStatus(strings.ToLower(strings.TrimPrefix(s.String(), "NODE_STATUS_")))
}

// An Execution is one run of one workflow version, with its result as plain
// Go values. A workflow that failed is an Execution with Status "failed" and
// Error set, not a Go error; Err turns it into one.
type Execution struct {
	// ID identifies the execution.
	ID string
	// Workflow and Version name the workflow version that ran.
	Workflow string
	Version  int
	// Status is the lifecycle state.
	Status Status
	// Result maps node id to the `result` dict of each completed node, as
	// decoded JSON (numbers are float64): Result["query"]["message"].
	Result map[string]map[string]any
	// Error says why the execution did not complete; nil when it did.
	Error *ExecutionError
	// Nodes is the per-node state, in workflow order.
	Nodes []NodeExecution
	// CreateTime, StartTime and EndTime are zero until they happen.
	CreateTime, StartTime, EndTime time.Time
	// IdempotencyKey is the key given by the caller, if any.
	IdempotencyKey string
	// Proto is the message the execution was decoded from.
	Proto *kgwv1.Execution
}

// Err returns nil for a completed execution, the *ExecutionError of a failed,
// cancelled or timed out one, and for other states an *ExecutionError whose
// Code names the state.
func (e *Execution) Err() error {
	if e.Status == StatusCompleted {
		return nil
	}
	if e.Error != nil {
		return e.Error
	}
	return &ExecutionError{Code: strings.ToUpper(string(e.Status)), Message: "execution " + e.ID + " is " + string(e.Status)}
}

// An ExecutionError says why a node or an execution failed. It is data in an
// Execution or Event, and an error value when returned by Execution.Err.
type ExecutionError struct {
	// NodeID is the node that failed; empty for execution-level errors such
	// as a workflow timeout.
	NodeID string
	// Code is a stable machine-readable code: NODE_ERROR, NODE_TIMEOUT,
	// WORKFLOW_TIMEOUT, CANCELLED, RESOURCE_ERROR, MISSING_OUTPUT,
	// RESULT_INVALID, STEP_LIMIT, MEMORY_LIMIT (docs/api.md lists them all).
	Code string
	// Message names the node, the Starlark line:col and the cause.
	Message string
	// Traceback is the Starlark traceback, when the failure was in node code.
	Traceback string
}

// Error returns "CODE: message".
func (e *ExecutionError) Error() string {
	if e.Code == "" {
		return e.Message
	}
	return e.Code + ": " + e.Message
}

func executionErrorFromProto(e *kgwv1.ExecutionError) *ExecutionError {
	if e == nil {
		return nil
	}
	return &ExecutionError{NodeID: e.GetNodeId(), Code: e.GetCode(), Message: e.GetMessage(), Traceback: e.GetTraceback()}
}

// A NodeExecution is the state of one node within an execution.
type NodeExecution struct {
	NodeID             string
	Status             NodeStatus
	Attempts           int
	StartTime, EndTime time.Time
	Duration           time.Duration
	// Error is the error of the last failed attempt, if any.
	Error *ExecutionError
}

// executionFromProto converts an Execution message; nil gives nil.
func executionFromProto(p *kgwv1.Execution) *Execution {
	if p == nil {
		return nil
	}
	e := &Execution{
		ID:             p.GetId(),
		Workflow:       p.GetWorkflow(),
		Version:        int(p.GetVersion()),
		Status:         statusFromProto(p.GetStatus()),
		Result:         make(map[string]map[string]any, len(p.GetResult())),
		Error:          executionErrorFromProto(p.GetError()),
		CreateTime:     timeOf(p.GetCreateTime()),
		StartTime:      timeOf(p.GetStartTime()),
		EndTime:        timeOf(p.GetEndTime()),
		IdempotencyKey: p.GetIdempotencyKey(),
		Proto:          p,
	}
	for id, r := range p.GetResult() {
		e.Result[id] = structMap(r)
	}
	for _, n := range p.GetNodes() {
		e.Nodes = append(e.Nodes, NodeExecution{
			NodeID:    n.GetNodeId(),
			Status:    nodeStatusFromProto(n.GetStatus()),
			Attempts:  int(n.GetAttempts()),
			StartTime: timeOf(n.GetStartTime()),
			EndTime:   timeOf(n.GetEndTime()),
			Duration:  durationOf(n.GetDuration()),
			Error:     executionErrorFromProto(n.GetError()),
		})
	}
	return e
}

// structMap returns s as a map, never nil.
func structMap(s *structpb.Struct) map[string]any {
	if s == nil {
		return map[string]any{}
	}
	return s.AsMap()
}

func timeOf(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime()
}

func durationOf(d *durationpb.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return d.AsDuration()
}

// EventKind says what an Event reports.
type EventKind string

// The event kinds. The last four are terminal: they end a stream and carry
// the final Execution.
const (
	EventExecutionStarted   EventKind = "execution_started"
	EventNodeStarted        EventKind = "node_started"
	EventNodeLog            EventKind = "node_log"
	EventNodeRetrying       EventKind = "node_retrying"
	EventNodeCompleted      EventKind = "node_completed"
	EventNodeFailed         EventKind = "node_failed"
	EventExecutionCompleted EventKind = "execution_completed"
	EventExecutionFailed    EventKind = "execution_failed"
	EventExecutionCancelled EventKind = "execution_cancelled"
	EventExecutionTimedOut  EventKind = "execution_timed_out"
	// EventUnknown is an event kind this client does not know yet; see Proto.
	EventUnknown EventKind = "unknown"
)

// An Event is one step of an execution, flattened: the fields that apply to
// its Kind are set, the others are zero.
type Event struct {
	// ExecutionID and Seq identify the event; Seq is dense per execution
	// (1, 2, …), so Watch(ctx, id, lastSeq) resumes without gaps or repeats.
	ExecutionID string
	Seq         int64
	Time        time.Time
	Kind        EventKind
	// NodeID and Attempt are set for node events.
	NodeID  string
	Attempt int
	// Level, Message and Fields are set for EventNodeLog. Level is "debug",
	// "info", "warning" or "error".
	Level   string
	Message string
	Fields  map[string]any
	// Result is the node's result, for EventNodeCompleted.
	Result map[string]any
	// Duration is the successful attempt's duration, for EventNodeCompleted.
	Duration time.Duration
	// Error is set for EventNodeRetrying and EventNodeFailed.
	Error *ExecutionError
	// Backoff is the wait before the next attempt, for EventNodeRetrying.
	Backoff time.Duration
	// Workflow, Version and Resumed are set for EventExecutionStarted.
	Workflow string
	Version  int
	Resumed  bool
	// Execution is the final execution, for terminal events.
	Execution *Execution
	// Proto is the message the event was decoded from.
	Proto *kgwv1.ExecutionEvent
}

// Terminal reports whether e is the last event of its execution.
func (e *Event) Terminal() bool {
	switch e.Kind {
	case EventExecutionCompleted, EventExecutionFailed, EventExecutionCancelled, EventExecutionTimedOut:
		return true
	}
	return false
}

// eventFromProto converts an event message.
func eventFromProto(p *kgwv1.ExecutionEvent) *Event {
	e := &Event{ExecutionID: p.GetExecutionId(), Seq: p.GetSeq(), Time: timeOf(p.GetTime()), Proto: p}
	switch x := p.GetEvent().(type) {
	case *kgwv1.ExecutionEvent_ExecutionStarted:
		e.Kind = EventExecutionStarted
		e.Workflow, e.Version, e.Resumed = x.ExecutionStarted.GetWorkflow(), int(x.ExecutionStarted.GetVersion()), x.ExecutionStarted.GetResumed()
	case *kgwv1.ExecutionEvent_NodeStarted:
		e.Kind = EventNodeStarted
		e.NodeID, e.Attempt = x.NodeStarted.GetNodeId(), int(x.NodeStarted.GetAttempt())
	case *kgwv1.ExecutionEvent_NodeLog:
		l := x.NodeLog
		e.Kind = EventNodeLog
		e.NodeID, e.Attempt, e.Message = l.GetNodeId(), int(l.GetAttempt()), l.GetMessage()
		if l.GetLevel() != kgwv1.LogLevel_LOG_LEVEL_UNSPECIFIED {
			e.Level = strings.ToLower(strings.TrimPrefix(l.GetLevel().String(), "LOG_LEVEL_"))
		}
		if l.GetFields() != nil {
			e.Fields = l.GetFields().AsMap()
		}
	case *kgwv1.ExecutionEvent_NodeRetrying:
		r := x.NodeRetrying
		e.Kind = EventNodeRetrying
		e.NodeID, e.Attempt = r.GetNodeId(), int(r.GetAttempt())
		e.Error, e.Backoff = executionErrorFromProto(r.GetError()), durationOf(r.GetBackoff())
	case *kgwv1.ExecutionEvent_NodeCompleted:
		c := x.NodeCompleted
		e.Kind = EventNodeCompleted
		e.NodeID, e.Attempt = c.GetNodeId(), int(c.GetAttempt())
		e.Result, e.Duration = structMap(c.GetResult()), durationOf(c.GetDuration())
	case *kgwv1.ExecutionEvent_NodeFailed:
		f := x.NodeFailed
		e.Kind = EventNodeFailed
		e.NodeID, e.Attempt, e.Error = f.GetNodeId(), int(f.GetAttempt()), executionErrorFromProto(f.GetError())
	case *kgwv1.ExecutionEvent_ExecutionCompleted:
		e.Kind, e.Execution = EventExecutionCompleted, executionFromProto(x.ExecutionCompleted.GetExecution())
	case *kgwv1.ExecutionEvent_ExecutionFailed:
		e.Kind, e.Execution = EventExecutionFailed, executionFromProto(x.ExecutionFailed.GetExecution())
	case *kgwv1.ExecutionEvent_ExecutionCancelled:
		e.Kind, e.Execution = EventExecutionCancelled, executionFromProto(x.ExecutionCancelled.GetExecution())
	case *kgwv1.ExecutionEvent_ExecutionTimedOut:
		e.Kind, e.Execution = EventExecutionTimedOut, executionFromProto(x.ExecutionTimedOut.GetExecution())
	default:
		e.Kind = EventUnknown
	}
	return e
}
