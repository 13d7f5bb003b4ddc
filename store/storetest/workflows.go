package storetest

import (
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/kailash-gateway/kgw/store"
)

func sampleWorkflow(name string, nodes int) *store.Workflow {
	w := &store.Workflow{
		Name:        name,
		Description: "workflow " + name,
		Timeout:     90 * time.Second,
		Labels:      map[string]string{"team": "core", "tier": "1"},
	}
	for i := range nodes {
		w.Nodes = append(w.Nodes, store.Node{
			ID:                fmt.Sprintf("n%d", i),
			Code:              fmt.Sprintf("result = {\"i\": %d}\n", i),
			RequiredResources: []string{"db", fmt.Sprintf("cache%d", i%2)},
			Timeout:           time.Duration(i+1) * time.Second,
			Retry: store.RetryPolicy{
				MaxAttempts: 3, InitialBackoff: time.Second, MaxBackoff: time.Minute, Multiplier: 1.5,
			},
			Description: "node",
		})
		if i > 0 {
			w.Connections = append(w.Connections, store.Connection{
				FromNode: fmt.Sprintf("n%d", i-1), FromOutput: "i", ToNode: fmt.Sprintf("n%d", i), ToInput: "prev",
			})
		}
	}
	if nodes > 2 {
		w.Connections = append(w.Connections, store.Connection{FromNode: "n0", ToNode: "n2"}) // pass all
	}
	return w
}

func testWorkflowVersions(t *testing.T, s store.Store) {
	ctx := t.Context()
	var stored []*store.Workflow
	for v := int32(1); v <= 3; v++ {
		w := sampleWorkflow("orders", int(v))
		w.DisableJournal = v == 2
		got, err := s.CreateWorkflowVersion(ctx, w)
		must(t, "CreateWorkflowVersion", err)
		if got.Version != v {
			t.Fatalf("CreateWorkflowVersion #%d: Version = %d, want %d", v, got.Version, v)
		}
		if got.CreateTime.IsZero() {
			t.Fatalf("CreateWorkflowVersion #%d: CreateTime not set", v)
		}
		want := *w
		want.Version, want.CreateTime = v, got.CreateTime
		if d := diff(&want, got); d != "" {
			t.Fatalf("CreateWorkflowVersion #%d returned (-want +got):\n%s", v, d)
		}
		stored = append(stored, got)
	}
	latest, err := s.GetWorkflow(ctx, "orders", 0)
	must(t, "GetWorkflow latest", err)
	if d := diff(stored[2], latest); d != "" {
		t.Errorf("GetWorkflow(orders, 0) (-want +got):\n%s", d)
	}
	for _, w := range stored {
		got, err := s.GetWorkflow(ctx, "orders", w.Version)
		must(t, "GetWorkflow", err)
		if d := diff(w, got); d != "" {
			t.Errorf("GetWorkflow(orders, %d) (-want +got):\n%s", w.Version, d)
		}
	}
	other, err := s.CreateWorkflowVersion(ctx, sampleWorkflow("billing", 1))
	must(t, "CreateWorkflowVersion billing", err)
	if other.Version != 1 {
		t.Errorf("first version of a new name = %d, want 1", other.Version)
	}
}

func testWorkflowNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.GetWorkflow(ctx, "missing", 0)
	wantErr(t, "GetWorkflow(missing, 0)", err, store.ErrNotFound)
	_, err = s.CreateWorkflowVersion(ctx, sampleWorkflow("present", 1))
	must(t, "CreateWorkflowVersion", err)
	_, err = s.GetWorkflow(ctx, "present", 2)
	wantErr(t, "GetWorkflow(present, 2)", err, store.ErrNotFound)
}

// listAllWorkflows pages through ListWorkflows with the given page size.
func listAllWorkflows(t *testing.T, s store.Store, limit int, between func(page int)) []*store.WorkflowSummary {
	t.Helper()
	var all []*store.WorkflowSummary
	after := ""
	for page := 0; ; page++ {
		got, next, err := s.ListWorkflows(t.Context(), store.Page{After: after, Limit: limit})
		must(t, "ListWorkflows", err)
		if len(got) > limit {
			t.Fatalf("ListWorkflows(limit %d) returned %d items", limit, len(got))
		}
		all = append(all, got...)
		if next == "" {
			return all
		}
		if len(got) == 0 {
			t.Fatalf("ListWorkflows returned an empty page with cursor %q", next)
		}
		if page > 100 {
			t.Fatalf("ListWorkflows does not end")
		}
		if between != nil {
			between(page)
		}
		after = next
	}
}

