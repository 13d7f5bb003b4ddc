// Package postgres is the shared store backend: PostgreSQL through a pgx
// connection pool. Several gateway replicas may use one database at once:
// migrations are serialized by an advisory lock, workflow versions are
// allocated under a row lock, and ClaimQueued and ReleaseStale use SKIP
// LOCKED so that concurrent claimers never take the same execution.
//
// The schema is applied by Open from embedded, versioned migrations
// recorded in the schema_migrations table.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kailash-gateway/kgw/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrationLock is the advisory lock key held while migrating
// (the ASCII bytes of "kgwmigr").
const migrationLock int64 = 0x6b67776d696772

// Store is a store.Store backed by PostgreSQL. It is safe for concurrent
// use, also by several processes sharing one database.
type Store struct {
	pool *pgxpool.Pool
}

var _ store.Store = (*Store)(nil)

// Open connects to the database named by dsn (a libpq URL or keyword/value
// string; pool settings such as pool_max_conns are accepted) and applies
// pending migrations.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse dsn: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	s := &Store{pool: pool}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the pool, waiting for connections in use to be released.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// migrate applies the embedded migrations not yet recorded, in one
// transaction holding an advisory lock so that replicas starting together
// migrate once.
func (s *Store) migrate(ctx context.Context) error {
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	sort.Strings(files)
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version integer PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL)`); err != nil {
			return err
		}
		for _, f := range files {
			base := strings.TrimPrefix(f, "migrations/")
			num, _, ok := strings.Cut(base, "_")
			version, err := strconv.Atoi(num)
			if !ok || err != nil {
				return fmt.Errorf("migration %s: name must start with a number and '_'", base)
			}
			var applied bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`,
				version).Scan(&applied); err != nil {
				return err
			}
			if applied {
				continue
			}
			body, err := migrations.ReadFile(f)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, string(body)); err != nil {
				return fmt.Errorf("migration %s: %w", base, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				version, base, time.Now().UnixNano()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	return nil
}

// PostgreSQL error codes the store translates.
const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
)

func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// translate maps driver errors to the store sentinels.
func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pgx.ErrNoRows):
		return store.ErrNotFound
	}
	switch pgCode(err) {
	case codeUniqueViolation:
		return fmt.Errorf("%w: %v", store.ErrAlreadyExists, err)
	case codeForeignKeyViolation:
		return fmt.Errorf("%w: %v", store.ErrNotFound, err)
	}
	return err
}

// deleteByName runs a DELETE and reports store.ErrNotFound if it removed
// nothing.
func (s *Store) deleteByName(ctx context.Context, query, name string) error {
	tag, err := s.pool.Exec(ctx, query, name)
	if err != nil {
		return translate(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}
