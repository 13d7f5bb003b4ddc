package storetest

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/kailash-gateway/kgw/store"
)

func sampleExecution(id string, created time.Time) *store.Execution {
	return &store.Execution{
		ID:       id,
		Workflow: "orders",
		Version:  2,
		Status:   store.ExecutionPending,
		Request: store.ExecutionRequest{
			Parameters: jsonValue(),
			Resources: map[string]store.ResourceSpec{
				"db":    {Type: "database", Config: map[string]any{"host": "127.0.0.1", "port": int64(5432), "server_settings": map[string]any{"application_name": "kgw"}}, CredentialsRef: "db_creds"},
				"named": {Ref: "orders_db"},
				"api":   {Type: "http_client", Config: map[string]any{"base_url": "https://api.example.com"}, CredentialsRef: "api", CredentialsKey: "stripe"},
			},
			Context:     map[string]any{"request_id": "r-1", "tags": []any{"a", "b"}},
			Timeout:     45 * time.Second,
			Fingerprint: "sha256:0123abcd",
			TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			TraceState:  "vendor=a1,other=b2",
			TraceLink:   true,
		},
		Nodes: []*store.NodeState{
			{NodeID: "fetch", Status: store.NodePending},
			{NodeID: "transform", Status: store.NodePending},
			{NodeID: "store", Status: store.NodePending},
		},
		CreateTime: created,
		Caller:     "svc-a",
		Owner:      "gw-1",
		Epoch:      1, // what the store reads back for a new execution
	}
}

func testExecutionCreateGet(t *testing.T, s store.Store) {
	ctx := t.Context()
	e := sampleExecution("exec-1", at(0))
	e.IdempotencyKey = "key-1"
	e.Status = store.ExecutionRunning
	e.StartTime = at(time.Second)
	e.Nodes[0] = &store.NodeState{NodeID: "fetch", Status: store.NodeCompleted, Attempts: 2,
		StartTime: at(time.Second), EndTime: at(2 * time.Second), Result: jsonValue()}
	e.Nodes[1].Error = &store.ExecError{NodeID: "transform", Code: "X", Message: "m", Traceback: "tb"}
	must(t, "CreateExecution", s.CreateExecution(ctx, e))

	got, err := s.GetExecution(ctx, "exec-1")
	must(t, "GetExecution", err)
	if d := diff(e, got); d != "" {
		t.Errorf("GetExecution (-want +got):\n%s", d)
	}
	_, err = s.GetExecution(ctx, "exec-unknown")
	wantErr(t, "GetExecution(unknown)", err, store.ErrNotFound)

	// A zero CreateTime is filled in.
	e2 := sampleExecution("exec-2", time.Time{})
	e2.Request = store.ExecutionRequest{}
	e2.Nodes = nil
	must(t, "CreateExecution", s.CreateExecution(ctx, e2))
	got2, err := s.GetExecution(ctx, "exec-2")
	must(t, "GetExecution", err)
	if got2.CreateTime.IsZero() {
		t.Errorf("GetExecution: CreateTime is zero, want it set by CreateExecution")
	}
	if len(got2.Nodes) != 0 || len(got2.Request.Parameters) != 0 {
		t.Errorf("GetExecution of an empty execution: nodes %v, parameters %v; want none", got2.Nodes, got2.Request.Parameters)
	}
}

func testExecutionDuplicateID(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, "CreateExecution", s.CreateExecution(ctx, sampleExecution("dup", at(0))))
	other := sampleExecution("dup", at(time.Second))
	other.Workflow = "other"
	wantErr(t, "CreateExecution(duplicate id)", s.CreateExecution(ctx, other), store.ErrAlreadyExists)
	got, err := s.GetExecution(ctx, "dup")
	must(t, "GetExecution", err)
	if got.Workflow != "orders" {
		t.Errorf("duplicate create changed the execution: workflow = %q, want orders", got.Workflow)
	}
}

