package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/kailash-gateway/kgw/store"
)

// The NOTIFY channels of the replicas: cancel requests (payload: execution
// id) and committed events (payload: execution id, sent by WriteJournal in
// the transaction that writes them).
const (
	cancelChannel    = "kgw_cancel"
	eventsChannel    = "kgw_events"
	workflowsChannel = "kgw_workflows" // payload: workflow name, on register and delete
	backlogChannel   = "kgw_backlog"   // no payload: executions were queued or released
)

var (
	_ store.CancelRelay = (*Store)(nil)
	_ store.Listener    = (*Store)(nil)
)

// RequestCancel implements store.CancelRelay with NOTIFY.
func (s *Store) RequestCancel(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, `SELECT pg_notify('`+cancelChannel+`', $1)`, id); err != nil {
		return fmt.Errorf("postgres: request cancel of %s: %w", id, err)
	}
	return nil
}

// ListenCancels implements store.CancelRelay with Listen.
func (s *Store) ListenCancels(ctx context.Context, fn func(id string)) error {
	return s.Listen(ctx, store.Notifications{Cancel: fn})
}

// Listen implements store.Listener: it holds one connection of the pool in
// LISTEN on every channel that has a handler (this needs session pooling;
// behind a transaction pooler notifications do not arrive and replicas fall
// back to polling, see docs/cluster.md) and retries every second after a
// failure.
func (s *Store) Listen(ctx context.Context, h store.Notifications) error {
	for {
		if err := s.listenOnce(ctx, h); err == nil || ctx.Err() != nil {
			return ctx.Err()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func (s *Store) listenOnce(ctx context.Context, h store.Notifications) error {
	handlers := map[string]func(string){}
	if h.Cancel != nil {
		handlers[cancelChannel] = h.Cancel
	}
	if h.Events != nil {
		handlers[eventsChannel] = h.Events
	}
	if h.Workflows != nil {
		handlers[workflowsChannel] = h.Workflows
	}
	if h.Backlog != nil {
		handlers[backlogChannel] = func(string) { h.Backlog() }
	}
	if h.Connected != nil {
		defer h.Connected(false)
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	defer func() {
		// Leave the pooled connection clean.
		c, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := conn.Exec(c, `UNLISTEN *`); err != nil {
			conn.Conn().Close(c) //nolint:errcheck // the pool drops a closed connection
		}
	}()
	for ch := range handlers {
		if _, err := conn.Exec(ctx, `LISTEN `+ch); err != nil {
			return err
		}
	}
	if h.Connected != nil {
		h.Connected(true)
	}
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if fn := handlers[n.Channel]; fn != nil {
			fn(n.Payload)
		}
	}
}
