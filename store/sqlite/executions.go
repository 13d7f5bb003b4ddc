package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"time"

	"github.com/kailash-gateway/kgw/store"
	"github.com/kailash-gateway/kgw/store/internal/codec"
)

// querier is what both *sql.DB and *sql.Tx offer for reads.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// CreateExecution implements store.Store. A zero e.CreateTime is set to now.
func (s *Store) CreateExecution(ctx context.Context, e *store.Execution) error {
	row, err := encodeCreate(e)
	if err != nil {
		return fmt.Errorf("sqlite: create execution %s: %w", e.ID, err)
	}
	execArgs, nodeArgs := createArgs([]*createRow{row})
	if err := s.groupTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return s.insertCreates(ctx, tx, execArgs, nodeArgs)
	}); err != nil {
		return fmt.Errorf("sqlite: create execution %s: %w", e.ID, translate(err))
	}
	return nil
}

// createRow is a new execution encoded for insertion.
type createRow struct {
	e        *store.Execution
	req      string
	errJSON  *string
	nodeErrs []*string
	nodeRes  []*string
}

// encodeCreate encodes e, setting a zero CreateTime to now.
func encodeCreate(e *store.Execution) (*createRow, error) {
	if e.CreateTime.IsZero() {
		e.CreateTime = time.Unix(0, time.Now().UnixNano()).UTC()
	}
	row := &createRow{e: e, nodeErrs: make([]*string, len(e.Nodes)), nodeRes: make([]*string, len(e.Nodes))}
	var err error
	if row.req, err = codec.EncodeRequest(&e.Request); err != nil {
		return nil, err
	}
	if row.errJSON, err = codec.EncodeError(e.Error); err != nil {
		return nil, err
	}
	for i, n := range e.Nodes {
		if row.nodeErrs[i], err = codec.EncodeError(n.Error); err != nil {
			return nil, err
		}
		if row.nodeRes[i], err = codec.EncodeMap(n.Result); err != nil {
			return nil, err
		}
	}
	return row, nil
}

// createArgs appends the arguments of the executions rows and the node
// rows of encoded new executions.
func createArgs(rows []*createRow) (execArgs, nodeArgs []any) {
	nodes := 0
	for _, row := range rows {
		nodes += len(row.e.Nodes)
	}
	execArgs = make([]any, 0, 12*len(rows))
	nodeArgs = make([]any, 0, 9*nodes)
	for _, row := range rows {
		e := row.e
		execArgs = append(execArgs, e.ID, e.Workflow, e.Version, int32(e.Status), row.req, row.errJSON,
			codec.Nanos(e.CreateTime), codec.Nanos(e.StartTime), codec.Nanos(e.EndTime),
			e.IdempotencyKey, e.Caller, e.Owner)
		for i, n := range e.Nodes {
			nodeArgs = append(nodeArgs, e.ID, n.NodeID, i, int32(n.Status), n.Attempts,
				codec.Nanos(n.StartTime), codec.Nanos(n.EndTime), row.nodeErrs[i], row.nodeRes[i])
		}
	}
	return execArgs, nodeArgs
}

// insertCreates inserts new executions and their node states, given as
// createArgs returns them.
func (s *Store) insertCreates(ctx context.Context, tx *sql.Tx, execArgs, nodeArgs []any) error {
	if _, err := execRows(ctx, tx, &s.insertExecutions, execArgs); err != nil {
		return err
	}
	_, err := execRows(ctx, tx, &s.insertNodes, nodeArgs)
	return err
}

// loadNodes fills the Nodes of each execution, in workflow order.
func loadNodes(ctx context.Context, q querier, execs []*store.Execution) error {
	if len(execs) == 0 {
		return nil
	}
	byID := make(map[string]*store.Execution, len(execs))
	args := make([]any, len(execs))
	for i, e := range execs {
		byID[e.ID] = e
		args[i] = e.ID
	}
	rows, err := q.QueryContext(ctx, `SELECT `+codec.NodeColumns+`
		FROM execution_nodes WHERE execution_id IN (`+placeholders(len(args))+`) ORDER BY execution_id, position`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		id, n, err := codec.ScanNodeState(rows)
		if err != nil {
			return err
		}
		e := byID[id]
		e.Nodes = append(e.Nodes, n)
	}
	return rows.Err()
}

