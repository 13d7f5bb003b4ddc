// Code in this file is shared verbatim with store/postgres/codec.go (only
// the package clause differs). Keep the two in step.

package postgres

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kailash-gateway/kgw/store"
)

// defaultLimit bounds a page or event list whose limit is not positive.
const defaultLimit = 1000

func pageLimit(n int) int {
	if n <= 0 {
		return defaultLimit
	}
	return n
}

// nanos encodes a time as Unix nanoseconds; the zero time is 0.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromNanos decodes nanos; 0 is the zero time.
func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// encodeJSON marshals v; a nil map or slice becomes "null".
func encodeJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode json: %w", err)
	}
	return string(b), nil
}

// decodeJSON unmarshals s into v. Numbers in interface values become int64
// when they are integers that fit, float64 otherwise.
func decodeJSON(s string, v any) error {
	if s == "" || s == "null" {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode json: %w", err)
	}
	return fixNumbers(v)
}

// fixNumbers replaces json.Number values inside v (a pointer) by int64 or
// float64.
func fixNumbers(v any) error {
	switch p := v.(type) {
	case *map[string]any:
		return fixMap(*p)
	case *any:
		var err error
		*p, err = fixValue(*p)
		return err
	case *[]any:
		for i, e := range *p {
			var err error
			if (*p)[i], err = fixValue(e); err != nil {
				return err
			}
		}
	case interface{ fixNumbers() error }:
		return p.fixNumbers()
	}
	return nil
}

func fixMap(m map[string]any) error {
	for k, e := range m {
		f, err := fixValue(e)
		if err != nil {
			return err
		}
		m[k] = f
	}
	return nil
}

func fixValue(v any) (any, error) {
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return i, nil
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return nil, fmt.Errorf("decode json number %q: %w", x, err)
		}
		return f, nil
	case map[string]any:
		return x, fixMap(x)
	case []any:
		for i, e := range x {
			f, err := fixValue(e)
			if err != nil {
				return nil, err
			}
			x[i] = f
		}
		return x, nil
	}
	return v, nil
}

