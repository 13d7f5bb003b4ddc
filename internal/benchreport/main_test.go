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
