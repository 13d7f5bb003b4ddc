package postgres

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kailash-gateway/kgw/store"
	"github.com/kailash-gateway/kgw/store/internal/codec"
	"github.com/kailash-gateway/kgw/store/internal/paging"
)

// querier is what both the pool and a transaction offer.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

const (
	sqlInsertExecution = `INSERT INTO executions (id, workflow, version, status, request, error,
		create_time, start_time, end_time, idempotency_key, caller, owner)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`
	sqlInsertNode = `INSERT INTO execution_nodes (execution_id, node_id, position, status, attempts,
		start_time, end_time, error, result) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`
	// The journal writes of one execution; the last parameter is the
	// writer's epoch (0 = unchecked), compared with the stored one in the
	// statement itself (fencing, see store.JournalBatch.Epochs).
	sqlUpdateExecution = `UPDATE executions SET status = $1, error = $2, start_time = $3, end_time = $4, owner = $5
		WHERE id = $6 AND ($7::bigint = 0 OR epoch = $7::bigint)`
	sqlUpsertNode = `INSERT INTO execution_nodes (execution_id, node_id, position, status, attempts,
		start_time, end_time, error, result)
		SELECT $1, $2, (SELECT count(*) FROM execution_nodes WHERE execution_id = $1), $3, $4, $5, $6, $7, $8
		WHERE $9::bigint = 0 OR EXISTS (SELECT 1 FROM executions WHERE id = $1 AND epoch = $9::bigint)
		ON CONFLICT (execution_id, node_id) DO UPDATE SET status = excluded.status,
		attempts = excluded.attempts, start_time = excluded.start_time, end_time = excluded.end_time,
		error = excluded.error, result = excluded.result`
	sqlInsertEvent = `INSERT INTO execution_events (execution_id, seq, time, kind, body)
		SELECT $1, $2, $3, $4, $5
		WHERE $6::bigint = 0 OR EXISTS (SELECT 1 FROM executions WHERE id = $1 AND epoch = $6::bigint)`
	// sqlLockEpochs locks the rows of the fenced executions of a batch
	// against claims (which skip locked rows) until the batch commits, and
	// reads their epochs, so that every check of the batch sees the same
	// epoch.
	sqlLockEpochs = `SELECT id, epoch FROM executions WHERE id = ANY($1) ORDER BY id FOR SHARE`
)

// CreateExecution implements store.Store. A zero e.CreateTime is set to now.
func (s *Store) CreateExecution(ctx context.Context, e *store.Execution) error {
	// One implicit transaction, one round trip.
	b := &pgx.Batch{}
	if err := queueCreate(b, e); err != nil {
		return fmt.Errorf("postgres: create execution %s: %w", e.ID, err)
	}
	if queued(e) {
		b.Queue(sqlNotifyBacklog) // delivered at commit
	}
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("postgres: create execution %s: %w", e.ID, translate(err))
	}
	return nil
}

// queueCreate queues the inserts of a new execution (1 + len(e.Nodes)
// statements), setting a zero CreateTime to now.
func queueCreate(b *pgx.Batch, e *store.Execution) error {
	if e.CreateTime.IsZero() {
		e.CreateTime = time.Unix(0, time.Now().UnixNano()).UTC()
	}
	req, err := codec.EncodeRequest(&e.Request)
	if err != nil {
		return err
	}
	errJSON, err := codec.EncodeError(e.Error)
	if err != nil {
		return err
	}
	b.Queue(sqlInsertExecution, e.ID, e.Workflow, e.Version, int32(e.Status), req, errJSON,
		codec.Nanos(e.CreateTime), codec.Nanos(e.StartTime), codec.Nanos(e.EndTime), e.IdempotencyKey, e.Caller, e.Owner)
	for i, n := range e.Nodes {
		nerr, err := codec.EncodeError(n.Error)
		if err != nil {
			return err
		}
		res, err := codec.EncodeMap(n.Result)
		if err != nil {
			return err
		}
		b.Queue(sqlInsertNode, e.ID, n.NodeID, i, int32(n.Status), n.Attempts,
			codec.Nanos(n.StartTime), codec.Nanos(n.EndTime), nerr, res)
	}
	return nil
}

