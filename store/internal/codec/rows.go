package codec

import (
	"fmt"
	"strconv"
	"strings"

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

// AppendNodeLine appends n to b as one line of an inline node list (see
// DecodeNodeLines): node id, status, attempts, start and end times, error
// and result, tab-separated, the last two as JSON ('-' when unset, which
// no JSON value is). ok is false, and b unchanged, for a node id with a
// tab or newline, which has no line.
func AppendNodeLine(b []byte, n *store.NodeState) (out []byte, ok bool, err error) {
	if strings.ContainsAny(n.NodeID, "\t\n") {
		return b, false, nil
	}
	errJSON, err := EncodeError(n.Error)
	if err != nil {
		return b, false, err
	}
	res, err := EncodeMap(n.Result)
	if err != nil {
		return b, false, err
	}
	b = append(b, n.NodeID...)
	for _, v := range []int64{int64(n.Status), int64(n.Attempts), Nanos(n.StartTime), Nanos(n.EndTime)} {
		b = append(b, '\t')
		b = strconv.AppendInt(b, v, 10)
	}
	for _, s := range []*string{errJSON, res} {
		b = append(b, '\t')
		if s == nil {
			b = append(b, '-')
		} else {
			b = append(b, *s...) // JSON: tabs and newlines only escaped
		}
	}
	return append(b, '\n'), true, nil
}

// DecodeNodeLines decodes the node states AppendNodeLine wrote, in order;
// without results, every Result is nil.
func DecodeNodeLines(s string, results bool) ([]*store.NodeState, error) {
	out := make([]*store.NodeState, 0, strings.Count(s, "\n"))
	for line := range strings.Lines(s) {
		f := strings.Split(strings.TrimSuffix(line, "\n"), "\t")
		if len(f) != 7 {
			return nil, fmt.Errorf("malformed inline node state %q", line)
		}
		var ints [4]int64
		for i := range ints {
			var err error
			if ints[i], err = strconv.ParseInt(f[1+i], 10, 64); err != nil {
				return nil, fmt.Errorf("malformed inline node state %q: %w", line, err)
			}
		}
		n := &store.NodeState{NodeID: f[0], Status: store.NodeStatus(ints[0]), Attempts: int32(ints[1]),
			StartTime: FromNanos(ints[2]), EndTime: FromNanos(ints[3])}
		var err error
		if n.Error, err = decodeError(orNull(f[5])); err != nil {
			return nil, err
		}
		if results {
			if n.Result, err = decodeMap(orNull(f[6])); err != nil {
				return nil, err
			}
		}
		out = append(out, n)
	}
	return out, nil
}

// orNull is nil for AppendNodeLine's '-', else a pointer to s.
func orNull(s string) *string {
	if s == "-" {
		return nil
	}
	return &s
}
