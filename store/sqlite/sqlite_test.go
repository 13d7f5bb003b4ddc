package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"github.com/kailash-gateway/kgw/store"
	"github.com/kailash-gateway/kgw/store/sqlite"
	"github.com/kailash-gateway/kgw/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openTemp(tb testing.TB) *sqlite.Store {
	tb.Helper()
	s, err := sqlite.Open(tb.Context(), filepath.Join(tb.TempDir(), "kgw.db"))
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) })
}

func TestReopenKeepsDataAndSkipsApplied(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kgw.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	w, err := s.CreateWorkflowVersion(t.Context(), &store.Workflow{Name: "kept", Nodes: []store.Node{{ID: "a", Code: "result = {}"}}})
	if err != nil {
		t.Fatalf("CreateWorkflowVersion: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s, err = sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	defer s.Close()
	got, err := s.GetWorkflow(t.Context(), "kept", 0)
	if err != nil || got.Version != w.Version || len(got.Nodes) != 1 {
		t.Fatalf("GetWorkflow after reopen = %+v, %v; want version %d with 1 node", got, err, w.Version)
	}
}

func TestOpenRejectsEmptyAndInMemoryPaths(t *testing.T) {
	for _, path := range []string{"", ":memory:"} {
		if s, err := sqlite.Open(t.Context(), path); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded, want an error", path)
		}
	}
}

func BenchmarkJournal(b *testing.B) {
	s := openTemp(b)
	defer s.Close()
	storetest.BenchmarkJournal(b, s)
}

func BenchmarkJournalParallel(b *testing.B) {
	s := openTemp(b)
	defer s.Close()
	storetest.BenchmarkJournalParallel(b, s, 16)
}

func BenchmarkJournalGrouped(b *testing.B) {
	s := openTemp(b)
	defer s.Close()
	storetest.BenchmarkJournalGrouped(b, s, 32)
}

func BenchmarkJournalFinished(b *testing.B) {
	s := openTemp(b)
	defer s.Close()
	storetest.BenchmarkJournalFinished(b, s, 16)
}

// The database file and its WAL and shared-memory files are private to
// their owner (0600) whatever the umask, and a database left readable by
// others is restricted when opened.
func TestFileModes(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := t.TempDir()
	path := filepath.Join(dir, "kgw.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateExecution(t.Context(), &store.Execution{ID: "x", Workflow: "w", Version: 1, Status: store.ExecutionRunning}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("stat %s while open: %v", p, err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("mode of %s = %o, want 600", filepath.Base(p), got)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err = sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode of a reopened 0644 database = %v, %v; want 600", fi.Mode().Perm(), err)
	}
}

// Writes whose context ends at any moment fail or succeed, and the store's
// one write connection outlives them all.
func TestWriteConnectionSurvivesCancelledWrites(t *testing.T) {
	s := openTemp(t)
	w := &store.Workflow{Name: "cancelled", Nodes: []store.Node{{ID: "a", Code: "result = {}"}}}
	for i := range 300 {
		ctx, cancel := context.WithCancel(t.Context())
		if i%3 == 0 {
			cancel()
		} else {
			go cancel()
		}
		_, _ = s.CreateWorkflowVersion(ctx, w)
		_ = s.WriteJournal(ctx, &store.JournalBatch{Creates: []*store.Execution{{
			ID: fmt.Sprintf("x%03d", i), Workflow: "cancelled", Version: 1, Status: store.ExecutionRunning,
			Nodes: []*store.NodeState{{NodeID: "a", Status: store.NodePending}},
		}}})
		cancel()
	}
	if _, err := s.CreateWorkflowVersion(t.Context(), w); err != nil {
		t.Fatalf("CreateWorkflowVersion after cancelled writes: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}