// getExecution reads one execution with its nodes through q.
func getExecution(ctx context.Context, q querier, where string, args ...any) (*store.Execution, error) {
	e, err := codec.ScanExecution(q.QueryRowContext(ctx, `SELECT `+codec.ExecutionColumns+` FROM executions WHERE `+where, args...))
	if err != nil {
		return nil, translate(err)
	}
	if err := loadNodes(ctx, q, []*store.Execution{e}); err != nil {
		return nil, err
	}
	return e, nil
}

// GetExecution implements store.Store.
func (s *Store) GetExecution(ctx context.Context, id string) (*store.Execution, error) {
	var e *store.Execution
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		var err error
		e, err = getExecution(ctx, tx, `id = ?`, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: get execution %s: %w", id, err)
	}
	return e, nil
}

// FindExecutionByIdempotencyKey implements store.Store.
func (s *Store) FindExecutionByIdempotencyKey(ctx context.Context, caller, key string) (*store.Execution, error) {
	if key == "" {
		return nil, fmt.Errorf("sqlite: find execution by empty idempotency key: %w", store.ErrNotFound)
	}
	var e *store.Execution
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		var err error
		e, err = getExecution(ctx, tx, `caller = ? AND idempotency_key = ?`, caller, key)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: find execution by idempotency key: %w", err)
	}
	return e, nil
}

// ListExecutions implements store.Store.
func (s *Store) ListExecutions(ctx context.Context, q store.ExecutionQuery) ([]*store.Execution, string, error) {
	limit := codec.PageLimit(q.Page.Limit)
	where, args := "1 = 1", []any{}
	if q.Workflow != "" {
		where += " AND workflow = ?"
		args = append(args, q.Workflow)
	}
	if q.Status != store.ExecutionUnspecified {
		where += " AND status = ?"
		args = append(args, int32(q.Status))
	}
	if q.Page.After != "" {
		ct, id, err := codec.ParseExecutionCursor(q.Page.After)
		if err != nil {
			return nil, "", fmt.Errorf("sqlite: list executions: %w", err)
		}
		where += " AND (create_time < ? OR (create_time = ? AND id < ?))"
		args = append(args, ct, ct, id)
	}
	args = append(args, limit+1)
	var (
		out  []*store.Execution
		more bool
	)
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+codec.ExecutionColumns+` FROM executions WHERE `+where+`
			ORDER BY create_time DESC, id DESC LIMIT ?`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			e, err := codec.ScanExecution(rows)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(out) > limit {
			out, more = out[:limit], true
		}
		return loadNodes(ctx, tx, out)
	})
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list executions: %w", err)
	}
	next := ""
	if more {
		last := out[len(out)-1]
		next = codec.ExecutionCursor(codec.Nanos(last.CreateTime), last.ID)
	}
	return out, next, nil
}

