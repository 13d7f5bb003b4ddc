package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	kgw "github.com/kailash-gateway/kgw/clients/go"
	"github.com/kailash-gateway/kgw/internal/testenv"
)

// clusterLease is the lease timeout of the test replicas: short, so that
// takeovers happen within the test's time.
const clusterLease = 2 * time.Second

// startCluster starts n `kgw serve` replicas on one PostgreSQL database
// (sharing a master key) with short leases and recovery scans, and returns
// them with the database's DSN and a pool on it holding the tables the
// crash chain's nodes write (runs, released).
func startCluster(t *testing.T, n int) ([]*testenv.GatewayProcess, string, *pgxpool.Pool) {
	t.Helper()
	return startClusterWith(t, n, nil)
}

// startClusterWith is startCluster with extra(i) appended to the arguments
// of replica i (after the defaults, so they win).
func startClusterWith(t *testing.T, n int, extra func(i int) []string) ([]*testenv.GatewayProcess, string, *pgxpool.Pool) {
	t.Helper()
	dsn := testenv.Postgres(t).NewDatabase(t)
	pool, err := pgxpool.New(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pool.Exec(t.Context(), `CREATE TABLE runs (exec_id text, node text, attempt int); CREATE TABLE released (exec_id text)`); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	var gws []*testenv.GatewayProcess
	for i := range n {
		args := []string{"--replica-name", fmt.Sprintf("replica-%c", 'a'+i),
			"--lease-timeout", clusterLease.String(), "--recovery-interval", "500ms"}
		if extra != nil {
			args = append(args, extra(i)...)
		}
		gws = append(gws, testenv.Gateway(t, testenv.WithGatewayStore(dsn),
			testenv.WithGatewayEnv("KGW_MASTER_KEY="+base64.StdEncoding.EncodeToString(key)),
			testenv.WithGatewayArgs(args...)))
	}
	return gws, dsn, pool
}

func dialAll(t *testing.T, gws []*testenv.GatewayProcess) []*kgw.Client {
	t.Helper()
	var out []*kgw.Client
	for _, g := range gws {
		c, err := kgw.Dial(t.Context(), g.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		out = append(out, c)
	}
	return out
}

// checkHistory checks that the journalled history of id, read through c,
// has dense seqs and exactly one terminal event, the last.
func checkHistory(t *testing.T, c *kgw.Client, id string) {
	t.Helper()
	var seqs []int64
	terminals := 0
	for ev, err := range c.Watch(t.Context(), id, 0) {
		if err != nil {
			t.Fatalf("watch %s: %v", id, err)
		}
		seqs = append(seqs, ev.Seq)
		if ev.Terminal() {
			terminals++
		}
	}
	for i, s := range seqs {
		if s != int64(i+1) {
			t.Fatalf("history of %s: seqs %v are not dense", id, seqs)
		}
	}
	if terminals != 1 {
		t.Errorf("history of %s has %d terminal events, want 1", id, terminals)
	}
}

// TestClusterTakeover runs three real replicas on one PostgreSQL store: a
// workflow registered on A runs at once on B; a replica SIGKILLed while a
// node holds is taken over by another within the lease timeout plus a scan,
// every completed node ran once (counted by the nodes in PostgreSQL); a
// replica SIGSTOPped past its lease is taken over and, once continued,
// writes nothing more to the execution (one consistent history) and still
// serves.
func TestClusterTakeover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three gateways")
	}
	gws, dsn, pool := startCluster(t, 3)
	k := &takeover{gws: gws, cs: dialAll(t, gws), pool: pool}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.cs[0].StoreSecret(t.Context(), "runs_db", map[string]any{"user": "postgres", "password": "unused"}); err != nil {
		t.Fatal(err)
	}
	registerCrashChain(t, k.cs[0], "cluster_chain") // registered on A
	k.db = kgw.DatabaseSpec{Host: "127.0.0.1", Port: port, Database: strings.TrimPrefix(u.Path, "/"), CredentialsRef: "runs_db"}

	t.Run("register on A, execute on B", k.executeElsewhere)
	t.Run("cancel from C", k.cancelFromC)
	t.Run("SIGKILL mid-node", k.killMidNode)
	t.Run("SIGSTOP past the lease, then SIGCONT", k.stopPastLease)
}

// takeover is the cluster of TestClusterTakeover: replicas A, B and C
// (gws, dialed as cs) on one database, workflow cluster_chain registered,
// pool on the database of its node's table runs, db the resource spec of
// that database.
type takeover struct {
	gws  []*testenv.GatewayProcess
	cs   []*kgw.Client
	pool *pgxpool.Pool
	db   kgw.DatabaseSpec
}

// executeElsewhere starts on B, right after registering on A; the
// execution completes on B.
func (k *takeover) executeElsewhere(t *testing.T) {
	id, err := k.cs[1].Start(t.Context(), "cluster_chain", kgw.Params(map[string]any{"gate": "none", "mode": "before"}), kgw.Resource("db", k.db))
	if err != nil {
		t.Fatalf("start on B right after registering on A: %v", err)
	}
	ex := waitForEnd(t, k.cs[1], id)
	if ex.Status != kgw.StatusCompleted {
		t.Fatalf("status %s, error %+v", ex.Status, ex.Error)
	}
	if r := ex.Proto.GetReplica(); r != "replica-b" {
		t.Errorf("Execution.replica = %q, want replica-b (where it was started)", r)
	}
}

