package main

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	kgw "github.com/kailash-gateway/kgw/clients/go"
	"github.com/kailash-gateway/kgw/internal/testenv"
)

// slowWorkflow registers, through c, a one-node workflow whose node sleeps
// for d.
func slowWorkflow(t *testing.T, c *kgw.Client, name string, d time.Duration) {
	t.Helper()
	wf, err := kgw.NewWorkflow(name).
		AddCode("slow", fmt.Sprintf("time.sleep(%g)\nresult = {\"attempt\": execution.attempt}", d.Seconds()), kgw.NodeTimeout(time.Minute)).
		Build()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Register(t.Context(), wf); err != nil {
		t.Fatal(err)
	}
}

// TestClusterBacklog: replica A, limited to 2 concurrent executions,
// accepts 8 StartExecution calls of a slow workflow. It runs 2 at a time
// and queues the rest in PostgreSQL; the idle replicas B and C take part
// of them at once (Execution.replica says who ran each), and all 8
// complete well before A alone could have run them.
func TestClusterBacklog(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three gateways")
	}
	gws, _, _ := startClusterWith(t, 3, func(i int) []string {
		if i == 0 {
			return []string{"--max-concurrent-executions", "2"}
		}
		return nil
	})
	cs := dialAll(t, gws)
	const node = 1500 * time.Millisecond
	slowWorkflow(t, cs[0], "slow_backlog", node)
	began := time.Now()
	var ids []string
	for range 8 {
		id, err := cs[0].Start(t.Context(), "slow_backlog")
		if err != nil {
			t.Fatalf("start on A: %v", err)
		}
		ids = append(ids, id)
	}
	type span struct{ start, end time.Time }
	byReplica := map[string][]span{}
	for _, id := range ids {
		ex := waitForEnd(t, cs[1], id)
		if ex.Status != kgw.StatusCompleted {
			t.Fatalf("execution %s: %s %+v", id, ex.Status, ex.Error)
		}
		r := ex.Proto.GetReplica()
		byReplica[r] = append(byReplica[r], span{ex.Proto.GetStartTime().AsTime(), ex.Proto.GetEndTime().AsTime()})
	}
	took := time.Since(began)
	counts := map[string]int{}
	for r, spans := range byReplica {
		counts[r] = len(spans)
	}
	t.Logf("executions per replica %v; all 8 ended after %v", counts, took)
	if counts["replica-b"]+counts["replica-c"] == 0 {
		t.Fatalf("A's backlog ran only on A (%v): the idle replicas took none", counts)
	}
	for r := range counts {
		if r != "replica-a" && r != "replica-b" && r != "replica-c" {
			t.Errorf("an execution reports replica %q", r)
		}
	}
	// A never ran more than 2 at once: at each start on A, count the
	// executions of A running then.
	a := byReplica["replica-a"]
	for _, s := range a {
		running := 0
		for _, o := range a {
			if !o.start.After(s.start) && o.end.After(s.start) {
				running++
			}
		}
		if running > 2 {
			t.Errorf("A ran %d executions at once (at %v), more than its limit of 2", running, s.start)
		}
	}
	// A alone would need 4 rounds of its 2 slots.
	if took >= 4*node {
		t.Errorf("the 8 executions took %v, as long as A alone would need (%v)", took, 4*node)
	}
}

// TestClusterDrainHandsOver: replica A is sent SIGTERM while its
// execution is in the middle of a slow node; A stops waiting for it after
// its short shutdown timeout and releases it, and B, woken by the store's
// notification, runs it to the end at once: well before the long lease
// timeout (30 s) that a takeover of a crashed replica would wait for.
func TestClusterDrainHandsOver(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two gateways")
	}
	const lease = 30 * time.Second
	gws, _, _ := startClusterWith(t, 2, func(int) []string {
		return []string{"--lease-timeout", lease.String(), "--shutdown-timeout", "300ms"}
	})
	cs := dialAll(t, gws)
	slowWorkflow(t, cs[0], "slow_drain", 2*time.Second)
	id, err := cs[0].Start(t.Context(), "slow_drain")
	if err != nil {
		t.Fatal(err)
	}
	waitForEvent(t, cs[1], id, kgw.EventNodeStarted, "slow")
	stopped := time.Now()
	if err := gws[0].Stop(); err != nil { // SIGTERM
		t.Fatal(err)
	}
	ex := waitForEnd(t, cs[1], id)
	took := time.Since(stopped)
	if ex.Status != kgw.StatusCompleted {
		t.Fatalf("status %s, error %+v", ex.Status, ex.Error)
	}
	if r := ex.Proto.GetReplica(); r != "replica-b" {
		t.Errorf("replica %q finished it, want replica-b", r)
	}
	t.Logf("completed by B %v after SIGTERM to A", took)
	if took > 8*time.Second {
		t.Errorf("B completed the execution %v after A was stopped; a hand-over at once takes the node's 2 s and a little", took)
	}
	checkHistory(t, cs[1], id)
}

