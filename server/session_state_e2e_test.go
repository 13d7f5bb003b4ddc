package server_test

import (
	"testing"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
	"github.com/kailash-gateway/kgw/internal/testenv"
)

// TestSessionStateNotSharedBetweenExecutions is the reported leak, through
// gRPC: with a max_size 1 pool, an execution of one workflow sets
// search_path and writes a temporary table, on an acquired connection and
// through the handle; an execution of another workflow (another caller, as
// far as the pool knows) must find a fresh session — the default
// search_path, no temporary table — yet clean statements keep using the
// same server connection.
func TestSessionStateNotSharedBetweenExecutions(t *testing.T) {
	db := newPGDB(t, testenv.Postgres(t))
	db.exec(t, "CREATE SCHEMA tenant_7")
	db.exec(t, "CREATE TABLE tenant_7.orders (id int)")
	s := startStack(t, stackOptions{})
	s.register(t, &kgwv1.Workflow{Name: "tenant", Nodes: []*kgwv1.Node{{Id: "n", RequiredResources: []string{"db"}, Code: `
db = get_resource("db")
if parameters.get("via_handle"):
    db.execute("SET search_path = tenant_7; CREATE TEMP TABLE secret_scratch (v text); INSERT INTO secret_scratch VALUES ('tenant 7 secret')")
    result = {"pid": db.fetchval("SELECT pg_backend_pid()")}
else:
    c = get_resource("db").acquire()
    c.execute("SET search_path = tenant_7")
    c.execute("CREATE TEMP TABLE secret_scratch (v text)")
    c.execute("INSERT INTO secret_scratch VALUES ($1)", "tenant 7 secret")
    result = {
        "pid": c.fetchval("SELECT pg_backend_pid()"),
        "search_path": c.fetchval("SHOW search_path"),
        "secret": c.fetchval("SELECT v FROM pg_temp.secret_scratch"),
    }
`}}})
	s.register(t, &kgwv1.Workflow{Name: "other", Nodes: []*kgwv1.Node{{Id: "n", RequiredResources: []string{"db"}, Code: `
db = get_resource("db")
read = catch(lambda: db.fetchval("SELECT v FROM pg_temp.secret_scratch"))
result = {
    "pid": db.fetchval("SELECT pg_backend_pid()"),
    "search_path": db.fetchval("SHOW search_path"),
    "scratch": db.fetchval("SELECT to_regclass('pg_temp.secret_scratch')::text"),
    "read": read.value if read.ok else None,
}
`}}})
	res := map[string]*kgwv1.ResourceSpec{"db": db.spec(t, map[string]any{"max_size": 1})}
	other := func() map[string]any {
		t.Helper()
		r := mustComplete(t, s.run(t, &kgwv1.ExecuteWorkflowRequest{Workflow: "other", Resources: res}))
		if r["search_path"] != `"$user", public` || r["scratch"] != nil || r["read"] != nil {
			t.Fatalf("other execution sees %v; want the default search_path and no temp table", r)
		}
		return r
	}

	first := other()
	if again := other(); again["pid"] != first["pid"] {
		t.Fatalf("backend %v, then %v: clean statements replaced the connection", first["pid"], again["pid"])
	}
	a := mustComplete(t, s.run(t, &kgwv1.ExecuteWorkflowRequest{Workflow: "tenant", Resources: res}))
	if a["search_path"] != "tenant_7" || a["secret"] != "tenant 7 secret" || a["pid"] != first["pid"] {
		t.Fatalf("tenant execution = %v; want search_path tenant_7 and its secret, on backend %v", a, first["pid"])
	}
	other()
	mustComplete(t, s.run(t, &kgwv1.ExecuteWorkflowRequest{Workflow: "tenant", Resources: res,
		Parameters: params(t, map[string]any{"via_handle": true})}))
	other()
}
