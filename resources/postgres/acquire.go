package postgres

import (
	"context"
	"sync"
	"time"
)

// acquireWait is the context of one pool acquire: it ends when the
// caller's context ends or when the pool's timeout has passed, whichever
// comes first. It does what context.WithTimeout does, but one that ended
// by neither is reused by the next acquire, timer and channel included:
// an acquire from a pool with a free connection allocates nothing for its
// timeout.
//
// The reuse is safe because an acquireWait goes back to acquireWaits only
// after an acquire that took an idle connection (nothing it started is
// still running) and when stopping both its timer and its watch of the
// parent reported that neither callback ran or ever will (so done is
// still open and nothing else refers to it).
//
// context.Cause(w) reports the parent's cause; use expired to tell the
// timeout apart.
type acquireWait struct {
	parent   context.Context
	deadline time.Time
	timer    *time.Timer // calls expire; stopped between uses
	unwatch  func() bool // stops the watch of parent.Done (nil: none)
	onParent func()      // parentDone, made once for all uses
	done     chan struct{}

	mu       sync.Mutex
	err      error // set when done is closed
	timedOut bool  // the timeout, not the parent, ended it
}

var _ context.Context = (*acquireWait)(nil)

var acquireWaits = sync.Pool{New: func() any {
	w := new(acquireWait)
	w.onParent = w.parentDone
	return w
}}

// startAcquireWait returns a context derived from parent that ends at
// now+timeout. Call its stop method once the acquire has returned.
func startAcquireWait(parent context.Context, now time.Time, timeout time.Duration) *acquireWait {
	w := acquireWaits.Get().(*acquireWait)
	w.parent, w.deadline = parent, now.Add(timeout)
	if w.done == nil {
		w.done = make(chan struct{})
	}
	if err := parent.Err(); err != nil {
		w.end(err, false)
		return w
	}
	if w.timer == nil {
		w.timer = time.AfterFunc(timeout, w.expire)
	} else {
		w.timer.Reset(timeout)
	}
	w.unwatch = afterFunc(parent, w.onParent)
	return w
}

// stop releases w; w must not be used after. reuse says whether nothing
// the acquire started can still use w: it is false when the acquire
// failed or connected (pgx's connect runs in a goroutine of its own that
// reads w's values).
func (w *acquireWait) stop(reuse bool) {
	reusable := w.timer != nil && w.timer.Stop() && reuse
	if w.unwatch != nil && !w.unwatch() {
		reusable = false
	}
	w.mu.Lock()
	if w.err != nil {
		reusable = false
	}
	w.mu.Unlock()
	if !reusable {
		return // a callback ran or may still run: leave w to the collector
	}
	w.parent, w.unwatch = nil, nil
	acquireWaits.Put(w)
}

func (w *acquireWait) expire()     { w.end(context.DeadlineExceeded, true) }
func (w *acquireWait) parentDone() { w.end(w.parent.Err(), false) }

func (w *acquireWait) end(err error, timedOut bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return
	}
	w.err, w.timedOut = err, timedOut
	close(w.done)
}

// expired reports whether w ended because the timeout passed (and not
// because its parent ended first).
func (w *acquireWait) expired() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.timedOut
}

// Deadline returns the earlier of the parent's deadline and the timeout.
func (w *acquireWait) Deadline() (time.Time, bool) {
	if d, ok := w.parent.Deadline(); ok && d.Before(w.deadline) {
		return d, true
	}
	return w.deadline, true
}

// Done is closed when w ends.
func (w *acquireWait) Done() <-chan struct{} { return w.done }

// Err is nil until w ends, then context.DeadlineExceeded if the timeout
// ended it, else the parent's error.
func (w *acquireWait) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Value returns the parent's value for key.
func (w *acquireWait) Value(key any) any { return w.parent.Value(key) }

// afterFuncer is a context with an AfterFunc method, as the executor's
// attempt contexts have (context.AfterFunc calls it too, but allocates a
// context of its own to do so).
type afterFuncer interface {
	AfterFunc(f func()) (stop func() bool)
}

// afterFunc is context.AfterFunc(ctx, f), through ctx's AfterFunc method
// if it has one. It returns nil if ctx never ends.
func afterFunc(ctx context.Context, f func()) (stop func() bool) {
	if a, ok := ctx.(afterFuncer); ok {
		return a.AfterFunc(f)
	}
	if ctx.Done() == nil {
		return nil
	}
	return context.AfterFunc(ctx, f)
}
