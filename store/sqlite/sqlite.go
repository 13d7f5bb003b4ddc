// Package sqlite is the embedded store backend: one SQLite file in WAL
// mode, the gateway's default. It uses the C SQLite library through cgo
// (github.com/mattn/go-sqlite3), which writes the journal about a quarter
// faster than a pure-Go translation of SQLite; building kgw therefore needs
// a C compiler.
//
// SQLite allows one writer at a time, so a Store keeps a single write
// connection (writes queue in database/sql, never SQLITE_BUSY) and a
// separate pool of read-only connections that read concurrently from WAL
// snapshots. Commits are not fsynced individually (synchronous=NORMAL): a
// power loss may lose the last transactions but never corrupts the file.
//
// The journal is written for throughput. A short execution is one
// executions row and the rows of the nodes that ran: its first events
// (seq <= 16, small bodies) are lines of text in its row, nodes that never
// ran have no row (the row lists the node ids), so that each step of an
// execution updates one row instead of inserting several. An execution
// that a batch creates already finished, as the executor journals a short
// workflow run at once, has no node rows at all when its node states are
// small: they are lines in its row too (migration 0007). WriteJournal
// encodes everything before it takes the write connection, writes each
// kind of row with a few multi-row statements prepared at Open, in one
// transaction (see journalTx). A terminal event written in the same
// batch as the header update of its execution is stored without its
// Execution: ListEvents reads it back from the execution's rows, in the
// same snapshot as the events, so that the final node results are stored
// once instead of once more per terminal event.
//
// The schema is applied by Open from embedded, versioned migrations
// recorded in the schema_migrations table.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"

	"github.com/kailash-gateway/kgw/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// readConns is the size of the read pool.
const readConns = 4

// chunkSizes are the row counts of the multi-row statements prepared for
// the journal: a batch of n rows runs as the binary decomposition of n
// (larger chunks first), so that any n needs at most a few statements.
var chunkSizes = [...]int{32, 16, 8, 4, 2, 1}

// multiStmt is one multi-row statement prepared for every chunk size:
// stmts[k] takes chunkSizes[k] rows of cols arguments each.
type multiStmt struct {
	cols  int
	stmts [len(chunkSizes)]*sql.Stmt
}

// Store is a store.Store backed by one SQLite file. It is safe for
// concurrent use by many goroutines of one process; only one process may
// open a file at a time.
type Store struct {
	// w is the pool of the single write connection, which the store
	// holds as wc for its whole life: every write runs on wc under wmu.
	// The journal's transactions are its own BEGIN IMMEDIATE and COMMIT
	// statements, prepared once (see journalTx).
	w                       *sql.DB
	wc                      *sql.Conn
	begin, commit, rollback *sql.Stmt
	r                       *sql.DB // read-only pool

	// The checkpointer (see checkpoint.go): its connection, and the
	// channels that stop it and tell that it stopped.
	ckpt        *sql.DB
	ckptStop    chan struct{}
	ckptStopped chan struct{}

	// Prepared statements of the journal hot path, on wc.
	insertExecutions multiStmt
	updateExecutions multiStmt
	upsertNodes      multiStmt
	insertEvents     multiStmt

	// position orders the node rows of an execution that are not among
	// the nodes it was created with: each new node row takes the next.
	position atomic.Int64

	// Writes, one at a time (see journalTx and writeTx), and closing.
	wmu    sync.Mutex
	closed bool
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the SQLite database at path, a file
// name, and applies pending migrations.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || path == ":memory:" {
		return nil, fmt.Errorf("sqlite: database path %q: want a file name", path)
	}
	const common = "_busy_timeout=10000&_foreign_keys=1"
	s := &Store{}
	s.position.Store(time.Now().UnixNano())
	if err := createPrivate(path); err != nil {
		return nil, err
	}
	var err error
	s.w, err = sql.Open(writerDriver, path+"?"+common+"&_txlock=immediate&_journal_mode=WAL&_synchronous=NORMAL")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxLifetime(0)
	s.w.SetConnMaxIdleTime(0)
	if s.wc, err = s.w.Conn(ctx); err != nil {
		_ = s.w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := s.migrate(ctx); err != nil {
		_ = s.closeDBs()
		return nil, err
	}
	if s.r, err = sql.Open("sqlite3", path+"?"+common+"&_query_only=1"); err != nil {
		_ = s.closeDBs()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	s.r.SetMaxOpenConns(readConns)
	s.r.SetMaxIdleConns(readConns)
	s.r.SetConnMaxLifetime(0)
	s.r.SetConnMaxIdleTime(0)
	if s.ckpt, err = sql.Open("sqlite3", path+"?"+common+"&_synchronous=NORMAL"); err != nil {
		_ = s.closeDBs()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	s.ckpt.SetMaxOpenConns(1)
	s.ckpt.SetConnMaxLifetime(0)
	s.ckpt.SetConnMaxIdleTime(0)
	if err := s.prepare(ctx); err != nil {
		_ = s.closeDBs()
		return nil, err
	}
	s.ckptStop, s.ckptStopped = make(chan struct{}), make(chan struct{})
	go s.checkpointLoop(s.ckptStop, s.ckptStopped)
	return s, nil
}

// createPrivate creates the database file at path readable and writable
// by its owner only (0600), unless it exists; SQLite creates the WAL and
// shared-memory files with the database file's mode. An existing database
// file, WAL or shared-memory file that others may read or write is
// restricted to 0600: it holds the journal, encrypted secrets and
// workflow code.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("sqlite: create %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("sqlite: create %s: %w", path, err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			continue // no WAL or shared memory yet
		}
		if fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, 0o600); err != nil {
				return fmt.Errorf("sqlite: restrict the mode of %s: %w", p, err)
			}
		}
	}
	return nil
}

