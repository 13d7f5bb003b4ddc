package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/kailash-gateway/kgw/store"
)

// cancelChannel is the NOTIFY channel of cancel requests.
const cancelChannel = "kgw_cancel"

var _ store.CancelRelay = (*Store)(nil)

// RequestCancel implements store.CancelRelay with NOTIFY.
func (s *Store) RequestCancel(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, `SELECT pg_notify('`+cancelChannel+`', $1)`, id); err != nil {
		return fmt.Errorf("postgres: request cancel of %s: %w", id, err)
	}
	return nil
}

// ListenCancels implements store.CancelRelay: it holds one connection of
// the pool in LISTEN (this needs session pooling; behind a transaction
// pooler notifications do not arrive and cancels wait for the owner's
// next poll of nothing, see docs/cluster.md) and retries every second
// after a failure.
func (s *Store) ListenCancels(ctx context.Context, fn func(id string)) error {
	for {
		if err := s.listenOnce(ctx, fn); err == nil || ctx.Err() != nil {
			return ctx.Err()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func (s *Store) listenOnce(ctx context.Context, fn func(id string)) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `LISTEN `+cancelChannel); err != nil {
		return err
	}
	defer func() {
		// Leave the pooled connection clean.
		c, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := conn.Exec(c, `UNLISTEN *`); err != nil {
			conn.Conn().Close(c) //nolint:errcheck // the pool drops a closed connection
		}
	}()
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return err
		}
		fn(n.Payload)
	}
}