func scanExecutions(rows pgx.Rows) ([]*store.Execution, error) {
	defer rows.Close()
	return paging.Scan(rows, codec.ScanExecution)
}

// nodeColumns returns the node columns to read, with or without results.
func nodeColumns(results bool) string {
	if results {
		return codec.NodeColumns
	}
	return codec.NodeColumnsWithoutResult
}

// loadNodes fills the Nodes of each execution, in workflow order.
func loadNodes(ctx context.Context, q querier, execs []*store.Execution, results bool) error {
	if len(execs) == 0 {
		return nil
	}
	byID := make(map[string]*store.Execution, len(execs))
	ids := make([]string, len(execs))
	for i, e := range execs {
		byID[e.ID] = e
		ids[i] = e.ID
	}
	rows, err := q.Query(ctx, `SELECT `+nodeColumns(results)+`
		FROM execution_nodes WHERE execution_id = ANY($1) ORDER BY execution_id, position`, ids)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		id, n, err := codec.ScanNodeState(rows)
		if err != nil {
			return err
		}
		byID[id].Nodes = append(byID[id].Nodes, n)
	}
	return rows.Err()
}

// readTx runs fn in a REPEATABLE READ, read-only transaction (one snapshot).
func (s *Store) readTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
}

func (s *Store) getExecution(ctx context.Context, where string, args ...any) (*store.Execution, error) {
	var e *store.Execution
	err := s.readTx(ctx, func(tx pgx.Tx) error {
		var err error
		e, err = codec.ScanExecution(tx.QueryRow(ctx, `SELECT `+codec.ExecutionColumns+` FROM executions WHERE `+where, args...))
		if err != nil {
			return translate(err)
		}
		return loadNodes(ctx, tx, []*store.Execution{e}, true)
	})
	return e, err
}

// GetExecution implements store.Store.
func (s *Store) GetExecution(ctx context.Context, id string) (*store.Execution, error) {
	e, err := s.getExecution(ctx, `id = $1`, id)
	if err != nil {
		return nil, fmt.Errorf("postgres: get execution %s: %w", id, err)
	}
	return e, nil
}

// FindExecutionByIdempotencyKey implements store.Store.
func (s *Store) FindExecutionByIdempotencyKey(ctx context.Context, caller, key string) (*store.Execution, error) {
	if key == "" {
		return nil, fmt.Errorf("postgres: find execution by empty idempotency key: %w", store.ErrNotFound)
	}
	e, err := s.getExecution(ctx, `caller = $1 AND idempotency_key = $2`, caller, key)
	if err != nil {
		return nil, fmt.Errorf("postgres: find execution by idempotency key: %w", err)
	}
	return e, nil
}

// ListExecutions implements store.Store.
func (s *Store) ListExecutions(ctx context.Context, q store.ExecutionQuery) ([]*store.Execution, string, error) {
	query, args, limit, err := paging.ExecutionsQuery(pgDialect, codec.ExecutionColumns, q)
	if err != nil {
		return nil, "", fmt.Errorf("postgres: list executions: %w", err)
	}
	var out []*store.Execution
	err = s.readTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		if out, err = scanExecutions(rows); err != nil {
			return err
		}
		return loadNodes(ctx, tx, out[:min(len(out), limit)], !q.OmitResults)
	})
	if err != nil {
		return nil, "", fmt.Errorf("postgres: list executions: %w", err)
	}
	out, next := paging.Cut(out, limit, paging.ExecutionCursor)
	return out, next, nil
}

// pgDialect is how PostgreSQL writes the queries package paging builds.
var pgDialect = paging.Dialect{Placeholder: paging.Dollar, RowValues: true}

