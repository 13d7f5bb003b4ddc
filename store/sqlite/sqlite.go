// Package sqlite is the embedded store backend: one SQLite file (pure Go,
// modernc.org/sqlite) in WAL mode, the gateway's default.
//
// SQLite allows one writer at a time, so a Store keeps a single write
// connection (writes queue in database/sql, never SQLITE_BUSY) and a
// separate pool of read-only connections that read concurrently from WAL
// snapshots. Commits are not fsynced individually (synchronous=NORMAL): a
// power loss may lose the last transactions but never corrupts the file.
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
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	sqlitedrv "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/kailash-gateway/kgw/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// readConns is the size of the read pool.
const readConns = 4

// maxEventsPerInsert is the most events one prepared INSERT appends.
const maxEventsPerInsert = 8

// Store is a store.Store backed by one SQLite file. It is safe for
// concurrent use by many goroutines of one process; only one process may
// open a file at a time.
type Store struct {
	w *sql.DB // single write connection
	r *sql.DB // read-only pool

	// Prepared statements of the journal hot path, on w.
	insertExecution *sql.Stmt
	insertNode      *sql.Stmt
	updateExecution *sql.Stmt
	upsertNode      *sql.Stmt
	insertEvents    [maxEventsPerInsert + 1]*sql.Stmt // [n] inserts n events

	// Group commit of journal writes (see groupTx), guarded by gmu.
	gmu     sync.Mutex
	idle    *sync.Cond // signalled when leading becomes false
	pending []*groupWrite
	leading bool // a writer is committing
	closed  bool
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the SQLite database at path, a file
// name, and applies pending migrations. The special path ":memory:" gives a
// private in-memory database (one connection, for tests).
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty database path")
	}
	const common = "_busy_timeout=10000&_foreign_keys=1"
	s := &Store{}
	s.idle = sync.NewCond(&s.gmu)
	var err error
	if path == ":memory:" {
		s.w, err = sql.Open("sqlite", "file::memory:?"+common+"&_txlock=immediate")
		s.r = s.w
	} else {
		s.w, err = sql.Open("sqlite", path+"?"+common+"&_txlock=immediate&_journal_mode=WAL&_synchronous=NORMAL")
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxLifetime(0)
	s.w.SetConnMaxIdleTime(0)
	if err := s.migrate(ctx); err != nil {
		_ = s.w.Close()
		return nil, err
	}
	if s.r == nil {
		s.r, err = sql.Open("sqlite", path+"?"+common+"&_query_only=1")
		if err != nil {
			_ = s.w.Close()
			return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
		}
		s.r.SetMaxOpenConns(readConns)
		s.r.SetMaxIdleConns(readConns)
		s.r.SetConnMaxLifetime(0)
		s.r.SetConnMaxIdleTime(0)
	}
	if err := s.prepare(ctx); err != nil {
		_ = s.closeDBs()
		return nil, err
	}
	return s, nil
}

// Close waits for queued writes, then closes the store's connections.
// Calling it more than once is harmless.
func (s *Store) Close() error {
	s.gmu.Lock()
	closed := s.closed
	s.gmu.Unlock()
	if closed {
		return nil
	}
	s.waitIdle()
	return s.closeDBs()
}

func (s *Store) closeDBs() error {
	var errs []error
	stmts := append([]*sql.Stmt{s.insertExecution, s.insertNode, s.updateExecution, s.upsertNode}, s.insertEvents[1:]...)
	for _, st := range stmts {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	if s.r != s.w {
		errs = append(errs, s.r.Close())
	}
	errs = append(errs, s.w.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}

func (s *Store) prepare(ctx context.Context) error {
	stmts := []struct {
		dst **sql.Stmt
		sql string
	}{
		{&s.insertExecution, `INSERT INTO executions (id, workflow, version, status, request, error,
			create_time, start_time, end_time, idempotency_key, caller, owner)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&s.insertNode, `INSERT INTO execution_nodes (execution_id, node_id, position, status, attempts,
			start_time, end_time, error, result) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&s.updateExecution, `UPDATE executions SET status = ?, error = ?, start_time = ?, end_time = ?, owner = ?
			WHERE id = ?`},
		{&s.upsertNode, `INSERT INTO execution_nodes (execution_id, node_id, position, status, attempts,
			start_time, end_time, error, result)
			VALUES (?1, ?2, (SELECT count(*) FROM execution_nodes WHERE execution_id = ?1), ?3, ?4, ?5, ?6, ?7, ?8)
			ON CONFLICT (execution_id, node_id) DO UPDATE SET status = excluded.status,
			attempts = excluded.attempts, start_time = excluded.start_time, end_time = excluded.end_time,
			error = excluded.error, result = excluded.result`},
	}
	for n := 1; n <= maxEventsPerInsert; n++ {
		stmts = append(stmts, struct {
			dst **sql.Stmt
			sql string
		}{&s.insertEvents[n], `INSERT INTO execution_events (execution_id, seq, time, kind, body) VALUES ` +
			strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?), ", n), ", ")})
	}
	for _, st := range stmts {
		p, err := s.w.PrepareContext(ctx, st.sql)
		if err != nil {
			return fmt.Errorf("sqlite: prepare: %w", err)
		}
		*st.dst = p
	}
	return nil
}

// migrate applies the embedded migrations not yet recorded in
// schema_migrations, each in its own transaction.
func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	sort.Strings(files)
	for _, f := range files {
		base := strings.TrimPrefix(f, "migrations/")
		num, _, ok := strings.Cut(base, "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil {
			return fmt.Errorf("sqlite: migration %s: name must start with a number and '_'", base)
		}
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

// writeTx runs fn in a write transaction (BEGIN IMMEDIATE on the single
// write connection), committing if fn returns nil.
func (s *Store) writeTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
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
	var se *sqlitedrv.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

func isUnique(err error) bool {
	c := sqliteCode(err)
	return c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || c == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

func isForeignKey(err error) bool {
	return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
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
