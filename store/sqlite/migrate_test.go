package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kailash-gateway/kgw/store"
)

// TestMigrationKeepsJournal opens a database left by the first schema
// version and checks that the migrations keep its executions, node states
// and events.
func TestMigrationKeepsJournal(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kgw.db")
	db, err := sql.Open("sqlite3", path+"?_foreign_keys=1")
	if err != nil {
		t.Fatal(err)
	}
	v1, err := migrations.ReadFile("migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`,
		string(v1),
		`INSERT INTO schema_migrations VALUES (1, '0001_init.sql', 0)`,
		`INSERT INTO executions VALUES ('x1', 'wf', 1, 3, '{}', NULL, 10, 11, 12, '', 'alice', 'gw')`,
		`INSERT INTO execution_nodes VALUES ('x1', 'a', 0, 4, 1, 11, 12, NULL, '{"n":1}')`,
		`INSERT INTO execution_events VALUES ('x1', 1, 11, 1, '{"workflow":"wf","version":1}')`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	x, err := s.GetExecution(ctx, "x1")
	if err != nil {
		t.Fatalf("GetExecution: %v", err)
	}
	if len(x.Nodes) != 1 || x.Nodes[0].NodeID != "a" || x.Nodes[0].Result["n"] != int64(1) {
		t.Errorf("nodes after migration = %+v, want node a with result n=1", x.Nodes)
	}
	events, err := s.ListEvents(ctx, "x1", 0, 0)
	if err != nil {
		t.Fatalf("ListEvents: %v", err)
	}
	want := []*store.Event{{ExecutionID: "x1", Seq: 1, Time: x.StartTime, Kind: store.EventExecutionStarted, Workflow: "wf", Version: 1}}
	if d := cmp.Diff(want, events); d != "" {
		t.Errorf("events after migration (-want +got):\n%s", d)
	}
	// The migrated tables work as the new schema expects: a new event joins
	// the migrated one, and the migrated seq stays taken.
	second := &store.Event{ExecutionID: "x1", Seq: 2, Time: x.StartTime, Kind: store.EventNodeStarted, NodeID: "a", Attempt: 1}
	if err := s.WriteJournal(ctx, &store.JournalBatch{Events: []*store.Event{second}}); err != nil {
		t.Errorf("WriteJournal after migration: %v", err)
	}
	events, err = s.ListEvents(ctx, "x1", 0, 0)
	if err != nil {
		t.Fatalf("ListEvents: %v", err)
	}
	if d := cmp.Diff(append(want, second), events); d != "" {
		t.Errorf("events after migration and a new write (-want +got):\n%s", d)
	}
	again := &store.Event{ExecutionID: "x1", Seq: 1, Time: x.StartTime, Kind: store.EventExecutionStarted}
	if err := s.WriteJournal(ctx, &store.JournalBatch{Events: []*store.Event{again}}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("WriteJournal of a migrated seq again = %v, want ErrConflict", err)
	}
	// A node the migrated execution did not have is added after its own.
	extra := &store.NodeState{NodeID: "b", Status: store.NodeRunning, Attempts: 1}
	if err := s.WriteJournal(ctx, &store.JournalBatch{Nodes: []store.NodeUpdate{{ExecutionID: "x1", State: extra}}}); err != nil {
		t.Errorf("WriteJournal of a node after migration: %v", err)
	}
	if x, err = s.GetExecution(ctx, "x1"); err != nil || len(x.Nodes) != 2 || x.Nodes[1].NodeID != "b" {
		t.Errorf("GetExecution after a new node = %+v, %v; want nodes a, b", x, err)
	}
	if n, err := s.DeleteExecutionsBefore(ctx, x.EndTime.Add(1)); n != 1 || err != nil {
		t.Errorf("DeleteExecutionsBefore = %d, %v; want 1, nil", n, err)
	}
}

// A database that a newer kgw migrated past this one's migrations is
// refused with an error saying so, and left as it was.
func TestOpenRefusesNewerSchema(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kgw.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if _, err := s.wc.ExecContext(ctx, `INSERT INTO schema_migrations VALUES (9999, '9999_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(ctx, path); err == nil {
		s.Close()
		t.Fatal("Open of a database at a newer schema version succeeded")
	} else if !strings.Contains(err.Error(), "schema version 9999, newer than this kgw's") {
		t.Errorf("Open: %v; want it to name the newer schema version", err)
	}
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = 9999`).Scan(&n); err != nil || n != 1 {
		t.Errorf("the newer version's record after the refused Open: %d rows, %v", n, err)
	}
}