func testWorkflowList(t *testing.T, s store.Store) {
	ctx := t.Context()
	names := []string{"golf", "alpha", "echo", "charlie", "bravo", "foxtrot", "delta"}
	latest := map[string]*store.Workflow{}
	for i, n := range names {
		for v := 0; v <= i%2; v++ {
			w, err := s.CreateWorkflowVersion(ctx, sampleWorkflow(n, v+2))
			must(t, "CreateWorkflowVersion", err)
			latest[n] = w
		}
	}
	// A name created mid-listing before the cursor must not appear, and no
	// name may appear twice or be skipped.
	got := listAllWorkflows(t, s, 3, func(page int) {
		if page == 0 {
			_, err := s.CreateWorkflowVersion(ctx, sampleWorkflow("aaa-late", 1))
			must(t, "CreateWorkflowVersion", err)
		}
	})
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	var want []*store.WorkflowSummary
	for _, n := range sorted {
		w := latest[n]
		want = append(want, &store.WorkflowSummary{
			Name: n, LatestVersion: w.Version, Description: w.Description, NodeCount: len(w.Nodes),
			RequiredResources: []string{"db", "cache0", "cache1"}, Labels: w.Labels, CreateTime: w.CreateTime,
		})
	}
	if d := diff(want, got); d != "" {
		t.Errorf("ListWorkflows pages (-want +got):\n%s", d)
	}
	// One page holding everything has an empty cursor.
	all, next, err := s.ListWorkflows(ctx, store.Page{Limit: 100})
	must(t, "ListWorkflows", err)
	if next != "" || len(all) != len(names)+1 {
		t.Errorf("ListWorkflows(limit 100) = %d items, cursor %q; want %d, \"\"", len(all), next, len(names)+1)
	}
}

func testWorkflowDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	for range 2 {
		_, err := s.CreateWorkflowVersion(ctx, sampleWorkflow("doomed", 1))
		must(t, "CreateWorkflowVersion", err)
	}
	_, err := s.CreateWorkflowVersion(ctx, sampleWorkflow("kept", 1))
	must(t, "CreateWorkflowVersion", err)

	must(t, "DeleteWorkflow", s.DeleteWorkflow(ctx, "doomed"))
	for _, v := range []int32{0, 1, 2} {
		_, err := s.GetWorkflow(ctx, "doomed", v)
		wantErr(t, fmt.Sprintf("GetWorkflow(doomed, %d) after delete", v), err, store.ErrNotFound)
	}
	wantErr(t, "second DeleteWorkflow", s.DeleteWorkflow(ctx, "doomed"), store.ErrNotFound)
	wantErr(t, "DeleteWorkflow(unknown)", s.DeleteWorkflow(ctx, "unknown"), store.ErrNotFound)
	list, _, err := s.ListWorkflows(ctx, store.Page{Limit: 10})
	must(t, "ListWorkflows", err)
	if len(list) != 1 || list[0].Name != "kept" {
		t.Errorf("ListWorkflows after delete = %v, want only kept", list)
	}
	if _, err := s.GetWorkflow(ctx, "kept", 1); err != nil {
		t.Errorf("GetWorkflow(kept) after deleting another: %v", err)
	}
	// Versions are never reused, so an execution journalled against a
	// deleted version can never resume with different code.
	w, err := s.CreateWorkflowVersion(ctx, sampleWorkflow("doomed", 1))
	must(t, "CreateWorkflowVersion after delete", err)
	if w.Version != 3 {
		t.Errorf("version after delete = %d, want 3 (versions are not reused)", w.Version)
	}
}

func testWorkflowConcurrentVersions(t *testing.T, s store.Store) {
	const n = 16
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		versions []int
		errs     []error
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := s.CreateWorkflowVersion(t.Context(), sampleWorkflow("contended", 2))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			versions = append(versions, int(w.Version))
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("concurrent CreateWorkflowVersion: %v", errs)
	}
	sort.Ints(versions)
	for i, v := range versions {
		if v != i+1 {
			t.Fatalf("concurrent versions = %v, want 1..%d each once", versions, n)
		}
	}
	latest, err := s.GetWorkflow(t.Context(), "contended", 0)
	must(t, "GetWorkflow", err)
	if latest.Version != n {
		t.Errorf("latest version = %d, want %d", latest.Version, n)
	}
}