// WriteJournal implements store.Store. Updating an unknown execution, or
// writing nodes or events of one, fails with store.ErrNotFound. Writes of
// an execution listed in b.Epochs with another epoch than the stored one
// are refused by their own statements and reported in a *store.FencedError
// after the rest of the batch committed.
func (s *Store) WriteJournal(ctx context.Context, b *store.JournalBatch) error {
	batch := &pgx.Batch{}
	var fenceIDs []string
	for id := range b.Epochs {
		fenceIDs = append(fenceIDs, id)
	}
	if len(fenceIDs) > 0 {
		batch.Queue(sqlLockEpochs, fenceIDs)
	}
	if err := queueJournal(batch, b); err != nil {
		return fmt.Errorf("postgres: write journal: %w", err)
	}
	if batch.Len() == 0 {
		return nil
	}
	// Announce the executions that got events; PostgreSQL delivers the
	// notifications at commit, so a listener that wakes reads them.
	var announced []string
	seen := map[string]bool{}
	for _, ev := range b.Events {
		if !seen[ev.ExecutionID] {
			seen[ev.ExecutionID] = true
			announced = append(announced, ev.ExecutionID)
		}
	}
	for _, id := range announced {
		batch.Queue(`SELECT pg_notify('`+eventsChannel+`', $1)`, id)
	}
	// Executions created or released without an owner wake the
	// processes that claim from the backlog.
	notifyBacklog := false
	for _, e := range b.Creates {
		notifyBacklog = notifyBacklog || queued(e)
	}
	for _, e := range b.Executions {
		notifyBacklog = notifyBacklog || queued(e)
	}
	if notifyBacklog {
		batch.Queue(sqlNotifyBacklog)
	}
	fenced := map[string]bool{}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		br := tx.SendBatch(ctx, batch)
		defer br.Close()
		if len(fenceIDs) > 0 {
			var err error
			if fenced, err = readFenced(br, b.Epochs); err != nil {
				return err
			}
		}
		if err := checkJournalResults(br, b, fenced); err != nil {
			return err
		}
		for range announced {
			if _, err := br.Exec(); err != nil {
				return translate(err)
			}
		}
		if notifyBacklog {
			if _, err := br.Exec(); err != nil {
				return translate(err)
			}
		}
		return br.Close()
	})
	if err != nil {
		return fmt.Errorf("postgres: write journal: %w", err)
	}
	if len(fenced) > 0 {
		fe := &store.FencedError{}
		for id := range fenced {
			fe.IDs = append(fe.IDs, id)
		}
		sort.Strings(fe.IDs)
		return fmt.Errorf("postgres: write journal: %w", fe)
	}
	return nil
}

// queueJournal queues b's writes (after the epoch lock) on batch, each
// guarded by its execution's epoch in b.Epochs.
func queueJournal(batch *pgx.Batch, b *store.JournalBatch) error {
	epoch := func(id string) int64 { return b.Epochs[id] }
	for _, e := range b.Creates {
		if err := queueCreate(batch, e); err != nil {
			return fmt.Errorf("create execution %s: %w", e.ID, err)
		}
	}
	for _, e := range b.Executions {
		errJSON, err := codec.EncodeError(e.Error)
		if err != nil {
			return err
		}
		batch.Queue(sqlUpdateExecution, int32(e.Status), errJSON, codec.Nanos(e.StartTime), codec.Nanos(e.EndTime), e.Owner, e.ID, epoch(e.ID))
	}
	for _, u := range b.Nodes {
		n := u.State
		errJSON, err := codec.EncodeError(n.Error)
		if err != nil {
			return err
		}
		res, err := codec.EncodeMap(n.Result)
		if err != nil {
			return err
		}
		batch.Queue(sqlUpsertNode, u.ExecutionID, n.NodeID, int32(n.Status), n.Attempts,
			codec.Nanos(n.StartTime), codec.Nanos(n.EndTime), errJSON, res, epoch(u.ExecutionID))
	}
	for _, ev := range b.Events {
		body, err := codec.EncodeEventBody(ev)
		if err != nil {
			return err
		}
		batch.Queue(sqlInsertEvent, ev.ExecutionID, ev.Seq, codec.Nanos(ev.Time), int32(ev.Kind), body, epoch(ev.ExecutionID))
	}
	return nil
}

// readFenced reads the result of the epoch lock, the first statement of
// the batch: the executions of epochs whose stored epoch is another one.
func readFenced(br pgx.BatchResults, epochs map[string]int64) (map[string]bool, error) {
	stored := map[string]int64{}
	rows, err := br.Query()
	if err != nil {
		return nil, translate(err)
	}
	for rows.Next() {
		var (
			id string
			ep int64
		)
		if err := rows.Scan(&id, &ep); err != nil {
			rows.Close()
			return nil, err
		}
		stored[id] = ep
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, translate(err)
	}
	fenced := map[string]bool{}
	for id, want := range epochs {
		if ep, ok := stored[id]; ok && want != 0 && ep != want {
			fenced[id] = true
		}
	}
	return fenced, nil
}

