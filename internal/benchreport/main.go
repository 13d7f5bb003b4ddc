// Command benchreport reads `go test -bench` output on stdin, echoes it, and
// then prints each fixed scenario of `make bench` next to the baseline that
// was measured in the same run, as a ratio, with the target it should meet.
//
// Usage: go test -run '^$' -bench . ./... | go run ./internal/benchreport
//
// With -external it reports only the scenarios of tools/loadgen, the
// external benchmark (make bench-external); with -cluster only those of
// tools/loadgen -cluster (make bench-cluster).
//
// A benchmark that ran several times (-count) counts by the median of its
// runs; see ratio for paired baselines.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// result is a benchmark's metrics by unit (ns/op, execs/s, …): one value
// per time it ran (go test -count).
type result map[string][]float64

// results maps "package.BenchmarkName" (without the -GOMAXPROCS suffix) to
// its metrics.
type results map[string]result

// value returns the median of the values of unit measured for key.
func (rs results) value(key, unit string) (float64, bool) {
	v := rs[key][unit]
	if len(v) == 0 {
		return 0, false
	}
	return median(v), true
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// parse reads benchmark output, copying every line to echo.
func parse(r io.Reader, echo io.Writer) (results, error) {
	out := results{}
	pkg := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(echo, line)
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		name := f[0]
		if i := strings.LastIndex(name, "-"); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		key := pkg[strings.LastIndex(pkg, "/")+1:] + "." + name
		m := out[key]
		if m == nil {
			m = result{}
			out[key] = m
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			m[f[i+1]] = append(m[f[i+1]], v)
		}
	}
	return out, sc.Err()
}

// scenario is one line of the report.
type scenario struct {
	name string
	// report computes the figure and whether it meets the target; ok is
	// false when a benchmark it needs did not run.
	report func(results) (figure string, target string, met, ok bool)
}

func nsPerOp(rs results, key string) (float64, bool) {
	v, ok := rs.value(key, "ns/op")
	return v, ok && v > 0
}

// ratio reports candidate throughput as a fraction of the baseline's, both
// measured as ns/op in the same run. When both ran several times, in
// turns (one benchmark with both as sub-benchmarks, run several times),
// each candidate run is compared with the baseline run just before it, and the report gives the
// median of those ratios and their range: both sides of a pair see the
// same load on the machine.
func ratio(baseline, candidate string, min float64) func(results) (string, string, bool, bool) {
	return func(rs results) (string, string, bool, bool) {
		b, ok1 := nsPerOp(rs, baseline)
		c, ok2 := nsPerOp(rs, candidate)
		if !ok1 || !ok2 {
			return "", "", false, false
		}
		target := fmt.Sprintf("≥ %.2f×", min)
		bs, cs := rs[baseline]["ns/op"], rs[candidate]["ns/op"]
		if len(bs) < 2 || len(bs) != len(cs) {
			r := b / c
			return fmt.Sprintf("%.2f× (%s/op vs baseline %s/op)", r, dur(c), dur(b)), target, r >= min, true
		}
		pairs := make([]float64, len(bs))
		for i := range bs {
			pairs[i] = bs[i] / cs[i]
		}
		r := median(pairs)
		fig := fmt.Sprintf("%.2f× (median of %d paired runs, %.2f–%.2f; %s/op vs baseline %s/op)",
			r, len(pairs), slices.Min(pairs), slices.Max(pairs), dur(c), dur(b))
		return fig, target, r >= min, true
	}
}

// measuredRatio reports a ratio that the benchmark key measured itself,
// its two sides taking turns inside one run: "cpu-ratio", the baseline's
// process CPU time per call over the candidate's (the throughput ratio
// when the CPUs are the limit, as for a no-op workflow), with the
// wall-clock "ratio" beside it. Wall-clock rates on a shared machine
// follow its other load; CPU time per call does not.
func measuredRatio(key string, min float64) func(results) (string, string, bool, bool) {
	return func(rs results) (string, string, bool, bool) {
		r, ok := rs.value(key, "cpu-ratio")
		if !ok {
			return "", "", false, false
		}
		fig := fmt.Sprintf("%.2f× (CPU per call", r)
		if w, ok := rs.value(key, "ratio"); ok {
			b, _ := rs.value(key, "none-execs/s")
			c, _ := rs.value(key, "apikey-execs/s")
			fig += fmt.Sprintf("; wall clock %.2f×, %.0f execs/s vs baseline %.0f, the two sides in turns", w, c, b)
		}
		return fig + ")", fmt.Sprintf("≥ %.2f×", min), r >= min, true
	}
}

