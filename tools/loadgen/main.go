// Command loadgen is the external benchmark of `make bench`: a load
// generator in its own process (and its own Go module, so that the
// gateway's module never depends on it) against a real `kgw serve` with
// the embedded SQLite store and the journal on, as users run it.
//
// It starts PostgreSQL (internal/testenv) for the fetchval scenario and
// the gateway, registers the scenarios' workflows, and measures each
// scenario next to a gRPC health check on the same gateway in the same
// run: throughput, p50, p99, p99.9 and the gateway's CPU per call. The
// same scenarios run through the Python and TypeScript clients when their
// runtimes are given. A last scenario measures background work: the
// gateway's idle CPU and the latency across recovery ticks with an empty
// store and with 500k finished executions stored.
//
// Results are printed as `go test -bench` lines for internal/benchreport.
// With -kgw-before, every gateway scenario also runs on an older binary,
// in turns with the current one, and is reported under BenchmarkBefore.
// With -cluster it runs only the cluster benchmark instead (two replicas
// on one PostgreSQL database, see cluster.go), reported under
// BenchmarkCluster.
//
// Usage (from the repository root, see the Makefile's bench target):
//
//	cd tools/loadgen && go run . -kgw ../../bin/kgw -python ... -node ...
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/structpb"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
	"github.com/kailash-gateway/kgw/internal/testenv"
)

type options struct {
	kgw, kgwBefore string
	python, node   string
	tsClient       string
	warmup, window time.Duration
	callers        []int
	rounds         int
	clientCallers  int
	storeRows      int
	storeWindow    time.Duration
	idleWindow     time.Duration
	cpuProfile     string
	skipStore      bool
	skipClients    bool
	clusterOnly    bool
	cluster        clusterConfig
}

// recoveryInterval is the gateways' recovery tick (KGW_RECOVERY_INTERVAL):
// shorter than the default 15 s so that a measurement sees several.
const recoveryInterval = time.Second

func main() {
	var o options
	var callers string
	flag.StringVar(&o.kgw, "kgw", "", "kgw binary to measure (required)")
	flag.StringVar(&o.kgwBefore, "kgw-before", "", "an older kgw binary measured in turns with -kgw (optional)")
	flag.StringVar(&o.python, "python", "", "python interpreter with the kgw client installed (optional)")
	flag.StringVar(&o.node, "node", "", "node binary for the TypeScript client (optional; needs -ts-client)")
	flag.StringVar(&o.tsClient, "ts-client", "", "directory of the built TypeScript client (clients/ts)")
	flag.DurationVar(&o.warmup, "warmup", 300*time.Millisecond, "warm-up before each measurement")
	flag.DurationVar(&o.window, "window", 3*time.Second, "measured time per scenario and concurrency")
	flag.StringVar(&callers, "callers", "1,64", "concurrencies of the Go scenarios")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds per concurrency of the Go scenarios and of the client scenarios: each round measures every scenario for window/rounds")
	flag.IntVar(&o.clientCallers, "client-callers", 16, "concurrency of the Python and TypeScript scenarios")
	flag.IntVar(&o.storeRows, "store-rows", 500000, "finished executions stored for the background-work scenario")
	flag.DurationVar(&o.storeWindow, "store-window", 6*time.Second, "measured time of the background-work scenario (one recovery tick per second)")
	flag.DurationVar(&o.idleWindow, "idle-window", 10*time.Second, "how long the background-work scenario measures the idle gateway's CPU")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the gateway under the no-op load at the highest concurrency to this file")
	flag.BoolVar(&o.skipStore, "skip-store", false, "skip the background-work scenario")
	flag.BoolVar(&o.skipClients, "skip-clients", false, "skip the Python and TypeScript scenarios")
	flag.BoolVar(&o.clusterOnly, "cluster", false, "run only the cluster benchmark: two replicas on one PostgreSQL database (make bench-cluster)")
	flag.IntVar(&o.cluster.callers, "cluster-callers", 64, "cluster: no-op callers in total (split in halves with two replicas)")
	flag.DurationVar(&o.cluster.window, "cluster-window", 3*time.Second, "cluster: measured time per round of one and of two replicas")
	flag.IntVar(&o.cluster.rounds, "cluster-rounds", 3, "cluster: rounds of one replica and two replicas, in turns")
	flag.DurationVar(&o.cluster.watchWindow, "watch-window", 8*time.Second, "cluster: time spent watching executions across replicas, per variant (idle, loaded)")
	flag.IntVar(&o.cluster.watchNodes, "watch-nodes", 10, "cluster: nodes of the watched workflow")
	flag.DurationVar(&o.cluster.watchSpacing, "watch-spacing", 20*time.Millisecond, "cluster: how long each node of the watched workflow sleeps")
	flag.IntVar(&o.cluster.watchPar, "watch-parallel", 2, "cluster: executions watched at a time")
	flag.IntVar(&o.cluster.loadCallers, "watch-load-callers", 8, "cluster: no-op callers per replica while watching under load (0: skip that variant)")
	flag.Parse()
	for _, f := range strings.Split(callers, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fatalf("-callers %q: want positive numbers separated by commas", callers)
		}
		o.callers = append(o.callers, n)
	}
	if o.kgw == "" {
		fatalf("-kgw is required")
	}
	if o.rounds < 1 || o.cluster.rounds < 1 {
		fatalf("-rounds and -cluster-rounds must be at least 1")
	}
	if o.cluster.callers < 2 || o.cluster.watchNodes < 1 || o.cluster.watchPar < 1 || o.cluster.loadCallers < 0 {
		fatalf("-cluster-callers must be at least 2, -watch-nodes and -watch-parallel at least 1, -watch-load-callers at least 0")
	}
	for _, p := range []*string{&o.kgw, &o.kgwBefore, &o.tsClient} {
		if *p != "" {
			abs, err := filepath.Abs(*p)
			if err != nil {
				fatalf("%v", err)
			}
			*p = abs
		}
	}
	if err := benchmark(context.Background(), o); err != nil {
		fatalf("%v", err)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "loadgen: "+format+"\n", args...)
	os.Exit(1)
}

