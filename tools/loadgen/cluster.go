package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
	"github.com/kailash-gateway/kgw/internal/testenv"
)

// The cluster benchmark (loadgen -cluster, make bench-cluster) runs two
// `kgw serve` replicas on one PostgreSQL database and measures
//
//   - durable no-op ExecuteWorkflow throughput with one replica and with
//     two (the callers split in halves, each half calling one replica),
//     in turns, and the throughput per replica;
//   - cross-replica watch latency: executions started on replica A are
//     watched at once from A and from B, and each event's latency is the
//     time B's watcher received it minus the time A's watcher received it,
//     both clocks being this process's. A's watcher follows the run in
//     A's memory, so it sees an event right after A commits it: the
//     difference is what the cross-replica path adds (NOTIFY to B, B's read
//     of the events, the stream), not the journal commit itself. Events are
//     counted only once B's watcher has received its first event (so B
//     follows the execution live, not replaying history), and A's and B's
//     histories must be identical (dense seqs, the same kinds). A second
//     watcher on A, compared with the first, gives the noise floor of
//     this process (the control-* figures).
//
// On the development machine every process (PostgreSQL, both replicas and
// this load generator) shares two cores, so the figures show the cost of
// running as a cluster, not scale-out; the lines say so.

// clusterConfig is the cluster benchmark's part of the options.
type clusterConfig struct {
	callers      int           // no-op callers in total (halved with two replicas)
	window       time.Duration // measured time per round and side
	rounds       int           // rounds of one replica / two replicas, in turns
	watchWindow  time.Duration // time spent watching, per variant
	watchNodes   int           // nodes of the watched workflow
	watchSpacing time.Duration // how long each watched node sleeps
	watchPar     int           // executions watched at a time
	loadCallers  int           // no-op callers per replica during the loaded watch variant
}

// clusterLabel is printed before and after the cluster benchmark's lines,
// for the reader.
const clusterLabel = "# cluster: measured on 2 cores shared by PostgreSQL, both replicas and the load generator: these figures show the overhead of running as a cluster, not scale-out"

// replica is one `kgw serve` of the cluster with a connection to it.
type replica struct {
	name string
	proc *testenv.GatewayProcess
	conn *grpc.ClientConn
	exec kgwv1.ExecutionServiceClient
}

func startReplica(bin, dsn, key, name string) (*replica, error) {
	p, err := testenv.StartGateway(testenv.WithGatewayBinary(bin), testenv.WithGatewayStore(dsn),
		testenv.WithGatewayEnv("KGW_MASTER_KEY="+key, "KGW_REPLICA_NAME="+name))
	if err != nil {
		return nil, fmt.Errorf("start replica %s: %w", name, err)
	}
	r := &replica{name: name, proc: p}
	if err := r.dial(); err != nil {
		_ = p.Close()
		return nil, err
	}
	return r, nil
}

// dial opens a fresh connection (after a restart: an old connection would
// wait for its reconnection back-off).
func (r *replica) dial() error {
	if r.conn != nil {
		_ = r.conn.Close()
	}
	conn, err := grpc.NewClient(r.proc.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	r.conn, r.exec = conn, kgwv1.NewExecutionServiceClient(conn)
	return nil
}

// restart stops the replica (if it runs) and starts it again, with a
// fresh connection.
func (r *replica) restart() error {
	if err := r.proc.Stop(); err != nil {
		return fmt.Errorf("stop %s: %w", r.name, err)
	}
	if err := r.proc.Start(); err != nil {
		return fmt.Errorf("start %s: %w", r.name, err)
	}
	return r.dial()
}

func (r *replica) close() {
	_ = r.conn.Close()
	if err := r.proc.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: replica %s: %v\n", r.name, err)
	}
}

func (r *replica) noop() call {
	req := &kgwv1.ExecuteWorkflowRequest{Workflow: "bench_noop"}
	return func(ctx context.Context) error {
		resp, err := r.exec.ExecuteWorkflow(ctx, req)
		if err != nil {
			return err
		}
		if st := resp.GetExecution().GetStatus(); st != kgwv1.ExecutionStatus_EXECUTION_STATUS_COMPLETED {
			return fmt.Errorf("bench_noop on %s: %v %v", r.name, st, resp.GetExecution().GetError())
		}
		return nil
	}
}