// checkJournalResults reads the results of queueJournal's statements in
// order: a write that changed nothing, unless fenced, reports a missing
// execution; a duplicate event a conflict.
func checkJournalResults(br pgx.BatchResults, b *store.JournalBatch, fenced map[string]bool) error {
	// missing reports a write that changed nothing although it was
	// not fenced: its execution does not exist.
	missing := func(id string) error {
		if b.Epochs[id] != 0 && !fenced[id] {
			return fmt.Errorf("execution %s: %w", id, store.ErrNotFound)
		}
		return nil
	}
	for _, e := range b.Creates {
		for range 1 + len(e.Nodes) {
			if _, err := br.Exec(); err != nil {
				return fmt.Errorf("create execution %s: %w", e.ID, translate(err))
			}
		}
	}
	for _, e := range b.Executions {
		tag, err := br.Exec()
		if err != nil {
			return translate(err)
		}
		if tag.RowsAffected() == 0 && !fenced[e.ID] {
			return fmt.Errorf("execution %s: %w", e.ID, store.ErrNotFound)
		}
	}
	for _, u := range b.Nodes {
		tag, err := br.Exec()
		if err != nil {
			return translate(err)
		}
		if tag.RowsAffected() == 0 {
			if err := missing(u.ExecutionID); err != nil {
				return err
			}
		}
	}
	for _, ev := range b.Events {
		tag, err := br.Exec()
		if err != nil {
			if pgCode(err) == codeUniqueViolation {
				return fmt.Errorf("event %s/%d: %w", ev.ExecutionID, ev.Seq, store.ErrConflict)
			}
			return translate(err)
		}
		if tag.RowsAffected() == 0 {
			if err := missing(ev.ExecutionID); err != nil {
				return err
			}
		}
	}
	return nil
}

// ListEvents implements store.Store. A limit <= 0 means 1000.
func (s *Store) ListEvents(ctx context.Context, executionID string, afterSeq int64, limit int) ([]*store.Event, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+codec.EventColumns+` FROM execution_events
		WHERE execution_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, executionID, afterSeq, codec.PageLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("postgres: list events of %s: %w", executionID, err)
	}
	defer rows.Close()
	var out []*store.Event
	for rows.Next() {
		ev, err := codec.ScanEvent(rows, executionID)
		if err != nil {
			return nil, fmt.Errorf("postgres: list events of %s: %w", executionID, err)
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list events of %s: %w", executionID, err)
	}
	return out, nil
}

// ReclaimExecutions implements store.Store.
func (s *Store) ReclaimExecutions(ctx context.Context, owner string) ([]*store.Execution, error) {
	var out []*store.Execution
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, reclaimQuery, owner)
		if err != nil {
			return err
		}
		if out, err = scanExecutions(rows); err != nil {
			return err
		}
		return loadNodes(ctx, tx, out, true)
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: reclaim executions of %s: %w", owner, err)
	}
	sortByCreation(out)
	return out, nil
}

// queued reports whether e, created or updated, is in the backlog: not
// finished and without an owner.
func queued(e *store.Execution) bool { return e.Owner == "" && !e.Status.Terminal() }

// sqlNotifyBacklog announces that the backlog has work.
const sqlNotifyBacklog = `SELECT pg_notify('` + backlogChannel + `', '')`

// ClaimQueued implements store.Store: rows another claimer holds are
// skipped (SKIP LOCKED), so concurrent claimers take disjoint sets.
func (s *Store) ClaimQueued(ctx context.Context, owner string, limit int) ([]*store.Execution, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []*store.Execution
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, claimQueuedQuery, owner, limit)
		if err != nil {
			return err
		}
		if out, err = scanExecutions(rows); err != nil {
			return err
		}
		return loadNodes(ctx, tx, out, true)
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: claim queued executions for %s: %w", owner, err)
	}
	sortByCreation(out)
	return out, nil
}

// ReleaseStale implements store.Store; when it released anything, the
// processes that claim from the backlog are notified at commit.
func (s *Store) ReleaseStale(ctx context.Context, staleBefore time.Time) (int, error) {
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, releaseStaleQuery, codec.Nanos(staleBefore))
		if err != nil {
			return err
		}
		if n = tag.RowsAffected(); n > 0 {
			_, err = tx.Exec(ctx, sqlNotifyBacklog)
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: release executions of stale owners: %w", err)
	}
	return int(n), nil
}

func sortByCreation(execs []*store.Execution) {
	sort.Slice(execs, func(i, j int) bool {
		if !execs[i].CreateTime.Equal(execs[j].CreateTime) {
			return execs[i].CreateTime.Before(execs[j].CreateTime)
		}
		return execs[i].ID < execs[j].ID
	})
}

// qualified prefixes each column of a comma-separated list with alias.
func qualified(alias, columns string) string {
	parts := strings.Split(columns, ",")
	for i, p := range parts {
		parts[i] = alias + "." + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}

// Heartbeat implements store.Store. A heartbeat never moves backwards.
func (s *Store) Heartbeat(ctx context.Context, owner string, now time.Time) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO owners (owner, heartbeat) VALUES ($1, $2)
		ON CONFLICT (owner) DO UPDATE SET heartbeat = greatest(owners.heartbeat, excluded.heartbeat)`,
		owner, codec.Nanos(now)); err != nil {
		return fmt.Errorf("postgres: heartbeat of %s: %w", owner, err)
	}
	return nil
}

