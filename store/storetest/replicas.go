package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kailash-gateway/kgw/store"
)

// RunReplicas runs the cases of the contract that only stores shared by
// several gateway processes (replicas) must meet: leases (owner heart-beats
// and claims), fencing of journal writes by epoch (store.JournalBatch.Epochs)
// and concurrent claims. The PostgreSQL backend runs them; SQLite serves
// one process and does not check epochs.
func RunReplicas(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Replicas/LeaseThenFencing", testLeaseThenFencing},
		{"Replicas/FencingInGroupCommit", testFencingInGroupCommit},
		{"Replicas/FencedUnknownExecution", testFencedUnknownExecution},
		{"Replicas/ConcurrentClaimersNeverShare", testConcurrentClaimersNeverShare},
		{"Replicas/ConcurrentQueueClaimersNeverShare", testConcurrentQueueClaimers},
		{"Replicas/LeaderLease", testLeaderLease},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

// step returns a one-event batch of execution id at seq, fenced with epoch
// (0 = unfenced), that also moves node "fetch" to attempts = seq.
func step(id string, seq, epoch int64) *store.JournalBatch {
	b := &store.JournalBatch{
		Nodes: []store.NodeUpdate{{ExecutionID: id, State: &store.NodeState{
			NodeID: "fetch", Status: store.NodeRunning, Attempts: int32(seq)}}},
		Events: []*store.Event{{ExecutionID: id, Seq: seq, Time: at(time.Duration(seq)), Kind: store.EventNodeStarted,
			NodeID: "fetch", Attempt: int32(seq)}},
	}
	if epoch != 0 {
		b.Epochs = map[string]int64{id: epoch}
	}
	return b
}

func fencedIDs(t *testing.T, err error) []string {
	t.Helper()
	var fe *store.FencedError
	if !errors.As(err, &fe) || !errors.Is(err, store.ErrFenced) {
		t.Fatalf("WriteJournal error = %v, want a *store.FencedError", err)
	}
	return fe.IDs
}

func eventSeqs(t *testing.T, s store.Store, id string) []int64 {
	t.Helper()
	evs, err := s.ListEvents(t.Context(), id, 0, 0)
	must(t, "ListEvents", err)
	var out []int64
	for _, ev := range evs {
		out = append(out, ev.Seq)
	}
	return out
}

// testLeaseThenFencing: an owner that keeps heart-beating keeps its
// execution; once its lease (last beat) is older than the claimer's
// threshold another owner claims it, and the first owner's writes,
// carrying its old epoch, are refused while the new owner's apply.
func testLeaseThenFencing(t *testing.T, s store.Store) {
	ctx := t.Context()
	t0 := time.Now().UTC().Truncate(time.Microsecond)
	e := sampleExecution("leased", at(0))
	e.Status, e.Owner = store.ExecutionRunning, "a"
	must(t, "CreateExecution", s.CreateExecution(ctx, e))
	must(t, "Heartbeat(a)", s.Heartbeat(ctx, "a", t0))
	must(t, "WriteJournal(a, epoch 1)", s.WriteJournal(ctx, step("leased", 1, 1)))

	// The lease still holds: a's beat is newer than the threshold.
	got, err := claimStale(ctx, s, "b", t0.Add(-time.Second))
	must(t, "claimStale(b) within the lease", err)
	if len(got) != 0 {
		t.Fatalf("claimStale(b) within a's lease took %v", claimedIDs(got))
	}
	must(t, "WriteJournal(a, epoch 1) within the lease", s.WriteJournal(ctx, step("leased", 2, 1)))

	// a stops beating; past its lease b takes the execution at epoch 2.
	got, err = claimStale(ctx, s, "b", t0.Add(time.Second))
	must(t, "claimStale(b) past the lease", err)
	if len(got) != 1 || got[0].Epoch != 2 || got[0].Owner != "b" {
		t.Fatalf("claimStale(b) past the lease = %v (epoch %v), want leased at epoch 2", claimedIDs(got), got)
	}
	// a comes back and writes with its epoch: refused, nothing applied.
	err = s.WriteJournal(ctx, step("leased", 3, 1))
	if d := diff([]string{"leased"}, fencedIDs(t, err)); d != "" {
		t.Errorf("fenced ids (-want +got):\n%s", d)
	}
	h := &store.Execution{ID: "leased", Status: store.ExecutionCompleted, Owner: "a", EndTime: at(time.Hour)}
	err = s.WriteJournal(ctx, &store.JournalBatch{Executions: []*store.Execution{h}, Epochs: map[string]int64{"leased": 1}})
	fencedIDs(t, err)
	// b writes with its epoch: applied.
	must(t, "WriteJournal(b, epoch 2)", s.WriteJournal(ctx, step("leased", 3, 2)))

	if d := diff([]int64{1, 2, 3}, eventSeqs(t, s, "leased")); d != "" {
		t.Errorf("event seqs (-want +got):\n%s", d)
	}
	stored, err := s.GetExecution(ctx, "leased")
	must(t, "GetExecution", err)
	if stored.Status != store.ExecutionRunning || stored.Owner != "b" || stored.Epoch != 2 {
		t.Errorf("stored status %v, owner %q, epoch %d; want running, b, 2 (a's fenced header not applied)",
			stored.Status, stored.Owner, stored.Epoch)
	}
	if ev, _ := s.ListEvents(ctx, "leased", 2, 0); len(ev) != 1 || ev[0].Attempt != 3 {
		t.Errorf("event 3 = %+v, want b's (attempt 3)", ev)
	}
}

// testFencingInGroupCommit: a batch carrying the writes of several
// executions refuses those of the fenced one only; the others commit.
func testFencingInGroupCommit(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, id := range []string{"lost", "kept", "unfenced"} {
		e := sampleExecution(id, at(0))
		e.Status, e.Owner = store.ExecutionRunning, "a"
		must(t, "CreateExecution", s.CreateExecution(ctx, e))
	}
	// "lost" is claimed by b (a never beat, so it is stale).
	got, err := claimStale(ctx, s, "b", time.Now().Add(time.Hour))
	must(t, "claimStale(b)", err)
	if len(got) != 3 {
		t.Fatalf("claimStale(b) = %v, want 3", claimedIDs(got))
	}
	// a's group commit still carries epoch 1 for lost, 2 for kept (as if
	// it had claimed it too), none for unfenced; plus a new execution.
	created := sampleExecution("created", at(time.Second))
	created.Status = store.ExecutionRunning
	b := &store.JournalBatch{Creates: []*store.Execution{created}, Epochs: map[string]int64{"lost": 1, "kept": 2}}
	for _, id := range []string{"lost", "kept", "unfenced"} {
		one := step(id, 1, 0)
		b.Nodes = append(b.Nodes, one.Nodes...)
		b.Events = append(b.Events, one.Events...)
		b.Executions = append(b.Executions, &store.Execution{ID: id, Status: store.ExecutionCompleted, Owner: "a"})
	}
	err = s.WriteJournal(ctx, b)
	if d := diff([]string{"lost"}, fencedIDs(t, err)); d != "" {
		t.Errorf("fenced ids (-want +got):\n%s", d)
	}
	for id, want := range map[string]bool{"lost": false, "kept": true, "unfenced": true} {
		x, err := s.GetExecution(ctx, id)
		must(t, "GetExecution", err)
		applied := x.Status == store.ExecutionCompleted
		if applied != want || (len(eventSeqs(t, s, id)) == 1) != want || (x.Nodes[0].Attempts == 1) != want {
			t.Errorf("%s: status %v, events %v, fetch attempts %d; applied should be %v",
				id, x.Status, eventSeqs(t, s, id), x.Nodes[0].Attempts, want)
		}
	}
	if _, err := s.GetExecution(ctx, "created"); err != nil {
		t.Errorf("the batch's create was not applied: %v", err)
	}
}

// testFencedUnknownExecution: fenced writes to an execution that does not
// exist fail with ErrNotFound, not as fenced.
func testFencedUnknownExecution(t *testing.T, s store.Store) {
	err := s.WriteJournal(t.Context(), step("nobody", 1, 1))
	wantErr(t, "WriteJournal(unknown, fenced)", err, store.ErrNotFound)
	if errors.Is(err, store.ErrFenced) {
		t.Errorf("WriteJournal(unknown) = %v, want not fenced", err)
	}
}

// testConcurrentClaimersNeverShare: claimers that repeatedly take over
// each other's executions (every claimer's lease counts as expired) never
// get the same execution at the same epoch, and each claim's epoch is the
// one the store keeps until the next claim.
func testConcurrentClaimersNeverShare(t *testing.T, s store.Store) {
	ctx := t.Context()
	const executions, claimers, rounds = 10, 4, 8
	for i := range executions {
		e := sampleExecution(fmt.Sprintf("share-%02d", i), at(time.Duration(i)))
		e.Status, e.Owner = store.ExecutionRunning, ""
		must(t, "CreateExecution", s.CreateExecution(ctx, e))
	}
	type claim struct {
		id    string
		epoch int64
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		seen  = map[claim]string{}
		total int
		errs  []error
	)
	for c := range claimers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				got, err := claimStale(ctx, s, claimer(c), time.Now().Add(time.Hour))
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				for _, e := range got {
					k := claim{e.ID, e.Epoch}
					if prev, dup := seen[k]; dup {
						errs = append(errs, fmt.Errorf("%s at epoch %d claimed by %s and %s", e.ID, e.Epoch, prev, claimer(c)))
					}
					seen[k] = claimer(c)
					total++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("concurrent claims: %v", errs)
	}
	// Every claim raised the epoch by one: epochs 2..(claims+1) per id.
	for i := range executions {
		id := fmt.Sprintf("share-%02d", i)
		x, err := s.GetExecution(ctx, id)
		must(t, "GetExecution", err)
		n := int64(0)
		for k := range seen {
			if k.id == id {
				n++
			}
		}
		if x.Epoch != n+1 {
			t.Errorf("%s: epoch %d after %d claims, want %d", id, x.Epoch, n, n+1)
		}
		if seen[claim{id, x.Epoch}] != x.Owner && n > 0 {
			t.Errorf("%s: stored owner %q, but the claim at epoch %d went to %q", id, x.Owner, x.Epoch, seen[claim{id, x.Epoch}])
		}
	}
	if total == 0 {
		t.Error("no claims were made")
	}
}

// testReclaimOwn: a process restarted under its owner name takes back its
// own unfinished executions at once, although its heartbeat is fresh;
// nobody else's, and no finished one. Epoch and restarts grow by one.
func testReclaimOwn(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, "Heartbeat(me)", s.Heartbeat(ctx, "me", time.Now()))
	for i, c := range []struct {
		id, owner string
		status    store.ExecutionStatus
	}{
		{"mine-running", "me", store.ExecutionRunning},
		{"mine-pending", "me", store.ExecutionPending},
		{"mine-done", "me", store.ExecutionCompleted},
		{"theirs", "other", store.ExecutionRunning},
		{"nobody", "", store.ExecutionRunning},
	} {
		e := sampleExecution(c.id, at(time.Duration(i)))
		e.Owner, e.Status = c.owner, c.status
		must(t, "CreateExecution", s.CreateExecution(ctx, e))
	}
	got, err := s.ReclaimExecutions(ctx, "me")
	must(t, "ReclaimExecutions(me)", err)
	if d := diff([]string{"mine-pending", "mine-running"}, claimedIDs(got)); d != "" {
		t.Fatalf("ReclaimExecutions(me) ids (-want +got):\n%s", d)
	}
	for _, x := range got {
		if x.Epoch != 2 || x.Restarts != 1 || x.Owner != "me" || len(x.Nodes) != 3 {
			t.Errorf("%s: epoch %d, restarts %d, owner %q, %d nodes; want 2, 1, me, 3", x.ID, x.Epoch, x.Restarts, x.Owner, len(x.Nodes))
		}
	}
	if got, err := s.ReclaimExecutions(ctx, ""); err != nil || len(got) != 0 {
		t.Errorf("ReclaimExecutions(\"\") = %v, %v; want none (unowned executions are for ClaimQueued)", claimedIDs(got), err)
	}
	theirs, err := s.GetExecution(ctx, "theirs")
	must(t, "GetExecution", err)
	if theirs.Epoch != 1 || theirs.Owner != "other" {
		t.Errorf("theirs: epoch %d, owner %q; want untouched", theirs.Epoch, theirs.Owner)
	}
}
