package codec

import (
	"fmt"

	"github.com/kailash-gateway/kgw/store"
)

// A Row is one result row to scan: *sql.Row, *sql.Rows, pgx.Row and
// pgx.Rows all satisfy it. The Scan functions return its Scan error
// unchanged, so the caller can translate driver errors such as "no rows".
type Row interface {
	Scan(dest ...any) error
}

// ExecutionColumns lists the executions columns, in the order
// ScanExecution reads them.
const ExecutionColumns = `id, workflow, version, status, request, error, create_time, start_time, end_time,
	idempotency_key, caller, owner, epoch, restarts`

// ScanExecution reads an execution, without its nodes, from a row of
// ExecutionColumns.
func ScanExecution(row Row) (*store.Execution, error) {
	var (
		e                  store.Execution
		req                string
		errJSON            *string
		status             int32
		create, start, end int64
	)
	if err := row.Scan(&e.ID, &e.Workflow, &e.Version, &status, &req, &errJSON, &create, &start, &end,
		&e.IdempotencyKey, &e.Caller, &e.Owner, &e.Epoch, &e.Restarts); err != nil {
		return nil, err
	}
	e.Status = store.ExecutionStatus(status)
	e.CreateTime, e.StartTime, e.EndTime = FromNanos(create), FromNanos(start), FromNanos(end)
	var err error
	if e.Request, err = decodeRequest(req); err != nil {
		return nil, err
	}
	if e.Error, err = decodeError(errJSON); err != nil {
		return nil, err
	}
	return &e, nil
}

// NodeColumns lists the execution_nodes columns, in the order
// ScanNodeState reads them.
const NodeColumns = `execution_id, node_id, status, attempts, start_time, end_time, error, result`

// NodeColumnsWithoutResult is NodeColumns with NULL for the result, for
// reads that leave results out (store.ExecutionQuery.OmitResults).
const NodeColumnsWithoutResult = `execution_id, node_id, status, attempts, start_time, end_time, error, NULL`

// ScanNodeState reads a node state and the id of its execution from a row
// of NodeColumns.
func ScanNodeState(row Row) (executionID string, n *store.NodeState, err error) {
	var (
		s            store.NodeState
		status       int32
		start, end   int64
		errJSON, res *string
	)
	if err := row.Scan(&executionID, &s.NodeID, &status, &s.Attempts, &start, &end, &errJSON, &res); err != nil {
		return "", nil, err
	}
	s.Status = store.NodeStatus(status)
	s.StartTime, s.EndTime = FromNanos(start), FromNanos(end)
	if s.Error, err = decodeError(errJSON); err != nil {
		return "", nil, err
	}
	if s.Result, err = decodeMap(res); err != nil {
		return "", nil, err
	}
	return executionID, &s, nil
}

// EventColumns lists the execution_events columns, in the order ScanEvent
// reads them. The execution id is not among them: callers list the events
// of one execution.
const EventColumns = `seq, time, kind, body`

// ScanEvent reads an event of the execution executionID from a row of
// EventColumns.
func ScanEvent(row Row, executionID string) (*store.Event, error) {
	ev, byRef, err := ScanEventByRef(row, executionID)
	if err == nil && byRef {
		err = fmt.Errorf("event %d of %s refers to its execution", ev.Seq, executionID)
	}
	return ev, err
}

// ScanEventByRef is ScanEvent for bodies that EncodeEventBodyByRef may
// have written: byRef reports that the event's Execution is to be loaded
// by the caller.
func ScanEventByRef(row Row, executionID string) (ev *store.Event, byRef bool, err error) {
	var (
		seq, t int64
		kind   int32
		body   string
	)
	if err := row.Scan(&seq, &t, &kind, &body); err != nil {
		return nil, false, err
	}
	return DecodeEvent(executionID, seq, t, kind, body)
}

// DecodeEvent builds an event of the execution executionID from the values
// of EventColumns (body as EncodeEventBody or EncodeEventBodyByRef wrote
// it); byRef reports that the event's Execution is to be loaded by the
// caller.
func DecodeEvent(executionID string, seq, t int64, kind int32, body string) (ev *store.Event, byRef bool, err error) {
	ev = &store.Event{ExecutionID: executionID, Seq: seq, Time: FromNanos(t), Kind: store.EventKind(kind)}
	if byRef, err = decodeEventBody(body, ev); err != nil {
		return nil, false, err
	}
	return ev, byRef, nil
}

// WorkflowColumns lists the workflows columns, in the order ScanWorkflow
// reads them.
const WorkflowColumns = `name, version, description, definition, create_time`

// ScanWorkflow reads a workflow version from a row of WorkflowColumns.
func ScanWorkflow(row Row) (*store.Workflow, error) {
	var (
		w   store.Workflow
		def string
		ct  int64
	)
	if err := row.Scan(&w.Name, &w.Version, &w.Description, &def, &ct); err != nil {
		return nil, err
	}
	w.CreateTime = FromNanos(ct)
	if err := decodeWorkflowDef(def, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// ResourceColumns lists the resources columns, in the order ScanResource
// reads them.
const ResourceColumns = `name, spec, create_time, update_time`

// ScanWorkflowSummary reads a row of WorkflowColumns as the summary a
// list of workflows gives.
func ScanWorkflowSummary(row Row) (*store.WorkflowSummary, error) {
	w, err := ScanWorkflow(row)
	if err != nil {
		return nil, err
	}
	return Summarize(w), nil
}

// ScanResource reads a resource from a row of ResourceColumns.
func ScanResource(row Row) (*store.Resource, error) {
	var (
		r              store.Resource
		spec           string
		create, update int64
	)
	if err := row.Scan(&r.Name, &spec, &create, &update); err != nil {
		return nil, err
	}
	r.CreateTime, r.UpdateTime = FromNanos(create), FromNanos(update)
	var err error
	if r.Spec, err = decodeSpec(spec); err != nil {
		return nil, err
	}
	return &r, nil
}

// SecretColumns lists the secrets columns, in the order ScanSecret reads
// them.
const SecretColumns = `name, version, keys, description, create_time, expire_time, allowed_hosts, wrapped_key, ciphertext`

// ScanSecret reads a secret version from a row of SecretColumns.
func ScanSecret(row Row) (*store.SecretRecord, error) {
	var (
		r             store.SecretRecord
		keys, hosts   string
		create, expir int64
	)
	if err := row.Scan(&r.Name, &r.Version, &keys, &r.Description, &create, &expir, &hosts,
		&r.WrappedKey, &r.Ciphertext); err != nil {
		return nil, err
	}
	r.CreateTime, r.ExpireTime = FromNanos(create), FromNanos(expir)
	var err error
	if r.Keys, err = DecodeStrings(keys); err != nil {
		return nil, err
	}
	if r.AllowedHosts, err = DecodeStrings(hosts); err != nil {
		return nil, err
	}
	return &r, nil
}