func testExecutionIdempotency(t *testing.T, s store.Store) {
	ctx := t.Context()
	a1 := sampleExecution("a1", at(0))
	a1.Caller, a1.IdempotencyKey = "alice", "k"
	must(t, "CreateExecution(alice, k)", s.CreateExecution(ctx, a1))

	a2 := sampleExecution("a2", at(time.Second))
	a2.Caller, a2.IdempotencyKey = "alice", "k"
	wantErr(t, "CreateExecution(alice, k) again", s.CreateExecution(ctx, a2), store.ErrAlreadyExists)
	_, err := s.GetExecution(ctx, "a2")
	wantErr(t, "GetExecution of rejected duplicate", err, store.ErrNotFound)

	b1 := sampleExecution("b1", at(time.Second))
	b1.Caller, b1.IdempotencyKey = "bob", "k"
	must(t, "CreateExecution(bob, k)", s.CreateExecution(ctx, b1))

	// Executions without a key never conflict.
	for _, id := range []string{"n1", "n2"} {
		e := sampleExecution(id, at(time.Second))
		e.Caller = "alice"
		must(t, "CreateExecution without key", s.CreateExecution(ctx, e))
	}

	got, err := s.FindExecutionByIdempotencyKey(ctx, "alice", "k")
	must(t, "FindExecutionByIdempotencyKey(alice, k)", err)
	if got.ID != "a1" || len(got.Nodes) != len(a1.Nodes) {
		t.Errorf("FindExecutionByIdempotencyKey(alice, k) = %s with %d nodes, want a1 with %d", got.ID, len(got.Nodes), len(a1.Nodes))
	}
	got, err = s.FindExecutionByIdempotencyKey(ctx, "bob", "k")
	must(t, "FindExecutionByIdempotencyKey(bob, k)", err)
	if got.ID != "b1" {
		t.Errorf("FindExecutionByIdempotencyKey(bob, k) = %s, want b1", got.ID)
	}
	_, err = s.FindExecutionByIdempotencyKey(ctx, "carol", "k")
	wantErr(t, "FindExecutionByIdempotencyKey(carol, k)", err, store.ErrNotFound)
	_, err = s.FindExecutionByIdempotencyKey(ctx, "alice", "other")
	wantErr(t, "FindExecutionByIdempotencyKey(alice, other)", err, store.ErrNotFound)
}

// listAllExecutions pages through ListExecutions.
func listAllExecutions(t *testing.T, s store.Store, q store.ExecutionQuery, between func()) []string {
	t.Helper()
	var ids []string
	for page := 0; ; page++ {
		got, next, err := s.ListExecutions(t.Context(), q)
		must(t, "ListExecutions", err)
		if len(got) > q.Page.Limit {
			t.Fatalf("ListExecutions(limit %d) returned %d", q.Page.Limit, len(got))
		}
		for _, e := range got {
			ids = append(ids, e.ID)
		}
		if next == "" {
			return ids
		}
		if page > 100 {
			t.Fatalf("ListExecutions does not end")
		}
		if between != nil && page == 0 {
			between()
		}
		q.Page.After = next
	}
}

