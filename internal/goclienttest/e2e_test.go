package goclienttest_test

import (
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	kgw "github.com/kailash-gateway/kgw/clients/go"
	"github.com/kailash-gateway/kgw/internal/testenv"
)

func TestEndToEnd(t *testing.T) {
	pg := testenv.Postgres(t)
	u, err := url.Parse(pg.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	dbName := strings.TrimPrefix(u.Path, "/")
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatalf("port of the test DSN: %v", err)
	}
	addr := testenv.Gateway(t).Addr
	ctx := t.Context()

	// The README quick start: secret, builder, register, execute.
	t.Run("quick start", func(t *testing.T) { testQuickStartTwice(t, addr, port, dbName) })

	c, err := kgw.Dial(ctx, addr, kgw.WithBlock())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	t.Run("secret metadata only", func(t *testing.T) { testSecretMetadataOnly(t, c, u.User.Username()) })

	wf, err := kgw.NewWorkflow("e2e_hello").
		AddCode("query", "db = get_resource(\"db\")\nmsg = db.fetchval(\"SELECT 'Hello from kgw'\")\nresult = {\"message\": msg}\n",
			kgw.RequiredResources("db")).
		Build()
	if err != nil {
		t.Fatal(err)
	}
	stored, err := c.Register(ctx, wf)
	if err != nil {
		t.Fatalf("Register() error = %v", err)
	}
	if stored.GetVersion() != 1 {
		t.Errorf("Register() version = %d, want 1", stored.GetVersion())
	}
	db := kgw.Resource("db", kgw.DatabaseSpec{Host: "127.0.0.1", Port: port, Database: dbName, CredentialsRef: "e2e_creds"})

	var firstID string
	t.Run("execute", func(t *testing.T) { firstID = testExecute(t, c, db) })

	t.Run("stream", func(t *testing.T) { testStream(t, c, db) })

	t.Run("watch", func(t *testing.T) { testWatch(t, c, firstID) })

	t.Run("unknown workflow", func(t *testing.T) { testUnknownWorkflow(t, c) })

	t.Run("invalid workflow", func(t *testing.T) {
		bad := &kgw.Workflow{Name: "bad", Nodes: []*kgw.Node{{Id: "a", Code: "x = (("}}}
		_, err := c.Register(ctx, bad)
		var e *kgw.Error
		if !errors.Is(err, kgw.ErrInvalidWorkflow) || !errors.As(err, &e) || len(e.Violations) == 0 {
			t.Errorf("Register(bad code) error = %v, want INVALID_WORKFLOW with violations", err)
		}
	})

	t.Run("list workflows", func(t *testing.T) {
		var names []string
		for s, err := range c.ListWorkflows(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, s.GetName())
		}
		if !slices.Contains(names, "e2e_hello") {
			t.Errorf("ListWorkflows() = %v, want e2e_hello among them", names)
		}
	})
}