// gateway is one running `kgw serve` with a client connection and the
// scenarios' workflows registered.
type gateway struct {
	proc *testenv.GatewayProcess
	conn *grpc.ClientConn
	exec kgwv1.ExecutionServiceClient
}

func startGateway(ctx context.Context, bin string, pgPort int, extra ...string) (*gateway, error) {
	// Settings go by environment, which binaries older than these
	// settings ignore (an unknown flag would stop them).
	p, err := testenv.StartGateway(testenv.WithGatewayBinary(bin), testenv.WithGatewayArgs(extra...),
		testenv.WithGatewayEnv("KGW_PPROF=true", "KGW_RECOVERY_INTERVAL="+recoveryInterval.String()))
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	conn, err := grpc.NewClient(p.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		_ = p.Close()
		return nil, err
	}
	g := &gateway{proc: p, conn: conn, exec: kgwv1.NewExecutionServiceClient(conn)}
	if err := g.setup(ctx, pgPort); err != nil {
		g.close()
		return nil, fmt.Errorf("set up %s: %w", bin, err)
	}
	return g, nil
}

func (g *gateway) close() {
	_ = g.conn.Close()
	if err := g.proc.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: gateway:", err)
	}
}

// The scenarios' workflows. chain3 passes values along named connections
// (DESIGN §4: from_output names a key of the upstream result).
var workflows = []*kgwv1.Workflow{
	{Name: "bench_noop", Nodes: []*kgwv1.Node{{Id: "noop", Code: "result = {}"}}},
	{Name: "bench_chain3",
		Nodes: []*kgwv1.Node{
			{Id: "a", Code: `result = {"x": 1}`},
			{Id: "b", Code: `result = {"y": x + 1}`},
			{Id: "c", Code: `result = {"z": y * 2}`},
		},
		Connections: []*kgwv1.Connection{
			{FromNode: "a", FromOutput: "x", ToNode: "b"},
			{FromNode: "b", FromOutput: "y", ToNode: "c"},
		}},
	{Name: "bench_fetchval", Nodes: []*kgwv1.Node{{Id: "q", RequiredResources: []string{"db"},
		Code: `result = {"v": get_resource("db").fetchval("SELECT 1")}`}}},
}

