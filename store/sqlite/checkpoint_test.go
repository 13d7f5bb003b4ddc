package sqlite

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/kailash-gateway/kgw/store"
)

// Commits never checkpoint; the checkpointer keeps the write-ahead log
// from growing while executions are journalled.
func TestCheckpointsOffTheCommitPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kgw.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	var auto int
	if err := s.wc.QueryRowContext(t.Context(), "PRAGMA wal_autocheckpoint").Scan(&auto); err != nil || auto != 0 {
		t.Fatalf("writer wal_autocheckpoint = %d, %v; want 0", auto, err)
	}
	// About 4 MB of log per 250 executions, written without a pause:
	// without checkpoints that reuse it, the log would pass 45 MB.
	payload := map[string]any{"blob": string(make([]byte, 8<<10))}
	deadline := time.Now().Add(60 * time.Second)
	for i := range 3000 {
		e := &store.Execution{ID: fmt.Sprintf("e%05d", i), Workflow: "wf", Version: 1, Status: store.ExecutionRunning,
			Request: store.ExecutionRequest{Parameters: payload}, Nodes: []*store.NodeState{{NodeID: "n", Status: store.NodePending}}}
		if err := s.WriteJournal(t.Context(), &store.JournalBatch{Creates: []*store.Execution{e}}); err != nil {
			t.Fatalf("WriteJournal: %v", err)
		}
		if time.Now().After(deadline) {
			break
		}
	}
	// After a pause the checkpointer has copied the whole log, and the
	// next commit writes it again from its start.
	time.Sleep(3 * checkpointInterval)
	e := &store.Execution{ID: "last", Workflow: "wf", Version: 1, Status: store.ExecutionRunning,
		Nodes: []*store.NodeState{{NodeID: "n", Status: store.NodePending}}}
	if err := s.WriteJournal(t.Context(), &store.JournalBatch{Creates: []*store.Execution{e}}); err != nil {
		t.Fatalf("WriteJournal: %v", err)
	}
	var busy, logFrames, copied int
	if err := s.r.QueryRowContext(t.Context(), "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logFrames, &copied); err != nil {
		t.Fatalf("wal_checkpoint: %v", err)
	}
	if logFrames > 100 {
		t.Errorf("log holds %d frames after a pause and one commit; want it checkpointed and reused from its start", logFrames)
	}
}