// testQuickStartTwice runs the README quick start twice against the gateway
// at addr (PostgreSQL database dbName on port): the second run gives the
// same answer, stores no new secret version and so closes no pool.
func testQuickStartTwice(t *testing.T, addr string, port int, dbName string) {
	// Twice: the second run gives the same answer, stores no new secret
	// version and so closes no pool.
	for run := 1; run <= 2; run++ {
		msg, err := quickStart(t.Context(), addr, port, dbName)
		if err != nil {
			t.Fatalf("quick start run %d: %v", run, err)
		}
		if msg != "Hello from kgw" {
			t.Fatalf(`quick start run %d result["query"]["message"] = %#v, want "Hello from kgw"`, run, msg)
		}
	}
	c, err := kgw.Dial(t.Context(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.GetSecret(t.Context(), "app-db")
	if err != nil || s.GetVersion() != 1 {
		t.Errorf("secret app-db after two quick starts = %v, %v; want version 1", s, err)
	}
	var pools []*kgw.Pool
	for p, err := range c.ListPools(t.Context()) {
		if err != nil {
			t.Fatal(err)
		}
		if p.GetSecretName() == "app-db" {
			pools = append(pools, p)
		}
	}
	if len(pools) != 1 || pools[0].GetDraining() || pools[0].GetSecretVersion() != 1 {
		t.Errorf("pools of app-db after two quick starts = %v, want one open pool on version 1", pools)
	}
}

// testSecretMetadataOnly stores secret e2e_creds (for user) and checks the
// response holds metadata only; an unknown secret is not found.
func testSecretMetadataOnly(t *testing.T, c *kgw.Client, user string) {
	s, err := c.StoreSecret(t.Context(), "e2e_creds", map[string]any{"user": user, "password": "not-used-with-trust-auth"},
		kgw.SecretDescription("e2e"), kgw.AllowedHosts("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	if s.GetName() != "e2e_creds" || s.GetVersion() < 1 || !slices.Equal(s.GetKeys(), []string{"password", "user"}) {
		t.Errorf("StoreSecret() = %v, want name e2e_creds, keys [password user]", s)
	}
	if strings.Contains(s.String(), "not-used-with-trust-auth") {
		t.Errorf("StoreSecret() response contains the secret value: %v", s)
	}
	if _, err := c.GetSecret(t.Context(), "no_such_secret"); !kgw.IsNotFound(err) || !errors.Is(err, kgw.ErrSecretNotFound) {
		t.Errorf("GetSecret(unknown) error = %v, want not found", err)
	}
}

// testStream streams workflow e2e_hello with resource db: events in
// order, ending with the completed execution.
func testStream(t *testing.T, c *kgw.Client, db kgw.ExecOption) {
	var events []*kgw.Event
	for ev, err := range c.Stream(t.Context(), "e2e_hello", db) {
		if err != nil {
			t.Fatalf("Stream() error = %v", err)
		}
		events = append(events, ev)
	}
	if len(events) == 0 {
		t.Fatal("Stream() yielded no events")
	}
	for i, ev := range events {
		if ev.Seq != int64(i+1) {
			t.Errorf("event %d has seq %d, want %d", i, ev.Seq, i+1)
		}
	}
	last := events[len(events)-1]
	if last.Kind != kgw.EventExecutionCompleted || last.Execution == nil ||
		last.Execution.Result["query"]["message"] != "Hello from kgw" {
		t.Errorf("last event = %+v, want execution_completed with the message", last)
	}
	if !slices.ContainsFunc(events, func(e *kgw.Event) bool { return e.Kind == kgw.EventNodeCompleted && e.NodeID == "query" }) {
		t.Errorf("no node_completed event for query in %d events", len(events))
	}
}

// testWatch watches the finished execution firstID to its end, and stops
// a second watch early.
func testWatch(t *testing.T, c *kgw.Client, firstID string) {
	if firstID == "" {
		t.Skip("execute failed")
	}
	var kinds []kgw.EventKind
	for ev, err := range c.Watch(t.Context(), firstID, 0) {
		if err != nil {
			t.Fatalf("Watch() error = %v", err)
		}
		kinds = append(kinds, ev.Kind)
	}
	if len(kinds) == 0 || kinds[len(kinds)-1] != kgw.EventExecutionCompleted {
		t.Errorf("Watch() kinds = %v, want them to end with execution_completed", kinds)
	}
	// Stopping the loop early ends the call (goleak in TestMain checks
	// that nothing is left running).
	for range c.Watch(t.Context(), firstID, 0) {
		break
	}
}

// testUnknownWorkflow: executing, getting and streaming an unknown
// workflow fail with ErrWorkflowNotFound.
func testUnknownWorkflow(t *testing.T, c *kgw.Client) {
	_, err := c.Execute(t.Context(), "no_such_workflow")
	if !kgw.IsNotFound(err) || !errors.Is(err, kgw.ErrWorkflowNotFound) {
		t.Errorf("Execute(unknown) error = %v, want not found", err)
	}
	var e *kgw.Error
	if !errors.As(err, &e) || e.Reason != kgw.ReasonWorkflowNotFound {
		t.Errorf("Execute(unknown) error = %#v, want an *Error with reason WORKFLOW_NOT_FOUND", err)
	}
	if _, err := c.GetWorkflow(t.Context(), "no_such_workflow", 0); !errors.Is(err, kgw.ErrWorkflowNotFound) {
		t.Errorf("GetWorkflow(unknown) error = %v, want ErrWorkflowNotFound", err)
	}
	for _, err := range c.Stream(t.Context(), "no_such_workflow") {
		if !errors.Is(err, kgw.ErrWorkflowNotFound) {
			t.Errorf("Stream(unknown) error = %v, want ErrWorkflowNotFound", err)
		}
	}
}

// testExecute runs workflow e2e_hello with resource db to completion and
// reads the execution back; it returns the execution's id.
func testExecute(t *testing.T, c *kgw.Client, db kgw.ExecOption) string {
	ex, err := c.Execute(t.Context(), "e2e_hello", db)
	if err != nil {
		t.Fatalf("Execute() error = %v", err)
	}
	if ex.Status != kgw.StatusCompleted || ex.Result["query"]["message"] != "Hello from kgw" {
		t.Fatalf("Execute() = %s %v (error %v), want completed with the message", ex.Status, ex.Result, ex.Error)
	}
	got, err := c.GetExecution(t.Context(), ex.ID)
	if err != nil || got.Status != kgw.StatusCompleted || got.Workflow != "e2e_hello" {
		t.Errorf("GetExecution() = %+v, %v", got, err)
	}
	return ex.ID
}