// dbPoolSize is the named resource's pool size (max_size).
const dbPoolSize = 8

func (g *gateway) setup(ctx context.Context, pgPort int) error {
	cfg, err := structpb.NewStruct(map[string]any{
		"host": "127.0.0.1", "port": pgPort, "database": "postgres", "user": "postgres", "max_size": dbPoolSize,
	})
	if err != nil {
		return err
	}
	if _, err := kgwv1.NewResourceServiceClient(g.conn).PutResource(ctx, &kgwv1.PutResourceRequest{
		Name: "bench_db", Spec: &kgwv1.ResourceSpec{Type: "database", Config: cfg},
	}); err != nil {
		return fmt.Errorf("put resource: %w", err)
	}
	wf := kgwv1.NewWorkflowServiceClient(g.conn)
	for _, w := range workflows {
		if _, err := wf.RegisterWorkflow(ctx, &kgwv1.RegisterWorkflowRequest{Workflow: w}); err != nil {
			return fmt.Errorf("register %s: %w", w.Name, err)
		}
	}
	return nil
}

// scenario is one workflow call (or the health check).
type scenario struct {
	name     string
	workflow string
	db       bool // needs the named database resource
}

var scenarios = []scenario{
	{name: "health"},
	{name: "noop", workflow: "bench_noop"},
	{name: "chain3", workflow: "bench_chain3"},
	{name: "fetchval", workflow: "bench_fetchval", db: true},
}

func (g *gateway) call(s scenario) call {
	if s.workflow == "" {
		h := healthpb.NewHealthClient(g.conn)
		return func(ctx context.Context) error {
			_, err := h.Check(ctx, &healthpb.HealthCheckRequest{})
			return err
		}
	}
	req := &kgwv1.ExecuteWorkflowRequest{Workflow: s.workflow}
	if s.db {
		req.Resources = map[string]*kgwv1.ResourceSpec{"db": {Ref: "bench_db"}}
	}
	return func(ctx context.Context) error {
		resp, err := g.exec.ExecuteWorkflow(ctx, req)
		if err != nil {
			return err
		}
		if st := resp.GetExecution().GetStatus(); st != kgwv1.ExecutionStatus_EXECUTION_STATUS_COMPLETED {
			return fmt.Errorf("%s: %v %v", s.workflow, st, resp.GetExecution().GetError())
		}
		return nil
	}
}

func benchmark(ctx context.Context, o options) error {
	pg, err := testenv.StartPostgres()
	if err != nil {
		return err
	}
	defer pg.Close()

	began := time.Now()
	fmt.Println("goos: linux")
	fmt.Println("pkg: github.com/kailash-gateway/kgw/tools/loadgen")
	if o.clusterOnly {
		if err := clusterBenchmark(ctx, o, pg); err != nil {
			return err
		}
		fmt.Printf("# cluster benchmark took %s\n", time.Since(began).Round(time.Second))
		return nil
	}

	g, err := startGateway(ctx, o.kgw, pg.Port)
	if err != nil {
		return err
	}
	defer g.close()
	var before *gateway
	if o.kgwBefore != "" {
		if before, err = startGateway(ctx, o.kgwBefore, pg.Port); err != nil {
			return err
		}
		defer before.close()
	}

	measureGo(ctx, g, before, o)
	if o.cpuProfile != "" {
		top := o.callers[len(o.callers)-1]
		if err := profileUnder(ctx, g, scenarios[1], top, o); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen: cpu profile:", err)
		} else {
			fmt.Fprintf(os.Stderr, "loadgen: CPU profile of the gateway (no-op at %d callers) in %s\n", top, o.cpuProfile)
		}
	}
	if !o.skipClients && (o.python != "" || o.node != "") {
		if err := measureClients(ctx, g, o); err != nil {
			return err
		}
	}
	if !o.skipStore {
		if err := storeScenario(ctx, o, o.kgw, "BenchmarkStore", pg.Port); err != nil {
			return err
		}
		if o.kgwBefore != "" {
			before := o
			before.storeWindow = max(o.storeWindow, 16*time.Second)
			before.idleWindow = max(o.idleWindow, 31*time.Second) // two of its ticks
			if err := storeScenario(ctx, before, o.kgwBefore, "BenchmarkStoreBefore", pg.Port); err != nil {
				return err
			}
		}
	}
	fmt.Printf("# external benchmark took %s\n", time.Since(began).Round(time.Second))
	return nil
}

