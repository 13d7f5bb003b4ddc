package postgres

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestAcquireWaitTimeout(t *testing.T) {
	parent, cancel := context.WithCancel(context.WithValue(t.Context(), ctxKey{}, "v"))
	defer cancel()
	w := startAcquireWait(parent, time.Now(), time.Millisecond)
	<-w.Done()
	if !errors.Is(w.Err(), context.DeadlineExceeded) || !w.expired() {
		t.Errorf("after the timeout: Err = %v, expired = %v", w.Err(), w.expired())
	}
	if w.Value(ctxKey{}) != "v" {
		t.Errorf("Value = %v, want the parent's", w.Value(ctxKey{}))
	}
	w.stop(true)
	checkFresh(t, parent)
}

func TestAcquireWaitParent(t *testing.T) {
	parent, cancel := context.WithCancel(t.Context())
	w := startAcquireWait(parent, time.Now(), time.Hour)
	cancel()
	<-w.Done()
	if !errors.Is(w.Err(), context.Canceled) || w.expired() {
		t.Errorf("after the parent ended: Err = %v, expired = %v", w.Err(), w.expired())
	}
	w.stop(true)
	// A parent that has already ended.
	w = startAcquireWait(parent, time.Now(), time.Hour)
	select {
	case <-w.Done():
	default:
		t.Error("a wait on an ended parent is not done")
	}
	if !errors.Is(w.Err(), context.Canceled) || w.expired() {
		t.Errorf("on an ended parent: Err = %v, expired = %v", w.Err(), w.expired())
	}
	w.stop(true)
	checkFresh(t, t.Context())
}

func TestAcquireWaitDeadline(t *testing.T) {
	now := time.Now()
	soon, cancel := context.WithDeadline(t.Context(), now.Add(time.Minute))
	defer cancel()
	for _, tc := range []struct {
		timeout time.Duration
		want    time.Time
	}{
		{time.Second, now.Add(time.Second)},
		{time.Hour, now.Add(time.Minute)},
	} {
		w := startAcquireWait(soon, now, tc.timeout)
		if d, ok := w.Deadline(); !ok || !d.Equal(tc.want) {
			t.Errorf("timeout %v: Deadline = %v, %v; want %v", tc.timeout, d, ok, tc.want)
		}
		w.stop(true)
	}
}

// TestAcquireWaitReuse checks that waits stopped before they ended, and so
// reused, start afresh and no longer follow their former parent.
func TestAcquireWaitReuse(t *testing.T) {
	var old []context.CancelFunc
	for i := range 100 {
		parent, cancel := context.WithCancel(t.Context())
		old = append(old, cancel)
		w := startAcquireWait(parent, time.Now(), time.Hour)
		select {
		case <-w.Done():
			t.Fatalf("wait %d is done at start: %v", i, w.Err())
		default:
		}
		if w.Err() != nil || w.expired() {
			t.Fatalf("wait %d at start: Err = %v, expired = %v", i, w.Err(), w.expired())
		}
		w.stop(i%2 == 0)
	}
	w := startAcquireWait(t.Context(), time.Now(), time.Hour)
	defer w.stop(true)
	for _, cancel := range old {
		cancel()
	}
	select {
	case <-w.Done():
		t.Fatalf("a former parent's end reached a reused wait: %v", w.Err())
	default:
	}
}

type ctxKey struct{}

// checkFresh fails if a new wait on parent starts done.
func checkFresh(t *testing.T, parent context.Context) {
	t.Helper()
	w := startAcquireWait(parent, time.Now(), time.Hour)
	defer w.stop(true)
	if w.Err() != nil {
		t.Errorf("a new wait starts with Err = %v", w.Err())
	}
}
