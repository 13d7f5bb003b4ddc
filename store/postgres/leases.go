package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kailash-gateway/kgw/store"
)

var _ store.LeaderLeases = (*Store)(nil)

// The statements of the leader leases; every time is the database's clock
// (clock_timestamp), so that replicas' clocks need not agree.
const (
	// sqlAcquireLease takes lease $1 for $2 until $3 microseconds from
	// now if it is free, expired or $2's already; it returns a row only
	// when $2 holds it afterwards.
	sqlAcquireLease = `INSERT INTO leader_leases (name, holder, expires_at)
		VALUES ($1, $2, clock_timestamp() + $3 * interval '1 microsecond')
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE leader_leases.holder = excluded.holder OR leader_leases.expires_at < clock_timestamp()
		RETURNING holder`
	sqlReleaseLease = `DELETE FROM leader_leases WHERE name = $1 AND holder = $2`
	sqlLeaseHolder  = `SELECT holder, expires_at >= clock_timestamp() FROM leader_leases WHERE name = $1`
)

// AcquireLease implements store.LeaderLeases.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	var got string
	err := s.pool.QueryRow(ctx, sqlAcquireLease, name, holder, ttl.Microseconds()).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("postgres: acquire lease %s: %w", name, err)
	}
	return got == holder, nil
}

// ReleaseLease implements store.LeaderLeases.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	if _, err := s.pool.Exec(ctx, sqlReleaseLease, name, holder); err != nil {
		return fmt.Errorf("postgres: release lease %s: %w", name, err)
	}
	return nil
}

// LeaseHolder implements store.LeaderLeases.
func (s *Store) LeaseHolder(ctx context.Context, name string) (string, bool, error) {
	var (
		holder string
		live   bool
	)
	err := s.pool.QueryRow(ctx, sqlLeaseHolder, name).Scan(&holder, &live)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("postgres: lease %s: %w", name, err)
	}
	return holder, live, nil
}