// Close waits for queued writes, then closes the store's connections.
// Calling it more than once is harmless.
func (s *Store) Close() error {
	s.wmu.Lock()
	closed := s.closed
	s.wmu.Unlock()
	if closed {
		return nil
	}
	s.waitIdle()
	return s.closeDBs()
}

func (s *Store) closeDBs() error {
	var errs []error
	if s.ckptStop != nil {
		close(s.ckptStop)
		<-s.ckptStopped
		s.ckptStop = nil
	}
	if s.ckpt != nil {
		errs = append(errs, s.ckpt.Close())
	}
	stmts := []*sql.Stmt{s.begin, s.commit, s.rollback}
	for m := range s.multiStmts() {
		stmts = append(stmts, m.stmts[:]...)
	}
	for _, st := range stmts {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	if s.wc != nil {
		errs = append(errs, s.wc.Close())
	}
	errs = append(errs, s.w.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}

// The multi-row statements of the journal. Each takes rows of values (one
// "(?, …)" per row, substituted for VALUES_LIST). They resolve conflicts
// with FAIL rather than the default ABORT, which would keep a statement
// journal to undo a failed statement alone: a failed journal write rolls
// back its whole transaction anyway (see journalTx).
// insertExecutionsCols is how many values insertExecutionsSQL takes per row.
const insertExecutionsCols = 16

const (
	insertExecutionsSQL = `INSERT OR FAIL INTO executions (id, workflow, version, status, request, error,
		create_time, start_time, end_time, idempotency_key, caller, owner, node_ids, nodes, events, event_seqs)
		VALUES VALUES_LIST`
	// Updates of executions the batch does not create: the header if the
	// second value is 1, and inline events appended. A row whose execution
	// is unknown, or that would journal a seq twice, changes nothing (the
	// caller compares the count of changed rows).
	updateExecutionsSQL = `UPDATE OR FAIL executions SET status = iif(v.column2, v.column3, status),
		error = iif(v.column2, v.column4, error), start_time = iif(v.column2, v.column5, start_time),
		end_time = iif(v.column2, v.column6, end_time), owner = iif(v.column2, v.column7, owner),
		events = events || v.column8, event_seqs = event_seqs | v.column9
		FROM (VALUES VALUES_LIST) AS v
		WHERE executions.id = v.column1 AND (executions.event_seqs & v.column9) = 0`
	// Node state upserts; a new row keeps the position it is given.
	upsertNodesSQL = `INSERT INTO execution_nodes (execution_id, node_id, position, status, attempts,
		start_time, end_time, error, result) VALUES VALUES_LIST
		ON CONFLICT (execution_id, node_id) DO UPDATE SET status = excluded.status,
		attempts = excluded.attempts, start_time = excluded.start_time, end_time = excluded.end_time,
		error = excluded.error, result = excluded.result`
	insertEventsSQL = `INSERT OR FAIL INTO execution_events (execution_id, seq, time, kind, body) VALUES VALUES_LIST`
)

// multiStmts lists the multi-row statements with their SQL.
func (s *Store) multiStmts() map[*multiStmt]string {
	return map[*multiStmt]string{
		&s.insertExecutions: insertExecutionsSQL,
		&s.updateExecutions: updateExecutionsSQL,
		&s.upsertNodes:      upsertNodesSQL,
		&s.insertEvents:     insertEventsSQL,
	}
}

func (s *Store) prepare(ctx context.Context) error {
	txStmts := map[**sql.Stmt]string{&s.begin: "BEGIN IMMEDIATE", &s.commit: "COMMIT", &s.rollback: "ROLLBACK"}
	for st, query := range txStmts {
		var err error
		if *st, err = s.wc.PrepareContext(ctx, query); err != nil {
			return fmt.Errorf("sqlite: prepare: %w", err)
		}
	}
	s.insertExecutions.cols = insertExecutionsCols
	s.updateExecutions.cols = 9
	s.upsertNodes.cols = 9
	s.insertEvents.cols = 5
	for m, query := range s.multiStmts() {
		row := "(" + placeholders(m.cols) + ")"
		for k, n := range chunkSizes {
			list := strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
			var err error
			if m.stmts[k], err = s.wc.PrepareContext(ctx, strings.Replace(query, "VALUES_LIST", list, 1)); err != nil {
				return fmt.Errorf("sqlite: prepare: %w", err)
			}
		}
	}
	return nil
}

// execRows runs m for rows (len(args)/m.cols of them, args row after
// row), as few statements as the chunk sizes allow, and returns how many
// rows they changed in all.
func execRows(ctx context.Context, m *multiStmt, args []any) (int64, error) {
	var changed int64
	for rows := len(args) / m.cols; rows > 0; {
		k := 0
		for chunkSizes[k] > rows {
			k++
		}
		n := chunkSizes[k] * m.cols
		res, err := m.stmts[k].ExecContext(ctx, args[:n]...)
		if err != nil {
			return 0, err
		}
		c, err := res.RowsAffected()
		if err != nil {
			return 0, err
		}
		changed += c
		args = args[n:]
		rows -= chunkSizes[k]
	}
	return changed, nil
}

// migrate applies the embedded migrations not yet recorded in
// schema_migrations, each in its own transaction.
func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.wc.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	sort.Strings(files)
	versions := make([]int, len(files))
	for i, f := range files {
		base := strings.TrimPrefix(f, "migrations/")
		num, _, ok := strings.Cut(base, "_")
		if versions[i], err = strconv.Atoi(num); !ok || err != nil {
			return fmt.Errorf("sqlite: migration %s: name must start with a number and '_'", base)
		}
	}
	if err := s.checkNotNewer(ctx, slices.Max(versions)); err != nil {
		return err
	}
	for i, f := range files {
		base, version := strings.TrimPrefix(f, "migrations/"), versions[i]
		body, err := migrations.ReadFile(f)
		if err != nil {
			return fmt.Errorf("sqlite: migration %s: %w", base, err)
		}
		err = s.writeTx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				version, base, time.Now().UnixNano())
			return err
		})
		if err != nil {
			return fmt.Errorf("sqlite: migration %s: %w", base, err)
		}
	}
	return nil
}

