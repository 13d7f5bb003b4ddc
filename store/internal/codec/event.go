package codec

import (
	"encoding/json"
	"fmt"
	"strconv"
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
	// ExecutionRef stands for Execution in a body written by
	// EncodeEventBodyByRef: the reader loads the execution from its rows.
	ExecutionRef bool `json:"execution_ref,omitempty"`
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
	Epoch          int64                  `json:"epoch,omitempty"`
	Restarts       int32                  `json:"restarts,omitempty"`
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
		IdempotencyKey: e.IdempotencyKey, Caller: e.Caller, Owner: e.Owner, Epoch: e.Epoch, Restarts: e.Restarts,
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
		IdempotencyKey: d.IdempotencyKey, Caller: d.Caller, Owner: d.Owner, Epoch: d.Epoch, Restarts: d.Restarts,
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
//
// It writes the JSON of eventBody (the form decodeEventBody reads, empty
// fields omitted) directly, without reflection, handing only the maps, the
// error and the execution to encoding/json: it runs for every event the
// journal writes.
func EncodeEventBody(ev *store.Event) (string, error) { return encodeEventBody(ev, false) }

// EncodeEventBodyByRef is EncodeEventBody, except that an event's
// Execution is not written, only a mark that the event has one: a backend
// that journals the execution's final state in the same transaction loads
// it from there when it reads the event back (see ScanEventByRef), instead
// of storing every node result once more.
func EncodeEventBodyByRef(ev *store.Event) (string, error) { return encodeEventBody(ev, true) }

func encodeEventBody(ev *store.Event, byRef bool) (string, error) {
	w := objectWriter{b: make([]byte, 0, 128)}
	w.b = append(w.b, '{')
	if ev.Workflow != "" {
		w.key("workflow")
		w.b = appendString(w.b, ev.Workflow)
	}
	w.int("version", int64(ev.Version))
	if ev.Resumed {
		w.key("resumed")
		w.b = append(w.b, "true"...)
	}
	if ev.NodeID != "" {
		w.key("node_id")
		w.b = appendString(w.b, ev.NodeID)
	}
	w.int("attempt", int64(ev.Attempt))
	w.int("level", int64(ev.Level))
	if ev.Message != "" {
		w.key("message")
		w.b = appendString(w.b, ev.Message)
	}
	if len(ev.Fields) > 0 {
		w.json("fields", ev.Fields)
	}
	if len(ev.Result) > 0 {
		w.json("result", ev.Result)
	}
	if ev.Error != nil {
		w.json("error", ev.Error)
	}
	w.int("backoff", int64(ev.Backoff))
	w.int("duration", int64(ev.Duration))
	switch {
	case ev.Execution != nil && byRef:
		w.key("execution_ref")
		w.b = append(w.b, "true"...)
	case ev.Execution != nil:
		w.json("execution", toExecutionDoc(ev.Execution))
	}
	if w.err != nil {
		return "", fmt.Errorf("encode json: %w", w.err)
	}
	w.b = append(w.b, '}')
	return string(w.b), nil
}

// objectWriter appends the members of a JSON object to b.
type objectWriter struct {
	b    []byte
	more bool // a member was written
	err  error
}

func (w *objectWriter) key(k string) {
	if w.more {
		w.b = append(w.b, ',')
	}
	w.more = true
	w.b = append(w.b, '"')
	w.b = append(w.b, k...)
	w.b = append(w.b, '"', ':')
}

// int writes a member whose value is a non-zero integer (zero is omitted).
func (w *objectWriter) int(k string, v int64) {
	if v != 0 {
		w.key(k)
		w.b = strconv.AppendInt(w.b, v, 10)
	}
}

// json writes a member encoded by encoding/json.
func (w *objectWriter) json(k string, v any) {
	j, err := json.Marshal(v)
	if err != nil {
		if w.err == nil {
			w.err = err
		}
		return
	}
	w.key(k)
	w.b = append(w.b, j...)
}

// appendString appends s as a JSON string. Plain printable ASCII is
// copied; anything else is left to encoding/json (escapes, invalid UTF-8).
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			j, _ := json.Marshal(s) // a string always encodes
			return append(b, j...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// decodeEventBody fills the kind-specific fields of ev from s and reports
// whether the body stands for ev's Execution by reference.
func decodeEventBody(s string, ev *store.Event) (byRef bool, err error) {
	var b eventBody
	if err := decodeJSON(s, &b); err != nil {
		return false, err
	}
	ev.Workflow, ev.Version, ev.Resumed = b.Workflow, b.Version, b.Resumed
	ev.NodeID, ev.Attempt, ev.Level, ev.Message = b.NodeID, b.Attempt, b.Level, b.Message
	ev.Fields, ev.Result, ev.Error = b.Fields, b.Result, b.Error
	ev.Backoff, ev.Duration = b.Backoff, b.Duration
	if b.Execution != nil {
		ev.Execution = b.Execution.execution()
	}
	return b.ExecutionRef, nil
}
