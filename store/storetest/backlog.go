package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kailash-gateway/kgw/store"
)

// testClaimQueued: ClaimQueued takes at most limit unfinished executions
// without an owner, oldest first, with their nodes, raising the epoch by
// one and leaving restarts alone; owned and finished executions stay.
func testClaimQueued(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, "Heartbeat(other)", s.Heartbeat(ctx, "other", time.Now()))
	for i, c := range []struct {
		id, owner string
		status    store.ExecutionStatus
	}{
		{"q-1", "", store.ExecutionPending},
		{"owned", "other", store.ExecutionRunning},
		{"q-2", "", store.ExecutionRunning}, // released by a draining process
		{"done", "", store.ExecutionCompleted},
		{"q-3", "", store.ExecutionPending},
	} {
		e := sampleExecution(c.id, at(time.Duration(i)*time.Second))
		e.Owner, e.Status = c.owner, c.status
		must(t, "CreateExecution", s.CreateExecution(ctx, e))
	}
	if got, err := s.ClaimQueued(ctx, "a", 0); err != nil || len(got) != 0 {
		t.Fatalf("ClaimQueued(a, 0) = %v, %v; want nothing", claimedIDs(got), err)
	}
	got, err := s.ClaimQueued(ctx, "a", 2)
	must(t, "ClaimQueued(a, 2)", err)
	if len(got) != 2 || got[0].ID != "q-1" || got[1].ID != "q-2" {
		t.Fatalf("ClaimQueued(a, 2) = %v, want the two oldest queued [q-1 q-2] in order", claimedIDs(got))
	}
	for _, x := range got {
		if x.Owner != "a" || x.Epoch != 2 || x.Restarts != 0 || len(x.Nodes) != 3 {
			t.Errorf("%s: owner %q, epoch %d, restarts %d, %d nodes; want a, 2, 0, 3", x.ID, x.Owner, x.Epoch, x.Restarts, len(x.Nodes))
		}
	}
	got, err = s.ClaimQueued(ctx, "b", 10)
	must(t, "ClaimQueued(b, 10)", err)
	if d := diff([]string{"q-3"}, claimedIDs(got)); d != "" {
		t.Fatalf("ClaimQueued(b, 10) ids (-want +got):\n%s", d)
	}
	for _, id := range []string{"owned", "done"} {
		x, err := s.GetExecution(ctx, id)
		must(t, "GetExecution", err)
		if x.Epoch != 1 {
			t.Errorf("%s: epoch %d, want 1 (not claimable)", id, x.Epoch)
		}
	}
	if got, err := s.ClaimQueued(ctx, "c", 10); err != nil || len(got) != 0 {
		t.Errorf("ClaimQueued(c) on an empty backlog = %v, %v", claimedIDs(got), err)
	}
}

// testReleaseStale: ReleaseStale puts the unfinished executions of owners
// whose heartbeat is older than the threshold (or who never beat) back into
// the backlog, raising restarts (the claim raises the epoch); live owners'
// and finished executions stay. ClaimQueued then takes them.
func testReleaseStale(t *testing.T, s store.Store) {
	ctx := t.Context()
	t0 := time.Now().UTC().Truncate(time.Microsecond)
	must(t, "Heartbeat(dead)", s.Heartbeat(ctx, "dead", t0.Add(-time.Minute)))
	must(t, "Heartbeat(live)", s.Heartbeat(ctx, "live", t0))
	for i, c := range []struct {
		id, owner string
		status    store.ExecutionStatus
	}{
		{"dead-running", "dead", store.ExecutionRunning},
		{"ghost-running", "ghost", store.ExecutionRunning}, // never heart-beat
		{"dead-done", "dead", store.ExecutionFailed},
		{"live-running", "live", store.ExecutionRunning},
		{"queued", "", store.ExecutionPending},
	} {
		e := sampleExecution(c.id, at(time.Duration(i)*time.Second))
		e.Owner, e.Status = c.owner, c.status
		must(t, "CreateExecution", s.CreateExecution(ctx, e))
	}
	n, err := s.ReleaseStale(ctx, t0.Add(-time.Second))
	must(t, "ReleaseStale", err)
	if n != 2 {
		t.Errorf("ReleaseStale released %d, want 2 (dead-running, ghost-running)", n)
	}
	for _, c := range []struct {
		id              string
		owner           string
		epoch, restarts int64
	}{
		{"dead-running", "", 1, 1},
		{"ghost-running", "", 1, 1},
		{"dead-done", "dead", 1, 0},
		{"live-running", "live", 1, 0},
		{"queued", "", 1, 0},
	} {
		x, err := s.GetExecution(ctx, c.id)
		must(t, "GetExecution", err)
		if x.Owner != c.owner || x.Epoch != c.epoch || int64(x.Restarts) != c.restarts {
			t.Errorf("%s: owner %q, epoch %d, restarts %d; want %q, %d, %d", c.id, x.Owner, x.Epoch, x.Restarts, c.owner, c.epoch, c.restarts)
		}
	}
	got, err := s.ClaimQueued(ctx, "live", 10)
	must(t, "ClaimQueued", err)
	if d := diff([]string{"dead-running", "ghost-running", "queued"}, claimedIDs(got)); d != "" {
		t.Errorf("ClaimQueued after ReleaseStale ids (-want +got):\n%s", d)
	}
	for _, x := range got {
		if x.ID != "queued" && (x.Epoch != 2 || x.Restarts != 1) {
			t.Errorf("%s claimed at epoch %d with restarts %d, want 2 and 1", x.ID, x.Epoch, x.Restarts)
		}
	}
	if n, err := s.ReleaseStale(ctx, t0.Add(-time.Second)); err != nil || n != 0 {
		t.Errorf("second ReleaseStale = %d, %v; want 0 (live owns them now)", n, err)
	}
}

