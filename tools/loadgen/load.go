package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// call is one request of a scenario; it returns an error when the call
// failed or the workflow did not complete.
type call func(ctx context.Context) error

// measurement is what one scenario at one concurrency gave.
type measurement struct {
	calls     int           // completed in the window
	errors    int           // failed in the window
	window    time.Duration // measured time (after the warm-up)
	latencies []time.Duration
	cpu       float64 // server CPU seconds during the window; <0 unknown
	clientCPU float64 // the load generator's or client driver's CPU seconds during the window; <0 unknown
}

func (m measurement) throughput() float64 { return float64(m.calls) / m.window.Seconds() }

// add returns m and n as one measurement (of the sum of their windows).
func (m measurement) add(n measurement) measurement {
	if m.window == 0 {
		return n
	}
	m.calls += n.calls
	m.errors += n.errors
	m.window += n.window
	if m.cpu >= 0 && n.cpu >= 0 {
		m.cpu += n.cpu
	} else {
		m.cpu = -1
	}
	if m.clientCPU >= 0 && n.clientCPU >= 0 {
		m.clientCPU += n.clientCPU
	} else {
		m.clientCPU = -1
	}
	m.latencies = append(m.latencies, n.latencies...)
	slices.Sort(m.latencies)
	return m
}

// quantile returns the q-quantile (0..1) of the sorted latencies.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// run drives fn from callers goroutines for warmup+window. Calls that
// start after the warm-up and end before the deadline are measured;
// cpu is read from the gateway's /metrics at both ends of the window.
func run(ctx context.Context, fn call, callers int, warmup, window time.Duration, admin string) measurement {
	start := time.Now()
	from, until := start.Add(warmup), start.Add(warmup+window)
	ctx, cancel := context.WithDeadline(ctx, until.Add(30*time.Second))
	defer cancel()
	var (
		mu   sync.Mutex
		m    = measurement{window: window, cpu: -1, clientCPU: -1}
		wg   sync.WaitGroup
		cpu0 = make(chan float64, 1)
		own0 = make(chan float64, 1)
	)
	go func() {
		time.Sleep(time.Until(from))
		own0 <- ownCPU()
		c, err := serverCPU(admin)
		if err != nil {
			c = -1
		}
		cpu0 <- c
	}()
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			calls, errs := 0, 0
			for {
				t0 := time.Now()
				if !t0.Before(until) {
					break
				}
				err := fn(ctx)
				t1 := time.Now()
				if t0.Before(from) || t1.After(until) {
					continue
				}
				if err != nil {
					errs++
					continue
				}
				calls++
				lat = append(lat, t1.Sub(t0))
			}
			mu.Lock()
			m.calls += calls
			m.errors += errs
			m.latencies = append(m.latencies, lat...)
			mu.Unlock()
		}()
	}
	// The window's CPU ends at the deadline, not when the last call of a
	// slow scenario returns.
	time.Sleep(time.Until(until))
	own1 := ownCPU()
	c1, err := serverCPU(admin)
	wg.Wait()
	if c0 := <-cpu0; err == nil && c0 >= 0 {
		m.cpu = c1 - c0
	}
	if o0 := <-own0; o0 >= 0 && own1 >= o0 {
		m.clientCPU = own1 - o0
	}
	slices.Sort(m.latencies)
	return m
}

// ownCPU returns this process's CPU seconds (user and system, all
// threads), or -1: the Go load generator's cost per call, next to the
// client drivers' (which report their own).
func ownCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// serverCPU reads process_cpu_seconds_total from the gateway's /metrics.
func serverCPU(admin string) (float64, error) {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "process_cpu_seconds_total "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no process_cpu_seconds_total in /metrics of %s", admin)
}

// line formats a measurement as a `go test -bench` result line that
// internal/benchreport reads: ns/op is the inverse of the throughput.
func line(name string, m measurement) string {
	var b strings.Builder
	n := max(m.calls, 1)
	fmt.Fprintf(&b, "%s\t%d\t%.0f ns/op\t%.1f calls/s", name, m.calls, float64(m.window.Nanoseconds())/float64(n), m.throughput())
	fmt.Fprintf(&b, "\t%.1f p50-µs\t%.1f p99-µs\t%.1f p99.9-µs\t%.1f max-µs",
		us(quantile(m.latencies, 0.50)), us(quantile(m.latencies, 0.99)),
		us(quantile(m.latencies, 0.999)), us(quantile(m.latencies, 1)))
	if m.cpu >= 0 && m.calls > 0 {
		fmt.Fprintf(&b, "\t%.1f cpu-µs/call", m.cpu/float64(m.calls)*1e6)
	}
	if m.clientCPU >= 0 && m.calls > 0 {
		fmt.Fprintf(&b, "\t%.1f client-cpu-µs/call", m.clientCPU/float64(m.calls)*1e6)
	}
	fmt.Fprintf(&b, "\t%d errors", m.errors)
	return b.String()
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
