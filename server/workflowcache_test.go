package server

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kailash-gateway/kgw/store"
	"github.com/kailash-gateway/kgw/store/sqlite"
)

// countingStore is a real SQLite store that counts workflow reads.
type countingStore struct {
	*sqlite.Store
	reads atomic.Int32
}

func (s *countingStore) GetWorkflow(ctx context.Context, name string, version int32) (*store.Workflow, error) {
	s.reads.Add(1)
	return s.Store.GetWorkflow(ctx, name, version)
}

func TestWorkflowCache(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, t.TempDir()+"/kgw.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cs := &countingStore{Store: st}
	c := newWorkflowCache(cs)
	now := time.Now()
	c.now = func() time.Time { return now }

	register := func(code string) {
		t.Helper()
		if _, err := st.CreateWorkflowVersion(ctx, &store.Workflow{Name: "wf", Nodes: []store.Node{{ID: "n", Code: code}}}); err != nil {
			t.Fatal(err)
		}
	}
	latest := func() *store.Workflow {
		t.Helper()
		w, err := c.GetWorkflow(ctx, "wf", 0)
		if err != nil {
			t.Fatalf("GetWorkflow: %v", err)
		}
		return w
	}

	if _, err := c.GetWorkflow(ctx, "wf", 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetWorkflow of an unknown workflow = %v, want ErrNotFound", err)
	}
	register("result = {}")
	if w := latest(); w.Version != 1 {
		t.Fatalf("latest = v%d, want v1 (a miss is not cached)", w.Version)
	}
	latest()
	if n := cs.reads.Load(); n != 2 {
		t.Errorf("store reads = %d after a miss and two gets, want 2", n)
	}

	// Another replica registers v2: seen once the entry expires.
	register("result = {'v': 2}")
	if w := latest(); w.Version != 1 {
		t.Errorf("latest within the TTL = v%d, want the cached v1", w.Version)
	}
	now = now.Add(workflowCacheTTL)
	if w := latest(); w.Version != 2 {
		t.Errorf("latest after the TTL = v%d, want v2", w.Version)
	}

	// A change through this process is seen at once.
	register("result = {'v': 3}")
	c.forget("wf")
	if w := latest(); w.Version != 3 {
		t.Errorf("latest after forget = v%d, want v3", w.Version)
	}
	if err := st.DeleteWorkflow(ctx, "wf"); err != nil {
		t.Fatal(err)
	}
	c.forget("wf")
	if _, err := c.GetWorkflow(ctx, "wf", 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetWorkflow after delete and forget = %v, want ErrNotFound", err)
	}
}
