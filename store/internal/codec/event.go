package codec

import (
	"time"

	"github.com/kailash-gateway/kgw/store"
)

// eventBody is the stored form of an Event's kind-specific fields.
type eventBody struct {
	Workflow  string           `json:"workflow,omitempty"`
	Version   int32            `json:"version,omitempty"`
	Resumed   bool             `json:"resumed,omitempty"`
	NodeID    string           `json:"node_id,omitempty"`
	Attempt   int32            `json:"attempt,omitempty"`
	Level     store.LogLevel   `json:"level,omitempty"`
	Message   string           `json:"message,omitempty"`
	Fields    map[string]any   `json:"fields,omitempty"`
	Result    map[string]any   `json:"result,omitempty"`
	Error     *store.ExecError `json:"error,omitempty"`
	Backoff   time.Duration    `json:"backoff,omitempty"`
	Duration  time.Duration    `json:"duration,omitempty"`
	Execution *executionDoc    `json:"execution,omitempty"`
}

func (b *eventBody) fixNumbers() error {
	if err := fixMap(b.Fields); err != nil {
		return err
	}
	if err := fixMap(b.Result); err != nil {
		return err
	}
	if b.Execution != nil {
		return b.Execution.fixNumbers()
	}
	return nil
}

// executionDoc is the stored form of a whole Execution inside an event.
type executionDoc struct {
	ID             string                 `json:"id"`
	Workflow       string                 `json:"workflow"`
	Version        int32                  `json:"version"`
	Status         store.ExecutionStatus  `json:"status"`
	Request        store.ExecutionRequest `json:"request"`
	Error          *store.ExecError       `json:"error,omitempty"`
	Nodes          []nodeStateDoc         `json:"nodes,omitempty"`
	CreateTime     int64                  `json:"create_time,omitempty"`
	StartTime      int64                  `json:"start_time,omitempty"`
	EndTime        int64                  `json:"end_time,omitempty"`
	IdempotencyKey string                 `json:"idempotency_key,omitempty"`
	Caller         string                 `json:"caller,omitempty"`
	Owner          string                 `json:"owner,omitempty"`
}

type nodeStateDoc struct {
	NodeID    string           `json:"node_id"`
	Status    store.NodeStatus `json:"status"`
	Attempts  int32            `json:"attempts,omitempty"`
	StartTime int64            `json:"start_time,omitempty"`
	EndTime   int64            `json:"end_time,omitempty"`
	Error     *store.ExecError `json:"error,omitempty"`
	Result    map[string]any   `json:"result,omitempty"`
}

func (d *executionDoc) fixNumbers() error {
	for _, m := range []map[string]any{d.Request.Parameters, d.Request.Context} {
		if err := fixMap(m); err != nil {
			return err
		}
	}
	for _, spec := range d.Request.Resources {
		if err := fixMap(spec.Config); err != nil {
			return err
		}
	}
	for _, n := range d.Nodes {
		if err := fixMap(n.Result); err != nil {
			return err
		}
	}
	return nil
}

func toExecutionDoc(e *store.Execution) *executionDoc {
	d := &executionDoc{
		ID: e.ID, Workflow: e.Workflow, Version: e.Version, Status: e.Status,
		Request: e.Request, Error: e.Error, CreateTime: Nanos(e.CreateTime),
		StartTime: Nanos(e.StartTime), EndTime: Nanos(e.EndTime),
		IdempotencyKey: e.IdempotencyKey, Caller: e.Caller, Owner: e.Owner,
	}
	for _, n := range e.Nodes {
		d.Nodes = append(d.Nodes, nodeStateDoc{
			NodeID: n.NodeID, Status: n.Status, Attempts: n.Attempts,
			StartTime: Nanos(n.StartTime), EndTime: Nanos(n.EndTime), Error: n.Error, Result: n.Result,
		})
	}
	return d
}

func (d *executionDoc) execution() *store.Execution {
	e := &store.Execution{
		ID: d.ID, Workflow: d.Workflow, Version: d.Version, Status: d.Status,
		Request: d.Request, Error: d.Error, CreateTime: FromNanos(d.CreateTime),
		StartTime: FromNanos(d.StartTime), EndTime: FromNanos(d.EndTime),
		IdempotencyKey: d.IdempotencyKey, Caller: d.Caller, Owner: d.Owner,
	}
	for _, n := range d.Nodes {
		e.Nodes = append(e.Nodes, &store.NodeState{
			NodeID: n.NodeID, Status: n.Status, Attempts: n.Attempts,
			StartTime: FromNanos(n.StartTime), EndTime: FromNanos(n.EndTime), Error: n.Error, Result: n.Result,
		})
	}
	return e
}

// EncodeEventBody encodes the kind-specific fields of ev as JSON: all but
// ExecutionID, Seq, Time and Kind, which are columns of their own.
func EncodeEventBody(ev *store.Event) (string, error) {
	b := eventBody{
		Workflow: ev.Workflow, Version: ev.Version, Resumed: ev.Resumed,
		NodeID: ev.NodeID, Attempt: ev.Attempt, Level: ev.Level, Message: ev.Message,
		Fields: ev.Fields, Result: ev.Result, Error: ev.Error,
		Backoff: ev.Backoff, Duration: ev.Duration,
	}
	if ev.Execution != nil {
		b.Execution = toExecutionDoc(ev.Execution)
	}
	return encodeJSON(&b)
}

// decodeEventBody fills the kind-specific fields of ev from s.
func decodeEventBody(s string, ev *store.Event) error {
	var b eventBody
	if err := decodeJSON(s, &b); err != nil {
		return err
	}
	ev.Workflow, ev.Version, ev.Resumed = b.Workflow, b.Version, b.Resumed
	ev.NodeID, ev.Attempt, ev.Level, ev.Message = b.NodeID, b.Attempt, b.Level, b.Message
	ev.Fields, ev.Result, ev.Error = b.Fields, b.Result, b.Error
	ev.Backoff, ev.Duration = b.Backoff, b.Duration
	if b.Execution != nil {
		ev.Execution = b.Execution.execution()
	}
	return nil
}
