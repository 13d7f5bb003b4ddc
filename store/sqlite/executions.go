package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"time"

	"github.com/kailash-gateway/kgw/store"
	"github.com/kailash-gateway/kgw/store/internal/codec"
	"github.com/kailash-gateway/kgw/store/internal/paging"
)

// querier is what both *sql.DB and *sql.Tx offer for reads.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// CreateExecution implements store.Store. A zero e.CreateTime is set to now.
func (s *Store) CreateExecution(ctx context.Context, e *store.Execution) error {
	return s.WriteJournal(ctx, &store.JournalBatch{Creates: []*store.Execution{e}})
}

// getExecution reads one execution with its nodes through q.
func getExecution(ctx context.Context, q querier, where string, args ...any) (*store.Execution, error) {
	e, err := scanExecution(q.QueryRowContext(ctx, `SELECT `+executionColumns+` FROM executions WHERE `+where, args...))
	if err != nil {
		return nil, translate(err)
	}
	if err := loadNodes(ctx, q, []*store.Execution{e}, true); err != nil {
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
	query, args, limit, err := paging.ExecutionsQuery(sqliteDialect, executionColumns, q)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list executions: %w", err)
	}
	var out []*store.Execution
	err = s.readTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		if out, err = paging.Scan(rows, scanExecution); err != nil {
			return err
		}
		return loadNodes(ctx, tx, out[:min(len(out), limit)], !q.OmitResults)
	})
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list executions: %w", err)
	}
	out, next := paging.Cut(out, limit, paging.ExecutionCursor)
	return out, next, nil
}

// sqliteDialect is how SQLite writes the queries package paging builds.
var sqliteDialect = paging.Dialect{Placeholder: paging.Question}

// ClaimQueued implements store.Store. SQLite serves one process, whose
// writes are serialized: one statement takes the rows.
func (s *Store) ClaimQueued(ctx context.Context, owner string, limit int) ([]*store.Execution, error) {
	if limit <= 0 {
		return nil, nil
	}
	// Most ticks find nothing queued: ask the read pool first.
	var queuedAny bool
	if err := s.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM executions WHERE status < 3 AND owner = '')`).Scan(&queuedAny); err != nil {
		return nil, fmt.Errorf("sqlite: claim queued executions for %s: %w", owner, err)
	}
	if !queuedAny {
		return nil, nil
	}
	var out []*store.Execution
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = updateReturning(ctx, tx, `UPDATE executions SET owner = ?1, epoch = epoch + 1
			WHERE id IN (SELECT id FROM executions WHERE status < 3 AND owner = ''
				ORDER BY create_time, id LIMIT ?2)
			RETURNING `+executionColumns, owner, limit)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim queued executions for %s: %w", owner, err)
	}
	return out, nil
}

// ReleaseStale implements store.Store.
func (s *Store) ReleaseStale(ctx context.Context, staleBefore time.Time) (int, error) {
	// Most ticks find no stale owner: ask the read pool first, so that
	// they never take the writer that journal commits wait for.
	var staleAny bool
	if err := s.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM executions WHERE `+staleWhere+`)`,
		codec.Nanos(staleBefore)).Scan(&staleAny); err != nil {
		return 0, fmt.Errorf("sqlite: release executions of stale owners: %w", err)
	}
	if !staleAny {
		return 0, nil
	}
	var n int64
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, releaseStaleQuery, codec.Nanos(staleBefore))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: release executions of stale owners: %w", err)
	}
	return int(n), nil
}

// updateReturning runs an UPDATE … RETURNING executionColumns and returns
// the executions, oldest first, with their nodes.
func updateReturning(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]*store.Execution, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*store.Execution
	for rows.Next() {
		e, err := scanExecution(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreateTime.Equal(out[j].CreateTime) {
			return out[i].CreateTime.Before(out[j].CreateTime)
		}
		return out[i].ID < out[j].ID
	})
	return out, loadNodes(ctx, tx, out, true)
}

// ReclaimExecutions implements store.Store.
func (s *Store) ReclaimExecutions(ctx context.Context, owner string) ([]*store.Execution, error) {
	var out []*store.Execution
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `UPDATE executions SET epoch = epoch + 1, restarts = restarts + 1
			WHERE status < 3 AND owner = ?1 AND owner <> '' RETURNING `+executionColumns, owner)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			e, err := scanExecution(rows)
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
		return loadNodes(ctx, tx, out, true)
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: reclaim executions of %s: %w", owner, err)
	}
	return out, nil
}

// The statements of the recovery and retention ticks. They read only
// unfinished executions (index executions_unfinished, migration 0006,
// whose predicate they repeat with the literal 3 = store.ExecutionCompleted
// so that SQLite can use it) or executions created before the retention
// cutoff (index executions_newest). TestBackgroundQueryPlans checks the
// plans.
const (
	// staleWhere selects the unfinished executions whose owner has not
	// heart-beaten since ?1 (or never did).
	staleWhere = `status < 3 AND owner <> '' AND NOT EXISTS (
		SELECT 1 FROM owners o WHERE o.owner = executions.owner AND o.heartbeat >= ?1)`
	// releaseStaleQuery puts them back into the backlog (ReleaseStale).
	releaseStaleQuery = `UPDATE executions SET owner = '', restarts = restarts + 1 WHERE ` + staleWhere
	// expiredBatch selects the ids of at most ?2 finished executions that
	// ended before ?1, oldest first. The id order makes the same
	// statement select the same rows again within one transaction.
	expiredBatch = `SELECT id FROM executions WHERE create_time < ?1 AND status >= 3
		AND (CASE WHEN end_time = 0 THEN create_time ELSE end_time END) < ?1
		ORDER BY create_time, id LIMIT ?2`
	// deleteBatch is how many executions one retention transaction
	// deletes, so that journal commits wait at most for one batch.
	deleteBatch = 500
)

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
// events of the executions go with them. It deletes in transactions of at
// most deleteBatch executions, so that journal writes never wait for a
// whole backlog.
func (s *Store) DeleteExecutionsBefore(ctx context.Context, t time.Time) (int, error) {
	total := 0
	for {
		var n int64
		err := s.writeTx(ctx, func(tx *sql.Tx) error {
			cutoff := codec.Nanos(t)
			for _, table := range []string{"execution_events", "execution_nodes"} {
				if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+`
					WHERE execution_id IN (`+expiredBatch+`)`, cutoff, deleteBatch); err != nil {
					return err
				}
			}
			res, err := tx.ExecContext(ctx, `DELETE FROM executions WHERE id IN (`+expiredBatch+`)`, cutoff, deleteBatch)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return total, fmt.Errorf("sqlite: delete executions before %v: %w", t, err)
		}
		total += int(n)
		if n < deleteBatch {
			return total, nil
		}
	}
}