// testConcurrentQueueClaimers: processes claiming from one backlog at
// once, each a few at a time, never take the same execution, and together
// take all of it exactly once.
func testConcurrentQueueClaimers(t *testing.T, s store.Store) {
	ctx := t.Context()
	const executions, claimers, batch = 40, 5, 3
	for i := range executions {
		e := sampleExecution(fmt.Sprintf("backlog-%02d", i), at(time.Duration(i)))
		e.Owner = ""
		must(t, "CreateExecution", s.CreateExecution(ctx, e))
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		taken = map[string]string{}
		errs  []error
	)
	start := make(chan struct{})
	for c := range claimers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for {
				got, err := s.ClaimQueued(ctx, claimer(c), batch)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				if len(got) > batch {
					errs = append(errs, fmt.Errorf("%s claimed %d, more than the limit %d", claimer(c), len(got), batch))
				}
				for _, x := range got {
					if prev, dup := taken[x.ID]; dup {
						errs = append(errs, fmt.Errorf("%s claimed by %s and %s", x.ID, prev, claimer(c)))
					}
					taken[x.ID] = claimer(c)
					if x.Epoch != 2 || x.Owner != claimer(c) {
						errs = append(errs, fmt.Errorf("%s: epoch %d owner %q, want 2 and %s", x.ID, x.Epoch, x.Owner, claimer(c)))
					}
				}
				mu.Unlock()
				if len(got) == 0 || err != nil {
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("concurrent queue claims: %v", errs)
	}
	if len(taken) != executions {
		t.Fatalf("%d of %d queued executions claimed", len(taken), executions)
	}
	for id, owner := range taken {
		x, err := s.GetExecution(ctx, id)
		must(t, "GetExecution", err)
		if x.Owner != owner || x.Epoch != 2 {
			t.Errorf("%s: stored owner %q epoch %d, claimed by %s at epoch 2", id, x.Owner, x.Epoch, owner)
		}
	}
}

// testLeaderLease: of processes acquiring one lease at once exactly one
// gets it; the holder renews it while the others keep failing; once it
// lapses (or is released) exactly one other takes it over.
func testLeaderLease(t *testing.T, s store.Store) {
	ll, ok := s.(store.LeaderLeases)
	if !ok {
		t.Skip("the store has no leader leases")
	}
	ctx := t.Context()
	const name, contenders = "housekeeping", 6
	acquireAll := func(ttl time.Duration, except string) []string {
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			holders []string
		)
		for c := range contenders {
			if claimer(c) == except {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := ll.AcquireLease(ctx, name, claimer(c), ttl)
				if err != nil {
					t.Errorf("AcquireLease(%s): %v", claimer(c), err)
				}
				if got {
					mu.Lock()
					holders = append(holders, claimer(c))
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return holders
	}
	holders := acquireAll(time.Minute, "")
	if len(holders) != 1 {
		t.Fatalf("concurrent AcquireLease: holders %v, want exactly one", holders)
	}
	leader := holders[0]
	if h, live, err := ll.LeaseHolder(ctx, name); err != nil || h != leader || !live {
		t.Fatalf("LeaseHolder = %q, %v, %v; want %s, live", h, live, err, leader)
	}
	if got, err := ll.AcquireLease(ctx, name, leader, 300*time.Millisecond); err != nil || !got {
		t.Fatalf("renewal by the holder = %v, %v; want true", got, err)
	}
	if others := acquireAll(time.Minute, leader); len(others) != 0 {
		t.Fatalf("AcquireLease while %s holds it: %v got it too", leader, others)
	}
	// The holder stops renewing (it died): after the lease runs out one
	// other takes it.
	time.Sleep(400 * time.Millisecond)
	if _, live, err := ll.LeaseHolder(ctx, name); err != nil || live {
		t.Fatalf("LeaseHolder after expiry: live %v, %v; want expired", live, err)
	}
	next := acquireAll(time.Minute, leader)
	if len(next) != 1 || next[0] == leader {
		t.Fatalf("AcquireLease after %s's lease expired: holders %v, want exactly one other", leader, next)
	}
	if got, err := ll.AcquireLease(ctx, name, leader, time.Minute); err != nil || got {
		t.Fatalf("the old holder's renewal after the takeover = %v, %v; want false", got, err)
	}
	// A release hands over at once.
	must(t, "ReleaseLease", ll.ReleaseLease(ctx, name, next[0]))
	if after := acquireAll(time.Minute, next[0]); len(after) != 1 {
		t.Fatalf("AcquireLease after release: holders %v, want exactly one", after)
	}
}

// claimStale is a lease scan followed by a claim, as an executor makes
// them: ReleaseStale puts the executions of owners stale since
// staleBefore back into the backlog, then ClaimQueued takes everything in
// the backlog for owner.
func claimStale(ctx context.Context, s store.Store, owner string, staleBefore time.Time) ([]*store.Execution, error) {
	if _, err := s.ReleaseStale(ctx, staleBefore); err != nil {
		return nil, err
	}
	return s.ClaimQueued(ctx, owner, 1<<20)
}