// spacedWorkflow is a chain of n nodes that each sleep spacing, so that
// each node's events are committed apart from the next node's.
func spacedWorkflow(n int, spacing time.Duration) *kgwv1.Workflow {
	w := &kgwv1.Workflow{Name: "bench_spaced"}
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("n%d", i)
		w.Nodes = append(w.Nodes, &kgwv1.Node{Id: id,
			Code: fmt.Sprintf("time.sleep(%g)\nresult = {\"i\": %d}", spacing.Seconds(), i)})
		if i > 1 {
			w.Connections = append(w.Connections, &kgwv1.Connection{FromNode: fmt.Sprintf("n%d", i-1), FromOutput: "i", ToNode: id, ToInput: "prev"})
		}
	}
	return w
}

func clusterBenchmark(ctx context.Context, o options, pg *testenv.PostgresServer) error {
	c := o.cluster
	dsn, err := pg.CreateDatabase(ctx, "kgw_cluster_bench")
	if err != nil {
		return err
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return err
	}
	key := base64.StdEncoding.EncodeToString(k)
	a, err := startReplica(o.kgw, dsn, key, "replica-a")
	if err != nil {
		return err
	}
	defer a.close()
	// Registered on A only: B sees the workflows through the shared store.
	wf := kgwv1.NewWorkflowServiceClient(a.conn)
	for _, w := range []*kgwv1.Workflow{workflows[0], spacedWorkflow(c.watchNodes, c.watchSpacing)} {
		if _, err := wf.RegisterWorkflow(ctx, &kgwv1.RegisterWorkflowRequest{Workflow: w}); err != nil {
			return fmt.Errorf("register %s: %w", w.Name, err)
		}
	}
	b, err := startReplica(o.kgw, dsn, key, "replica-b")
	if err != nil {
		return err
	}
	defer b.close()

	// The database is new: warm it up, then update its statistics. The
	// generic plans that a replica's sessions cache for their prepared
	// statements while the tables are nearly empty stay in use as the
	// tables grow, until statistics change (autovacuum analyzes within a
	// minute or so; this run is shorter): in a first version of this
	// benchmark, the replica that kept its sessions served 2-4x fewer calls
	// than a freshly started one next to it; ANALYZE, fresh sessions or
	// plan_cache_mode=force_custom_plan evened them (docs/cluster.md).
	if err := warmUp(ctx, a, dsn, c, o.warmup); err != nil {
		return err
	}

	// Throughput: one replica (B stopped, so that its LISTEN connection
	// and heartbeats cost nothing) and two, in turns.
	if err := clusterThroughput(ctx, o, pg, a, b); err != nil {
		return err
	}

	// Cross-replica watch latency, with the cluster otherwise idle, then
	// while both replicas serve no-op calls.
	w, err := watchLatency(ctx, a, b, c)
	if err != nil {
		return fmt.Errorf("watch latency: %w", err)
	}
	fmt.Println(w.line("BenchmarkCluster/watch/idle"))
	if c.loadCallers > 0 {
		if err := watchUnderLoad(ctx, o, a, b); err != nil {
			return err
		}
	}
	fmt.Println(clusterLabel)
	return nil
}

// clusterThroughput measures no-op calls on one replica (a, with b
// stopped, so that its LISTEN connection and heartbeats cost nothing) and
// on two (a and b), in turns for o.cluster.rounds, with PostgreSQL's CPU
// over the same windows, and prints the benchmark lines.
func clusterThroughput(ctx context.Context, o options, pg *testenv.PostgresServer, a, b *replica) error {
	c := o.cluster
	var one, two, onA, onB measurement
	var pgOne, pgTwo pgCPU
	for range c.rounds {
		if err := b.proc.Stop(); err != nil {
			return fmt.Errorf("stop replica-b: %w", err)
		}
		pg1 := postgresWindow(pg.Port, o.warmup, c.window)
		m := run(ctx, a.noop(), c.callers, o.warmup, c.window, a.proc.AdminAddr)
		one = one.add(m)
		pgOne.add(pg1(), m.calls)
		if err := b.restart(); err != nil {
			return err
		}
		pg2 := postgresWindow(pg.Port, o.warmup, c.window)
		ma, mb := runPair(ctx, a, b, c.callers, o.warmup, c.window)
		onA, onB = onA.add(ma), onB.add(mb)
		two = two.add(concurrent(ma, mb))
		pgTwo.add(pg2(), ma.calls+mb.calls)
	}
	fmt.Println(clusterLabel)
	callers := fmt.Sprintf("\t%d callers", c.callers)
	fmt.Println(line("BenchmarkCluster/noop/replicas=1", one) + pgOne.String() + callers)
	fmt.Println(line("BenchmarkCluster/noop/replicas=2", two) + pgTwo.String() +
		fmt.Sprintf("\t%.1f per-replica-calls/s", two.throughput()/2) + callers)
	fmt.Println(line("BenchmarkCluster/noop/replicas=2/replica-a", onA) + fmt.Sprintf("\t%d callers", c.callers/2))
	fmt.Println(line("BenchmarkCluster/noop/replicas=2/replica-b", onB) + fmt.Sprintf("\t%d callers", c.callers-c.callers/2))
	return nil
}