// leaderGauge reads kgw_housekeeping_leader from a replica's /metrics:
// 1, 0, or -1 when the replica does not answer.
func leaderGauge(ctx context.Context, g *testenv.GatewayProcess) int {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+g.AdminAddr+"/metrics", nil)
	if err != nil {
		return -1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.WriteString(string(buf[:n]))
		if err != nil {
			break
		}
	}
	for _, line := range strings.Split(b.String(), "\n") {
		switch line {
		case "kgw_housekeeping_leader 1":
			return 1
		case "kgw_housekeeping_leader 0":
			return 0
		}
	}
	return -1
}

// TestClusterLeaderElection: of three replicas exactly one runs the lease
// scan and retention at any time (their kgw_housekeeping_leader gauges,
// sampled every 50 ms, never sum above 1, and the lease row names it);
// SIGKILLing the leader moves the leadership to another replica within
// the lease timeout and a heartbeat.
func TestClusterLeaderElection(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three gateways")
	}
	gws, _, pool := startCluster(t, 3)
	ctx := t.Context()
	names := []string{"replica-a", "replica-b", "replica-c"}
	// sample returns the leaders the live replicas report.
	sample := func(alive []int) []string {
		var leaders []string
		for _, i := range alive {
			if leaderGauge(ctx, gws[i]) == 1 {
				leaders = append(leaders, names[i])
			}
		}
		return leaders
	}
	watch := func(alive []int, d time.Duration, stopAt func([]string) bool) []string {
		deadline := time.Now().Add(d)
		var last []string
		for time.Now().Before(deadline) {
			last = sample(alive)
			if len(last) > 1 {
				t.Fatalf("two leaders at once: %v", last)
			}
			if stopAt != nil && stopAt(last) {
				return last
			}
			time.Sleep(50 * time.Millisecond)
		}
		return last
	}
	all := []int{0, 1, 2}
	leaders := watch(all, 2*clusterLease, func(l []string) bool { return len(l) == 1 })
	if len(leaders) != 1 {
		t.Fatalf("no replica became leader within %v", 2*clusterLease)
	}
	watch(all, clusterLease, nil) // stays one leader (checked at every sample)
	var holder string
	var live bool
	if err := pool.QueryRow(ctx, `SELECT holder, expires_at >= clock_timestamp() FROM leader_leases WHERE name = 'housekeeping'`).Scan(&holder, &live); err != nil {
		t.Fatal(err)
	}
	leader := leaders[0]
	if now := sample(all); len(now) != 1 || now[0] != holder || !live {
		t.Fatalf("replicas report leaders %v; the lease row names %q (live %v)", now, holder, live)
	}
	li := sort.SearchStrings(names, leader)
	var rest []int
	for _, i := range all {
		if i != li {
			rest = append(rest, i)
		}
	}
	killed := time.Now()
	if err := gws[li].Kill(); err != nil {
		t.Fatal(err)
	}
	// The lease runs out clusterLease after its last renewal; a follower
	// takes it at its next heartbeat (a fifth of the lease).
	limit := clusterLease + clusterLease/5 + time.Second
	next := watch(rest, limit, func(l []string) bool { return len(l) == 1 })
	if len(next) != 1 {
		t.Fatalf("no replica took over the leadership within %v of killing %s", limit, leader)
	}
	t.Logf("%s killed; %s leads %v later", leader, next[0], time.Since(killed))
	watch(rest, clusterLease, nil)
}
