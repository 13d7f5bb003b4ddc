package main

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	kgw "github.com/kailash-gateway/kgw/clients/go"
	"github.com/kailash-gateway/kgw/internal/testenv"
)

// crashNodeCode is the code of every node of the crash chain. Each run
// records itself in PostgreSQL. The node named by the "gate" parameter
// holds, before its insert ("before") or after it ("after"), until the test
// releases its execution (a row in released), which it does once it has
// killed the gateway: the first process is killed while the node holds,
// and a run after the restart goes straight through.
const crashNodeCode = `
db = get_resource("db")
def hold():
    for _ in range(2400):
        if db.fetchval("SELECT count(*) FROM released WHERE exec_id = $1", execution.id) > 0:
            return
        time.sleep(0.05)
gate = execution.node == parameters["gate"]
if gate and parameters["mode"] == "before":
    hold()
db.execute("INSERT INTO runs (exec_id, node, attempt) VALUES ($1, $2, $3)",
           execution.id, execution.node, execution.attempt)
if gate and parameters["mode"] == "after":
    hold()
result = {"node": execution.node}
`

// TestCrashRecovery kills a real `kgw serve` with SIGKILL at several points
// of a five-node chain, restarts it on the same data directory, and checks
// from PostgreSQL's record of node runs that every execution completed, that
// finished nodes ran exactly once and that only the interrupted node ran
// again.
func TestCrashRecovery(t *testing.T) {
	ctx := t.Context()
	pool, port, dbName := newRunsDB(t, testenv.Postgres(t))

	gw := testenv.Gateway(t)
	client, err := kgw.Dial(ctx, gw.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.StoreSecret(ctx, "runs_db", map[string]any{"user": "postgres", "password": "unused"}); err != nil {
		t.Fatal(err)
	}
	registerCrashChain(t, client, "crash_chain")
	db := kgw.DatabaseSpec{Host: "127.0.0.1", Port: port, Database: dbName, CredentialsRef: "runs_db"}

	cases := []struct {
		name string
		gate string // node that holds while the gateway is killed
		mode string // "before" or "after" the node's insert
		// killAfter is the event that must have been seen before the kill.
		killAfter kgw.EventKind
		killNode  string
		twice     string // node expected to run twice ("" = none)
	}{
		{name: "before the first node", gate: "n1", mode: "before", killAfter: kgw.EventNodeStarted, killNode: "n1"},
		{name: "between nodes", gate: "n3", mode: "before", killAfter: kgw.EventNodeCompleted, killNode: "n2"},
		{name: "mid-node", gate: "n3", mode: "after", killAfter: kgw.EventNodeStarted, killNode: "n3", twice: "n3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := client.Start(ctx, "crash_chain",
				kgw.Params(map[string]any{"gate": tc.gate, "mode": tc.mode}),
				kgw.Resource("db", db))
			if err != nil {
				t.Fatal(err)
			}
			waitForEvent(t, client, id, tc.killAfter, tc.killNode)
			if tc.twice != "" {
				waitForRun(t, pool, id, tc.twice)
			}
			if err := gw.Kill(); err != nil {
				t.Fatal(err)
			}
			if _, err := pool.Exec(ctx, `INSERT INTO released (exec_id) VALUES ($1)`, id); err != nil {
				t.Fatal(err)
			}
			if err := gw.Start(); err != nil {
				t.Fatal(err)
			}
			checkRecovered(t, pool, id, waitForEnd(t, client, id), tc.twice)
		})
	}
}