// checkNotNewer refuses a database that a newer kgw migrated past latest,
// the last migration this one knows: what it writes there, this version
// would not read (migration 0007 moved the node states of finished
// executions into a column that earlier versions ignore, for one). The
// SQLite file belongs to one process, so no older replica needs to share
// it; PostgreSQL has no such check, for rolling upgrades (docs/cluster.md).
func (s *Store) checkNotNewer(ctx context.Context, latest int) error {
	var newest int
	if err := s.wc.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&newest); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	if newest > latest {
		return fmt.Errorf("sqlite: the database is at schema version %d, newer than this kgw's %d: it was written by a newer kgw, which must be used (downgrading a SQLite store is not supported)", newest, latest)
	}
	return nil
}

// writeTx runs fn in a write transaction (BEGIN IMMEDIATE on the single
// write connection), committing if fn returns nil. The transaction itself
// does not end with ctx (fn's statements do, and it is then rolled back):
// database/sql discards the connection of a transaction whose context
// ends, and the store has only the one it holds.
func (s *Store) writeTx(ctx context.Context, fn func(*sql.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	tx, err := s.wc.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// readTx runs fn in a read transaction (one consistent snapshot).
func (s *Store) readTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	return fn(tx)
}

// sqliteCode returns the extended result code of a driver error, or 0.
func sqliteCode(err error) int {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return int(se.ExtendedCode)
	}
	return 0
}

func isUnique(err error) bool {
	c := sqliteCode(err)
	return c == int(sqlite3.ErrConstraintPrimaryKey) || c == int(sqlite3.ErrConstraintUnique)
}

func isForeignKey(err error) bool {
	return sqliteCode(err) == int(sqlite3.ErrConstraintForeignKey)
}

// translate maps driver errors to the store sentinels.
func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return store.ErrNotFound
	case isUnique(err):
		return fmt.Errorf("%w: %v", store.ErrAlreadyExists, err)
	case isForeignKey(err):
		return fmt.Errorf("%w: %v", store.ErrNotFound, err)
	}
	return err
}

// placeholders returns "?, ?, …" with n marks.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