// encodeMap encodes a JSON-like map; nil stays nil (SQL NULL).
func encodeMap(m map[string]any) (*string, error) {
	if m == nil {
		return nil, nil
	}
	s, err := encodeJSON(m)
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// decodeMap decodes a JSON-like map; NULL gives nil.
func decodeMap(s *string) (map[string]any, error) {
	if s == nil {
		return nil, nil
	}
	var m map[string]any
	if err := decodeJSON(*s, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// encodeError encodes an ExecError; nil stays nil.
func encodeError(e *store.ExecError) (*string, error) {
	if e == nil {
		return nil, nil
	}
	s, err := encodeJSON(e)
	if err != nil {
		return nil, err
	}
	return &s, nil
}

func decodeError(s *string) (*store.ExecError, error) {
	if s == nil {
		return nil, nil
	}
	var e store.ExecError
	if err := decodeJSON(*s, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// encodeRequest encodes an ExecutionRequest with its own JSON tags.
func encodeRequest(r *store.ExecutionRequest) (string, error) { return encodeJSON(r) }

func decodeRequest(s string) (store.ExecutionRequest, error) {
	var r store.ExecutionRequest
	if err := decodeJSON(s, &r); err != nil {
		return r, err
	}
	if err := fixMap(r.Parameters); err != nil {
		return r, err
	}
	if err := fixMap(r.Context); err != nil {
		return r, err
	}
	for _, spec := range r.Resources {
		if err := fixMap(spec.Config); err != nil {
			return r, err
		}
	}
	return r, nil
}

func encodeSpec(s *store.ResourceSpec) (string, error) { return encodeJSON(s) }

func decodeSpec(s string) (store.ResourceSpec, error) {
	var spec store.ResourceSpec
	if err := decodeJSON(s, &spec); err != nil {
		return spec, err
	}
	return spec, fixMap(spec.Config)
}

// workflowDef is the stored form of a workflow version's definition.
type workflowDef struct {
	Nodes          []nodeDef         `json:"nodes,omitempty"`
	Connections    []connectionDef   `json:"connections,omitempty"`
	Timeout        time.Duration     `json:"timeout,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
	DisableJournal bool              `json:"disable_journal,omitempty"`
}

type nodeDef struct {
	ID                string        `json:"id"`
	Code              string        `json:"code,omitempty"`
	RequiredResources []string      `json:"required_resources,omitempty"`
	Timeout           time.Duration `json:"timeout,omitempty"`
	MaxAttempts       int32         `json:"max_attempts,omitempty"`
	InitialBackoff    time.Duration `json:"initial_backoff,omitempty"`
	MaxBackoff        time.Duration `json:"max_backoff,omitempty"`
	Multiplier        float64       `json:"multiplier,omitempty"`
	Description       string        `json:"description,omitempty"`
}

type connectionDef struct {
	FromNode   string `json:"from_node"`
	FromOutput string `json:"from_output,omitempty"`
	ToNode     string `json:"to_node"`
	ToInput    string `json:"to_input,omitempty"`
}

func encodeWorkflowDef(w *store.Workflow) (string, error) {
	d := workflowDef{Timeout: w.Timeout, Labels: w.Labels, DisableJournal: w.DisableJournal}
	for _, n := range w.Nodes {
		d.Nodes = append(d.Nodes, nodeDef{
			ID: n.ID, Code: n.Code, RequiredResources: n.RequiredResources, Timeout: n.Timeout,
			MaxAttempts: n.Retry.MaxAttempts, InitialBackoff: n.Retry.InitialBackoff,
			MaxBackoff: n.Retry.MaxBackoff, Multiplier: n.Retry.Multiplier, Description: n.Description,
		})
	}
	for _, c := range w.Connections {
		d.Connections = append(d.Connections, connectionDef(c))
	}
	return encodeJSON(d)
}

// decodeWorkflowDef fills the definition fields of w from s.
func decodeWorkflowDef(s string, w *store.Workflow) error {
	var d workflowDef
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		return fmt.Errorf("decode workflow definition: %w", err)
	}
	w.Timeout, w.Labels, w.DisableJournal = d.Timeout, d.Labels, d.DisableJournal
	w.Nodes, w.Connections = nil, nil
	for _, n := range d.Nodes {
		w.Nodes = append(w.Nodes, store.Node{
			ID: n.ID, Code: n.Code, RequiredResources: n.RequiredResources, Timeout: n.Timeout,
			Retry: store.RetryPolicy{
				MaxAttempts: n.MaxAttempts, InitialBackoff: n.InitialBackoff,
				MaxBackoff: n.MaxBackoff, Multiplier: n.Multiplier,
			},
			Description: n.Description,
		})
	}
	for _, c := range d.Connections {
		w.Connections = append(w.Connections, store.Connection(c))
	}
	return nil
}

// summarize builds a WorkflowSummary from a stored version.
func summarize(w *store.Workflow) *store.WorkflowSummary {
	s := &store.WorkflowSummary{
		Name: w.Name, LatestVersion: w.Version, Description: w.Description,
		NodeCount: len(w.Nodes), Labels: w.Labels, CreateTime: w.CreateTime,
	}
	seen := map[string]bool{}
	for _, n := range w.Nodes {
		for _, r := range n.RequiredResources {
			if !seen[r] {
				seen[r] = true
				s.RequiredResources = append(s.RequiredResources, r)
			}
		}
	}
	return s
}

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
		Request: e.Request, Error: e.Error, CreateTime: nanos(e.CreateTime),
		StartTime: nanos(e.StartTime), EndTime: nanos(e.EndTime),
		IdempotencyKey: e.IdempotencyKey, Caller: e.Caller, Owner: e.Owner,
	}
	for _, n := range e.Nodes {
		d.Nodes = append(d.Nodes, nodeStateDoc{
			NodeID: n.NodeID, Status: n.Status, Attempts: n.Attempts,
			StartTime: nanos(n.StartTime), EndTime: nanos(n.EndTime), Error: n.Error, Result: n.Result,
		})
	}
	return d
}

func (d *executionDoc) execution() *store.Execution {
	e := &store.Execution{
		ID: d.ID, Workflow: d.Workflow, Version: d.Version, Status: d.Status,
		Request: d.Request, Error: d.Error, CreateTime: fromNanos(d.CreateTime),
		StartTime: fromNanos(d.StartTime), EndTime: fromNanos(d.EndTime),
		IdempotencyKey: d.IdempotencyKey, Caller: d.Caller, Owner: d.Owner,
	}
	for _, n := range d.Nodes {
		e.Nodes = append(e.Nodes, &store.NodeState{
			NodeID: n.NodeID, Status: n.Status, Attempts: n.Attempts,
			StartTime: fromNanos(n.StartTime), EndTime: fromNanos(n.EndTime), Error: n.Error, Result: n.Result,
		})
	}
	return e
}

// encodeEventBody encodes the kind-specific fields of ev.
func encodeEventBody(ev *store.Event) (string, error) {
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

// encodeStrings encodes a string list as JSON ("[]" for nil).
func encodeStrings(ss []string) string {
	if len(ss) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(ss) // a []string always encodes
	return string(b)
}

func decodeStrings(s string) ([]string, error) {
	var ss []string
	if err := json.Unmarshal([]byte(s), &ss); err != nil {
		return nil, fmt.Errorf("decode string list: %w", err)
	}
	if len(ss) == 0 {
		return nil, nil
	}
	return ss, nil
}

// executionCursor encodes the position of e in the newest-first order.
func executionCursor(createNanos int64, id string) string {
	return strconv.FormatInt(createNanos, 10) + "/" + id
}

func parseExecutionCursor(c string) (int64, string, error) {
	ts, id, ok := strings.Cut(c, "/")
	if !ok {
		return 0, "", fmt.Errorf("malformed execution cursor %q", c)
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return 0, "", fmt.Errorf("malformed execution cursor %q: %w", c, err)
	}
	return n, id, nil
}
