package main

import (
	"io"
	"strings"
	"testing"
)

const sample = `goos: linux
pkg: github.com/kailash-gateway/kgw/executor
BenchmarkTrivialNodeRuntime-2   	  300000	      4000 ns/op	    2368 B/op	      25 allocs/op
BenchmarkTrivialNode-2          	   50000	     19000 ns/op
BenchmarkNoopDurable-2          	     100	    800000 ns/op	      5000 execs/s
BenchmarkNoopEphemeral-2        	     300	    200000 ns/op	     20000 execs/s
pkg: github.com/kailash-gateway/kgw/server
BenchmarkFetchval/bare-pgxpool-2         	  50000	     30000 ns/op
BenchmarkFetchval/workflow-node-2        	  30000	     50000 ns/op
BenchmarkNoopThroughput/durable/callers=32-2         	   20000	    125000 ns/op	      8000 execs/s
BenchmarkNoopThroughput/durable/callers=512-2        	   30000	     80000 ns/op	     12500 execs/s
BenchmarkNoopThroughput/ephemeral/callers=32-2       	   40000	     50000 ns/op	     20000 execs/s
BenchmarkNoopThroughput/ephemeral/callers=512-2      	   40000	     55000 ns/op	     18000 execs/s
`

func TestParse(t *testing.T) {
	rs, err := parse(strings.NewReader(sample), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := rs.value("executor.BenchmarkNoopDurable", "execs/s"); got != 5000 {
		t.Errorf("NoopDurable execs/s = %v, want 5000", got)
	}
	if got, _ := rs.value("server.BenchmarkFetchval/workflow-node", "ns/op"); got != 50000 {
		t.Errorf("Fetchval/workflow-node ns/op = %v, want 50000", got)
	}
}

func TestScenarios(t *testing.T) {
	rs, err := parse(strings.NewReader(sample), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if v, at, _ := peak(rs, "server.BenchmarkNoopThroughput/durable", "execs/s"); v != 12500 || at != "callers=512" {
		t.Errorf("peak = %v at %q, want 12500 at callers=512", v, at)
	}
	tests := []struct {
		name    string
		report  func(results) (string, string, bool, bool)
		wantMet bool
		wantOK  bool
	}{
		{"overhead within target", overhead("executor.BenchmarkTrivialNodeRuntime", "executor.BenchmarkTrivialNode", 20e3), true, true},
		{"durable ratio below target", ratio("executor.BenchmarkNoopEphemeral", "executor.BenchmarkNoopDurable", 0.40), false, true},
		{"fetchval ratio meets target", ratio("server.BenchmarkFetchval/bare-pgxpool", "server.BenchmarkFetchval/workflow-node", 0.5), true, true},
		{"peak durable throughput meets target", peakRatio("server.BenchmarkNoopThroughput/ephemeral", "server.BenchmarkNoopThroughput/durable", "execs/s", 0.60), true, true},
		{"peak durable throughput below target", peakRatio("server.BenchmarkNoopThroughput/ephemeral", "server.BenchmarkNoopThroughput/durable", "execs/s", 0.65), false, true},
		{"peak of a missing benchmark", peakRatio("server.BenchmarkNoopThroughput/ephemeral", "server.BenchmarkNoopThroughput/none", "execs/s", 0.1), false, false},
		{"missing benchmark", latency("executor.BenchmarkChain40", 2e6), false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fig, _, met, ok := tc.report(rs)
			if ok != tc.wantOK || met != tc.wantMet {
				t.Errorf("report = %q met=%v ok=%v, want met=%v ok=%v", fig, met, ok, tc.wantMet, tc.wantOK)
			}
		})
	}
}

// paired is the output of a benchmark with a baseline and a candidate,
// run three times.
const paired = `pkg: github.com/kailash-gateway/kgw/server
BenchmarkFetchval/bare-pgxpool-2         	  50000	     10000 ns/op
BenchmarkFetchval/workflow-node-2        	  30000	     20000 ns/op
BenchmarkFetchval/bare-pgxpool-2         	  50000	     20000 ns/op
BenchmarkFetchval/workflow-node-2        	  30000	     25000 ns/op
BenchmarkFetchval/bare-pgxpool-2         	  50000	     12000 ns/op
BenchmarkFetchval/workflow-node-2        	  30000	     40000 ns/op
`

func TestPairedRatio(t *testing.T) {
	rs, err := parse(strings.NewReader(paired), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := rs.value("server.BenchmarkFetchval/workflow-node", "ns/op"); got != 25000 {
		t.Errorf("median ns/op = %v, want 25000", got)
	}
	// Pairs: 0.5, 0.8, 0.3; their median is 0.5, where the ratio of the
	// medians would be 12000/25000 = 0.48.
	for _, tc := range []struct {
		min  float64
		want bool
	}{{0.5, true}, {0.51, false}} {
		fig, _, met, ok := ratio("server.BenchmarkFetchval/bare-pgxpool", "server.BenchmarkFetchval/workflow-node", tc.min)(rs)
		if !ok || met != tc.want || !strings.HasPrefix(fig, "0.50× (median of 3 paired runs, 0.30–0.80;") {
			t.Errorf("target %.2f: report %q met=%v ok=%v, want met=%v", tc.min, fig, met, ok, tc.want)
		}
	}
}

const external = `pkg: github.com/kailash-gateway/kgw/tools/loadgen
BenchmarkExternal/go/health/callers=1	7052	141804 ns/op	7000.0 calls/s	120.0 p50-µs	400.0 p99-µs	3880.4 p99.9-µs	5921.0 max-µs	75.2 cpu-µs/call	0 errors
BenchmarkExternal/go/noop/callers=1	1168	856164 ns/op	1200.0 calls/s	300.0 p50-µs	1200.0 p99-µs	21853.1 p99.9-µs	129056.2 max-µs	479.5 cpu-µs/call	0 errors
BenchmarkExternal/go/health/callers=64	11597	86229 ns/op	10000.0 calls/s	3423.1 p50-µs	35016.7 p99-µs	40867.3 p99.9-µs	59355.8 max-µs	26.7 cpu-µs/call	0 errors
BenchmarkExternal/go/noop/callers=64	5749	173943 ns/op	5000.0 calls/s	7477.6 p50-µs	95384.7 p99-µs	97039.0 p99.9-µs	97243.5 max-µs	102.6 cpu-µs/call	0 errors
BenchmarkBefore/go/noop/callers=64	5749	173943 ns/op	4000.0 calls/s	7477.6 p50-µs	95384.7 p99-µs	97039.0 p99.9-µs	97243.5 max-µs	102.6 cpu-µs/call	0 errors
BenchmarkStore/empty/idle	1	2000000000 ns/op	0.50 cpu-ms/s
BenchmarkStore/rows=500000/idle	1	2000000000 ns/op	0.70 cpu-ms/s
`

func TestExternalScenarios(t *testing.T) {
	rs, err := parse(strings.NewReader(external), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name            string
		report          func(results) (string, string, bool, bool)
		wantFig         string
		wantMet, wantOK bool
	}{
		{"throughput at the floor", unitRatio(ext+"go/health/callers=64", "calls/s", ext+"go/noop/callers=64", "calls/s", 0.50, false), "0.50× (5000 calls/s vs 10000 calls/s)", true, true},
		{"throughput below the floor", unitRatio(ext+"go/health/callers=64", "calls/s", ext+"go/noop/callers=64", "calls/s", 0.51, false), "0.50×", false, true},
		{"p50 above the ceiling", unitRatio(ext+"go/health/callers=1", "p50-µs", ext+"go/noop/callers=1", "p50-µs", 2, true), "2.50× (p50 300.0µs vs p50 120.0µs)", false, true},
		{"own p99 at the ceiling", unitRatio(ext+"go/noop/callers=1", "p50-µs", ext+"go/noop/callers=1", "p99-µs", 4, true), "4.00× (p99 1.20ms vs p50 300.0µs)", true, true},
		{"no target", unitRatio(ext+"go/noop/callers=1", "p50-µs", ext+"go/noop/callers=1", "p99-µs", 0, true), "4.00×", true, true},
		{"missing client", unitRatio(ext+"go/noop/callers=16", "calls/s", ext+"python/noop/callers=16", "calls/s", 0.7, false), "", false, false},
		{"idle CPU", idleCPU(store+"empty/idle", store+rows+"/idle"), "0.70 ms of CPU per second vs 0.50", true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fig, _, met, ok := tc.report(rs)
			if ok != tc.wantOK || met != tc.wantMet || !strings.HasPrefix(fig, tc.wantFig) {
				t.Errorf("report = %q met=%v ok=%v, want %q… met=%v ok=%v", fig, met, ok, tc.wantFig, tc.wantMet, tc.wantOK)
			}
		})
	}
}

// TestSliceRatio: the side's CPU ratio, measured by the benchmark in
// slices, is held to the target; its range, wall clock and allocations
// are printed beside it.
func TestSliceRatio(t *testing.T) {
	const out = `pkg: github.com/kailash-gateway/kgw/server
BenchmarkTracingOverhead-2   	 1	 9000000000 ns/op	 0.96 off-cpu-ratio	 0.90 off-cpu-ratio-min	 1.02 off-cpu-ratio-max	 0.99 off-ratio	 0.70 on-cpu-ratio	 0.6 on-cpu-ratio-min	 0.8 on-cpu-ratio-max	 0.72 on-ratio	 214 base-allocs/op	 257 off-allocs/op	 343 on-allocs/op	 3.0 on-spans/call
`
	rs, err := parse(strings.NewReader(out), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	fig, target, met, ok := sliceRatio("server.BenchmarkTracingOverhead", "off", 0.95)(rs)
	if want := "0.96× (CPU per call, median of the slices, 0.90–1.02; wall clock 0.99×; 257 allocations a call vs 214)"; !ok || !met || target != "≥ 0.95×" || fig != want {
		t.Errorf("sliceRatio = %q, %q, met %v, ok %v; want %q", fig, target, met, ok, want)
	}
	if _, _, met, _ := sliceRatio("server.BenchmarkTracingOverhead", "on", 0.75)(rs); met {
		t.Error("0.70 met a 0.75 target")
	}
	if _, _, _, ok := sliceRatio("server.BenchmarkTracingOverhead", "sampled", 0.75)(rs); ok {
		t.Error("a side that did not run reported")
	}
	if _, target, met, _ := sliceRatio("server.BenchmarkTracingOverhead", "on", 0)(rs); target != "none" || !met {
		t.Errorf("without a target: %q, met %v", target, met)
	}
	// The collector's target the benchmark ran at is printed when reported.
	rs, err = parse(strings.NewReader(strings.Replace(out, "3.0 on-spans/call", "3.0 on-spans/call	 400 gogc", 1)), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if fig, _, _, _ := sliceRatio("server.BenchmarkTracingOverhead", "on", 0.75)(rs); !strings.HasSuffix(fig, "; GOGC=400)") {
		t.Errorf("with gogc reported: %q", fig)
	}
}

// TestHooksShare: the span hooks' time against a whole call's CPU time.
func TestHooksShare(t *testing.T) {
	const out = `pkg: github.com/kailash-gateway/kgw/executor
BenchmarkSpanHooksOff-2   	 200000	 50 ns/op	 0 B/op	 0 allocs/op
pkg: github.com/kailash-gateway/kgw/server
BenchmarkTracingOverhead-2   	 1	 9000000000 ns/op	 100000 base-cpu-ns/op
`
	rs, err := parse(strings.NewReader(out), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	fig, target, met, ok := hooksShare("executor.BenchmarkSpanHooksOff", "server.BenchmarkTracingOverhead", 0.97)(rs)
	if !ok || !met || target != "≥ 0.97×" || !strings.HasPrefix(fig, "0.9995× (hooks ") {
		t.Errorf("hooksShare = %q, %q, met %v, ok %v", fig, target, met, ok)
	}
	if _, _, met, _ := hooksShare("executor.BenchmarkSpanHooksOff", "server.BenchmarkTracingOverhead", 0.9999)(rs); met {
		t.Error("0.9995 met 0.9999")
	}
}

// clusterSample is tools/loadgen -cluster output (abridged figures).
const clusterSample = `goos: linux
pkg: github.com/kailash-gateway/kgw/tools/loadgen
BenchmarkCluster/noop/replicas=1	2363	1269573 ns/op	787.7 calls/s	73619.1 p50-µs	162055.3 p99-µs	162707.5 p99.9-µs	163807.8 max-µs	262.4 cpu-µs/call	0 errors	279.3 pg-cpu-µs/call	64 callers
BenchmarkCluster/noop/replicas=2	3614	830105 ns/op	1204.7 calls/s	44940.9 p50-µs	129038.6 p99-µs	167834.1 p99.9-µs	177387.3 max-µs	334.8 cpu-µs/call	0 errors	323.7 pg-cpu-µs/call	602.3 per-replica-calls/s	64 callers
BenchmarkCluster/watch/idle	502	807903 ns/op	0.81 p50-ms	38.49 p99-ms	61.23 max-ms	1.10 end-p50-ms	24.83 end-max-ms	24 executions	0 mismatches
BenchmarkCluster/watch/loaded	250	61965834 ns/op	61.97 p50-ms	29.13 p99-ms	62.52 max-ms	2.66 end-p50-ms	13.49 end-max-ms	12 executions	1 mismatches	16 load-callers
`

func TestClusterScenarios(t *testing.T) {
	rs, err := parse(strings.NewReader(clusterSample), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		fig string
		met bool
	}{
		"cluster: durable no-op throughput, 2 replicas vs 1":         {"1.53× (1205 calls/s vs 788 calls/s)", true},
		"  … per replica with 2 vs the single replica":               {"0.76× (602 per-replica-calls/s vs 788 calls/s)", true},
		"  … PostgreSQL CPU per call, 2 replicas vs 1":               {"1.16× (324 pg-cpu-µs/call vs 279 pg-cpu-µs/call)", true},
		"cluster: watch latency, event on A's watcher → on B's, p50": {"p50 0.81 ms", true},
		"  … under no-op load on both replicas, p50":                 {"p50 61.97 ms", false},
		"  … histories that differed between A and B":                {"0 mismatches", true},
		"  … under load, histories that differed":                    {"1 mismatches", false},
	}
	for _, s := range clusterScenarios {
		fig, _, met, ok := s.report(rs)
		if !ok {
			t.Errorf("%s: not measured", s.name)
			continue
		}
		if w, found := want[s.name]; found && (fig != w.fig || met != w.met) {
			t.Errorf("%s = %q, met %v; want %q, met %v", s.name, fig, met, w.fig, w.met)
		}
	}
	if _, _, _, ok := ceiling(cluster+"watch/none", "p50-ms", 50)(rs); ok {
		t.Error("ceiling of a missing benchmark reported ok")
	}
}