// overhead reports candidate minus baseline latency.
func overhead(baseline, candidate string, maxNs float64) func(results) (string, string, bool, bool) {
	return func(rs results) (string, string, bool, bool) {
		b, ok1 := nsPerOp(rs, baseline)
		c, ok2 := nsPerOp(rs, candidate)
		if !ok1 || !ok2 {
			return "", "", false, false
		}
		d := c - b
		fig := fmt.Sprintf("%s (%s/op vs runtime alone %s/op)", dur(d), dur(c), dur(b))
		return fig, "≤ " + dur(maxNs), d <= maxNs, true
	}
}

// rate reports a throughput metric of candidate next to the same metric of
// baseline; it has no target.
func rate(candidate, baseline, unit string) func(results) (string, string, bool, bool) {
	return func(rs results) (string, string, bool, bool) {
		c, ok1 := rs.value(candidate, unit)
		b, ok2 := rs.value(baseline, unit)
		if !ok1 || !ok2 || b == 0 {
			return "", "", false, false
		}
		return fmt.Sprintf("%.0f %s (%.2f× of %.0f %s with the journal disabled)", c, unit, c/b, b, unit), "none", true, true
	}
}

// peak returns the highest value of unit among the benchmarks named
// prefix+"/"+something (one per concurrency), with that something.
func peak(rs results, prefix, unit string) (v float64, at string, ok bool) {
	for name := range rs {
		sub, found := strings.CutPrefix(name, prefix+"/")
		if x, has := rs.value(name, unit); found && has && x > v {
			v, at, ok = x, sub, true
		}
	}
	return v, at, ok
}

// peakRatio reports the candidate's peak throughput (unit, over the
// concurrencies both ran at) as a fraction of the baseline's peak.
func peakRatio(baseline, candidate, unit string, min float64) func(results) (string, string, bool, bool) {
	return func(rs results) (string, string, bool, bool) {
		b, bAt, ok1 := peak(rs, baseline, unit)
		c, cAt, ok2 := peak(rs, candidate, unit)
		if !ok1 || !ok2 {
			return "", "", false, false
		}
		r := c / b
		fig := fmt.Sprintf("%.2f× (peak %.0f %s at %s vs baseline %.0f at %s)", r, c, unit, cAt, b, bAt)
		return fig, fmt.Sprintf("≥ %.2f×", min), r >= min, true
	}
}

// rateRatio reports candidate's unit as a fraction of baseline's, for
// information (no target).
func rateRatio(baseline, candidate, unit string) func(results) (string, string, bool, bool) {
	return func(rs results) (string, string, bool, bool) {
		c, ok1 := rs.value(candidate, unit)
		b, ok2 := rs.value(baseline, unit)
		if !ok1 || !ok2 || b == 0 {
			return "", "", false, false
		}
		return fmt.Sprintf("%.2f× (%.0f vs %.0f %s)", c/b, c, b, unit), "none", true, true
	}
}

// latency reports one benchmark's ns/op against a ceiling.
func latency(key string, maxNs float64) func(results) (string, string, bool, bool) {
	return func(rs results) (string, string, bool, bool) {
		v, ok := nsPerOp(rs, key)
		if !ok {
			return "", "", false, false
		}
		return fmt.Sprintf("%s/op (%.0f/s)", dur(v), 1e9/v), "≤ " + dur(maxNs), v <= maxNs, true
	}
}

func dur(ns float64) string {
	switch {
	case ns >= 1e6:
		return fmt.Sprintf("%.2fms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%.1fµs", ns/1e3)
	default:
		return fmt.Sprintf("%.0fns", ns)
	}
}

