package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
)

// How a database call whose context ends is stopped (see canceller).
const (
	// cancelRetryMax caps the wait between two cancel requests.
	cancelRetryMax = 200 * time.Millisecond
	// cancelSettle is how long a cancel request may still be on its way
	// to the backend after the server acknowledged it; the call does not
	// return (and the connection is not reused) before that.
	cancelSettle = 100 * time.Millisecond // as pgx's CancelRequestContextWatcherHandler
	// cancelGiveUp is how long the server has to end the statement before
	// the connection is cut (pgx then closes it).
	cancelGiveUp = 2 * time.Second
)

// canceller is the pgx context-watcher handler of every pool connection:
// when the context of a call ends, it asks the server to cancel the
// running statement, and repeats the request until the call returns.
//
// pgx's default handler cuts the connection at once and sends a single
// cancel request while closing it. PostgreSQL ignores a cancel request
// that reaches the backend while it is still reading the statement, so
// under load the statement then ran to completion (pg_sleep(10): ten
// seconds) while pgx waited for the server to close the connection, and
// the pool counted the connection as checked out all that time. Repeating
// the request stops the statement as soon as it runs; the connection stays
// usable and goes back to the pool. If the server does not end the call
// within cancelGiveUp (unreachable, hung), the connection's deadline is
// set, the call fails and pgx closes the connection.
type canceller struct {
	conn   *pgconn.PgConn
	stop   chan struct{} // closed when the call returns
	done   chan struct{} // closed when the cancelling goroutine has exited
	gaveUp bool          // set before done closes: the deadline was set
}

var _ ctxwatch.Handler = (*canceller)(nil)

// HandleCancel starts cancelling the call in progress. It is called by
// pgx at most once per watched call, and HandleUnwatchAfterCancel follows.
func (h *canceller) HandleCancel(context.Context) {
	h.stop, h.done, h.gaveUp = make(chan struct{}), make(chan struct{}), false
	go h.cancel(h.stop, h.done)
}

// HandleUnwatchAfterCancel stops cancelling and waits until no cancel
// request can still reach the backend, so the next statement on the
// connection is not cancelled by mistake.
//
// After giving up, the deadline stays: the call failed on it and pgx is
// closing the connection, which must not wait for a server that does not
// answer without a deadline.
func (h *canceller) HandleUnwatchAfterCancel() {
	close(h.stop)
	<-h.done
	if !h.gaveUp {
		_ = h.conn.Conn().SetDeadline(time.Time{})
	}
}

func (h *canceller) cancel(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	giveUp := time.NewTimer(cancelGiveUp)
	defer giveUp.Stop()
	retry := time.NewTimer(0)
	defer retry.Stop()
	var wait time.Duration
	for {
		select {
		case <-stop:
			return
		case <-giveUp.C:
			h.gaveUp = true
			_ = h.conn.Conn().SetDeadline(time.Now())
			return
		case <-retry.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), cancelGiveUp)
		_ = h.conn.CancelRequest(ctx) // a failure is retried, then the deadline applies
		cancel()
		// The backend handles the request asynchronously: let it arrive
		// before the call can return and the connection be reused.
		time.Sleep(cancelSettle)
		wait = min(max(2*wait, 20*time.Millisecond), cancelRetryMax)
		retry.Reset(wait)
	}
}

// statementWatch cancels a statement when the context of its call ends,
// as pgx's context watcher would with canceller. The statement itself runs
// with a context that never ends (see watchStatement), so that pgx does
// not register with the call's context for every statement: registering
// here (context.AfterFunc) costs less, and a watch is reused unless it had
// to cancel. Allocating a watch per statement instead made
// BenchmarkFetchval's workflow node reach a median 0.07× of bare pgxpool
// against 0.27× with reuse (4 alternating runs of both binaries, on a
// loaded machine) and added 3 to 10 allocations per call.
type statementWatch struct {
	ctx      context.Context
	conn     *pgconn.PgConn
	stop     func() bool
	onCancel func()         // w.cancel, made once for all uses
	started  sync.WaitGroup // held while cancel may still start
	c        canceller
}

var statementWatches = sync.Pool{New: func() any {
	w := new(statementWatch)
	w.onCancel = w.cancel
	return w
}}

// watchStatement starts watching ctx for a statement about to run on
// conn. It returns the context to run the statement with and the watch to
// end once the statement has returned, or ctx itself and a nil watch when
// ctx has ended (pgx then fails the call at once) or never ends.
func watchStatement(ctx context.Context, conn *pgconn.PgConn) (context.Context, *statementWatch) {
	if ctx.Err() != nil {
		return ctx, nil
	}
	if ctx.Done() == nil { // never ends
		return ctx, nil
	}
	w := statementWatches.Get().(*statementWatch)
	w.ctx, w.conn = ctx, conn
	w.started.Add(1)
	w.stop = context.AfterFunc(ctx, w.onCancel)
	return context.WithoutCancel(ctx), w
}

func (w *statementWatch) cancel() {
	defer w.started.Done()
	w.c = canceller{conn: w.conn}
	w.c.HandleCancel(w.ctx)
}

// end stops the watch once the statement has returned. If ctx ended while
// it ran, end waits, as pgx's watcher does, until no cancel request can
// still reach the backend. A nil watch does nothing.
func (w *statementWatch) end() {
	if w == nil {
		return
	}
	if !w.stop() {
		w.started.Wait()
		w.c.HandleUnwatchAfterCancel()
		return // not reused: cancelling is rare, and w.c is done with
	}
	w.started.Done()
	w.ctx, w.conn, w.stop = nil, nil, nil
	statementWatches.Put(w)
}

// cancelled returns err, the failure of a call made with ctx, with the
// context's error in its chain when the call failed because ctx ended: the
// server's "canceling statement due to user request" then reads as the
// timeout or cancellation it is.
func cancelled(ctx context.Context, err error) error {
	if err == nil || ctx.Err() == nil || errors.Is(err, ctx.Err()) {
		return err
	}
	cause := context.Cause(ctx)
	if !errors.Is(cause, ctx.Err()) {
		cause = fmt.Errorf("%w (%w)", cause, ctx.Err())
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "57014" { // query_canceled
		return fmt.Errorf("statement cancelled: %w", cause)
	}
	return fmt.Errorf("%w (%w)", err, cause)
}