// measureGo measures every scenario with the Go client at each number of
// callers, against g and, when before is not nil, against the older
// binary, and prints a benchmark line for each.
//
// Each concurrency runs in rounds: every round measures every scenario
// (and the older binary's, in turns) for window/rounds, so that a
// scenario and its health check are measured seconds apart however
// the machine's other load changes during the run.
func measureGo(ctx context.Context, g, before *gateway, o options) {
	part := o
	part.window = o.window / time.Duration(o.rounds)
	for _, n := range o.callers {
		after := make([]measurement, len(scenarios))
		prior := make([]measurement, len(scenarios))
		for range o.rounds {
			for i, s := range scenarios {
				after[i] = after[i].add(measure(ctx, g, s, n, part))
				if before != nil {
					prior[i] = prior[i].add(measure(ctx, before, s, n, part))
				}
			}
		}
		for i, s := range scenarios {
			fmt.Println(line(fmt.Sprintf("BenchmarkExternal/go/%s/callers=%d", s.name, n), after[i]))
			if before != nil {
				fmt.Println(line(fmt.Sprintf("BenchmarkBefore/go/%s/callers=%d", s.name, n), prior[i]))
			}
		}
	}
}

// measureClients measures the Python and TypeScript clients at
// o.clientCallers, each scenario next to the Go client's figure at the same
// concurrency, and prints a benchmark line for each.
//
// In rounds too: each round measures the health check, then per scenario
// the Go generator and each client for window/rounds, so that a client and
// the Go figure it is compared with are measured seconds apart (the
// machine's other load moves the figures by tens of percent within a
// minute).
func measureClients(ctx context.Context, g *gateway, o options) error {
	part := o
	part.window = o.window / time.Duration(o.rounds)
	n := o.clientCallers
	runners := clientRunners(o)
	health := measurement{}
	goM := make([]measurement, len(scenarios))
	clientM := make([][]measurement, len(scenarios))
	for i := range clientM {
		clientM[i] = make([]measurement, len(runners))
	}
	for range o.rounds {
		health = health.add(measure(ctx, g, scenarios[0], n, part))
		for i, s := range scenarios[1:] {
			goM[i+1] = goM[i+1].add(measure(ctx, g, s, n, part))
			for j, c := range runners {
				m, err := c.run(ctx, g, s, n, part)
				if err != nil {
					return fmt.Errorf("%s client, %s: %w", c.lang, s.name, err)
				}
				clientM[i+1][j] = clientM[i+1][j].add(m)
			}
		}
	}
	fmt.Println(line(fmt.Sprintf("BenchmarkExternal/go/health/callers=%d", n), health))
	for i, s := range scenarios[1:] {
		fmt.Println(line(fmt.Sprintf("BenchmarkExternal/go/%s/callers=%d", s.name, n), goM[i+1]))
		for j, c := range runners {
			fmt.Println(line(fmt.Sprintf("BenchmarkExternal/%s/%s/callers=%d", c.lang, s.name, n), clientM[i+1][j]))
		}
	}
	return nil
}

// measure runs one scenario.
func measure(ctx context.Context, g *gateway, s scenario, callers int, o options) measurement {
	return run(ctx, g.call(s), callers, o.warmup, o.window, g.proc.AdminAddr)
}

// profileUnder takes a CPU profile of the gateway while it serves
// scenario s at callers for o.window, and writes it to o.cpuProfile.
func profileUnder(ctx context.Context, g *gateway, s scenario, callers int, o options) error {
	done := make(chan error, 1)
	go func() {
		time.Sleep(o.warmup)
		done <- fetchProfile(g.proc.AdminAddr, o.window, o.cpuProfile)
	}()
	measure(ctx, g, s, callers, o)
	return <-done
}

func fetchProfile(admin string, d time.Duration, path string) error {
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", admin, max(int(d.Seconds()), 1)))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET profile: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