// watchUnderLoad measures the cross-replica watch latency while both
// replicas serve no-op calls from o.cluster.loadCallers callers each, and
// prints its line.
func watchUnderLoad(ctx context.Context, o options, a, b *replica) error {
	c := o.cluster
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, r := range []*replica{a, b} {
		for range c.loadCallers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				fn := r.noop()
				for {
					select {
					case <-stop:
						return
					default:
					}
					_ = fn(ctx)
				}
			}()
		}
	}
	time.Sleep(o.warmup)
	w, err := watchLatency(ctx, a, b, c)
	close(stop)
	wg.Wait()
	if err != nil {
		return fmt.Errorf("watch latency under load: %w", err)
	}
	fmt.Println(w.line("BenchmarkCluster/watch/loaded") + fmt.Sprintf("\t%d load-callers", 2*c.loadCallers))
	return nil
}

// pgCPU adds up PostgreSQL's CPU over measured windows.
type pgCPU struct {
	seconds float64 // <0: unknown
	calls   int
}

func (p *pgCPU) add(seconds float64, calls int) {
	if seconds < 0 || p.seconds < 0 {
		p.seconds = -1
		return
	}
	p.seconds += seconds
	p.calls += calls
}

// String is the tab-separated metric for a benchmark line (empty when
// unknown).
func (p pgCPU) String() string {
	if p.seconds < 0 || p.calls == 0 {
		return ""
	}
	return fmt.Sprintf("\t%.1f pg-cpu-µs/call", p.seconds/float64(p.calls)*1e6)
}

// warmUp runs no-op calls on r for a while, then ANALYZEs the database.
func warmUp(ctx context.Context, r *replica, dsn string, c clusterConfig, d time.Duration) error {
	m := run(ctx, r.noop(), c.callers, 0, max(d, time.Second), r.proc.AdminAddr)
	if m.calls == 0 {
		return fmt.Errorf("warm-up on %s: no call completed (%d errors)", r.name, m.errors)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "ANALYZE"); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	return nil
}

// runPair drives half of callers against each replica over the same
// window and returns each side's measurement.
func runPair(ctx context.Context, a, b *replica, callers int, warmup, window time.Duration) (measurement, measurement) {
	var ma, mb measurement
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); ma = run(ctx, a.noop(), callers/2, warmup, window, a.proc.AdminAddr) }()
	go func() { defer wg.Done(); mb = run(ctx, b.noop(), callers-callers/2, warmup, window, b.proc.AdminAddr) }()
	wg.Wait()
	return ma, mb
}

// concurrent returns two measurements of the same window as one: calls
// and CPU add up, the window stays.
func concurrent(m, n measurement) measurement {
	out := measurement{calls: m.calls + n.calls, errors: m.errors + n.errors, window: m.window, cpu: -1}
	if m.cpu >= 0 && n.cpu >= 0 {
		out.cpu = m.cpu + n.cpu
	}
	out.latencies = append(slices.Clone(m.latencies), n.latencies...)
	slices.Sort(out.latencies)
	return out
}

// watchResult is what the watch latency scenario gave.
type watchResult struct {
	executions int
	latencies  []time.Duration // B's receipt minus A's, per live event
	control    []time.Duration // a second watcher on A minus the first, per event: the noise floor
	ends       []time.Duration // B's stream end minus A's, per execution
	mismatches int             // executions whose histories on A and B differed
	window     time.Duration
}

func (w watchResult) line(name string) string {
	slices.Sort(w.latencies)
	slices.Sort(w.ends)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }
	p50 := quantile(w.latencies, 0.50)
	slices.Sort(w.control)
	return fmt.Sprintf("%s\t%d\t%d ns/op\t%.2f p50-ms\t%.2f p99-ms\t%.2f max-ms\t%.2f end-p50-ms\t%.2f end-max-ms\t%.2f control-p50-ms\t%.2f control-p99-ms\t%d executions\t%d mismatches",
		name, len(w.latencies), p50.Nanoseconds(), ms(p50), ms(quantile(w.latencies, 0.99)),
		ms(quantile(w.latencies, 1)), ms(quantile(w.ends, 0.5)), ms(quantile(w.ends, 1)),
		ms(quantile(w.control, 0.5)), ms(quantile(w.control, 0.99)), w.executions, w.mismatches)
}