// unitRatio reports candidate's unit as a fraction of baseline's unit
// (the same or another unit, both of the same run). With atMost the
// target is a ceiling (latencies), else a floor (throughputs); a zero
// target means none (for information).
func unitRatio(baseline, baseUnit, candidate, unit string, target float64, atMost bool) func(results) (string, string, bool, bool) {
	return func(rs results) (string, string, bool, bool) {
		b, ok1 := rs.value(baseline, baseUnit)
		c, ok2 := rs.value(candidate, unit)
		if !ok1 || !ok2 || b == 0 {
			return "", "", false, false
		}
		r := c / b
		fig := fmt.Sprintf("%.2f× (%s vs %s)", r, figure(c, unit), figure(b, baseUnit))
		if target == 0 {
			return fig, "none", true, true
		}
		if atMost {
			return fig, fmt.Sprintf("≤ %.2f×", target), r <= target, true
		}
		return fig, fmt.Sprintf("≥ %.2f×", target), r >= target, true
	}
}

// figure prints a value with its unit, latencies (…-µs) as durations.
func figure(v float64, unit string) string {
	if name, ok := strings.CutSuffix(unit, "-µs"); ok {
		return name + " " + dur(v*1e3)
	}
	return fmt.Sprintf("%.0f %s", v, unit)
}

// External scenarios of tools/loadgen.
const (
	ext         = "loadgen.BenchmarkExternal/"
	store       = "loadgen.BenchmarkStore/"
	storeBefore = "loadgen.BenchmarkStoreBefore/"
	rows        = "rows=500000"
)

var scenarios = []scenario{
	{"executor overhead of a trivial node", overhead("executor.BenchmarkTrivialNodeRuntime", "executor.BenchmarkTrivialNode", 20e3)},
	{"  … with a cancellable context (as for a gRPC request)", overhead("executor.BenchmarkTrivialNodeRuntime", "executor.BenchmarkTrivialNodeCancellable", 20e3)},
	{"40-node sequential chain (in process)", latency("executor.BenchmarkChain40", 2e6)},
	{"durable no-op workflow vs journal disabled, gRPC API (SQLite)", peakRatio("server.BenchmarkNoopThroughput/ephemeral", "server.BenchmarkNoopThroughput/durable", "execs/s", 0.40)},
	{"  … at 32 callers", rateRatio("server.BenchmarkNoopThroughput/ephemeral/callers=32", "server.BenchmarkNoopThroughput/durable/callers=32", "execs/s")},
	{"  … at 128 callers", rateRatio("server.BenchmarkNoopThroughput/ephemeral/callers=128", "server.BenchmarkNoopThroughput/durable/callers=128", "execs/s")},
	{"  … at 512 callers", rateRatio("server.BenchmarkNoopThroughput/ephemeral/callers=512", "server.BenchmarkNoopThroughput/durable/callers=512", "execs/s")},
	{"  … executor alone, no RPC (the journal's own cost)", rateRatio("executor.BenchmarkNoopEphemeral", "executor.BenchmarkNoopDurable", "execs/s")},
	{"no-op workflow with API-key auth vs --auth none, gRPC API", measuredRatio("server.BenchmarkAuthThroughput", 0.90)},
	{"no-op workflow, tracing off (no OTEL_* variable) vs without the span hooks", hooksShare("executor.BenchmarkSpanHooksOff", "server.BenchmarkTracingOverhead", 0.97)},
	{"no-op workflow, tracing on with the sampler off (always_off) vs no OTEL_* variable, 128 callers", sliceRatio("server.BenchmarkTracingOverhead", "off", 0)},
	{"no-op workflow, tracing always_on (batched OTLP to loopback) vs no OTEL_* variable", sliceRatio("server.BenchmarkTracingOverhead", "on", 0.75)},
	{"  … always_on's floor: SDK + otelgrpc, the three spans dropped, no export", sliceRatio("server.BenchmarkTracingFloor", "floor", 0)},
	{"events delivered to one watcher (durable, SQLite)", rate("executor.BenchmarkEventsToWatcherDurable", "executor.BenchmarkEventsToWatcherEphemeral", "events/s")},
	{"db.fetchval(\"SELECT 1\") in a workflow node vs bare pgxpool", ratio("server.BenchmarkFetchval/bare-pgxpool", "server.BenchmarkFetchval/workflow-node", 0.5)},
}

