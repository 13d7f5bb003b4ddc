package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	kgw "github.com/kailash-gateway/kgw/clients/go"
	"github.com/kailash-gateway/kgw/internal/testenv"
)

// waitForStart follows the execution's events until node starts with an
// attempt above after (events reach watchers once journalled) and returns
// that attempt.
func waitForStart(t *testing.T, c *kgw.Client, id, node string, after int) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for ev, err := range c.Watch(ctx, id, 0) {
		if err != nil {
			t.Fatalf("watch %s: %v", id, err)
		}
		if ev.Kind == kgw.EventNodeStarted && ev.NodeID == node && ev.Attempt > after {
			return ev.Attempt
		}
		if ev.Terminal() {
			t.Fatalf("execution ended before node %s started an attempt above %d", node, after)
		}
	}
	t.Fatalf("watch %s ended before node %s started an attempt above %d", id, node, after)
	return 0
}

// TestRestartLimitEndsKillLoop runs a node that holds until the test kills
// the gateway, as a node that crashes the process at every start would:
// SIGKILLed while the node runs, the restarted gateway resumes the
// execution twice (--max-node-restarts 2), a graceful SIGTERM in between
// does not count, and after the third kill recovery fails the execution
// with RESTART_LIMIT instead of running the node again. The gateway keeps
// serving other executions.
func TestRestartLimitEndsKillLoop(t *testing.T) {
	gw := testenv.Gateway(t, testenv.WithGatewayArgs("--max-node-restarts", "2", "--shutdown-timeout", "1s"))
	ctx := t.Context()
	client, err := kgw.Dial(ctx, gw.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	b := kgw.NewWorkflow("kill_loop")
	b.AddCode("boom", "time.sleep(600)\nresult = {}", kgw.NodeTimeout(15*time.Minute))
	wf, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Register(ctx, wf); err != nil {
		t.Fatal(err)
	}
	id, err := client.Start(ctx, "kill_loop")
	if err != nil {
		t.Fatal(err)
	}
	attempt := waitForStart(t, client, id, "boom", 0)
	for i, step := range []struct {
		name string
		stop func() error
	}{
		{"SIGKILL 1", gw.Kill},
		{"SIGTERM", gw.Stop},
		{"SIGKILL 2", gw.Kill},
	} {
		if err := step.stop(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if err := gw.Start(); err != nil {
			t.Fatalf("start after %s: %v", step.name, err)
		}
		next := waitForStart(t, client, id, "boom", attempt)
		t.Logf("step %d (%s): attempt %d after %d", i, step.name, next, attempt)
		attempt = next
	}
	if err := gw.Kill(); err != nil { // the third crash: one more than allowed
		t.Fatal(err)
	}
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	wantRestartLimit(t, waitForEnd(t, client, id))
	// It stays failed: a further restart does not resume it.
	if err := gw.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	if again := waitForEnd(t, client, id); again.Status != kgw.StatusFailed || again.Error.Code != "RESTART_LIMIT" {
		t.Errorf("after another restart: %s %+v", again.Status, again.Error)
	}
	checkStillServing(t, client)
}

// wantRestartLimit checks that ex, whose node boom was running at each of
// three kills of a gateway with --max-node-restarts 2, failed with
// RESTART_LIMIT saying so.
func wantRestartLimit(t *testing.T, ex *kgw.Execution) {
	t.Helper()
	if ex.Status != kgw.StatusFailed || ex.Error == nil {
		t.Fatalf("after the third kill: status %s, error %+v; want FAILED", ex.Status, ex.Error)
	}
	for _, want := range []string{"crashed or was killed 3 times", "more than the 2 restarts allowed (--max-node-restarts)", "node 'boom' was running"} {
		if !strings.Contains(ex.Error.Message, want) {
			t.Errorf("error message %q does not say %q", ex.Error.Message, want)
		}
	}
	if ex.Error.Code != "RESTART_LIMIT" || ex.Error.NodeID != "boom" {
		t.Errorf("error = %+v, want code RESTART_LIMIT on node boom", ex.Error)
	}
	if len(ex.Nodes) != 1 || ex.Nodes[0].Status != kgw.NodeStatusFailed {
		t.Errorf("nodes = %+v, want boom FAILED", ex.Nodes)
	}
}

// checkStillServing registers and runs a one-node workflow through client.
func checkStillServing(t *testing.T, client *kgw.Client) {
	t.Helper()
	ok := kgw.NewWorkflow("still_serving")
	ok.AddCode("n", `result = {"ok": True}`)
	okWF, err := ok.Build()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Register(t.Context(), okWF); err != nil {
		t.Fatal(err)
	}
	res, err := client.Execute(t.Context(), "still_serving")
	if err != nil || res.Status != kgw.StatusCompleted {
		t.Fatalf("Execute after the failed execution = %+v, %v", res, err)
	}
}

// attemptNodeCode records every run of a node with its execution.attempt
// in PostgreSQL (the serial id gives the order of the runs), then takes a
// few milliseconds.
const attemptNodeCode = `
db = get_resource("db")
db.execute("INSERT INTO attempts (exec_id, node, attempt) VALUES ($1, $2, $3)",
           execution.id, execution.node, execution.attempt)
time.sleep(0.003)
result = {"attempt": execution.attempt}
`

// TestAttemptsGrowAcrossKills SIGKILLs a gateway again and again while
// executions of millisecond nodes run; each node records execution.attempt
// in PostgreSQL as it runs. A node whose run was not yet journalled when
// the gateway died runs again after the restart, and every such re-run
// must record a higher attempt than the run before it, even when the
// earlier run's start never reached the journal. It runs on both stores:
// on PostgreSQL the gateway restarts under the same --replica-name, so it
// takes its executions back at start-up (store.ReclaimExecutions) and
// queued ones from the backlog.
func TestAttemptsGrowAcrossKills(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testAttemptsGrowAcrossKills(t, "") })
	t.Run("postgres", func(t *testing.T) {
		testAttemptsGrowAcrossKills(t, testenv.Postgres(t).NewDatabase(t))
	})
}

