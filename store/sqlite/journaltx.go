package sqlite

import (
	"context"
	"errors"
	"fmt"
)

// errClosed is returned by writes issued after Close.
var errClosed = errors.New("sqlite: store is closed")

// journalTx runs fn, a journal write, in a transaction of its own on the
// write connection.
//
// The transaction is the store's own prepared BEGIN IMMEDIATE and COMMIT
// (or ROLLBACK) on the connection it holds, not a database/sql Tx: a Tx
// starts a goroutine to watch its context and wraps every statement for
// the Tx: for the journal, a goroutine started and woken per commit. The
// external benchmark (make bench-external, this build and the one before
// in turns, 4 rounds of 6 s): gateway CPU per call at one caller 797 →
// 683 µs for fetchval (−14%), 309 → 284 µs for the no-op (p50 337 → 317
// µs); at 64 callers 90.0 → 80.6 µs for chain3 (−10%), no-op unchanged.
//
// There is no group commit here: the gateway's journal writes all come
// from the executor's journal, which already commits the steps of
// concurrent executions together. A group commit of concurrent callers in
// this store made no difference to the durable no-op benchmark
// (BenchmarkNoopDurable with it took 1.34× the wall time and 1.15× the CPU
// time of this, medians of 5 alternating runs of both binaries, within the
// noise), and only helps callers that write the store concurrently
// themselves (BenchmarkJournalParallel, 16 writers: 1.3× faster in wall
// time, 1.8× in CPU time).
//
// fn runs with a context that is not cancelled (a statement cancelled
// halfway would leave the transaction to roll back anyway); a write whose
// ctx is done before it starts is skipped with ctx's error. If fn panics,
// the transaction is rolled back and the panic goes on.
func (s *Store) journalTx(ctx context.Context, fn func(ctx context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return errClosed
	}
	bg := context.Background()
	if _, err := s.begin.ExecContext(bg); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		// A panic in fn (a bug) must not leave the transaction open on
		// the held connection, where every later BEGIN would fail.
		if p := recover(); p != nil {
			_, _ = s.rollback.ExecContext(bg)
			panic(p)
		}
	}()
	err := fn(context.WithoutCancel(ctx))
	if err == nil {
		if _, err = s.commit.ExecContext(bg); err != nil {
			err = fmt.Errorf("commit: %w", err)
		}
	}
	if err != nil {
		_, _ = s.rollback.ExecContext(bg) // "no transaction is active" if COMMIT ended it
		return err
	}
	return nil
}

// waitIdle marks the store closed once no write is running.
func (s *Store) waitIdle() {
	s.wmu.Lock()
	s.closed = true
	s.wmu.Unlock()
}