// externalScenarios are measured by tools/loadgen against a real gateway.
var externalScenarios = []scenario{
	{"external: no-op at 64 callers vs health check, throughput", unitRatio(ext+"go/health/callers=64", "calls/s", ext+"go/noop/callers=64", "calls/s", 0.50, false)},
	{"external: no-op at 1 caller vs health check, p50", unitRatio(ext+"go/health/callers=1", "p50-µs", ext+"go/noop/callers=1", "p50-µs", 2, true)},
	{"external: no-op at 1 caller, p99 vs its own p50", unitRatio(ext+"go/noop/callers=1", "p50-µs", ext+"go/noop/callers=1", "p99-µs", 3, true)},
	{"external: 3-node chain at 1 caller, p99 vs its own p50", unitRatio(ext+"go/chain3/callers=1", "p50-µs", ext+"go/chain3/callers=1", "p99-µs", 3, true)},
	{"external: fetchval at 1 caller, p99 vs its own p50", unitRatio(ext+"go/fetchval/callers=1", "p50-µs", ext+"go/fetchval/callers=1", "p99-µs", 3, true)},
	{"external: Python client, no-op at 16 callers vs Go", unitRatio(ext+"go/noop/callers=16", "calls/s", ext+"python/noop/callers=16", "calls/s", 0.70, false)},
	{"external: TypeScript client, no-op at 16 callers vs Go", unitRatio(ext+"go/noop/callers=16", "calls/s", ext+"ts/noop/callers=16", "calls/s", 0.70, false)},
	{"background: no-op p99 across recovery ticks, 500k stored vs empty", unitRatio(store+"empty/noop/callers=1", "p99-µs", store+rows+"/noop/callers=1", "p99-µs", 2, true)},
	{"  … p99.9", unitRatio(store+"empty/noop/callers=1", "p99.9-µs", store+rows+"/noop/callers=1", "p99.9-µs", 0, true)},
	{"  … maximum (one caller sees every tick)", unitRatio(store+"empty/noop/callers=1", "max-µs", store+rows+"/noop/callers=1", "max-µs", 0, true)},
	{"  … idle CPU (recovery ticks every second)", idleCPU(store+"empty/idle", store+rows+"/idle")},
	{"  … before (-kgw-before, ticks every 15 s): p99, 500k stored vs empty", optional(unitRatio(storeBefore+"empty/noop/callers=1", "p99-µs", storeBefore+rows+"/noop/callers=1", "p99-µs", 0, true))},
	{"  … before: p99.9", optional(unitRatio(storeBefore+"empty/noop/callers=1", "p99.9-µs", storeBefore+rows+"/noop/callers=1", "p99.9-µs", 0, true))},
	{"  … before: maximum", optional(unitRatio(storeBefore+"empty/noop/callers=1", "max-µs", storeBefore+rows+"/noop/callers=1", "max-µs", 0, true))},
	{"  … before: idle CPU", optional(idleCPU(storeBefore+"empty/idle", storeBefore+rows+"/idle"))},
}

// Cluster scenarios of tools/loadgen -cluster: two replicas on one
// PostgreSQL database.
const cluster = "loadgen.BenchmarkCluster/"

// clusterNote heads the cluster report: on the development machine the
// replicas, PostgreSQL and the load generator share two cores.
const clusterNote = "measured on 2 cores shared by PostgreSQL, both replicas and the load generator: overhead, not scale-out"

var clusterScenarios = []scenario{
	{"cluster: durable no-op throughput, 2 replicas vs 1", unitRatio(cluster+"noop/replicas=1", "calls/s", cluster+"noop/replicas=2", "calls/s", 0, false)},
	{"  … per replica with 2 vs the single replica", unitRatio(cluster+"noop/replicas=1", "calls/s", cluster+"noop/replicas=2", "per-replica-calls/s", 0, false)},
	{"  … gateway CPU per call, 2 replicas vs 1", unitRatio(cluster+"noop/replicas=1", "cpu-µs/call", cluster+"noop/replicas=2", "cpu-µs/call", 0, true)},
	{"  … PostgreSQL CPU per call, 2 replicas vs 1", optional(unitRatio(cluster+"noop/replicas=1", "pg-cpu-µs/call", cluster+"noop/replicas=2", "pg-cpu-µs/call", 0, true))},
	{"cluster: watch latency, event on A's watcher → on B's, p50", ceiling(cluster+"watch/idle", "p50-ms", 50)},
	{"  … p99", ceiling(cluster+"watch/idle", "p99-ms", 0)},
	{"  … end of B's stream after A's, median", ceiling(cluster+"watch/idle", "end-p50-ms", 0)},
	{"  … histories that differed between A and B", ceiling(cluster+"watch/idle", "mismatches", 0.5)},
	{"  … under no-op load on both replicas, p50", optional(ceiling(cluster+"watch/loaded", "p50-ms", 50))},
	{"  … under load, p99", optional(ceiling(cluster+"watch/loaded", "p99-ms", 0))},
	{"  … under load, histories that differed", optional(ceiling(cluster+"watch/loaded", "mismatches", 0.5))},
}

