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
	if err := s.groupTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return s.insertCreate(ctx, tx, row)
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

// insertCreate inserts an encoded execution and its node states.
func (s *Store) insertCreate(ctx context.Context, tx *sql.Tx, row *createRow) error {
	e := row.e
	if _, err := tx.StmtContext(ctx, s.insertExecution).ExecContext(ctx,
		e.ID, e.Workflow, e.Version, int32(e.Status), row.req, row.errJSON,
		codec.Nanos(e.CreateTime), codec.Nanos(e.StartTime), codec.Nanos(e.EndTime),
		e.IdempotencyKey, e.Caller, e.Owner); err != nil {
		return err
	}
	ins := tx.StmtContext(ctx, s.insertNode)
	for i, n := range e.Nodes {
		if _, err := ins.ExecContext(ctx, e.ID, n.NodeID, i, int32(n.Status), n.Attempts,
			codec.Nanos(n.StartTime), codec.Nanos(n.EndTime), row.nodeErrs[i], row.nodeRes[i]); err != nil {
			return err
		}
	}
	return nil
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
func (s *Store) WriteJournal(ctx context.Context, b *store.JournalBatch) error {
	// Encode everything before taking the write connection.
	type execRow struct {
		e       *store.Execution
		errJSON *string
	}
	type nodeRow struct {
		u            store.NodeUpdate
		errJSON, res *string
	}
	type eventRow struct {
		ev   *store.Event
		body string
	}
	creates := make([]*createRow, len(b.Creates))
	for i, e := range b.Creates {
		row, err := encodeCreate(e)
		if err != nil {
			return fmt.Errorf("sqlite: write journal: create execution %s: %w", e.ID, err)
		}
		creates[i] = row
	}
	execs := make([]execRow, len(b.Executions))
	nodes := make([]nodeRow, len(b.Nodes))
	events := make([]eventRow, len(b.Events))
	var err error
	for i, e := range b.Executions {
		execs[i].e = e
		if execs[i].errJSON, err = codec.EncodeError(e.Error); err != nil {
			return fmt.Errorf("sqlite: write journal: %w", err)
		}
	}
	for i, u := range b.Nodes {
		nodes[i].u = u
		if nodes[i].errJSON, err = codec.EncodeError(u.State.Error); err != nil {
			return fmt.Errorf("sqlite: write journal: %w", err)
		}
		if nodes[i].res, err = codec.EncodeMap(u.State.Result); err != nil {
			return fmt.Errorf("sqlite: write journal: %w", err)
		}
	}
	for i, ev := range b.Events {
		events[i].ev = ev
		if events[i].body, err = codec.EncodeEventBody(ev); err != nil {
			return fmt.Errorf("sqlite: write journal: %w", err)
		}
	}
	err = s.groupTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		for _, row := range creates {
			if err := s.insertCreate(ctx, tx, row); err != nil {
				return fmt.Errorf("create execution %s: %w", row.e.ID, translate(err))
			}
		}
		if len(execs) > 0 {
			upd := tx.StmtContext(ctx, s.updateExecution)
			for _, r := range execs {
				e := r.e
				res, err := upd.ExecContext(ctx, int32(e.Status), r.errJSON, codec.Nanos(e.StartTime), codec.Nanos(e.EndTime), e.Owner, e.ID)
				if err != nil {
					return translate(err)
				}
				if n, err := res.RowsAffected(); err != nil {
					return err
				} else if n == 0 {
					return fmt.Errorf("execution %s: %w", e.ID, store.ErrNotFound)
				}
			}
		}
		if len(nodes) > 0 {
			up := tx.StmtContext(ctx, s.upsertNode)
			for _, r := range nodes {
				n := r.u.State
				if _, err := up.ExecContext(ctx, r.u.ExecutionID, n.NodeID, int32(n.Status), n.Attempts,
					codec.Nanos(n.StartTime), codec.Nanos(n.EndTime), r.errJSON, r.res); err != nil {
					return translate(err)
				}
			}
		}
		// fn may run twice (see groupTx): do not consume events itself.
		for rest := events; len(rest) > 0; {
			n := min(len(rest), maxEventsPerInsert)
			args := make([]any, 0, 5*n)
			for _, r := range rest[:n] {
				ev := r.ev
				args = append(args, ev.ExecutionID, ev.Seq, codec.Nanos(ev.Time), int32(ev.Kind), r.body)
			}
			if _, err := tx.StmtContext(ctx, s.insertEvents[n]).ExecContext(ctx, args...); err != nil {
				if isUnique(err) {
					return fmt.Errorf("event seq already journalled: %w", store.ErrConflict)
				}
				return translate(err)
			}
			rest = rest[n:]
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: write journal: %w", err)
	}
	return nil
}

// ListEvents implements store.Store. A limit <= 0 means 1000.
func (s *Store) ListEvents(ctx context.Context, executionID string, afterSeq int64, limit int) ([]*store.Event, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+codec.EventColumns+` FROM execution_events
		WHERE execution_id = ? AND seq > ? ORDER BY seq LIMIT ?`, executionID, afterSeq, codec.PageLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("sqlite: list events of %s: %w", executionID, err)
	}
	defer rows.Close()
	var out []*store.Event
	for rows.Next() {
		ev, err := codec.ScanEvent(rows, executionID)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list events of %s: %w", executionID, err)
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
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
// without an end time counts as ended at its creation.
func (s *Store) DeleteExecutionsBefore(ctx context.Context, t time.Time) (int, error) {
	var n int64
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM executions WHERE status >= ?1
			AND create_time < ?2 AND (CASE WHEN end_time = 0 THEN create_time ELSE end_time END) < ?2`,
			int32(store.ExecutionCompleted), codec.Nanos(t))
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