// testAttemptsGrowAcrossKills is TestAttemptsGrowAcrossKills on the
// gateway's store storeDSN ("" = its own SQLite file).
func testAttemptsGrowAcrossKills(t *testing.T, storeDSN string) {
	pg := testenv.Postgres(t)
	dsn := pg.NewDatabase(t)
	ctx := t.Context()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `CREATE TABLE attempts (id bigserial PRIMARY KEY, exec_id text, node text, attempt int)`); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}

	opts := []testenv.GatewayOption{testenv.WithGatewayArgs("--max-node-restarts", "-1",
		"--replica-name", "attempts-gw", "--lease-timeout", "2s", "--recovery-interval", "500ms")}
	if storeDSN != "" {
		opts = append(opts, testenv.WithGatewayStore(storeDSN))
	}
	gw := testenv.Gateway(t, opts...)
	client, err := kgw.Dial(ctx, gw.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.StoreSecret(ctx, "attempts_db", map[string]any{"user": "postgres", "password": "unused"}); err != nil {
		t.Fatal(err)
	}
	registerFastChain(t, client)
	db := kgw.DatabaseSpec{Host: "127.0.0.1", Port: port, Database: strings.TrimPrefix(u.Path, "/"), CredentialsRef: "attempts_db"}

	var ids []string
	reruns := 0
	for round := 0; round < 12 && (round < 4 || reruns < 3); round++ {
		for range 3 {
			id, err := client.Start(ctx, "fast_chain", kgw.Resource("db", db))
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		time.Sleep(time.Duration(40+17*round) * time.Millisecond)
		if err := gw.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := gw.Start(); err != nil {
			t.Fatal(err)
		}
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM attempts GROUP BY exec_id, node HAVING count(*) > 1) r`).Scan(&reruns); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		if ex := waitForEnd(t, client, id); ex.Status != kgw.StatusCompleted {
			t.Fatalf("execution %s: %s %+v", id, ex.Status, ex.Error)
		}
	}
	if reruns == 0 {
		t.Fatalf("no node ran twice in %d executions: the kills never caught a node mid-run, the test shows nothing", len(ids))
	}

	runs := checkAttemptsGrow(t, pool)
	t.Logf("%d executions, %d node runs, %d nodes ran more than once", len(ids), runs, reruns)
}

// registerFastChain registers workflow fast_chain: a chain of 40
// attemptNodeCode nodes, each using resource db.
func registerFastChain(t *testing.T, client *kgw.Client) {
	t.Helper()
	const chain = 40
	b := kgw.NewWorkflow("fast_chain")
	for i := 1; i <= chain; i++ {
		b.AddCode(fmt.Sprintf("n%d", i), attemptNodeCode, kgw.RequiredResources("db"))
		if i > 1 {
			b.Connect(fmt.Sprintf("n%d", i-1), "attempt", fmt.Sprintf("n%d", i), "previous")
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

// checkAttemptsGrow checks the runs recorded in table attempts: each run
// of a node of an execution has a higher attempt than the run before it.
// It returns the number of runs.
func checkAttemptsGrow(t *testing.T, pool *pgxpool.Pool) (runs int) {
	t.Helper()
	rows, err := pool.Query(t.Context(), `SELECT exec_id, node, attempt FROM attempts ORDER BY exec_id, node, id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	type key struct{ exec, node string }
	last := map[key]int{}
	runs = 0
	for rows.Next() {
		var k key
		var attempt int
		if err := rows.Scan(&k.exec, &k.node, &attempt); err != nil {
			t.Fatal(err)
		}
		runs++
		if prev, ok := last[k]; ok && attempt <= prev {
			t.Errorf("execution %s node %s ran as attempt %d after a run as attempt %d", k.exec, k.node, attempt, prev)
		}
		last[k] = attempt
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return runs
}

// A gateway whose admin address is not loopback says so in its log; one
// on loopback does not. (Nothing is sent to the wildcard address.)
func TestAdminAddressWarning(t *testing.T) {
	const warning = "the admin address is not loopback"
	exposed := testenv.Gateway(t, testenv.WithGatewayArgs("--admin-addr", "0.0.0.0:0"))
	if !exposed.WaitLog(warning, 10*time.Second) {
		t.Errorf("no warning for admin address 0.0.0.0:0 in:\n%s", exposed.Logs())
	}
	quiet := testenv.Gateway(t)
	if strings.Contains(quiet.Logs(), warning) {
		t.Errorf("warning for the default loopback admin address:\n%s", quiet.Logs())
	}
}

// A real gateway's SQLite database, WAL and shared-memory files are
// readable by their owner only (the test process's umask is usually 022).
func TestDatabaseFileModes(t *testing.T) {
	old := syscall.Umask(0o022) // inherited by the gateway process
	defer syscall.Umask(old)
	gw := testenv.Gateway(t)
	client, err := kgw.Dial(t.Context(), gw.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	b := kgw.NewWorkflow("modes")
	b.AddCode("n", `result = {"ok": True}`)
	wf, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Register(t.Context(), wf); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Execute(t.Context(), "modes"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"kgw.db", "kgw.db-wal", "kgw.db-shm"} {
		fi, err := os.Stat(filepath.Join(gw.DataDir, name))
		if err != nil {
			t.Errorf("stat %s: %v", name, err)
			continue
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("mode of %s = %o, want 600", name, got)
		}
	}
	if fi, err := os.Stat(gw.DataDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir: %v, %v; want mode 700", fi.Mode().Perm(), err)
	}
}