// The statements of the recovery and retention ticks. They read only
// unfinished executions (the partial index executions_unfinished, whose
// predicate they repeat with the literal 3 = store.ExecutionCompleted so
// that a generic plan can use it too) or executions created before the
// retention cutoff (index executions_newest). TestBackgroundQueryPlans
// checks the plans.
var (
	// claimQueuedQuery makes $1 the owner of the $2 oldest unfinished
	// executions without an owner.
	claimQueuedQuery = `UPDATE executions e SET owner = $1, epoch = e.epoch + 1
		FROM (SELECT x.id FROM executions x WHERE x.status < 3 AND x.owner = ''
			ORDER BY x.create_time, x.id LIMIT $2 FOR UPDATE SKIP LOCKED) c
		WHERE e.id = c.id
		RETURNING ` + qualified("e", codec.ExecutionColumns)
	// releaseStaleQuery releases the unfinished executions of the owners
	// that have not heart-beaten since $1.
	releaseStaleQuery = `UPDATE executions e SET owner = '', restarts = e.restarts + 1
		FROM (SELECT x.id FROM executions x
			WHERE x.status < 3 AND x.owner <> '' AND NOT EXISTS (
				SELECT 1 FROM owners o WHERE o.owner = x.owner AND o.heartbeat >= $1)
			FOR UPDATE SKIP LOCKED) c
		WHERE e.id = c.id`
	// reclaimQuery takes back the unfinished executions $1 holds.
	reclaimQuery = `UPDATE executions SET epoch = epoch + 1, restarts = restarts + 1
		WHERE status < 3 AND owner = $1 AND owner <> ''
		RETURNING ` + codec.ExecutionColumns
	// deleteExpired deletes at most $2 finished executions that ended
	// before $1, oldest first (node states and events go by cascade).
	deleteExpired = `DELETE FROM executions WHERE id IN (
		SELECT id FROM executions WHERE create_time < $1 AND status >= 3
			AND (CASE WHEN end_time = 0 THEN create_time ELSE end_time END) < $1
		ORDER BY create_time, id LIMIT $2 FOR UPDATE SKIP LOCKED)`
)

// deleteBatch is how many executions one retention statement deletes, so
// that no transaction holds locks on a whole backlog.
const deleteBatch = 500

// DeleteExecutionsBefore implements store.Store. A finished execution
// without an end time counts as ended at its creation. It deletes in
// statements of at most deleteBatch executions.
func (s *Store) DeleteExecutionsBefore(ctx context.Context, t time.Time) (int, error) {
	total := 0
	for {
		tag, err := s.pool.Exec(ctx, deleteExpired, codec.Nanos(t), deleteBatch)
		if err != nil {
			return total, fmt.Errorf("postgres: delete executions before %v: %w", t, err)
		}
		n := int(tag.RowsAffected())
		total += n
		if n < deleteBatch {
			return total, nil
		}
	}
}