// ceiling reports one metric of one benchmark against a maximum; a zero
// maximum means none (for information).
func ceiling(key, unit string, maxV float64) func(results) (string, string, bool, bool) {
	return func(rs results) (string, string, bool, bool) {
		v, ok := rs.value(key, unit)
		if !ok {
			return "", "", false, false
		}
		name, ms := strings.CutSuffix(unit, "-ms")
		fig := fmt.Sprintf("%.0f %s", v, unit)
		if ms {
			fig = fmt.Sprintf("%s %.2f ms", name, v)
		}
		if maxV == 0 {
			return fig, "none", true, true
		}
		if ms {
			return fig, fmt.Sprintf("≤ %.0f ms", maxV), v <= maxV, true
		}
		return fig, fmt.Sprintf("≤ %.0f", maxV), v <= maxV, true
	}
}

// optional marks a scenario that only some runs measure: when its
// benchmarks are missing it reports "not run" instead of failing.
func optional(report func(results) (string, string, bool, bool)) func(results) (string, string, bool, bool) {
	return func(rs results) (string, string, bool, bool) {
		fig, target, met, ok := report(rs)
		if !ok {
			return "not run", "none", true, true
		}
		return fig, target, met, ok
	}
}

// idleCPU reports the gateway's idle CPU with a full store next to an
// empty store's, for information (process CPU is counted in 10 ms ticks).
func idleCPU(empty, full string) func(results) (string, string, bool, bool) {
	return func(rs results) (string, string, bool, bool) {
		e, ok1 := rs.value(empty, "cpu-ms/s")
		f, ok2 := rs.value(full, "cpu-ms/s")
		if !ok1 || !ok2 {
			return "", "", false, false
		}
		return fmt.Sprintf("%.2f ms of CPU per second vs %.2f with an empty store", f, e), "none", true, true
	}
}

// externalTable prints every external scenario that ran: throughput and
// its ratio to the health check at the same concurrency, latencies, and
// the gateway's CPU per call; then, for the scenarios also measured on an
// older binary (loadgen -kgw-before), the figures before and after.
func externalTable(rs results) {
	var names []string
	for k := range rs {
		if strings.HasPrefix(k, ext) {
			names = append(names, k)
		}
	}
	if len(names) == 0 {
		return
	}
	slices.Sort(names)
	fmt.Println()
	fmt.Println("== external scenarios (tools/loadgen; one gateway, one run) ==")
	fmt.Printf("%-28s %10s %8s %10s %10s %10s %12s\n", "scenario", "calls/s", "×health", "p50", "p99", "p99.9", "CPU/call")
	for _, k := range names {
		sub := strings.TrimPrefix(k, ext)
		parts := strings.Split(sub, "/") // client, scenario, callers=N
		health := ext + "go/health/" + parts[len(parts)-1]
		tp, _ := rs.value(k, "calls/s")
		h, _ := rs.value(health, "calls/s")
		rel := "-"
		if h > 0 {
			rel = fmt.Sprintf("%.2f×", tp/h)
		}
		p50, _ := rs.value(k, "p50-µs")
		p99, _ := rs.value(k, "p99-µs")
		p999, _ := rs.value(k, "p99.9-µs")
		cpu := "-"
		if c, ok := rs.value(k, "cpu-µs/call"); ok {
			cpu = dur(c * 1e3)
		}
		fmt.Printf("%-28s %10.0f %8s %10s %10s %10s %12s\n", sub, tp, rel, dur(p50*1e3), dur(p99*1e3), dur(p999*1e3), cpu)
	}
	const before = "loadgen.BenchmarkBefore/"
	printed := false
	for _, k := range names {
		b := before + strings.TrimPrefix(k, ext)
		bt, ok := rs.value(b, "calls/s")
		if !ok {
			continue
		}
		if !printed {
			fmt.Println()
			fmt.Println("== before (loadgen -kgw-before) → after, same run, in turns ==")
			printed = true
		}
		at, _ := rs.value(k, "calls/s")
		b50, _ := rs.value(b, "p50-µs")
		a50, _ := rs.value(k, "p50-µs")
		b99, _ := rs.value(b, "p99-µs")
		a99, _ := rs.value(k, "p99-µs")
		fmt.Printf("%-28s %7.0f → %7.0f calls/s  p50 %s → %s  p99 %s → %s\n", strings.TrimPrefix(k, ext),
			bt, at, dur(b50*1e3), dur(a50*1e3), dur(b99*1e3), dur(a99*1e3))
	}
}