// cancelFromC cancels on C an execution running on A, within a second.
func (k *takeover) cancelFromC(t *testing.T) {
	id, err := k.cs[0].Start(t.Context(), "cluster_chain", kgw.Params(map[string]any{"gate": "n2", "mode": "before"}), kgw.Resource("db", k.db))
	if err != nil {
		t.Fatal(err)
	}
	waitForEvent(t, k.cs[0], id, kgw.EventNodeStarted, "n2")
	began := time.Now()
	ex, err := k.cs[2].CancelExecution(t.Context(), id)
	if err != nil {
		t.Fatalf("cancel on C of an execution running on A: %v", err)
	}
	if took := time.Since(began); took > time.Second {
		t.Errorf("cancel took %v, want within a second", took)
	}
	if ex.Status != kgw.StatusCancelled {
		t.Errorf("status after cancel from C = %s, want CANCELLED", ex.Status)
	}
	if got, err := k.cs[0].GetExecution(t.Context(), id); err != nil || got.Status != kgw.StatusCancelled {
		t.Errorf("GetExecution on A = %v, %v; want CANCELLED", got, err)
	}
	checkHistory(t, k.cs[1], id)
}

// killMidNode SIGKILLs A while a node runs: B or C takes the execution
// over within the lease and completes it, the node run twice.
func (k *takeover) killMidNode(t *testing.T) {
	id, err := k.cs[0].Start(t.Context(), "cluster_chain", kgw.Params(map[string]any{"gate": "n3", "mode": "after"}), kgw.Resource("db", k.db))
	if err != nil {
		t.Fatal(err)
	}
	waitForEvent(t, k.cs[0], id, kgw.EventNodeStarted, "n3")
	waitForRun(t, k.pool, id, "n3")
	if err := k.gws[0].Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if _, err := k.pool.Exec(t.Context(), `INSERT INTO released (exec_id) VALUES ($1)`, id); err != nil {
		t.Fatal(err)
	}
	ex := waitForEnd(t, k.cs[1], id)
	// Lease timeout + one scan (500 ms) + the rest of the chain.
	if took := time.Since(killed); took > clusterLease+5*time.Second {
		t.Errorf("completed %v after the kill, want within the lease (%v) plus a scan and the chain", took, clusterLease)
	}
	if ex.Status != kgw.StatusCompleted {
		t.Fatalf("status %s, error %+v", ex.Status, ex.Error)
	}
	if r := ex.Proto.GetReplica(); r != "replica-b" && r != "replica-c" {
		t.Errorf("Execution.replica = %q, want the replica that took over (replica-b or replica-c)", r)
	}
	checkRanOnce(t, k.pool, id, "n3")
	checkHistory(t, k.cs[2], id)
	if err := k.gws[0].Start(); err != nil {
		t.Fatal(err)
	}
}

// stopPastLease pauses A (SIGSTOP) past the lease while a node runs: B or
// C takes over and completes the execution; A, continued, runs nothing
// further and still serves.
func (k *takeover) stopPastLease(t *testing.T) {
	c0, err := kgw.Dial(t.Context(), k.gws[0].Addr) // A was restarted
	if err != nil {
		t.Fatal(err)
	}
	defer c0.Close()
	id, err := c0.Start(t.Context(), "cluster_chain", kgw.Params(map[string]any{"gate": "n3", "mode": "after"}), kgw.Resource("db", k.db))
	if err != nil {
		t.Fatal(err)
	}
	waitForEvent(t, c0, id, kgw.EventNodeStarted, "n3")
	waitForRun(t, k.pool, id, "n3")
	if err := k.gws[0].Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	continued := false
	cont := func() {
		if !continued {
			continued = true
			if err := k.gws[0].Signal(syscall.SIGCONT); err != nil {
				t.Error(err)
			}
		}
	}
	defer cont()
	if _, err := k.pool.Exec(t.Context(), `INSERT INTO released (exec_id) VALUES ($1)`, id); err != nil {
		t.Fatal(err)
	}
	ex := waitForEnd(t, k.cs[1], id) // taken over by B or C while A is paused
	if ex.Status != kgw.StatusCompleted {
		t.Fatalf("status %s, error %+v", ex.Status, ex.Error)
	}
	cont()
	// A's held n3 attempt now completes; its write is fenced and it runs
	// nothing further. Give it time to try.
	time.Sleep(clusterLease)
	after, err := c0.GetExecution(t.Context(), id) // A still serves
	if err != nil {
		t.Fatalf("GetExecution on the continued replica: %v", err)
	}
	if after.Status != kgw.StatusCompleted {
		t.Errorf("status after A continued = %s, want still completed", after.Status)
	}
	checkRanOnce(t, k.pool, id, "n3")
	checkHistory(t, k.cs[2], id)
	checkHistory(t, c0, id)
}
