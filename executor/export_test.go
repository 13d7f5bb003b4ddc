package executor

import "context"

// Crash stops e as a killed process would stop: from now on nothing more is
// written to the store (the heartbeat stops, queued and later journal
// writes are dropped), and every run is interrupted. Unfinished executions
// stay RUNNING in the store, owned by e, for another Executor to recover.
// Test only.
func (e *Executor) Crash() {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.stopLoops()
	e.leaderUntil.Store(0) // a killed process does not give its lease up
	if e.journal != nil {
		e.journal.crash()
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = e.Close(ctx)
}