func main() {
	externalOnly := flag.Bool("external", false, "report only the external scenarios (make bench-external)")
	clusterOnly := flag.Bool("cluster", false, "report only the cluster scenarios (make bench-cluster)")
	flag.Parse()
	rs, err := parse(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
	fmt.Println()
	fmt.Println("== kgw benchmark report (ratios against baselines measured in this run) ==")
	missing := 0
	all := append(slices.Clone(scenarios), externalScenarios...)
	if *externalOnly {
		all = externalScenarios
	}
	if *clusterOnly {
		fmt.Println("(cluster: " + clusterNote + ")")
		all = clusterScenarios
	}
	for _, s := range all {
		fig, target, met, ok := s.report(rs)
		if !ok {
			fmt.Printf("%-66s  not measured (benchmark missing from this run)\n", s.name)
			missing++
			continue
		}
		verdict := "meets target"
		if target == "none" {
			verdict = "(for information)"
		} else if !met {
			verdict = "BELOW TARGET"
		}
		fmt.Printf("%-66s  %s  target %s  %s\n", s.name, fig, target, verdict)
	}
	externalTable(rs)
	if missing > 0 {
		os.Exit(1)
	}
}

// sliceRatio reports a ratio that the benchmark key measured itself in
// slices, its sides taking turns: "<side>-cpu-ratio", the median over the
// slices of the baseline's process CPU time per call over the side's
// (held to min; none when min is 0), with its range ("-min", "-max"), the wall-clock median
// ("<side>-ratio") and the allocations per call of both sides.
func sliceRatio(key, side string, min float64) func(results) (string, string, bool, bool) {
	return func(rs results) (string, string, bool, bool) {
		r, ok := rs.value(key, side+"-cpu-ratio")
		if !ok {
			return "", "", false, false
		}
		fig := fmt.Sprintf("%.2f× (CPU per call, median of the slices", r)
		lo, ok1 := rs.value(key, side+"-cpu-ratio-min")
		hi, ok2 := rs.value(key, side+"-cpu-ratio-max")
		if ok1 && ok2 {
			fig += fmt.Sprintf(", %.2f–%.2f", lo, hi)
		}
		if w, ok := rs.value(key, side+"-ratio"); ok {
			fig += fmt.Sprintf("; wall clock %.2f×", w)
		}
		a, ok1 := rs.value(key, side+"-allocs/op")
		ab, ok2 := rs.value(key, "base-allocs/op")
		if ok1 && ok2 {
			fig += fmt.Sprintf("; %.0f allocations a call vs %.0f", a, ab)
		}
		if g, ok := rs.value(key, "gogc"); ok { // the collector's target it ran at
			fig += fmt.Sprintf("; GOGC=%.0f", g)
		}
		if min <= 0 {
			return fig + ")", "none", true, true
		}
		return fig + ")", fmt.Sprintf("≥ %.2f×", min), r >= min, true
	}
}

// hooksShare reports the throughput of a no-op call with tracing off
// against the same call without the executor's span hooks: 1 − the hooks'
// time per execution (hooks, ns/op) over the CPU time of a whole call
// (calls, its "base-cpu-ns/op").
func hooksShare(hooks, calls string, min float64) func(results) (string, string, bool, bool) {
	return func(rs results) (string, string, bool, bool) {
		h, ok1 := nsPerOp(rs, hooks)
		c, ok2 := rs.value(calls, "base-cpu-ns/op")
		if !ok1 || !ok2 || c <= 0 {
			return "", "", false, false
		}
		r := 1 - h/c
		return fmt.Sprintf("%.4f× (hooks %s per execution, a call %s of CPU)", r, dur(h), dur(c)), fmt.Sprintf("≥ %.2f×", min), r >= min, true
	}
}