// newRunsDB creates a database on pg with the tables runs and released of
// crashNodeCode, and returns a pool on it (closed at the end of the test),
// its port and its name.
func newRunsDB(t *testing.T, pg *testenv.PostgresServer) (pool *pgxpool.Pool, port int, dbName string) {
	t.Helper()
	dsn := pg.NewDatabase(t)
	pool, err := pgxpool.New(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pool.Exec(t.Context(), `CREATE TABLE runs (exec_id text, node text, attempt int); CREATE TABLE released (exec_id text)`); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if port, err = strconv.Atoi(u.Port()); err != nil {
		t.Fatal(err)
	}
	return pool, port, strings.TrimPrefix(u.Path, "/")
}

// registerCrashChain registers workflow name: five crashNodeCode nodes
// (n1 to n5) in a chain, each using resource db.
func registerCrashChain(t *testing.T, client *kgw.Client, name string) {
	t.Helper()
	b := kgw.NewWorkflow(name)
	for i := 1; i <= 5; i++ {
		b.AddCode(fmt.Sprintf("n%d", i), crashNodeCode, kgw.RequiredResources("db"), kgw.NodeTimeout(3*time.Minute))
		if i > 1 {
			b.Connect(fmt.Sprintf("n%d", i-1), "node", fmt.Sprintf("n%d", i), "previous")
		}
	}
	wf, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Register(t.Context(), wf); err != nil {
		t.Fatal(err)
	}
}

// checkRecovered checks execution id (ex) of crash_chain after the gateway
// was killed and restarted: completed with every node's result, each node
// run once but twice (or none), as recorded in pool's table runs.
func checkRecovered(t *testing.T, pool *pgxpool.Pool, id string, ex *kgw.Execution, twice string) {
	t.Helper()
	if ex.Status != kgw.StatusCompleted {
		t.Fatalf("after restart: status %s, error %+v", ex.Status, ex.Error)
	}
	for i := 1; i <= 5; i++ {
		node := fmt.Sprintf("n%d", i)
		if got := ex.Result[node]["node"]; got != node {
			t.Errorf("result[%s] = %v, want node %s", node, ex.Result[node], node)
		}
	}
	checkRanOnce(t, pool, id, twice)
}

// checkRanOnce checks that the nodes n1 to n5 of execution id ran once
// each, as recorded in pool's table runs, except twice (if not "") twice.
func checkRanOnce(t *testing.T, pool *pgxpool.Pool, id, twice string) {
	t.Helper()
	counts := runCounts(t, pool, id)
	for i := 1; i <= 5; i++ {
		node := fmt.Sprintf("n%d", i)
		want := 1
		if node == twice {
			want = 2
		}
		if counts[node] != want {
			t.Errorf("node %s ran %d times, want %d (all runs: %v)", node, counts[node], want, counts)
		}
	}
}

// waitForEvent follows the execution's events until one of kind for node
// has been journalled (events reach watchers only after that).
func waitForEvent(t *testing.T, c *kgw.Client, id string, kind kgw.EventKind, node string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for ev, err := range c.Watch(ctx, id, 0) {
		if err != nil {
			t.Fatalf("watch %s: %v", id, err)
		}
		if ev.Kind == kind && ev.NodeID == node {
			return
		}
		if ev.Terminal() {
			t.Fatalf("execution ended before %v of %s", kind, node)
		}
	}
	t.Fatalf("watch %s ended before %v of %s", id, kind, node)
}

// waitForRun waits until node has recorded a run of execution id.
func waitForRun(t *testing.T, pool *pgxpool.Pool, id, node string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if runCounts(t, pool, id)[node] > 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("node %s of %s never recorded its run", node, id)
}

// waitForEnd waits until the restarted gateway has finished execution id.
func waitForEnd(t *testing.T, c *kgw.Client, id string) *kgw.Execution {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	for {
		ex, err := c.GetExecution(ctx, id)
		if err != nil {
			t.Fatalf("get execution %s after restart: %v", id, err)
		}
		if ex.Status.Terminal() {
			return ex
		}
		select {
		case <-ctx.Done():
			t.Fatalf("execution %s still %s after restart", id, ex.Status)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// runCounts returns how often each node of execution id recorded a run.
func runCounts(t *testing.T, pool *pgxpool.Pool, id string) map[string]int {
	t.Helper()
	rows, err := pool.Query(t.Context(), `SELECT node, count(*) FROM runs WHERE exec_id = $1 GROUP BY node`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	counts := map[string]int{}
	for rows.Next() {
		var node string
		var n int
		if err := rows.Scan(&node, &n); err != nil {
			t.Fatal(err)
		}
		counts[node] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return counts
}
