package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kailash-gateway/kgw/internal/testenv"
	"github.com/kailash-gateway/kgw/store"
	"github.com/kailash-gateway/kgw/store/postgres"
)

// One replica's Listen gets, over its one connection, the notifications of
// another replica's journal commits (the ids of executions with new events,
// readable when they arrive), workflow registrations and deletions, and
// cancel requests; WorkflowVersion names the stored version cheaply.
func TestListenNotifications(t *testing.T) {
	dsn := testenv.Postgres(t).NewDatabase(t)
	ctx := t.Context()
	open := func() *postgres.Store {
		s, err := postgres.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open(), open()
	l := listen(t, b)
	now := time.Now().UTC()
	x := &store.Execution{ID: "x1", Workflow: "w", Version: 1, Status: store.ExecutionRunning, CreateTime: now, StartTime: now}
	if err := a.WriteJournal(ctx, &store.JournalBatch{Creates: []*store.Execution{x}}); err != nil {
		t.Fatal(err)
	}
	if err := a.WriteJournal(ctx, &store.JournalBatch{Events: []*store.Event{
		{ExecutionID: "x1", Seq: 1, Time: now, Kind: store.EventExecutionStarted, Workflow: "w", Version: 1},
		{ExecutionID: "x1", Seq: 2, Time: now, Kind: store.EventNodeStarted, NodeID: "n", Attempt: 1},
	}}); err != nil {
		t.Fatal(err)
	}
	l.expect(t, "events", "x1") // one per execution and commit, not per event
	if evs, err := b.ListEvents(ctx, "x1", 0, 0); err != nil || len(evs) != 2 {
		t.Fatalf("events readable when notified: %d, %v; want 2", len(evs), err)
	}
	checkWorkflowNotifications(t, a, b, l)
	if err := a.RequestCancel(ctx, "x1"); err != nil {
		t.Fatal(err)
	}
	// The failed delete sent nothing: the next notification is the cancel.
	l.expect(t, "cancel", "x1")
}

// checkWorkflowNotifications: creating two versions of a workflow on a
// and deleting it notify b (listening through l), which then reads the
// versions; deleting it again fails and notifies nothing.
func checkWorkflowNotifications(t *testing.T, a, b *postgres.Store, l *noteListener) {
	t.Helper()
	ctx := t.Context()
	if _, err := a.CreateWorkflowVersion(ctx, &store.Workflow{Name: "wf", Nodes: []store.Node{{ID: "n"}}}); err != nil {
		t.Fatal(err)
	}
	l.expect(t, "workflows", "wf")
	if _, err := a.CreateWorkflowVersion(ctx, &store.Workflow{Name: "wf", Nodes: []store.Node{{ID: "n"}}}); err != nil {
		t.Fatal(err)
	}
	l.expect(t, "workflows", "wf")
	for _, c := range []struct{ asked, want int32 }{{0, 2}, {1, 1}, {2, 2}} {
		if v, err := b.WorkflowVersion(ctx, "wf", c.asked); err != nil || v != c.want {
			t.Errorf("WorkflowVersion(wf, %d) = %d, %v; want %d", c.asked, v, err, c.want)
		}
	}
	if _, err := b.WorkflowVersion(ctx, "wf", 3); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("WorkflowVersion of a missing version: %v, want ErrNotFound", err)
	}
	if err := a.DeleteWorkflow(ctx, "wf"); err != nil {
		t.Fatal(err)
	}
	l.expect(t, "workflows", "wf")
	if _, err := b.WorkflowVersion(ctx, "wf", 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("WorkflowVersion after delete: %v, want ErrNotFound", err)
	}
	if err := a.DeleteWorkflow(ctx, "wf"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleting again: %v, want ErrNotFound", err)
	}
}

type note struct{ kind, payload string }

// noteListener receives the notifications of a store's Listen.
type noteListener struct {
	notes chan note
}

// listen runs b.Listen until the test ends (then checks it returned
// context.Canceled) and waits for it to connect.
func listen(t *testing.T, b *postgres.Store) *noteListener {
	t.Helper()
	l := &noteListener{notes: make(chan note, 16)}
	up := make(chan bool, 4)
	lctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- b.Listen(lctx, store.Notifications{
			Cancel:    func(id string) { l.notes <- note{"cancel", id} },
			Events:    func(id string) { l.notes <- note{"events", id} },
			Workflows: func(name string) { l.notes <- note{"workflows", name} },
			Connected: func(ok bool) { up <- ok },
		})
	}()
	t.Cleanup(func() {
		stop()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Listen returned %v, want context.Canceled", err)
		}
	})
	select {
	case ok := <-up:
		if !ok {
			t.Fatal("Connected(false) before listening")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Listen never connected")
	}
	return l
}

// expect waits up to 5 s for the next notification, which must be kind
// with payload.
func (l *noteListener) expect(t *testing.T, kind, payload string) {
	t.Helper()
	select {
	case n := <-l.notes:
		if n != (note{kind, payload}) {
			t.Fatalf("got notification %+v, want %s %s", n, kind, payload)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s notification for %s", kind, payload)
	}
}
