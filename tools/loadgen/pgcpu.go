package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is the unit of the CPU times in /proc/<pid>/stat (USER_HZ,
// 100 on Linux).
const clockTicks = 100

// postgresCPU returns the CPU seconds used so far by the PostgreSQL server
// listening on port: its postmaster and every process it started (the
// backends serving the gateways, the WAL writer, …), including the ones
// that already exited. It reads /proc, so it works on Linux only.
func postgresCPU(port int) (float64, error) {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	type proc struct {
		ppid  int
		ticks int64 // own user+system, and reaped children's
	}
	all := map[int]proc{}
	postmaster := 0
	want := strconv.Itoa(port)
	for _, d := range procs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid … utime(14) stime(15) cutime(16) cstime(17)
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
		if len(f) < 15 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		var ticks int64
		for _, k := range []int{11, 12, 13, 14} {
			v, _ := strconv.ParseInt(f[k], 10, 64)
			ticks += v
		}
		all[pid] = proc{ppid: ppid, ticks: ticks}
		if postmaster == 0 {
			if cmd, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline")); err == nil {
				args := strings.Split(string(cmd), "\x00")
				if filepath.Base(args[0]) == "postgres" && hasArgs(args, "-p", want) {
					postmaster = pid
				}
			}
		}
	}
	if postmaster == 0 {
		return 0, fmt.Errorf("no postgres process listening on port %d in /proc", port)
	}
	var ticks int64
	for pid, p := range all {
		if pid == postmaster || p.ppid == postmaster {
			ticks += p.ticks
		}
	}
	return float64(ticks) / clockTicks, nil
}

func hasArgs(args []string, name, value string) bool {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == name && args[i+1] == value {
			return true
		}
	}
	return false
}

// postgresWindow reads postgresCPU after warmup and again after warmup +
// window (the window of a run started now) in the background; the
// returned function waits for the second reading and returns the CPU
// seconds in between, or -1 when /proc could not be read.
func postgresWindow(port int, warmup, window time.Duration) func() float64 {
	done := make(chan float64, 1)
	go func() {
		time.Sleep(warmup)
		c0, err0 := postgresCPU(port)
		time.Sleep(window)
		c1, err1 := postgresCPU(port)
		if err0 != nil || err1 != nil {
			done <- -1
			return
		}
		done <- c1 - c0
	}()
	return func() float64 { return <-done }
}
