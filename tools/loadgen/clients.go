package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// clientRunner runs a scenario through a client library in a process of
// its own (clients/python_bench.py, clients/ts_bench.mjs). The script
// prints "window-start" when its warm-up ends, "window-end" at its
// deadline, then one JSON line with the calls, errors, latencies and its
// own CPU seconds of the window; the gateway's CPU is read at the two
// marks.
type clientRunner struct {
	lang string
	argv []string // interpreter and script
	env  []string
}

func clientRunners(o options) []clientRunner {
	dir, err := os.Getwd()
	if err != nil {
		fatalf("%v", err)
	}
	var rs []clientRunner
	if o.python != "" {
		rs = append(rs, clientRunner{lang: "python", argv: []string{o.python, filepath.Join(dir, "clients", "python_bench.py")}})
	}
	if o.node != "" && o.tsClient != "" {
		rs = append(rs, clientRunner{lang: "ts", argv: []string{o.node, filepath.Join(dir, "clients", "ts_bench.mjs")},
			env: []string{"KGW_TS_CLIENT=" + o.tsClient}})
	}
	return rs
}

// clientWarmup is the least warm-up of a client driver: a fresh Node.js or
// Python process compiles its hot paths during its first thousand calls
// or so (V8's tiers; for Node.js a 0.3 s warm-up left the first measured
// second at two to three times the client CPU per call of a warm process),
// and what is measured is a long-running client's steady state.
const clientWarmup = time.Second

type clientResult struct {
	Calls       int       `json:"calls"`
	Errors      int       `json:"errors"`
	FirstError  string    `json:"first_error"`
	CPUSeconds  *float64  `json:"cpu_s"` // the driver's own CPU in the window
	LatenciesUS []float64 `json:"latencies_us"`
}

func (c clientRunner) run(ctx context.Context, g *gateway, s scenario, callers int, o options) (measurement, error) {
	db := "0"
	if s.db {
		db = "1"
	}
	warmup := max(o.warmup, clientWarmup)
	args := append(slices.Clone(c.argv[1:]), g.proc.Addr, s.workflow, db, strconv.Itoa(callers),
		strconv.FormatFloat(warmup.Seconds(), 'f', 3, 64), strconv.FormatFloat(o.window.Seconds(), 'f', 3, 64))
	cmd := exec.CommandContext(ctx, c.argv[0], args...)
	cmd.Env = append(os.Environ(), c.env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return measurement{}, err
	}
	if err := cmd.Start(); err != nil {
		return measurement{}, err
	}
	m := measurement{window: o.window, cpu: -1, clientCPU: -1}
	var cpu0, cpu1 float64
	var res clientResult
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<20), 64<<20)
	for sc.Scan() {
		switch l := sc.Text(); {
		case l == "window-start":
			cpu0, _ = serverCPU(g.proc.AdminAddr)
		case l == "window-end":
			cpu1, _ = serverCPU(g.proc.AdminAddr)
		case strings.HasPrefix(l, "{"):
			if err := json.Unmarshal([]byte(l), &res); err != nil {
				return m, fmt.Errorf("result: %w", err)
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		return m, err
	}
	if res.Calls == 0 {
		return m, fmt.Errorf("no call completed (%d errors, first: %s)", res.Errors, res.FirstError)
	}
	if res.Errors > 0 {
		fmt.Fprintf(os.Stderr, "loadgen: %s client, %s: %d errors, first: %s\n", c.lang, s.name, res.Errors, res.FirstError)
	}
	m.calls, m.errors = res.Calls, res.Errors
	if res.CPUSeconds != nil {
		m.clientCPU = *res.CPUSeconds
	}
	if cpu0 > 0 && cpu1 >= cpu0 {
		m.cpu = cpu1 - cpu0
	}
	for _, v := range res.LatenciesUS {
		m.latencies = append(m.latencies, time.Duration(v*1e3))
	}
	slices.Sort(m.latencies)
	return m, nil
}
