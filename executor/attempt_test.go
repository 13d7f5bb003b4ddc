package executor

import (
	"context"
	"errors"
	"testing"
	"time"
)

var errTestCause = errors.New("test cause")

func startedAttemptCtx(deadline time.Time, atTimeout error) *attemptCtx {
	a := new(attemptCtx)
	a.start(deadline, atTimeout)
	return a
}

// waitDone fails t unless c is closed within a few seconds.
func waitDone(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: not done", what)
	}
}

func TestAttemptCtxDeadline(t *testing.T) {
	deadline := time.Now().Add(20 * time.Millisecond)
	a := startedAttemptCtx(deadline, errTestCause)
	if d, ok := a.Deadline(); !ok || !d.Equal(deadline) {
		t.Errorf("Deadline() = %v, %v; want %v, true", d, ok, deadline)
	}
	if a.Err() != nil || a.Value("k") != nil {
		t.Fatalf("running: Err() = %v, Value = %v; want nil, nil", a.Err(), a.Value("k"))
	}
	waitDone(t, a.Done(), "Done")
	if !errors.Is(a.Err(), context.DeadlineExceeded) {
		t.Errorf("Err() = %v; want DeadlineExceeded", a.Err())
	}
	if c := context.Cause(a); c != errTestCause {
		t.Errorf("Cause = %v; want %v", c, errTestCause)
	}
	// Ending it again changes nothing.
	a.end(context.Canceled, context.Canceled)
	if !errors.Is(a.Err(), context.DeadlineExceeded) || context.Cause(a) != errTestCause {
		t.Errorf("after a second end: Err() = %v, Cause = %v", a.Err(), context.Cause(a))
	}
}

func TestAttemptCtxPastDeadline(t *testing.T) {
	a := startedAttemptCtx(time.Now().Add(-time.Second), errTestCause)
	if !errors.Is(a.Err(), context.DeadlineExceeded) || context.Cause(a) != errTestCause {
		t.Fatalf("Err() = %v, Cause = %v; want DeadlineExceeded, %v", a.Err(), context.Cause(a), errTestCause)
	}
	waitDone(t, a.Done(), "Done of an ended context")
}

func TestAttemptCtxAfterFunc(t *testing.T) {
	a := startedAttemptCtx(time.Now().Add(time.Hour), errTestCause)
	ran := make(chan struct{})
	a.AfterFunc(func() { close(ran) })
	stopped := false
	stop := a.AfterFunc(func() { stopped = true })
	if !stop() {
		t.Error("stop() before the end = false; want true")
	}
	if stop() {
		t.Error("second stop() = true; want false")
	}
	// Derived contexts register through the AfterFunc method.
	child, cancelChild := context.WithCancel(a)
	defer cancelChild()
	a.end(context.Canceled, errTestCause)
	waitDone(t, ran, "callback")
	waitDone(t, child.Done(), "child context")
	if c := context.Cause(child); c != errTestCause {
		t.Errorf("child's cause = %v; want %v", c, errTestCause)
	}
	if stopped {
		t.Error("a stopped callback ran")
	}
	late := make(chan struct{})
	if a.AfterFunc(func() { close(late) })() {
		t.Error("stop() of a callback registered after the end = true; want false")
	}
	waitDone(t, late, "callback registered after the end")
}
