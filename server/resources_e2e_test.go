package server_test

// End-to-end tests of the resource broker through the gRPC API, against
// real PostgreSQL and Redis servers (internal/testenv): pool sharing and
// caps, exhaustion, secret rotation, server failures and leak checks.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/durationpb"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
	"github.com/kailash-gateway/kgw/internal/testenv"
)

// gateLib lets an execution wait until another execution of the same
// workflow opens a gate: workflow_cache is shared by the executions of a
// workflow. A workflow using it starts with openGate, so that running it
// with parameters {"open": name} opens the gate and touches no resource.
const gateLib = `
def wait_for(name):
    for _ in range(6000):
        if workflow_cache.get(name):
            return
        time.sleep(0.005)
    fail("gate %s never opened" % name)
`

// openGate is the first statement of a gated node: with the parameter
// "open" it opens that gate and the node ends there (its code must sit in
// the else branch).
const openGate = `
if parameters.get("open"):
    workflow_cache.set(parameters["open"], True)
    result = {"opened": parameters["open"]}
`

// gatedWorkflow is a one-node workflow (node "n") that needs the resources
// res. Run with parameters {"open": gate} it opens that gate; otherwise it
// runs body, which may call wait_for(gate).
func gatedWorkflow(name string, res []string, body string) *kgwv1.Workflow {
	var b strings.Builder
	b.WriteString(gateLib)
	b.WriteString(openGate)
	b.WriteString("else:\n")
	for line := range strings.SplitSeq(strings.Trim(body, "\n"), "\n") {
		b.WriteString("    " + line + "\n")
	}
	return &kgwv1.Workflow{Name: name, Nodes: []*kgwv1.Node{{Id: "n", RequiredResources: res, Code: b.String()}}}
}

// open opens the gate called gate of workflow wf.
func (s *stack) open(t *testing.T, wf, gate string) {
	t.Helper()
	x := s.run(t, &kgwv1.ExecuteWorkflowRequest{Workflow: wf, Parameters: params(t, map[string]any{"open": gate})})
	mustComplete(t, x)
}

// run runs req through ExecuteWorkflow and fails the test on an RPC error.
func (s *stack) run(t *testing.T, req *kgwv1.ExecuteWorkflowRequest) *kgwv1.Execution {
	t.Helper()
	resp, err := s.ex.ExecuteWorkflow(t.Context(), req)
	if err != nil {
		t.Fatalf("ExecuteWorkflow(%s): %v", req.GetWorkflow(), err)
	}
	return resp.GetExecution()
}

// mustComplete checks that x completed and returns the result of its node
// "n" as Go values (numbers are float64, as in google.protobuf.Struct).
func mustComplete(t *testing.T, x *kgwv1.Execution) map[string]any {
	t.Helper()
	if x.GetStatus() != kgwv1.ExecutionStatus_EXECUTION_STATUS_COMPLETED {
		t.Fatalf("execution %s of %s: status %v, error %v, want COMPLETED", x.GetId(), x.GetWorkflow(), x.GetStatus(), x.GetError())
	}
	return x.GetResult()["n"].AsMap()
}

// mustFail checks that x failed at node "n" with code and a message
// containing want, and returns the error.
func mustFail(t *testing.T, x *kgwv1.Execution, code, want string) *kgwv1.ExecutionError {
	t.Helper()
	e := x.GetError()
	if x.GetStatus() != kgwv1.ExecutionStatus_EXECUTION_STATUS_FAILED || e.GetNodeId() != "n" || e.GetCode() != code ||
		!strings.Contains(e.GetMessage(), want) {
		t.Fatalf("execution %s: status %v, error %v; want FAILED at node n with code %s and a message containing %q",
			x.GetId(), x.GetStatus(), e, code, want)
	}
	return e
}

// startUntilLog starts req and returns its execution id once the
// execution has logged msg (so the node is at a known point).
func (s *stack) startUntilLog(t *testing.T, req *kgwv1.StartExecutionRequest, msg string) string {
	t.Helper()
	id, err := s.startUntil(t.Context(), req, msg)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// startUntil is startUntilLog for any goroutine: it returns an error
// instead of failing the test.
func (s *stack) startUntil(ctx context.Context, req *kgwv1.StartExecutionRequest, msg string) (string, error) {
	start, err := s.ex.StartExecution(ctx, req)
	if err != nil {
		return "", fmt.Errorf("StartExecution(%s): %w", req.GetWorkflow(), err)
	}
	id := start.GetExecutionId()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := s.ex.WatchExecution(ctx, &kgwv1.WatchExecutionRequest{ExecutionId: id})
	if err != nil {
		return "", fmt.Errorf("WatchExecution: %w", err)
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			return "", fmt.Errorf("execution %s ended (%w) before logging %q", id, err, msg)
		}
		if m.GetEvent().GetNodeLog().GetMessage() == msg {
			return id, nil
		}
		if x := terminal(m.GetEvent()); x != nil {
			return "", fmt.Errorf("execution %s ended before logging %q: %v %v", id, msg, x.GetStatus(), x.GetError())
		}
	}
}