// WriteJournal implements store.Store. Updating an unknown execution, or
// writing nodes or events of one, fails with store.ErrNotFound.
//
// Everything is encoded before the write connection is taken, and each
// kind of row is written with a few multi-row statements (see execRows):
// the statement overhead is paid per batch, not per row. Several updates
// of one execution header or node state in a batch are merged (the last
// state wins, in the place of the first).
func (s *Store) WriteJournal(ctx context.Context, b *store.JournalBatch) error {
	creates := make([]*createRow, len(b.Creates))
	for i, e := range b.Creates {
		row, err := encodeCreate(e)
		if err != nil {
			return fmt.Errorf("sqlite: write journal: create execution %s: %w", e.ID, err)
		}
		creates[i] = row
	}
	createExecs, createNodes := createArgs(creates)

	headers := b.Executions
	if len(headers) > 1 {
		headers = mergeHeaders(headers)
	}
	headerArgs := make([]any, 0, 6*len(headers))
	for _, e := range headers {
		errJSON, err := codec.EncodeError(e.Error)
		if err != nil {
			return fmt.Errorf("sqlite: write journal: %w", err)
		}
		headerArgs = append(headerArgs, e.ID, int32(e.Status), errJSON, codec.Nanos(e.StartTime), codec.Nanos(e.EndTime), e.Owner)
	}

	nodes := b.Nodes
	if len(nodes) > 1 {
		nodes = mergeNodes(nodes)
	}
	nodeArgs := make([]any, 0, 8*len(nodes))
	for _, u := range nodes {
		n := u.State
		errJSON, err := codec.EncodeError(n.Error)
		if err != nil {
			return fmt.Errorf("sqlite: write journal: %w", err)
		}
		res, err := codec.EncodeMap(n.Result)
		if err != nil {
			return fmt.Errorf("sqlite: write journal: %w", err)
		}
		nodeArgs = append(nodeArgs, u.ExecutionID, n.NodeID, int32(n.Status), n.Attempts,
			codec.Nanos(n.StartTime), codec.Nanos(n.EndTime), errJSON, res)
	}

	hasHeader := make(map[string]bool, len(headers))
	for _, e := range headers {
		hasHeader[e.ID] = true
	}
	eventArgs := make([]any, 0, 5*len(b.Events))
	for _, ev := range b.Events {
		encode := codec.EncodeEventBody
		if ev.Execution != nil && hasHeader[ev.ExecutionID] {
			// The batch journals the final state that the event carries:
			// ListEvents loads it from there (see package doc).
			encode = codec.EncodeEventBodyByRef
		}
		body, err := encode(ev)
		if err != nil {
			return fmt.Errorf("sqlite: write journal: %w", err)
		}
		eventArgs = append(eventArgs, ev.ExecutionID, ev.Seq, codec.Nanos(ev.Time), int32(ev.Kind), body)
	}

	// The executions whose nodes or events the batch writes must exist:
	// those it creates, or whose header it updates (the update counts its
	// rows), are known to; the others are looked up.
	known := hasHeader // from here on: the executions created or updated
	for _, e := range b.Creates {
		known[e.ID] = true
	}
	others := otherExecutions(b, known)

	// fn may run twice (see groupTx): it must not consume its inputs.
	err := s.groupTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if len(creates) > 0 {
			if err := s.insertCreates(ctx, tx, createExecs, createNodes); err != nil {
				return fmt.Errorf("create executions: %w", translate(err))
			}
		}
		if len(headers) > 0 {
			n, err := execRows(ctx, tx, &s.updateExecutions, headerArgs)
			if err != nil {
				return translate(err)
			}
			if n < int64(len(headers)) {
				return fmt.Errorf("update of %d executions: %d %w", len(headers), int64(len(headers))-n, store.ErrNotFound)
			}
		}
		if len(others) > 0 {
			if err := executionsExist(ctx, tx, others); err != nil {
				return err
			}
		}
		if len(nodes) > 0 {
			n, err := execRows(ctx, tx, &s.updateNodes, nodeArgs)
			if err != nil {
				return translate(err)
			}
			if n < int64(len(nodes)) {
				// Some nodes are new: upsert every node one by one, in
				// batch order, so that new ones are appended in that
				// order (upserting an updated node again changes nothing).
				up := tx.StmtContext(ctx, s.upsertNode)
				for k := 0; k < len(nodeArgs); k += 8 {
					if _, err := up.ExecContext(ctx, nodeArgs[k:k+8]...); err != nil {
						return translate(err)
					}
				}
			}
		}
		if _, err := execRows(ctx, tx, &s.insertEvents, eventArgs); err != nil {
			if isUnique(err) {
				return fmt.Errorf("event seq already journalled: %w", store.ErrConflict)
			}
			return translate(err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: write journal: %w", err)
	}
	return nil
}

// otherExecutions returns the distinct executions whose nodes or events b
// writes that are not in known.
func otherExecutions(b *store.JournalBatch, known map[string]bool) []any {
	var out []any
	add := func(id string) {
		if !known[id] {
			known[id] = true
			out = append(out, id)
		}
	}
	for _, u := range b.Nodes {
		add(u.ExecutionID)
	}
	for _, ev := range b.Events {
		add(ev.ExecutionID)
	}
	return out
}

// executionsExist fails with store.ErrNotFound unless every execution in
// ids (distinct) exists.
func executionsExist(ctx context.Context, tx *sql.Tx, ids []any) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM executions WHERE id IN (`+placeholders(len(ids))+`)`,
		ids...).Scan(&n); err != nil {
		return err
	}
	if n < len(ids) {
		return fmt.Errorf("%d of the executions written to: %w", len(ids)-n, store.ErrNotFound)
	}
	return nil
}

// mergeHeaders returns the header updates with one entry per execution:
// the last update of each, in the place of its first.
func mergeHeaders(in []*store.Execution) []*store.Execution {
	at := make(map[string]int, len(in))
	out := make([]*store.Execution, 0, len(in))
	for _, e := range in {
		if k, ok := at[e.ID]; ok {
			out[k] = e
			continue
		}
		at[e.ID] = len(out)
		out = append(out, e)
	}
	return out
}

// mergeNodes returns the node updates with one entry per node: the last
// state of each, in the place of its first.
func mergeNodes(in []store.NodeUpdate) []store.NodeUpdate {
	type key struct{ exec, node string }
	at := make(map[key]int, len(in))
	out := make([]store.NodeUpdate, 0, len(in))
	for _, u := range in {
		k := key{u.ExecutionID, u.State.NodeID}
		if i, ok := at[k]; ok {
			out[i] = u
			continue
		}
		at[k] = len(out)
		out = append(out, u)
	}
	return out
}

// ListEvents implements store.Store. A limit <= 0 means 1000. A terminal
// event stored by reference gets the execution as journalled, read in the
// same transaction as the events.
func (s *Store) ListEvents(ctx context.Context, executionID string, afterSeq int64, limit int) ([]*store.Event, error) {
	var out []*store.Event
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		rows, err := tx.QueryContext(ctx, `SELECT `+codec.EventColumns+` FROM execution_events
			WHERE execution_id = ? AND seq > ? ORDER BY seq LIMIT ?`, executionID, afterSeq, codec.PageLimit(limit))
		if err != nil {
			return err
		}
		defer rows.Close()
		var refs []*store.Event
		for rows.Next() {
			ev, byRef, err := codec.ScanEventByRef(rows, executionID)
			if err != nil {
				return err
			}
			if byRef {
				refs = append(refs, ev)
			}
			out = append(out, ev)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(refs) == 0 {
			return nil
		}
		if err := rows.Close(); err != nil {
			return err
		}
		x, err := getExecution(ctx, tx, `id = ?`, executionID)
		if err != nil {
			return fmt.Errorf("execution of event %d: %w", refs[0].Seq, err)
		}
		for _, ev := range refs {
			ev.Execution = x
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: list events of %s: %w", executionID, err)
	}
	return out, nil
}

// ClaimExecutions implements store.Store.
func (s *Store) ClaimExecutions(ctx context.Context, owner string, staleBefore time.Time) ([]*store.Execution, error) {
	var out []*store.Execution
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `UPDATE executions SET owner = ?
			WHERE status < ? AND (owner = '' OR NOT EXISTS (
				SELECT 1 FROM owners o WHERE o.owner = executions.owner AND o.heartbeat >= ?))
			RETURNING `+codec.ExecutionColumns,
			owner, int32(store.ExecutionCompleted), codec.Nanos(staleBefore))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			e, err := codec.ScanExecution(rows)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if err := rows.Close(); err != nil {
			return err
		}
		sort.Slice(out, func(i, j int) bool {
			if !out[i].CreateTime.Equal(out[j].CreateTime) {
				return out[i].CreateTime.Before(out[j].CreateTime)
			}
			return out[i].ID < out[j].ID
		})
		return loadNodes(ctx, tx, out)
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim executions for %s: %w", owner, err)
	}
	return out, nil
}

// Heartbeat implements store.Store.
func (s *Store) Heartbeat(ctx context.Context, owner string, now time.Time) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO owners (owner, heartbeat) VALUES (?, ?)
			ON CONFLICT (owner) DO UPDATE SET heartbeat = max(heartbeat, excluded.heartbeat)`, owner, codec.Nanos(now))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: heartbeat of %s: %w", owner, err)
	}
	return nil
}

// DeleteExecutionsBefore implements store.Store. A finished execution
// without an end time counts as ended at its creation. The node states and
// events of the executions go with them.
func (s *Store) DeleteExecutionsBefore(ctx context.Context, t time.Time) (int, error) {
	const expired = `status >= ?1 AND create_time < ?2
		AND (CASE WHEN end_time = 0 THEN create_time ELSE end_time END) < ?2`
	var n int64
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		args := []any{int32(store.ExecutionCompleted), codec.Nanos(t)}
		for _, table := range []string{"execution_events", "execution_nodes"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+`
				WHERE execution_id IN (SELECT id FROM executions WHERE `+expired+`)`, args...); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM executions WHERE `+expired, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete executions before %v: %w", t, err)
	}
	return int(n), nil
}