// watchLatency starts bench_spaced executions on a, c.watchPar at a time,
// for c.watchWindow, watches each from a and from b, and compares when
// each event arrived on either side.
func watchLatency(ctx context.Context, a, b *replica, c clusterConfig) (watchResult, error) {
	res := watchResult{window: c.watchWindow}
	var mu sync.Mutex
	var firstErr error
	deadline := time.Now().Add(c.watchWindow)
	var wg sync.WaitGroup
	for range c.watchPar {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				lat, ctl, end, same, err := watchOne(ctx, a, b)
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				res.executions++
				res.latencies = append(res.latencies, lat...)
				res.control = append(res.control, ctl...)
				res.ends = append(res.ends, end)
				if !same {
					res.mismatches++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return res, firstErr
	}
	if len(res.latencies) == 0 {
		return res, errors.New("no event was watched live on both replicas")
	}
	return res, nil
}

// arrival is one event as a watcher received it.
type arrival struct {
	seq  int64
	kind string
	at   time.Time
}

// watchOne runs one execution on a and watches it from a and b, and from
// a a second time: how much later that second watcher on the same replica
// gets each event is the noise floor of this machine (scheduling of the
// replica and of this process), to read the cross-replica figures against.
func watchOne(ctx context.Context, a, b *replica) (lat, control []time.Duration, end time.Duration, same bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := a.exec.StartExecution(ctx, &kgwv1.StartExecutionRequest{Workflow: "bench_spaced"})
	if err != nil {
		return nil, nil, 0, false, fmt.Errorf("start on %s: %w", a.name, err)
	}
	id := st.GetExecutionId()
	var onA, onA2, onB []arrival
	var endA, endB time.Time
	var errA, errA2, errB error
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); onA, endA, errA = watchAll(ctx, a, id) }()
	go func() { defer wg.Done(); onA2, _, errA2 = watchAll(ctx, a, id) }()
	go func() { defer wg.Done(); onB, endB, errB = watchAll(ctx, b, id) }()
	wg.Wait()
	if err := errors.Join(errA, errA2, errB); err != nil {
		return nil, nil, 0, false, err
	}
	same = len(onA) == len(onB) && len(onA) == len(onA2)
	for i := 0; same && i < len(onA); i++ {
		same = onA[i].seq == int64(i+1) && onB[i].seq == onA[i].seq && onB[i].kind == onA[i].kind && onA2[i].seq == onA[i].seq
	}
	if !same || len(onB) == 0 {
		fmt.Fprintf(os.Stderr, "loadgen: execution %s: the watchers on %s and %s got different histories:\n  %s: %s\n  %s: %s\n  %s (second watcher): %s\n",
			id, a.name, b.name, a.name, history(onA), b.name, history(onB), a.name, history(onA2))
		return nil, nil, 0, false, nil
	}
	live := onB[0].at // from here on, B follows the execution live
	for i := range onA {
		if onA[i].at.After(live) {
			lat = append(lat, onB[i].at.Sub(onA[i].at))
			control = append(control, onA2[i].at.Sub(onA[i].at))
		}
	}
	return lat, control, endB.Sub(endA), true, nil
}

// watchAll reads the whole history of id from r, noting when each event
// arrived, and when the stream ended.
func watchAll(ctx context.Context, r *replica, id string) ([]arrival, time.Time, error) {
	s, err := r.exec.WatchExecution(ctx, &kgwv1.WatchExecutionRequest{ExecutionId: id})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("watch %s on %s: %w", id, r.name, err)
	}
	var out []arrival
	for {
		m, err := s.Recv()
		now := time.Now()
		if err == io.EOF {
			return out, now, nil
		}
		if err != nil {
			return out, now, fmt.Errorf("watch %s on %s: %w", id, r.name, err)
		}
		ev := m.GetEvent()
		out = append(out, arrival{seq: ev.GetSeq(), kind: fmt.Sprintf("%T", ev.GetEvent()), at: now})
	}
}

// history prints arrivals as seq:kind for a mismatch report.
func history(as []arrival) string {
	var b strings.Builder
	for _, a := range as {
		fmt.Fprintf(&b, " %d:%s", a.seq, strings.TrimPrefix(a.kind, "*kgwv1.ExecutionEvent_"))
	}
	return b.String()
}
