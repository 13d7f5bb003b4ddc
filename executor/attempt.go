package executor

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// attemptCtx is the context of one node attempt. It ends at its deadline
// (with the node's or the workflow's timeout as cause), when the run is
// cancelled (run.cancel), or when the attempt is over (run.endAttempt).
//
// It is a context type of its own, not context.WithDeadlineCause, because
// of what node code does with it: a database call registers with the
// attempt's context to be interrupted (pool acquire, statement), and on a
// standard context each registration allocates a context, the first one a
// map of children and the Done channel as well. An attemptCtx keeps its
// callbacks in a slice, makes its Done channel only for who asks for it,
// and has an AfterFunc method, which the context package uses (for
// context.AfterFunc and for contexts derived from it, without a goroutine)
// and which the resource handles call directly.
//
// It carries no values (its parent would be context.Background). Once it
// has ended, Value answers from a cancelled context that holds its cause,
// so that context.Cause reports the cause, as for a standard context.
type attemptCtx struct {
	deadline  time.Time
	atTimeout error // the cause when the deadline passes
	timer     *time.Timer

	ended atomic.Bool // set once err is: Err without the lock while running
	mu    sync.Mutex
	err   error
	cause error
	done  chan struct{} // made by Done; closedChan if it ended before
	// funcs are the callbacks registered by AfterFunc and not yet run
	// or stopped, under ids from lastID.
	funcs   []afterFunc
	funcBuf [1]afterFunc
	lastID  uint64
	// causeCtx is made by Value once a has ended (see attemptCtx).
	causeCtx context.Context
}

type afterFunc struct {
	id uint64
	f  func()
}

var _ context.Context = (*attemptCtx)(nil)

// start starts a, a zero attemptCtx, as a context that ends at deadline
// with cause atTimeout. An attemptCtx cannot be started twice.
func (a *attemptCtx) start(deadline time.Time, atTimeout error) {
	a.deadline, a.atTimeout = deadline, atTimeout
	a.funcs = a.funcBuf[:0]
	if d := time.Until(deadline); d > 0 {
		a.mu.Lock() // expire may run before AfterFunc returns
		a.timer = time.AfterFunc(d, a.expire)
		a.mu.Unlock()
	} else {
		a.end(context.DeadlineExceeded, atTimeout)
	}
}

func (a *attemptCtx) expire() { a.end(context.DeadlineExceeded, a.atTimeout) }

// end ends a with err and cause, unless it has ended, and starts its
// callbacks.
func (a *attemptCtx) end(err, cause error) {
	a.mu.Lock()
	if a.err != nil {
		a.mu.Unlock()
		return
	}
	a.err, a.cause = err, cause
	a.ended.Store(true)
	if a.done == nil {
		a.done = closedChan
	} else {
		close(a.done)
	}
	funcs, timer := a.funcs, a.timer
	a.funcs, a.timer = nil, nil
	a.mu.Unlock()
	if timer != nil {
		timer.Stop()
	}
	for _, f := range funcs {
		go f.f()
	}
}

// Deadline returns the attempt's deadline.
func (a *attemptCtx) Deadline() (time.Time, bool) { return a.deadline, true }

// Done returns a channel closed when the attempt's context ends.
func (a *attemptCtx) Done() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done == nil {
		a.done = make(chan struct{})
	}
	return a.done
}

// Err is nil while the context runs, then context.DeadlineExceeded or
// context.Canceled.
func (a *attemptCtx) Err() error {
	if !a.ended.Load() {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// Value returns nil while the context runs; once it has ended, the value
// of a cancelled context whose cause is the attempt's (see attemptCtx).
func (a *attemptCtx) Value(key any) any {
	if !a.ended.Load() {
		return nil
	}
	a.mu.Lock()
	if a.causeCtx == nil {
		c, cancel := context.WithCancelCause(context.Background())
		cancel(a.cause)
		a.causeCtx = c
	}
	c := a.causeCtx
	a.mu.Unlock()
	return c.Value(key)
}

// AfterFunc arranges to call f in its own goroutine once the context
// ends, as context.AfterFunc does: stop reports whether it stopped f from
// being called.
func (a *attemptCtx) AfterFunc(f func()) (stop func() bool) {
	a.mu.Lock()
	if a.err != nil {
		a.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	a.lastID++
	id := a.lastID
	a.funcs = append(a.funcs, afterFunc{id: id, f: f})
	a.mu.Unlock()
	return func() bool { return a.stop(id) }
}

func (a *attemptCtx) stop(id uint64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	i := slices.IndexFunc(a.funcs, func(x afterFunc) bool { return x.id == id })
	if i < 0 {
		return false
	}
	a.funcs = slices.Delete(a.funcs, i, i+1)
	return true
}

func (a *attemptCtx) String() string { return "executor.attemptCtx" }
