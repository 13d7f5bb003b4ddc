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
	cs := dialAll(t, gws)
	ctx := t.Context()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs[0].StoreSecret(ctx, "runs_db", map[string]any{"user": "postgres", "password": "unused"}); err != nil {
		t.Fatal(err)
	}
	b := kgw.NewWorkflow("cluster_chain")
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
	if _, err := cs[0].Register(ctx, wf); err != nil { // registered on A
		t.Fatal(err)
	}
	db := kgw.DatabaseSpec{Host: "127.0.0.1", Port: port, Database: strings.TrimPrefix(u.Path, "/"), CredentialsRef: "runs_db"}

	t.Run("register on A, execute on B", func(t *testing.T) {
		id, err := cs[1].Start(ctx, "cluster_chain", kgw.Params(map[string]any{"gate": "none", "mode": "before"}), kgw.Resource("db", db))
		if err != nil {
			t.Fatalf("start on B right after registering on A: %v", err)
		}
		ex := waitForEnd(t, cs[1], id)
		if ex.Status != kgw.StatusCompleted {
			t.Fatalf("status %s, error %+v", ex.Status, ex.Error)
		}
		if r := ex.Proto.GetReplica(); r != "replica-b" {
			t.Errorf("Execution.replica = %q, want replica-b (where it was started)", r)
		}
	})

	// checkOnce checks that the nodes of id ran once each, except twice.
	checkOnce := func(t *testing.T, id, twice string) {
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

	t.Run("cancel from C", func(t *testing.T) {
		id, err := cs[0].Start(ctx, "cluster_chain", kgw.Params(map[string]any{"gate": "n2", "mode": "before"}), kgw.Resource("db", db))
		if err != nil {
			t.Fatal(err)
		}
		waitForEvent(t, cs[0], id, kgw.EventNodeStarted, "n2")
		began := time.Now()
		ex, err := cs[2].CancelExecution(ctx, id)
		if err != nil {
			t.Fatalf("cancel on C of an execution running on A: %v", err)
		}
		if took := time.Since(began); took > time.Second {
			t.Errorf("cancel took %v, want within a second", took)
		}
		if ex.Status != kgw.StatusCancelled {
			t.Errorf("status after cancel from C = %s, want CANCELLED", ex.Status)
		}
		if got, err := cs[0].GetExecution(ctx, id); err != nil || got.Status != kgw.StatusCancelled {
			t.Errorf("GetExecution on A = %v, %v; want CANCELLED", got, err)
		}
		checkHistory(t, cs[1], id)
	})

	t.Run("SIGKILL mid-node", func(t *testing.T) {
		id, err := cs[0].Start(ctx, "cluster_chain", kgw.Params(map[string]any{"gate": "n3", "mode": "after"}), kgw.Resource("db", db))
		if err != nil {
			t.Fatal(err)
		}
		waitForEvent(t, cs[0], id, kgw.EventNodeStarted, "n3")
		waitForRun(t, pool, id, "n3")
		if err := gws[0].Kill(); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		if _, err := pool.Exec(ctx, `INSERT INTO released (exec_id) VALUES ($1)`, id); err != nil {
			t.Fatal(err)
		}
		ex := waitForEnd(t, cs[1], id)
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
		checkOnce(t, id, "n3")
		checkHistory(t, cs[2], id)
		if err := gws[0].Start(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("SIGSTOP past the lease, then SIGCONT", func(t *testing.T) {
		c0, err := kgw.Dial(ctx, gws[0].Addr) // A was restarted
		if err != nil {
			t.Fatal(err)
		}
		defer c0.Close()
		id, err := c0.Start(ctx, "cluster_chain", kgw.Params(map[string]any{"gate": "n3", "mode": "after"}), kgw.Resource("db", db))
		if err != nil {
			t.Fatal(err)
		}
		waitForEvent(t, c0, id, kgw.EventNodeStarted, "n3")
		waitForRun(t, pool, id, "n3")
		if err := gws[0].Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		continued := false
		cont := func() {
			if !continued {
				continued = true
				if err := gws[0].Signal(syscall.SIGCONT); err != nil {
					t.Error(err)
				}
			}
		}
		defer cont()
		if _, err := pool.Exec(ctx, `INSERT INTO released (exec_id) VALUES ($1)`, id); err != nil {
			t.Fatal(err)
		}
		ex := waitForEnd(t, cs[1], id) // taken over by B or C while A is paused
		if ex.Status != kgw.StatusCompleted {
			t.Fatalf("status %s, error %+v", ex.Status, ex.Error)
		}
		cont()
		// A's held n3 attempt now completes; its write is fenced and it runs
		// nothing further. Give it time to try.
		time.Sleep(clusterLease)
		after, err := c0.GetExecution(ctx, id) // A still serves
		if err != nil {
			t.Fatalf("GetExecution on the continued replica: %v", err)
		}
		if after.Status != kgw.StatusCompleted {
			t.Errorf("status after A continued = %s, want still completed", after.Status)
		}
		checkOnce(t, id, "n3")
		checkHistory(t, cs[2], id)
		checkHistory(t, c0, id)
	})
}
