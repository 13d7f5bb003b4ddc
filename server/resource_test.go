package server_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
	"github.com/kailash-gateway/kgw/internal/testenv"
	"github.com/kailash-gateway/kgw/secrets"
	"github.com/kailash-gateway/kgw/server"
)

// pgApp is a database and a login role with a password on the shared test
// PostgreSQL server.
type pgApp struct {
	port                int
	database            string
	user, password      string
	host                string
	closedPort          int
	config, badDBConfig *structpb.Struct
}

func newPGApp(t *testing.T) *pgApp {
	t.Helper()
	pg := testenv.Postgres(t)
	dsn := pg.NewDatabase(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	app := &pgApp{
		port: pg.Port, host: "127.0.0.1", database: strings.TrimPrefix(u.Path, "/"),
		user:     "kgw_app_" + strings.ToLower(rand.Text()[:10]),
		password: "pw-" + rand.Text(),
	}
	conn, err := pgx.Connect(t.Context(), pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// Identifiers and the password are generated here (letters and digits
	// only), so formatting them into DDL is safe.
	if _, err := conn.Exec(t.Context(), fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", app.user, app.password)); err != nil {
		t.Fatalf("create role: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), pg.DSN)
		if err != nil {
			t.Errorf("drop role: %v", err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP ROLE IF EXISTS "+app.user); err != nil {
			t.Errorf("drop role: %v", err)
		}
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app.closedPort = lis.Addr().(*net.TCPAddr).Port
	lis.Close()
	app.config = params(t, map[string]any{"host": app.host, "port": app.port, "database": app.database})
	app.badDBConfig = params(t, map[string]any{"host": app.host, "port": app.port, "database": "no_such_db"})
	return app
}

// storeCreds stores the role's user and password as the secret name.
func (a *pgApp) storeCreds(t *testing.T, s *stack, name string) {
	t.Helper()
	resp, err := s.sec.StoreSecret(t.Context(), &kgwv1.StoreSecretRequest{
		Name:         name,
		Value:        params(t, map[string]any{"user": a.user, "password": a.password}),
		AllowedHosts: []string{"127.0.0.1"},
	})
	if err != nil {
		t.Fatalf("StoreSecret: %v", err)
	}
	noValue(t, "StoreSecret response", resp, a.password)
}

func (a *pgApp) spec(secret string) *kgwv1.ResourceSpec {
	return &kgwv1.ResourceSpec{Type: "database", Config: a.config, CredentialsRef: secret}
}

func helloDB() *kgwv1.Workflow {
	return &kgwv1.Workflow{Name: "hello_db", Nodes: []*kgwv1.Node{{
		Id:                "query",
		RequiredResources: []string{"db"},
		Code: `db = get_resource("db")
result = {
    "message": db.fetchval("SELECT 'Hello from kgw'"),
    "as_app": db.fetchval("SELECT session_user LIKE 'kgw_app_%'"),
}`,
	}}}
}

func TestDatabaseResourceEndToEnd(t *testing.T) {
	app := newPGApp(t)
	s := startStack(t, stackOptions{})
	ctx := t.Context()
	app.storeCreds(t, s, "pg_app")
	s.register(t, helloDB())

	run := func(spec *kgwv1.ResourceSpec) *kgwv1.Execution {
		t.Helper()
		resp, err := s.ex.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{
			Workflow: "hello_db", Resources: map[string]*kgwv1.ResourceSpec{"db": spec},
		})
		if err != nil {
			t.Fatalf("ExecuteWorkflow: %v", err)
		}
		noValue(t, "ExecuteWorkflow response", resp, app.password)
		x := resp.GetExecution()
		if x.GetStatus() != kgwv1.ExecutionStatus_EXECUTION_STATUS_COMPLETED {
			t.Fatalf("status %v, error %v, want COMPLETED", x.GetStatus(), x.GetError())
		}
		r := x.GetResult()["query"].GetFields()
		if r["message"].GetStringValue() != "Hello from kgw" || !r["as_app"].GetBoolValue() {
			t.Fatalf("result = %v, want message 'Hello from kgw' queried as the app role", r)
		}
		return x
	}
	run(app.spec("pg_app"))

	// A named resource: stored once, referenced by name.
	put, err := s.res.PutResource(ctx, &kgwv1.PutResourceRequest{Name: "orders_db", Spec: app.spec("pg_app")})
	if err != nil {
		t.Fatalf("PutResource: %v", err)
	}
	r := put.GetResource()
	if r.GetName() != "orders_db" || r.GetSpec().GetType() != "database" || r.GetSpec().GetCredentialsRef() != "pg_app" ||
		r.GetSpec().GetConfig().GetFields()["database"].GetStringValue() != app.database || r.GetCreateTime() == nil || r.GetUpdateTime() == nil {
		t.Fatalf("PutResource = %v, want the stored spec with times", r)
	}
	run(&kgwv1.ResourceSpec{Ref: "orders_db"})

	got, err := s.res.GetResource(ctx, &kgwv1.GetResourceRequest{Name: "orders_db"})
	if err != nil || got.GetResource().GetSpec().GetCredentialsRef() != "pg_app" {
		t.Fatalf("GetResource = %v, %v", got, err)
	}
	list, err := s.res.ListResources(ctx, &kgwv1.ListResourcesRequest{})
	if err != nil || len(list.GetResources()) != 1 || list.GetResources()[0].GetName() != "orders_db" {
		t.Fatalf("ListResources = %v, %v, want orders_db", list, err)
	}

	checkSharedPool(t, s, app)
	checkResourceHealth(t, s, app)

	if _, err := s.res.DeleteResource(ctx, &kgwv1.DeleteResourceRequest{Name: "orders_db"}); err != nil {
		t.Fatalf("DeleteResource: %v", err)
	}
	_, err = s.res.GetResource(ctx, &kgwv1.GetResourceRequest{Name: "orders_db"})
	if code, info, _ := details(t, err); code != codes.NotFound || info.GetReason() != server.ReasonResourceNotFound {
		t.Fatalf("GetResource after delete = %v %v, want NOT_FOUND RESOURCE_NOT_FOUND", code, info)
	}
}

// checkSharedPool: the executions of TestDatabaseResourceEndToEnd (an
// inline spec and the named resource orders_db, the same pool) used one
// pool, listed without credentials.
func checkSharedPool(t *testing.T, s *stack, app *pgApp) {
	t.Helper()
	ctx := t.Context()
	pools, err := s.res.ListPools(ctx, &kgwv1.ListPoolsRequest{})
	if err != nil {
		t.Fatalf("ListPools: %v", err)
	}
	noValue(t, "ListPools response", pools, app.password, app.user)
	if len(pools.GetPools()) != 1 {
		t.Fatalf("ListPools = %v, want one pool (inline spec and named resource are the same pool)", pools)
	}
	p := pools.GetPools()[0]
	wantTarget := fmt.Sprintf("127.0.0.1:%d/%s", app.port, app.database)
	if p.GetKey() == "" || p.GetType() != "database" || p.GetTarget() != wantTarget || p.GetSecretName() != "pg_app" ||
		p.GetSecretVersion() != 1 || p.GetMaxSize() != 10 || p.GetAcquireCount() < 2 || p.GetSize() < 1 {
		t.Fatalf("pool = %v, want database %s with secret pg_app v1, max 10, acquired at least twice", p, wantTarget)
	}
	paged, err := s.res.ListPools(ctx, &kgwv1.ListPoolsRequest{PageSize: 1})
	if err != nil || len(paged.GetPools()) != 1 || paged.GetNextPageToken() != "" {
		t.Fatalf("ListPools(page_size 1) = %v, %v, want the pool and no next page", paged, err)
	}
}

// checkResourceHealth: CheckResource reports the named resource orders_db
// and the same inline spec healthy, a missing database and a closed port
// unhealthy, an unknown name NOT_FOUND; no response holds the password.
func checkResourceHealth(t *testing.T, s *stack, app *pgApp) {
	t.Helper()
	ctx := t.Context()
	check := func(req *kgwv1.CheckResourceRequest) *kgwv1.CheckResourceResponse {
		t.Helper()
		resp, err := s.res.CheckResource(ctx, req)
		if err != nil {
			t.Fatalf("CheckResource(%v): %v", req, err)
		}
		// The user name is an identity field, not a credential (DESIGN §7):
		// a connection error may name it; never the password.
		noValue(t, "CheckResource response", resp, app.password)
		if resp.GetLatency() == nil || resp.GetMessage() == "" {
			t.Fatalf("CheckResource = %v, want a latency and a message", resp)
		}
		return resp
	}
	if resp := check(&kgwv1.CheckResourceRequest{Target: &kgwv1.CheckResourceRequest_Name{Name: "orders_db"}}); !resp.GetHealthy() {
		t.Fatalf("CheckResource(orders_db) = %v, want healthy", resp)
	}
	if resp := check(&kgwv1.CheckResourceRequest{Target: &kgwv1.CheckResourceRequest_Spec{Spec: app.spec("pg_app")}}); !resp.GetHealthy() {
		t.Fatalf("CheckResource(inline) = %v, want healthy", resp)
	}
	badDB := &kgwv1.ResourceSpec{Type: "database", Config: app.badDBConfig, CredentialsRef: "pg_app"}
	if resp := check(&kgwv1.CheckResourceRequest{Target: &kgwv1.CheckResourceRequest_Spec{Spec: badDB}}); resp.GetHealthy() ||
		!strings.Contains(resp.GetMessage(), "no_such_db") {
		t.Fatalf("CheckResource(missing database) = %v, want unhealthy naming the database", resp)
	}
	closed := &kgwv1.ResourceSpec{Type: "database", Config: params(t, map[string]any{"host": "127.0.0.1", "port": app.closedPort, "timeout": 2})}
	if resp := check(&kgwv1.CheckResourceRequest{Target: &kgwv1.CheckResourceRequest_Spec{Spec: closed}}); resp.GetHealthy() {
		t.Fatalf("CheckResource(closed port) = %v, want unhealthy", resp)
	}
	_, err := s.res.CheckResource(ctx, &kgwv1.CheckResourceRequest{Target: &kgwv1.CheckResourceRequest_Name{Name: "nope"}})
	if code, info, _ := details(t, err); code != codes.NotFound || info.GetReason() != server.ReasonResourceNotFound {
		t.Fatalf("CheckResource(unknown) = %v %v, want NOT_FOUND RESOURCE_NOT_FOUND", code, info)
	}
}

func TestPutResourceInvalid(t *testing.T) {
	s := startStack(t, stackOptions{})
	ctx := t.Context()
	cfg := params(t, map[string]any{"host": "127.0.0.1"})
	tests := []struct {
		name  string
		req   *kgwv1.PutResourceRequest
		field string
	}{
		{"bad name", &kgwv1.PutResourceRequest{Name: "Orders", Spec: &kgwv1.ResourceSpec{Type: "database", Config: cfg}}, "name"},
		{"no spec", &kgwv1.PutResourceRequest{Name: "orders"}, "spec"},
		{"ref", &kgwv1.PutResourceRequest{Name: "orders", Spec: &kgwv1.ResourceSpec{Ref: "other"}}, "spec.ref"},
		{"no type", &kgwv1.PutResourceRequest{Name: "orders", Spec: &kgwv1.ResourceSpec{Config: cfg}}, "spec.type"},
		{"bad config", &kgwv1.PutResourceRequest{Name: "orders", Spec: &kgwv1.ResourceSpec{Type: "cache",
			Config: params(t, map[string]any{"port": "many"})}}, "spec.config"},
		{"http without base_url", &kgwv1.PutResourceRequest{Name: "api", Spec: &kgwv1.ResourceSpec{Type: "http_client",
			Config: params(t, map[string]any{"base_url": "not a url"})}}, "spec.config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.res.PutResource(ctx, tt.req)
			code, _, br := details(t, err)
			if code != codes.InvalidArgument || len(br.GetFieldViolations()) != 1 || br.GetFieldViolations()[0].GetField() != tt.field {
				t.Fatalf("PutResource = %v %v, want INVALID_ARGUMENT with one violation on %s", code, br, tt.field)
			}
		})
	}
}

// Secret values that a node returns, logs or fails with come back as
// [REDACTED] in the result, the events and the error.
func TestRedaction(t *testing.T) {
	app := newPGApp(t)
	s := startStack(t, stackOptions{})
	ctx := t.Context()
	app.storeCreds(t, s, "pg_app")
	s.register(t, &kgwv1.Workflow{
		Name: "leaky",
		Nodes: []*kgwv1.Node{
			{Id: "leak", RequiredResources: []string{"db"}, Code: `db = get_resource("db")
one = db.fetchval("SELECT 1")
logger.info("the password is " + pw, secret=pw)
print(pw)
result = {"pw": pw, "text": "pw=" + pw + ";", "one": one}`},
			{Id: "boom", Code: `fail("cannot use " + pw)`},
		},
		Connections: []*kgwv1.Connection{{FromNode: "leak", FromOutput: "pw", ToNode: "boom"}},
	})
	resp, err := s.ex.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{
		Workflow:   "leaky",
		Parameters: params(t, map[string]any{"pw": app.password}),
		Resources:  map[string]*kgwv1.ResourceSpec{"db": app.spec("pg_app")},
	})
	if err != nil {
		t.Fatalf("ExecuteWorkflow: %v", err)
	}
	noValue(t, "ExecuteWorkflow response", resp, app.password)
	x := resp.GetExecution()
	if x.GetStatus() != kgwv1.ExecutionStatus_EXECUTION_STATUS_FAILED || x.GetError().GetNodeId() != "boom" {
		t.Fatalf("status %v error %v, want FAILED at boom", x.GetStatus(), x.GetError())
	}
	leak := x.GetResult()["leak"].GetFields()
	if leak["pw"].GetStringValue() != secrets.Redacted || leak["text"].GetStringValue() != "pw="+secrets.Redacted+";" || leak["one"].GetNumberValue() != 1 {
		t.Fatalf("result = %v, want the password redacted", leak)
	}
	if !strings.Contains(x.GetError().GetMessage(), "cannot use "+secrets.Redacted) {
		t.Fatalf("error message = %q, want the password redacted", x.GetError().GetMessage())
	}

	stream, err := s.ex.WatchExecution(ctx, &kgwv1.WatchExecutionRequest{ExecutionId: x.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := recvAll(t, stream.Recv)
	if err != nil {
		t.Fatal(err)
	}
	var logs []string
	for _, ev := range evs {
		noValue(t, "event", ev, app.password)
		if l := ev.GetNodeLog(); l != nil {
			logs = append(logs, l.GetMessage())
			if f := l.GetFields().GetFields()["secret"]; f != nil && f.GetStringValue() != secrets.Redacted {
				t.Errorf("log field secret = %v, want redacted", f)
			}
		}
	}
	want := []string{"the password is " + secrets.Redacted, secrets.Redacted}
	if strings.Join(logs, "|") != strings.Join(want, "|") {
		t.Fatalf("log messages = %q, want %q", logs, want)
	}
	got, err := s.ex.GetExecution(ctx, &kgwv1.GetExecutionRequest{ExecutionId: x.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	noValue(t, "GetExecution response", got, app.password)
}