// wait returns the final state of execution id once it has ended.
func (s *stack) wait(t *testing.T, id string) *kgwv1.Execution {
	t.Helper()
	stream, err := s.ex.WatchExecution(t.Context(), &kgwv1.WatchExecutionRequest{ExecutionId: id})
	if err != nil {
		t.Fatalf("WatchExecution: %v", err)
	}
	evs, err := recvAll(t, stream.Recv)
	if err != nil || len(evs) == 0 || terminal(evs[len(evs)-1]) == nil {
		t.Fatalf("watching %s: %d events, %v; want it to end with a terminal event", id, len(evs), err)
	}
	return terminal(evs[len(evs)-1])
}

// pools returns the live pools of type typ whose target is target.
func (s *stack) pools(t *testing.T, typ, target string) []*kgwv1.Pool {
	t.Helper()
	resp, err := s.res.ListPools(t.Context(), &kgwv1.ListPoolsRequest{PageSize: 1000})
	if err != nil {
		t.Fatalf("ListPools: %v", err)
	}
	var out []*kgwv1.Pool
	for _, p := range resp.GetPools() {
		if p.GetType() == typ && p.GetTarget() == target {
			out = append(out, p)
		}
	}
	return out
}

// eventually calls cond every 20ms until it returns "" or 20 s have
// passed, then fails the test with cond's last answer. It waits for
// asynchronous effects (a pool closing, a server backend going away); it
// never measures how long they took.
func eventually(t *testing.T, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %s", what, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pgDB is a fresh database on a PostgreSQL server, used by the gateway as
// the superuser (testenv servers trust local connections) with its own
// application_name, so that its backends can be counted.
type pgDB struct {
	srv     *testenv.PostgresServer
	name    string
	dsn     string // superuser DSN of the database
	appName string
	admin   *pgx.Conn // on the server's "postgres" database
}

func newPGDB(t *testing.T, srv *testenv.PostgresServer) *pgDB {
	t.Helper()
	dsn := srv.NewDatabase(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	d := &pgDB{srv: srv, name: strings.TrimPrefix(u.Path, "/"), dsn: dsn, appName: "kgw-e2e-" + strings.ToLower(rand.Text()[:8])}
	return d
}

// target is the pool target ListPools reports for d.
func (d *pgDB) target() string { return fmt.Sprintf("127.0.0.1:%d/%s", d.srv.Port, d.name) }

// spec is an inline database spec for d with extra config keys.
func (d *pgDB) spec(t *testing.T, extra map[string]any) *kgwv1.ResourceSpec {
	t.Helper()
	cfg := map[string]any{
		"host": "127.0.0.1", "port": d.srv.Port, "database": d.name, "user": "postgres",
		"server_settings": map[string]any{"application_name": d.appName},
	}
	for k, v := range extra {
		cfg[k] = v
	}
	return &kgwv1.ResourceSpec{Type: "database", Config: params(t, cfg)}
}

// exec runs sql on d's database on a connection of its own.
func (d *pgDB) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	c, err := pgx.Connect(t.Context(), d.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// query runs a one-value query on d's database on a connection of its own.
func (d *pgDB) query(t *testing.T, sql string, dst any, args ...any) {
	t.Helper()
	c, err := pgx.Connect(t.Context(), d.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if err := c.QueryRow(t.Context(), sql, args...).Scan(dst); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// backendStats counts the gateway's server backends on d's database (by
// application_name), in all and idle in transaction.
type backendStats struct{ total, idleInTx int }

// backends samples pg_stat_activity on a connection of the server's
// "postgres" database, opened on first use and closed at cleanup. It is
// not safe for concurrent use.
func (d *pgDB) backends(ctx context.Context, t *testing.T) (backendStats, error) {
	if d.admin == nil {
		c, err := pgx.Connect(ctx, d.srv.DSN)
		if err != nil {
			return backendStats{}, err
		}
		d.admin = c
		t.Cleanup(func() { c.Close(context.Background()) })
	}
	var s backendStats
	err := d.admin.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE state LIKE 'idle in transaction%')
		FROM pg_stat_activity WHERE datname = $1 AND application_name = $2`, d.name, d.appName).Scan(&s.total, &s.idleInTx)
	return s, err
}

// poolWorkflow runs a short query that holds its connection for a moment
// and reports the pool's size as the node sees it.
func poolWorkflow() *kgwv1.Workflow {
	return &kgwv1.Workflow{Name: "pooled", Nodes: []*kgwv1.Node{{Id: "n", RequiredResources: []string{"db"}, Code: `
db = get_resource("db")
v = db.fetchval("SELECT $1::int8 FROM pg_sleep(0.01)", i)
result = {"v": v, "size": db.size, "freesize": db.freesize}
`}}}
}

// TestResourcePoolSharedAcrossExecutions runs 100 executions in parallel
// with the same inline database spec: ListPools shows one pool for the
// target, used 100 times, and PostgreSQL never sees more of the gateway's
// connections than max_size while they run.
func TestResourcePoolSharedAcrossExecutions(t *testing.T) {
	const maxSize, runs = 3, 100
	db := newPGDB(t, testenv.Postgres(t))
	s := startStack(t, stackOptions{})
	s.register(t, poolWorkflow())
	spec := db.spec(t, map[string]any{"max_size": maxSize})

	// Sample pg_stat_activity while the executions run, until they end.
	samplesUntil := sampleBackends(t, db)
	var wg sync.WaitGroup
	for i := range runs {
		wg.Go(func() {
			resp, err := s.ex.ExecuteWorkflow(t.Context(), &kgwv1.ExecuteWorkflowRequest{
				Workflow: "pooled", Parameters: params(t, map[string]any{"i": i}),
				Resources: map[string]*kgwv1.ResourceSpec{"db": spec},
			})
			if err != nil {
				t.Errorf("ExecuteWorkflow %d: %v", i, err)
				return
			}
			x := resp.GetExecution()
			r := x.GetResult()["n"].AsMap()
			if x.GetStatus() != kgwv1.ExecutionStatus_EXECUTION_STATUS_COMPLETED || r["v"] != float64(i) {
				t.Errorf("execution %d: %v %v result %v, want COMPLETED with v=%d", i, x.GetStatus(), x.GetError(), r, i)
				return
			}
			if size, free := r["size"].(float64), r["freesize"].(float64); size < 1 || size > maxSize || free < 0 || free > size {
				t.Errorf("execution %d saw size %v, freesize %v; want 1 <= size <= %d, 0 <= freesize <= size", i, size, free, maxSize)
			}
		})
	}
	wg.Wait()
	samples := samplesUntil()
	if t.Failed() {
		t.FailNow()
	}

	peak := 0
	for _, st := range samples {
		peak = max(peak, st.total)
	}
	// The last sample was taken after every execution ended; the pool keeps
	// its connections, so at least one is open.
	if last := samples[len(samples)-1]; last.total < 1 || peak > maxSize {
		t.Fatalf("pg_stat_activity: peak %d backends over %d samples, last %d; want at most max_size=%d and at least 1 at the end",
			peak, len(samples), last.total, maxSize)
	}
	t.Logf("pg_stat_activity: peak %d backends (max_size %d) over %d samples", peak, maxSize, len(samples))

	// A connection is in use until its session reset, which runs in the
	// background just after the execution released it, has finished.
	var p *kgwv1.Pool
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		pools := s.pools(t, "database", db.target())
		if len(pools) != 1 {
			t.Fatalf("ListPools has %d database pools for %s, want 1: %v", len(pools), db.target(), pools)
		}
		if p = pools[0]; p.GetInUse() == 0 || time.Now().After(deadline) {
			break
		}
	}
	if p.GetAcquireCount() < runs || p.GetMaxSize() != maxSize || p.GetSize() > maxSize || p.GetInUse() != 0 || p.GetDraining() {
		t.Fatalf("pool = %v, want at least %d acquisitions, max_size %d, size <= max, none in use", p, runs, maxSize)
	}
}

// sampleBackends samples db's pg_stat_activity every millisecond until the
// function it returns is called, which takes one last sample and returns
// them all.
func sampleBackends(t *testing.T, db *pgDB) func() []backendStats {
	done := make(chan struct{})
	sampled := make(chan []backendStats, 1)
	go func() {
		var got []backendStats
		defer func() { sampled <- got }()
		for finished := false; ; {
			select {
			case <-done:
				finished = true // one last sample, after every execution ended
			default:
			}
			st, err := db.backends(t.Context(), t)
			if err != nil {
				t.Errorf("sampling pg_stat_activity: %v", err)
				return
			}
			got = append(got, st)
			if finished {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	return func() []backendStats {
		close(done)
		return <-sampled
	}
}

// TestResourcePoolExhausted holds the only connection of a max_size 1 pool
// in one execution while another waits for it: after its 1 s timeout the
// second fails with the exhaustion message, and the first still completes.
func TestResourcePoolExhausted(t *testing.T) {
	db := newPGDB(t, testenv.Postgres(t))
	s := startStack(t, stackOptions{})
	s.register(t, gatedWorkflow("exhaust", []string{"db"}, `
db = get_resource("db")
if parameters.get("hold"):
    held = db.acquire()
    pid = held.fetchval("SELECT pg_backend_pid()")
    logger.info("holding")
    wait_for("release")
    result = {"pid": pid, "same": held.fetchval("SELECT pg_backend_pid()") == pid}
else:
    result = {"v": db.fetchval("SELECT 1")}
`))
	res := map[string]*kgwv1.ResourceSpec{"db": db.spec(t, map[string]any{"max_size": 1, "timeout": 1})}

	holder := s.startUntilLog(t, &kgwv1.StartExecutionRequest{Workflow: "exhaust", Resources: res,
		Parameters: params(t, map[string]any{"hold": true})}, "holding")
	waiter := s.run(t, &kgwv1.ExecuteWorkflowRequest{Workflow: "exhaust", Resources: res})
	e := mustFail(t, waiter, "RESOURCE_ERROR", "connection pool exhausted for resource 'db' (max_size=1, waited 1s)")
	t.Logf("exhausted: %s", e.GetMessage())

	p := s.pools(t, "database", db.target())
	if len(p) != 1 || p[0].GetInUse() != 1 || p[0].GetSize() != 1 || p[0].GetMaxSize() != 1 {
		t.Fatalf("ListPools while held = %v, want one pool of max 1 with its connection in use", p)
	}

	s.open(t, "exhaust", "release")
	if r := mustComplete(t, s.wait(t, holder)); r["same"] != true {
		t.Fatalf("holder result = %v, want the same backend throughout", r)
	}
	// The connection is free again.
	if r := mustComplete(t, s.run(t, &kgwv1.ExecuteWorkflowRequest{Workflow: "exhaust", Resources: res})); r["v"] != 1.0 {
		t.Fatalf("result after release = %v, want v=1", r)
	}
}

// TestResourceNodeTimeoutInterrupts runs database calls that would wait
// for ten minutes in a node with a 300ms timeout: a statement on a pooled
// call, on an acquired connection and in a transaction, and an acquire
// from a pool whose only connection is held. Each node times out, its
// statement is cancelled on the server and its connection goes back to the
// pool, at once: the call is interrupted, not waited out.
func TestResourceNodeTimeoutInterrupts(t *testing.T) {
	db := newPGDB(t, testenv.Postgres(t))
	s := startStack(t, stackOptions{})
	s.register(t, gatedWorkflow("holder", []string{"db"}, `
held = get_resource("db").acquire()
logger.info("holding")
wait_for("release")
result = {}
`))
	sleepy := &kgwv1.Workflow{Name: "sleepy", Nodes: []*kgwv1.Node{{Id: "n", RequiredResources: []string{"db"},
		Timeout: durationpb.New(300 * time.Millisecond), Code: `
db = get_resource("db")
sleep = "SELECT 1 FROM pg_sleep(600)"
if kind == "pool":
    db.fetchval(sleep)
elif kind == "acquired":
    db.acquire().fetchval(sleep)
elif kind == "transaction":
    db.transaction(lambda tx: tx.fetchval(sleep))
elif kind == "acquire":
    db.fetchval("SELECT 1")
result = {}
`}}}
	s.register(t, sleepy)
	// statement_timeout only bounds how long a failure of this test takes.
	res := map[string]*kgwv1.ResourceSpec{"db": db.spec(t, map[string]any{"max_size": 1, "timeout": 600,
		"server_settings": map[string]any{"application_name": db.appName, "statement_timeout": "40s"}})}

	settled := func(kind string) {
		t.Helper()
		eventually(t, kind+": pool and server settling", func() string {
			p := s.pools(t, "database", db.target())
			if len(p) != 1 || p[0].GetInUse() != 0 {
				return fmt.Sprintf("ListPools = %v, want one pool with nothing in use", p)
			}
			var n int
			db.query(t, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND query LIKE '%pg_sleep(600)%' AND state = 'active' AND pid <> pg_backend_pid()", &n, db.name)
			if n != 0 {
				return fmt.Sprintf("%d statements still sleeping", n)
			}
			return ""
		})
	}
	run := func(kind string) {
		t.Helper()
		// The call is interrupted at 300ms; it would take minutes if it
		// were waited out.
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		resp, err := s.ex.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: "sleepy", Resources: res,
			Parameters: params(t, map[string]any{"kind": kind})})
		if err != nil {
			t.Fatalf("%s: ExecuteWorkflow: %v", kind, err)
		}
		x := resp.GetExecution()
		if x.GetStatus() != kgwv1.ExecutionStatus_EXECUTION_STATUS_TIMED_OUT || x.GetError().GetCode() != "TIMEOUT" {
			t.Fatalf("%s: status %v, error %v; want TIMED_OUT with code TIMEOUT", kind, x.GetStatus(), x.GetError())
		}
	}
	for _, kind := range []string{"pool", "acquired", "transaction"} {
		run(kind)
		settled(kind)
	}

	// The pool's only connection is held: the acquire waits, and the
	// node's timeout ends the wait (the pool's timeout is ten minutes).
	holder := s.startUntilLog(t, &kgwv1.StartExecutionRequest{Workflow: "holder", Resources: res}, "holding")
	run("acquire")
	s.open(t, "holder", "release")
	mustComplete(t, s.wait(t, holder))
	settled("acquire")
}

// pgRole is a login role with a password on a shared PostgreSQL server,
// dropped at cleanup.
func pgRole(t *testing.T, srv *testenv.PostgresServer) (user, password string) {
	t.Helper()
	user = "kgw_rot_" + strings.ToLower(rand.Text()[:10])
	password = "pw-" + rand.Text()
	c, err := pgx.Connect(t.Context(), srv.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	// Generated identifiers and passwords: letters and digits only.
	if _, err := c.Exec(t.Context(), fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", user, password)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), srv.DSN)
		if err != nil {
			t.Errorf("drop role: %v", err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP ROLE IF EXISTS "+user); err != nil {
			t.Errorf("drop role: %v", err)
		}
	})
	return user, password
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestResourceSecretRotation stores a new version of a database secret
// (another role) while an execution holds a connection of the old pool:
// new executions get a new pool (and the new role), the old pool keeps
// serving its holder, shows as draining, and closes with all its server
// connections once the holder ends.
func TestResourceSecretRotation(t *testing.T) {
	pg := testenv.Postgres(t)
	db := newPGDB(t, pg)
	oldUser, oldPW := pgRole(t, pg)
	newUser, newPW := pgRole(t, pg)
	s := startStack(t, stackOptions{})
	ctx := t.Context()
	store := func(user, pw string) {
		t.Helper()
		resp, err := s.sec.StoreSecret(ctx, &kgwv1.StoreSecretRequest{Name: "rot", AllowedHosts: []string{"127.0.0.1"},
			Value: params(t, map[string]any{"user": user, "password": pw})})
		if err != nil {
			t.Fatalf("StoreSecret: %v", err)
		}
		noValue(t, "StoreSecret response", resp, pw)
	}
	s.register(t, gatedWorkflow("who", []string{"db"}, `
db = get_resource("db")
if parameters.get("hold"):
    held = db.acquire()
    before = held.fetchval("SELECT session_user")
    logger.info("holding")
    wait_for("release")
    result = {"user": hashlib.sha256(before), "after": hashlib.sha256(held.fetchval("SELECT session_user"))}
else:
    result = {"user": hashlib.sha256(db.fetchval("SELECT session_user"))}
`))
	// The role names are secret values, which results show as [REDACTED]:
	// the node returns their SHA-256 instead.
	oldHash, newHash := sha256Hex(oldUser), sha256Hex(newUser)
	spec := db.spec(t, nil)
	spec.CredentialsRef = "rot"
	res := map[string]*kgwv1.ResourceSpec{"db": spec}
	who := func() string {
		t.Helper()
		return mustComplete(t, s.run(t, &kgwv1.ExecuteWorkflowRequest{Workflow: "who", Resources: res}))["user"].(string)
	}

	store(oldUser, oldPW)
	if u := who(); u != oldHash {
		t.Fatalf("session_user hash = %q, want the v1 role %q", u, oldHash)
	}
	before := s.pools(t, "database", db.target())
	if len(before) != 1 || before[0].GetSecretName() != "rot" || before[0].GetSecretVersion() != 1 || before[0].GetDraining() {
		t.Fatalf("ListPools before rotation = %v, want one pool of secret rot v1", before)
	}
	holder := s.startUntilLog(t, &kgwv1.StartExecutionRequest{Workflow: "who", Resources: res,
		Parameters: params(t, map[string]any{"hold": true})}, "holding")

	store(newUser, newPW)
	if u := who(); u != newHash {
		t.Fatalf("session_user hash after rotation = %q, want the v2 role %q", u, newHash)
	}
	during := s.pools(t, "database", db.target())
	if len(during) != 2 {
		t.Fatalf("ListPools during drain = %v, want the old and the new pool", during)
	}
	checkDrainingPools(t, during, before[0].GetKey(), oldPW, newPW)
	if got := usersConnected(t, pg.DSN, db); got[oldUser] < 1 || got[newUser] < 1 {
		t.Fatalf("backends by role = %v, want both roles connected while the old pool drains", got)
	}

	s.open(t, "who", "release")
	if r := mustComplete(t, s.wait(t, holder)); r["user"] != oldHash || r["after"] != oldHash {
		t.Fatalf("holder result = %v, want the old role throughout (its pool kept serving it)", r)
	}
	eventually(t, "old pool closing", func() string {
		p := s.pools(t, "database", db.target())
		if len(p) != 1 || p[0].GetSecretVersion() != 2 {
			return fmt.Sprintf("ListPools = %v, want only the v2 pool", p)
		}
		if got := usersConnected(t, pg.DSN, db); got[oldUser] != 0 || got[newUser] < 1 {
			return fmt.Sprintf("backends by role = %v, want none of the old role", got)
		}
		return ""
	})
	if u := who(); u != newHash {
		t.Fatalf("session_user hash after the drain = %q, want %q", u, newHash)
	}
}

// usersConnected counts db's server connections (those of the gateway's
// pools, by application name) per role, read through adminDSN.
func usersConnected(t *testing.T, adminDSN string, db *pgDB) map[string]int {
	t.Helper()
	ctx := t.Context()
	c, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	rows, err := c.Query(ctx, `SELECT usename, count(*) FROM pg_stat_activity
		WHERE datname = $1 AND application_name = $2 GROUP BY usename`, db.name, db.appName)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for rows.Next() {
		var u string
		var n int
		if err := rows.Scan(&u, &n); err != nil {
			t.Fatal(err)
		}
		got[u] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// checkDrainingPools checks the two pools of a rotated secret while the
// old one drains: version 1 draining with its holder's connection in use,
// version 2 under a key other than oldKey; neither shows a password.
func checkDrainingPools(t *testing.T, pools []*kgwv1.Pool, oldKey string, passwords ...string) {
	t.Helper()
	for _, p := range pools {
		noValue(t, "ListPools", p, passwords...)
		switch p.GetSecretVersion() {
		case 1:
			if !p.GetDraining() || p.GetInUse() != 1 {
				t.Errorf("old pool = %v, want draining with the holder's connection in use", p)
			}
		case 2:
			if p.GetDraining() || p.GetKey() == oldKey {
				t.Errorf("new pool = %v, want a new key, not draining", p)
			}
		default:
			t.Errorf("pool of secret version %d, want 1 and 2: %v", p.GetSecretVersion(), p)
		}
	}
}

// TestResourceServerFailures kills Redis, then PostgreSQL, while a node
// holds a handle: the node fails with RESOURCE_ERROR naming the method,
// the gateway keeps serving other requests, and once the server is back a
// run succeeds on the same gateway.
func TestResourceServerFailures(t *testing.T) {
	s := startStack(t, stackOptions{})
	s.register(t, pipeline("pipe"))
	tests := []serverFailure{
		{
			name: "redis",
			spec: func(t *testing.T) (*kgwv1.ResourceSpec, string, func() error, func() error) {
				r := testenv.NewRedis(t)
				return &kgwv1.ResourceSpec{Type: "cache", Config: params(t, map[string]any{"host": "127.0.0.1", "port": r.Port})},
					fmt.Sprintf("127.0.0.1:%d/0", r.Port), r.Kill, r.Start
			},
			body: `
c = get_resource("r")
c.set("k", "v-" + execution.id)
logger.info("ready")
wait_for(parameters["gate"])
result = {"v": c.get("k"), "want": "v-" + execution.id}
`,
			method: "r.get",
		},
		{
			name: "postgres",
			spec: func(t *testing.T) (*kgwv1.ResourceSpec, string, func() error, func() error) {
				pg := testenv.NewPostgres(t)
				db := newPGDB(t, pg)
				return db.spec(t, map[string]any{"timeout": 5}), db.target(), pg.Kill, pg.Start
			},
			body: `
c = get_resource("r")
pid = c.fetchval("SELECT pg_backend_pid()")
logger.info("ready")
wait_for(parameters["gate"])
v = c.fetchval("SELECT 'v-' || $1", execution.id)
result = {"v": v, "want": "v-" + execution.id}
`,
			method: "r.fetchval",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { testServerFailure(t, s, tt) })
	}
}

// A serverFailure is a resource server that TestResourceServerFailures
// kills while an execution uses it: spec starts the server and returns
// the spec of a resource on it, the pool's target and how to kill and
// restart it; body is a node that uses resource "r", logs "ready" and
// waits for the gate parameters["gate"]; method is the handle method
// that fails.
type serverFailure struct {
	name   string
	spec   func(t *testing.T) (spec *kgwv1.ResourceSpec, target string, kill, restart func() error)
	body   string
	method string
}

// testServerFailure runs tt's node once, kills its server while a second
// execution waits at the gate, checks that execution fails with a
// RESOURCE_ERROR from tt.method (counted on the pool) while the gateway
// keeps serving, and that after a restart the node runs again.
func testServerFailure(t *testing.T, s *stack, tt serverFailure) {
	wf := "kill_" + tt.name
	s.register(t, gatedWorkflow(wf, []string{"r"}, tt.body))
	spec, target, kill, restart := tt.spec(t)
	res := map[string]*kgwv1.ResourceSpec{"r": spec}
	req := func(gate string) *kgwv1.ExecuteWorkflowRequest {
		return &kgwv1.ExecuteWorkflowRequest{Workflow: wf, Resources: res, Parameters: params(t, map[string]any{"gate": gate}),
			Timeout: durationpb.New(time.Minute)}
	}
	check := func(x *kgwv1.Execution) {
		t.Helper()
		if r := mustComplete(t, x); r["v"] != r["want"] {
			t.Fatalf("result = %v, want v = want", r)
		}
	}
	s.open(t, wf, "open")
	check(s.run(t, req("open")))

	r := req("killed")
	id := s.startUntilLog(t, &kgwv1.StartExecutionRequest{Workflow: wf, Resources: res, Parameters: r.Parameters, Timeout: r.Timeout}, "ready")
	if err := kill(); err != nil {
		t.Fatalf("kill: %v", err)
	}
	s.open(t, wf, "killed")
	e := mustFail(t, s.wait(t, id), "RESOURCE_ERROR", tt.method+":")
	t.Logf("%s killed: %s", tt.name, e.GetMessage())
	if p := s.pools(t, spec.GetType(), target); len(p) != 1 || p[0].GetErrorCount() < 1 || p[0].GetLastError() == "" {
		t.Errorf("ListPools after the failure = %v, want the pool with its error counted", p)
	}
	checkKeepsServing(t, s)

	if err := restart(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	check(s.run(t, req("open")))
	checkKeepsServing(t, s)
}

// checkKeepsServing: an execution that uses no resource completes and
// ListPools answers.
func checkKeepsServing(t *testing.T, s *stack) {
	t.Helper()
	x := s.run(t, &kgwv1.ExecuteWorkflowRequest{Workflow: "pipe", Parameters: params(t, map[string]any{"n": 1})})
	if x.GetStatus() != kgwv1.ExecutionStatus_EXECUTION_STATUS_COMPLETED {
		t.Fatalf("unrelated execution: %v %v, want COMPLETED", x.GetStatus(), x.GetError())
	}
	if _, err := s.res.ListPools(t.Context(), &kgwv1.ListPoolsRequest{}); err != nil {
		t.Fatalf("ListPools: %v", err)
	}
}

// TestResourceNoLeaks runs 1,000 executions through one database pool, in
// parallel, mixing successes, SQL errors, fail(), node timeouts, execution
// timeouts and cancellations, most of them with a connection checked out
// and a transaction open. Afterwards the pool has nothing in use,
// PostgreSQL has no more of the gateway's backends than the pool's idle
// connections and none idle in a transaction, and the table holds exactly
// the rows of the committed transactions.
func TestResourceNoLeaks(t *testing.T) {
	const runs, workers, maxSize = 1000, 24, 6
	db := newPGDB(t, testenv.Postgres(t))
	db.exec(t, "CREATE TABLE log (i int8 PRIMARY KEY)")
	s := startStack(t, stackOptions{})
	s.register(t, &kgwv1.Workflow{Name: "mix", Nodes: []*kgwv1.Node{{Id: "n", RequiredResources: []string{"db"}, Code: leakMixNode}}})
	s.register(t, &kgwv1.Workflow{Name: "mix_short", Nodes: []*kgwv1.Node{{Id: "n", RequiredResources: []string{"db"}, Code: leakMixNode,
		Timeout: durationpb.New(300 * time.Millisecond)}}})
	res := map[string]*kgwv1.ResourceSpec{"db": db.spec(t, map[string]any{"max_size": maxSize, "timeout": 30})}

	mix := leakMix()
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				mix[i%len(mix)].run(t, s, res, i)
			}
		})
	}
	for i := 0; i < runs && !t.Failed(); i++ { // stop feeding at the first failure
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	var pool *kgwv1.Pool
	eventually(t, "pool and server settling", func() string {
		pools := s.pools(t, "database", db.target())
		if len(pools) != 1 {
			return fmt.Sprintf("ListPools = %v, want one pool", pools)
		}
		pool = pools[0]
		st, err := db.backends(t.Context(), t)
		if err != nil {
			t.Fatal(err)
		}
		if pool.GetInUse() != 0 || st.total > int(pool.GetIdle()) || st.idleInTx != 0 {
			return fmt.Sprintf("pool in use %d, idle %d, size %d; %d backends, %d idle in transaction; want none in use and no more backends than idle ones",
				pool.GetInUse(), pool.GetIdle(), pool.GetSize(), st.total, st.idleInTx)
		}
		t.Logf("after %d executions: pool size %d, idle %d, in use %d, %d acquisitions, %d errors; %d backends",
			runs, pool.GetSize(), pool.GetIdle(), pool.GetInUse(), pool.GetAcquireCount(), pool.GetErrorCount(), st.total)
		return ""
	})
	if pool.GetAcquireCount() < runs/2 || pool.GetMaxSize() != maxSize {
		t.Errorf("pool = %v, want max_size %d and at least %d acquisitions", pool, maxSize, runs/2)
	}
	var rows, wrong int
	db.query(t, "SELECT count(*) FROM log", &rows)
	db.query(t, "SELECT count(*) FROM log WHERE i % $1 <> 2", &wrong, len(mix))
	if want := runs / len(mix); rows != want || wrong != 0 {
		t.Fatalf("log has %d rows (%d not from committed transactions), want exactly the %d committed ones", rows, wrong, want)
	}
}

// leakMixNode is TestResourceNoLeaks's node: parameter kind says what it
// does with the database handle db, parameter i is its row.
const leakMixNode = `
db = get_resource("db")

def insert_then(tx, then):
    tx.execute("INSERT INTO log (i) VALUES ($1)", i)
    if then == "commit":
        return tx.fetchval("SELECT count(*) FROM log WHERE i = $1", i)
    if then == "sql_error":
        tx.execute("INSERT INTO nowhere VALUES (1)")
    if then == "fail":
        fail("giving up on %d" % i)
    if then == "hold":
        logger.info("holding")
        time.sleep(60)

if kind == "fetchval":
    result = {"v": db.fetchval("SELECT $1::int8", i)}
elif kind == "acquire":
    held = db.acquire()
    pid = held.fetchval("SELECT pg_backend_pid()")
    result = {"v": held.fetchval("SELECT $1::int8 WHERE pg_backend_pid() = $2", i, pid)}
elif kind == "commit":
    result = {"v": db.transaction(lambda tx: insert_then(tx, "commit"))}
elif kind == "pg_sleep":
    held = db.acquire()
    held.execute("BEGIN")
    held.execute("INSERT INTO log (i) VALUES ($1)", i)
    held.fetchval("SELECT 1 FROM pg_sleep(3)")
    result = {}
else:
    db.transaction(lambda tx: insert_then(tx, kind))
    result = {}
`

// A leakOutcome is one kind of execution of TestResourceNoLeaks and what
// must come of it.
type leakOutcome struct {
	wf, kind string
	timeout  time.Duration                      // request timeout, 0 for the default
	cancel   bool                               // cancel once the node logged "holding"
	status   kgwv1.ExecutionStatus              // expected
	code     string                             // expected error code, if failed
	commits  bool                               // its row stays in log
	check    func(r map[string]any, i int) bool // on a completed result
}

// leakMix is the mix of executions of TestResourceNoLeaks; execution i is
// leakMix()[i % len].
func leakMix() []leakOutcome {
	vIsI := func(r map[string]any, i int) bool { return r["v"] == float64(i) }
	return []leakOutcome{
		{wf: "mix", kind: "fetchval", status: kgwv1.ExecutionStatus_EXECUTION_STATUS_COMPLETED, check: vIsI},
		{wf: "mix", kind: "acquire", status: kgwv1.ExecutionStatus_EXECUTION_STATUS_COMPLETED, check: vIsI},
		{wf: "mix", kind: "commit", status: kgwv1.ExecutionStatus_EXECUTION_STATUS_COMPLETED, commits: true,
			check: func(r map[string]any, _ int) bool { return r["v"] == 1.0 }},
		{wf: "mix", kind: "sql_error", status: kgwv1.ExecutionStatus_EXECUTION_STATUS_FAILED, code: "RESOURCE_ERROR"},
		{wf: "mix", kind: "fail", status: kgwv1.ExecutionStatus_EXECUTION_STATUS_FAILED, code: "NODE_ERROR"},
		{wf: "mix_short", kind: "hold", status: kgwv1.ExecutionStatus_EXECUTION_STATUS_TIMED_OUT, code: "TIMEOUT"},               // the node's timeout
		{wf: "mix", kind: "pg_sleep", timeout: 300 * time.Millisecond, status: kgwv1.ExecutionStatus_EXECUTION_STATUS_TIMED_OUT}, // the execution's
		{wf: "mix", kind: "hold", cancel: true, status: kgwv1.ExecutionStatus_EXECUTION_STATUS_CANCELLED},
	}
}

// run runs execution i as o says (workflow, kind, timeout; cancelled once
// its node logs "holding") with the resources res, and reports an outcome
// other than o's.
func (o leakOutcome) run(t *testing.T, s *stack, res map[string]*kgwv1.ResourceSpec, i int) {
	var x *kgwv1.Execution
	p := params(t, map[string]any{"i": i, "kind": o.kind})
	if o.cancel {
		id, err := s.startUntil(t.Context(), &kgwv1.StartExecutionRequest{Workflow: o.wf, Resources: res, Parameters: p}, "holding")
		if err != nil {
			t.Errorf("execution %d: %v", i, err)
			return
		}
		resp, err := s.ex.CancelExecution(t.Context(), &kgwv1.CancelExecutionRequest{ExecutionId: id})
		if err != nil {
			t.Errorf("CancelExecution %d: %v", i, err)
			return
		}
		x = resp.GetExecution()
	} else {
		req := &kgwv1.ExecuteWorkflowRequest{Workflow: o.wf, Resources: res, Parameters: p}
		if o.timeout > 0 {
			req.Timeout = durationpb.New(o.timeout)
		}
		resp, err := s.ex.ExecuteWorkflow(t.Context(), req)
		if err != nil {
			t.Errorf("ExecuteWorkflow %d: %v", i, err)
			return
		}
		x = resp.GetExecution()
	}
	ok := x.GetStatus() == o.status && (o.code == "" || x.GetError().GetCode() == o.code)
	if o.status == kgwv1.ExecutionStatus_EXECUTION_STATUS_COMPLETED {
		ok = ok && o.check(x.GetResult()["n"].AsMap(), i)
	}
	if !ok {
		t.Errorf("execution %d (%s %s): %v %v result %v; want %v code %q", i, o.wf, o.kind,
			x.GetStatus(), x.GetError(), x.GetResult(), o.status, o.code)
	}
}
