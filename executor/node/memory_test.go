package node_test

import (
	"math"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/kailash-gateway/kgw/executor/node"
)

// testMemoryLimit is the watchdog limit of the memory tests: small, so
// that runaway code is stopped long before it needs gigabytes.
const testMemoryLimit = 32 << 20

// withMemoryLimit sets the watchdog limit for the rest of the test. The
// memory tests must not run in parallel with other tests: the watchdog
// stops every attempt running when the heap passes the limit.
func withMemoryLimit(t *testing.T, limit int64) {
	t.Helper()
	runtime.GC() // start below the limit
	prev := node.SetMemoryConfig(node.MemoryConfig{Limit: limit})
	t.Cleanup(func() {
		node.SetMemoryConfig(prev)
		runtime.GC()
	})
}

func TestMemoryLimit(t *testing.T) {
	withMemoryLimit(t, testMemoryLimit)
	// The attempt stops at its next step, in the loop body or header (or,
	// for parallel.map, possibly at the call).
	tests := []struct {
		name, code string
		lines      []int
	}{
		{"list concatenation", "l = [1]\nfor i in range(40):\n    l = l + l", []int{2, 3}},
		{"string concatenation", "s = \"x\"\nfor i in range(40):\n    s = s + s", []int{2, 3}},
		{"list extend", "l = [1]\nfor i in range(40):\n    l.extend(l)", []int{2, 3}},
		{"augmented assignment", "l = [\"abc\"]\nfor i in range(40):\n    l += l", []int{2, 3}},
		{"dict growth", "d = {}\ns = \"x\" * 1000\nfor i in range(1000000):\n    d[str(i)] = s + str(i)", []int{3, 4}},
		{"string repeat in a loop", "parts = []\nfor i in range(100):\n    parts.append(\"x\" * (16 << 20))", []int{2, 3}},
		{"inside parallel.map", "def grow(i):\n    l = [i]\n    for j in range(40):\n        l = l + l\n    return len(l)\nparallel.map(grow, range(2))", []int{3, 4, 6}},
		{"catch does not swallow it", "def grow():\n    s = \"y\"\n    for j in range(40):\n        s = s + s\ncatch(grow)\nresult = {}", []int{3, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustFail(t, tt.code, &node.Attempt{Limits: node.Limits{MaxSteps: 1 << 40}}, node.CodeMemoryLimit)
			if !strings.Contains(e.Message, "exceeded the memory limit (32 MiB)") {
				t.Errorf("message = %q, want it to name the memory limit", e.Message)
			}
			if !slices.Contains(tt.lines, e.Line) {
				t.Errorf("error at line %d, want one of %v (message %q)", e.Line, tt.lines, e.Message)
			}
			if e.Traceback == "" {
				t.Errorf("no traceback")
			}
		})
	}
	// The process lives on and the next attempt runs normally.
	runtime.GC()
	got := mustRun(t, `result = {"ok": len([1] * 1000)}`, nil)
	if got["ok"] != int64(1000) {
		t.Errorf("after a memory failure: result = %v", got)
	}
}

// TestMemoryLimitDisabled checks that a negative limit turns the
// watchdog off: code that stays far below any real limit but above the
// configured one is not stopped.
func TestMemoryLimitDisabled(t *testing.T) {
	withMemoryLimit(t, 1) // every attempt would trip
	mustFail(t, "l = [1]\nfor i in range(25):\n    l = l + l", nil, node.CodeMemoryLimit)
	node.SetMemoryConfig(node.MemoryConfig{Limit: -1})
	got := mustRun(t, "l = [1]\nfor i in range(20):\n    l = l + l\nresult = {\"n\": len(l)}", nil)
	if got["n"] != int64(1<<20) {
		t.Errorf("result = %v", got)
	}
}

func TestDefaultMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(math.MaxInt64)
	defer debug.SetMemoryLimit(prev)
	if got := node.DefaultMemoryLimit(); got <= 0 {
		t.Errorf("DefaultMemoryLimit() without GOMEMLIMIT = %d, want > 0", got)
	}
	debug.SetMemoryLimit(8 << 30)
	if got, want := node.DefaultMemoryLimit(), int64(6<<30); got != want {
		t.Errorf("DefaultMemoryLimit() with a Go memory limit of 8 GiB = %d, want %d", got, want)
	}
}

// TestMemoryWatchdogStops checks that StopMemoryWatchdog ends the
// watchdog's goroutine and that the next attempt starts it again.
func TestMemoryWatchdogStops(t *testing.T) {
	node.StopMemoryWatchdog()
	ignore := goleak.IgnoreCurrent()
	for range 2 {
		mustRun(t, `result = {}`, nil)
		node.StopMemoryWatchdog()
		if err := goleak.Find(ignore); err != nil {
			t.Fatalf("after StopMemoryWatchdog: %v", err)
		}
	}
	// A memory failure wraps the context cause for the server log.
	withMemoryLimit(t, 1)
	e := mustFail(t, "l = [1]\nfor i in range(25):\n    l = l + l", nil, node.CodeMemoryLimit)
	if e.Err == nil || !strings.Contains(e.Err.Error(), "memory limit exceeded") {
		t.Errorf("error chain = %v", e.Err)
	}
}