func testExecutionList(t *testing.T, s store.Store) {
	ctx := t.Context()
	type spec struct {
		id       string
		workflow string
		status   store.ExecutionStatus
		created  time.Duration
	}
	specs := []spec{
		{"e0", "orders", store.ExecutionCompleted, 0},
		{"e1", "billing", store.ExecutionRunning, 1 * time.Minute},
		{"e2", "orders", store.ExecutionFailed, 2 * time.Minute},
		{"e3", "orders", store.ExecutionCompleted, 3 * time.Minute},
		{"e4a", "billing", store.ExecutionCompleted, 4 * time.Minute}, // same time: by id, descending
		{"e4b", "orders", store.ExecutionCompleted, 4 * time.Minute},
		{"e5", "orders", store.ExecutionRunning, 5 * time.Minute},
		{"e6", "billing", store.ExecutionFailed, 6 * time.Minute},
	}
	for _, sp := range specs {
		e := sampleExecution(sp.id, at(sp.created))
		e.Workflow, e.Status = sp.workflow, sp.status
		must(t, "CreateExecution", s.CreateExecution(ctx, e))
	}
	// Expected order: newest first, then id descending.
	ordered := append([]spec(nil), specs...)
	sort.Slice(ordered, func(i, j int) bool {
		if ordered[i].created != ordered[j].created {
			return ordered[i].created > ordered[j].created
		}
		return ordered[i].id > ordered[j].id
	})
	want := func(keep func(spec) bool) []string {
		var ids []string
		for _, sp := range ordered {
			if keep(sp) {
				ids = append(ids, sp.id)
			}
		}
		return ids
	}
	all := want(func(spec) bool { return true })
	tests := []struct {
		name string
		q    store.ExecutionQuery
		want []string
	}{
		{"all", store.ExecutionQuery{}, all},
		{"workflow", store.ExecutionQuery{Workflow: "orders"}, want(func(s spec) bool { return s.workflow == "orders" })},
		{"status", store.ExecutionQuery{Status: store.ExecutionCompleted}, want(func(s spec) bool { return s.status == store.ExecutionCompleted })},
		{"both", store.ExecutionQuery{Workflow: "billing", Status: store.ExecutionFailed}, want(func(s spec) bool {
			return s.workflow == "billing" && s.status == store.ExecutionFailed
		})},
		{"none", store.ExecutionQuery{Workflow: "nothing"}, nil},
	}
	for _, tt := range tests {
		for _, limit := range []int{1, 3, 100} {
			t.Run(fmt.Sprintf("%s/limit%d", tt.name, limit), func(t *testing.T) {
				q := tt.q
				q.Page.Limit = limit
				got := listAllExecutions(t, s, q, nil)
				if d := diff(tt.want, got); d != "" {
					t.Errorf("ListExecutions(%+v) ids (-want +got):\n%s", q, d)
				}
			})
		}
	}
	// A newer execution created while paging does not shift later pages.
	got := listAllExecutions(t, s, store.ExecutionQuery{Page: store.Page{Limit: 3}}, func() {
		must(t, "CreateExecution", s.CreateExecution(ctx, sampleExecution("late", at(time.Hour))))
	})
	if d := diff(all, got); d != "" {
		t.Errorf("ListExecutions while inserting (-want +got):\n%s", d)
	}
	// Listed executions carry their nodes.
	page, _, err := s.ListExecutions(ctx, store.ExecutionQuery{Page: store.Page{Limit: 1}})
	must(t, "ListExecutions", err)
	if len(page) != 1 || page[0].ID != "late" || len(page[0].Nodes) != 3 {
		t.Errorf("ListExecutions(limit 1) = %v, want [late] with 3 nodes", page)
	}
}

// testExecutionListOmitResults checks that OmitResults leaves node results
// out of a list and nothing else.
func testExecutionListOmitResults(t *testing.T, s store.Store) {
	ctx := t.Context()
	e := sampleExecution("with-results", at(0))
	e.Status = store.ExecutionCompleted
	e.Nodes[0] = &store.NodeState{NodeID: "fetch", Status: store.NodeCompleted, Attempts: 2,
		StartTime: at(time.Second), EndTime: at(2 * time.Second), Result: jsonValue()}
	e.Nodes[1] = &store.NodeState{NodeID: "transform", Status: store.NodeFailed, Attempts: 1,
		Error: &store.ExecError{NodeID: "transform", Code: "X", Message: "m"}}
	must(t, "CreateExecution", s.CreateExecution(ctx, e))

	full, _, err := s.ListExecutions(ctx, store.ExecutionQuery{})
	must(t, "ListExecutions", err)
	if len(full) != 1 || len(full[0].Nodes) != 3 || full[0].Nodes[0].Result == nil {
		t.Fatalf("ListExecutions = %d executions, want 1 with the result of fetch", len(full))
	}
	basic, _, err := s.ListExecutions(ctx, store.ExecutionQuery{OmitResults: true})
	must(t, "ListExecutions(OmitResults)", err)
	if len(basic) != 1 {
		t.Fatalf("ListExecutions(OmitResults) = %d executions, want 1", len(basic))
	}
	want := *full[0]
	want.Nodes = make([]*store.NodeState, len(full[0].Nodes))
	for i, n := range full[0].Nodes {
		c := *n
		c.Result = nil
		want.Nodes[i] = &c
	}
	if d := diff(&want, basic[0]); d != "" {
		t.Errorf("ListExecutions(OmitResults) (-want +got):\n%s", d)
	}
	for _, n := range basic[0].Nodes {
		if n.Result != nil {
			t.Errorf("node %s has a result %v", n.NodeID, n.Result)
		}
	}
}
