package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// maxGroup bounds how many queued writes one transaction commits.
const maxGroup = 128

// errClosed is returned by writes issued after Close.
var errClosed = errors.New("sqlite: store is closed")

// groupWrite is one write waiting to be committed.
type groupWrite struct {
	ctx  context.Context
	fn   func(ctx context.Context, tx *sql.Tx) error
	done chan error    // receives the write's outcome
	lead chan struct{} // closed when this writer must commit for the group
}

// groupTx runs fn in a transaction shared with other writes queued at the
// same moment (group commit): one BEGIN/COMMIT and one WAL append for the
// whole group. A failing write changes nothing and does not affect the
// others (see commitGroup). fn must not keep tx and may run twice.
//
// There is no background goroutine: the writer that finds nobody
// committing becomes the leader and commits what is queued, then hands the
// lead to the first writer that queued meanwhile. A lone writer therefore
// commits on its own goroutine without any hand-off.
//
// fn runs with a context that is not cancelled (cancelling a statement
// would abort the shared transaction); a write whose ctx is done before it
// starts is skipped with ctx's error.
func (s *Store) groupTx(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	w := &groupWrite{ctx: ctx, fn: fn, done: make(chan error, 1), lead: make(chan struct{})}
	s.gmu.Lock()
	if s.closed {
		s.gmu.Unlock()
		return errClosed
	}
	s.pending = append(s.pending, w)
	if s.leading {
		s.gmu.Unlock()
		select {
		case err := <-w.done:
			return err
		case <-w.lead:
			s.gmu.Lock()
		}
	}
	s.leading = true
	n := min(len(s.pending), maxGroup)
	group := s.pending[:n:n]
	s.pending = s.pending[n:]
	s.gmu.Unlock()

	s.commitGroup(group)

	s.gmu.Lock()
	if len(s.pending) > 0 {
		close(s.pending[0].lead)
	} else {
		s.leading = false
		s.idle.Broadcast()
	}
	s.gmu.Unlock()
	return <-w.done
}

// waitIdle marks the store closed and waits until no write is committing.
func (s *Store) waitIdle() {
	s.gmu.Lock()
	s.closed = true
	for s.leading {
		s.idle.Wait()
	}
	s.gmu.Unlock()
}

// commitGroup applies a group in one transaction. Failures are rare (a
// duplicate id or seq), so no savepoints are paid for up front: if any
// write fails, the shared transaction is rolled back and every write of the
// group is applied again in its own transaction, so that each gets its own
// outcome.
func (s *Store) commitGroup(group []*groupWrite) {
	if len(group) > 1 {
		if s.tryGroup(group) {
			return
		}
	}
	for _, w := range group {
		w.done <- s.commitOne(w)
	}
}

// tryGroup applies every write of group in one transaction and reports
// whether it did (and delivered the results); false means nothing changed
// and no result was delivered.
func (s *Store) tryGroup(group []*groupWrite) bool {
	ctx := context.Background()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return false
	}
	errs := make([]error, len(group))
	for i, w := range group {
		if errs[i] = w.ctx.Err(); errs[i] != nil {
			continue
		}
		if err := w.fn(context.WithoutCancel(w.ctx), tx); err != nil {
			_ = tx.Rollback()
			return false
		}
	}
	if err := tx.Commit(); err != nil {
		_ = tx.Rollback()
		return false
	}
	for i, w := range group {
		w.done <- errs[i]
	}
	return true
}

// commitOne applies one write in its own transaction.
func (s *Store) commitOne(w *groupWrite) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	tx, err := s.w.BeginTx(context.Background(), nil)
	if err != nil {
		return err
	}
	if err := w.fn(context.WithoutCancel(w.ctx), tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
