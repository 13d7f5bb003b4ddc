package sqlite

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kailash-gateway/kgw/store"
	"github.com/kailash-gateway/kgw/store/storetest"
)

// An execution that a batch creates finished keeps its node states in its
// row (no execution_nodes rows, empty node_ids) when they fit; one with
// large states, or a node id that has no line, keeps rows; and one created
// unfinished keeps rows, which later batches update.
func TestFinishedExecutionNodesInline(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "kgw.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	now := time.Now()
	exec := func(id string, status store.ExecutionStatus, nodes ...*store.NodeState) *store.Execution {
		return &store.Execution{ID: id, Workflow: "w", Version: 1, Status: status, CreateTime: now, Nodes: nodes}
	}
	done := func(id string, res map[string]any) *store.NodeState {
		return &store.NodeState{NodeID: id, Status: store.NodeCompleted, Attempts: 1, StartTime: now, EndTime: now, Result: res}
	}
	small := map[string]any{"v": 1.0}
	big := map[string]any{"v": strings.Repeat("x", maxInlineNodes)}
	if err := s.WriteJournal(t.Context(), &store.JournalBatch{Creates: []*store.Execution{
		exec("inline", store.ExecutionCompleted, done("a", small), done("b", nil)),
		exec("big", store.ExecutionCompleted, done("a", big)),
		exec("odd-id", store.ExecutionFailed, done("a\tb", small)),
		exec("running", store.ExecutionRunning, done("a", small), &store.NodeState{NodeID: "b", Status: store.NodePending}),
	}}); err != nil {
		t.Fatalf("WriteJournal: %v", err)
	}
	want := map[string]struct {
		rows   int
		inline bool
	}{"inline": {0, true}, "big": {1, false}, "odd-id": {1, false}, "running": {1, false}}
	for id, w := range want {
		var rows int
		var ids, nodes string
		if err := s.wc.QueryRowContext(t.Context(), `SELECT (SELECT count(*) FROM execution_nodes WHERE execution_id = ?1), node_ids, nodes
			FROM executions WHERE id = ?1`, id).Scan(&rows, &ids, &nodes); err != nil {
			t.Fatalf("read %s: %v", id, err)
		}
		if rows != w.rows || (nodes != "") != w.inline || (ids == "") != w.inline {
			t.Errorf("%s: %d node rows, node_ids %q, nodes %q; want %d rows, inline %v", id, rows, ids, nodes, w.rows, w.inline)
		}
	}
}

// The events of a short run that says nothing its row does not are
// derived, not stored; any other run keeps its events as written
// (storetest's Journal/ShortRunEvents reads them all back).
func TestShortRunEventsDerived(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "kgw.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	derived := map[string]bool{"noop": true, "chain": true, "seven": true, "late-event": true}
	for _, r := range storetest.ShortRuns() {
		b, _ := storetest.ShortRunBatch(r)
		if err := s.WriteJournal(t.Context(), b); err != nil {
			t.Fatalf("WriteJournal(%s): %v", r.Name, err)
		}
		var events string
		var rows int
		if err := s.wc.QueryRowContext(t.Context(), `SELECT events, (SELECT count(*) FROM execution_events WHERE execution_id = ?1)
			FROM executions WHERE id = ?1`, storetest.ShortRunID(r)).Scan(&events, &rows); err != nil {
			t.Fatalf("read %s: %v", r.Name, err)
		}
		if got := events == derivedLine; got != derived[r.Name] {
			t.Errorf("%s: events %q and %d event rows; derived = %v, want %v", r.Name, events, rows, got, derived[r.Name])
		}
	}
}
