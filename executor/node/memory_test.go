package node_test

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kailash-gateway/kgw/executor/node"
)

// testBudget is the memory budget of the bomb tests: small, so that a
// bomb is refused long before its heap could matter.
const testBudget = 32 << 20

// allocated returns the bytes the process has allocated so far (never
// decreasing, garbage included).
func allocated() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// memoryBombs are node codes that would each build at least 200 MiB, and
// the line where the attempt must stop.
var memoryBombs = []struct {
	name, code string
	line       int
}{
	// One statement.
	{"list repeat", "x = [0] * (1 << 28)", 1},
	{"string repeat", `x = "x" * (1 << 31)`, 1},
	{"repeat on the left", `x = (1 << 31) * "x"`, 1},
	{"bytes repeat", `x = b"x" * (1 << 31)`, 1},
	{"tuple repeat", `x = (1, 2) * (1 << 28)`, 1},
	{"join", "s = \"y\" * 100000\nparts = [s] * 10000\nx = \"\".join(parts)", 3},
	{"join with separator", "parts = [\"\"] * 100000\nx = (\"z\" * 100000).join(parts)", 2},
	{"list of range", "x = list(range(1 << 27))", 1},
	{"tuple of range", "x = tuple(range(1 << 27))", 1},
	{"sorted of a huge range", "x = sorted(range(1 << 40))", 1},
	{"reversed", "x = reversed(range(1 << 30))", 1},
	{"enumerate", "x = enumerate(range(1 << 26))", 1},
	{"zip", "x = zip(range(1 << 26), range(1 << 26))", 1},
	{"dict of pairs", "x = dict([(1, 2)] * (1 << 24))", 1},
	{"set of range", "x = set(range(1 << 26))", 1},
	{"replace", "s = \"a\" * 100000\nx = s.replace(\"a\", \"b\" * 10000)", 2},
	{"replace with empty old", "s = \"a\" * 1000000\nx = s.replace(\"\", \"cccccccccccccccccccccccccccccccccccccccccccccccccc\")", 2},
	{"split into many parts", "s = \",\" * 20000000\nx = s.split(\",\")", 2},
	{"whitespace split", "s = \"a \" * 10000000\nx = s.split()", 2},
	{"format", "l = [\"m\" * 100000] * 10000\nx = \"{}\".format(l)", 2},
	{"percent format", "l = [\"m\" * 100000] * 10000\nx = \"%s\" % (l,)", 2},
	{"percent format of a dict", "d = {\"a\": \"m\" * 1000000}\nx = (\"%(a)s\" * 100) % d", 2},
	{"str of a shared list", "x = str([\"m\" * 100000] * 10000)", 1},
	{"repr of a shared list", "x = repr([\"m\" * 100000] * 10000)", 1},
	{"print", "print([\"m\" * 100000] * 10000)", 1},
	{"fail message", "fail([\"m\" * 100000] * 10000)", 1},
	{"logger args", "logger.info(\"%s\", [\"m\" * 100000] * 10000)", 1},
	{"exponential sharing", "l = [\"m\"]\nfor i in range(40):\n    l = [l, l]\nx = str(l)", 4},
	{"json.encode", "x = json.encode([\"n\" * 100000] * 10000)", 1},
	{"json.dumps", "x = json.dumps([\"n\" * 100000] * 10000, indent=2)", 1},
	{"json.indent", "x = json.indent(\"[\" * 20000 + \"]\" * 20000)", 1},
	{"json.decode", "x = json.decode(\"[\" + \"[],\" * 3000000 + \"[]]\")", 1},
	{"re.sub", "x = re.sub(\"\", \"rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr\", \"a\" * 10000000)", 1},
	{"re.findall", "x = re.findall(\"\", \"a\" * 10000000)", 1},
	{"re.split", "x = re.split(\"(a)\", \"a\" * 10000000)", 1},
	{"base64", "x = base64.b64encode(\"z\" * (30 << 20))", 1},
	{"big int shift", "x = 1 << (1 << 34)", 1},
	{"big int squaring", "x = 3\nfor i in range(40):\n    x = x * x", 3},
	// Growth in a loop of moderate steps, counted cumulatively.
	{"append in a loop", "parts = []\nfor i in range(1000):\n    parts.append(\"x\" * (1 << 20))", 3},
	{"string doubling", "s = \"x\"\nfor i in range(40):\n    s = s + s", 3},
	{"list doubling", "l = [1]\nfor i in range(40):\n    l = l + l", 3},
	{"augmented list doubling", "l = [1]\nfor i in range(40):\n    l += l", 3},
	{"augmented string", "s = \"x\" * 1000\nfor i in range(100000):\n    s += s[:1000]", 3},
	{"augmented index", "d = {\"k\": \"x\"}\nfor i in range(40):\n    d[\"k\"] += d[\"k\"]", 3},
	{"augmented repeat", "s = \"ab\"\nfor i in range(40):\n    s *= 2", 3},
	{"extend", "l = [0] * 1000\nfor i in range(30):\n    l.extend(l)", 3},
	{"extend by a range", "l = []\nl.extend(range(1 << 30))", 2},
	{"plus-assign a range", "l = []\nl += range(1 << 30)", 2},
	{"dict update", "d = {}\nd.update([(i, i) for i in range(1 << 22)])", 2},
	{"dict items kept", "d = {i: i for i in range(100000)}\nkeep = [d.items() for i in range(1000)]", 2},
	{"set union kept", "s = set(range(100000))\nkeep = [s | s for i in range(1000)]", 2},
	{"set method kept", "s = set(range(100000))\nkeep = [s.union(s) for i in range(1000)]", 2},
	{"list copies by slicing", "l = [0] * 1000000\nkeep = [l[:] for i in range(1000)]", 2},
	{"reversed string copies", "s = \"x\" * 1000000\nkeep = [s[::-1] for i in range(1000)]", 2},
	{"bytes copies", "s = \"x\" * 1000000\nkeep = [bytes(s) for i in range(1000)]", 2},
	{"cache copies", "l = [[1] * 1000] * 1000\nfor i in range(1000):\n    workflow_cache.set(str(i), l)", 3},
	{"upper copies", "s = \"x\" * 1000000\nkeep = [s.upper() for i in range(1000)]", 2},
	{"spread into a call", "l = [\"a\"] * 1000000\ndef f(*a):\n    return a\nkeep = [f(*l) for i in range(1000)]", 4},
	{"spread a dict into a call", "d = {str(i): i for i in range(100000)}\ndef f(**kw):\n    return kw\nkeep = [f(**d) for i in range(1000)]", 4},
	{"list comprehension", "x = [i for i in range(1 << 26)]", 1},
	{"dict comprehension", "x = {i: i for i in range(10000000)}", 1},
	{"nested comprehension", "x = [[j for j in range(10000)] for i in range(10000)]", 1},
	{"nested repeat", "x = [[i] * 1000 for i in range(100000)]", 1},
	{"recursion", "def f(n):\n    if n == 0:\n        return \"ab\"\n    s = f(n - 1)\n    return s + s\nx = f(40)", 5},
	// Indirection: a method fetched once and called later.
	{"aliased join", "j = \"\".join\nx = j([\"q\" * 100000] * 10000)", 2},
	{"aliased extend", "l = [0] * 1000\ne = l.extend\nfor i in range(30):\n    e(l)", 4},
	{"getattr join", "j = getattr(\"\", \"jo\" + \"in\")\nx = j([\"q\" * 100000] * 10000)", 2},
	{"method in a lambda", "f = lambda p: p.join([\"v\" * 100000] * 10000)\nx = f(\"\")", 1},
	{"method passed to a function", "def call(fn, arg):\n    return fn(arg)\nx = call(\"\".join, [\"v\" * 100000] * 10000)", 2},
	{"method in a dict", "ops = {\"j\": \"-\".join}\nx = ops[\"j\"]([\"v\" * 100000] * 10000)", 2},
	{"join passed to parallel.map", "s = \"w\" * 1000000\nr = parallel.map(\"\".join, [[s] * 1000] * 4)", 2},
	{"parallel.map collecting items", "r = parallel.map(lambda i: \"z\" * 100000, range(10000))", 1},
	{"parallel.map of a huge range", "r = parallel.map(str, range(1 << 30))", 1},
	{"catch does not swallow it", "def f():\n    return \"x\" * (1 << 31)\nr = catch(f)\nresult = {\"ok\": r.ok}", 2},
	{"error messages kept by catch", "k = (\"x\" * 1000000,)\nd = {}\nkeep = [catch(lambda: d[k]).error for i in range(1000)]", 3},
	{"catch of an aliased method", "r = catch(\"\".join, [\"q\" * 100000] * 10000)\nresult = {\"ok\": r.ok}", 1},
}

// TestMemoryBudgetBombs runs code that would build far more than the
// budget in many ways and checks that each fails with MEMORY_LIMIT at the
// right line before building it: the bytes the process allocates while
// the attempt runs stay far below what the code would have built.
func TestMemoryBudgetBombs(t *testing.T) {
	for _, tt := range memoryBombs {
		t.Run(tt.name, func(t *testing.T) {
			runtime.GC()
			before := allocated()
			e := mustFail(t, tt.code, &node.Attempt{Limits: node.Limits{MaxMemory: testBudget, MaxSteps: 1 << 40}}, node.CodeMemoryLimit)
			grew := allocated() - before
			if !strings.Contains(e.Message, "exceeded its memory budget of 32 MiB") {
				t.Errorf("message = %q, want it to name the budget", e.Message)
			}
			if e.Line != tt.line {
				t.Errorf("error at line %d, want %d (message %q)", e.Line, tt.line, e.Message)
			}
			if e.Traceback == "" || strings.Contains(e.Traceback, "$") {
				t.Errorf("traceback = %q, want one naming only the code's own functions", e.Traceback)
			}
			// Every bomb would build at least 200 MiB; the budget of
			// 32 MiB, the estimates' slack and the test's own work stay
			// well below. (Not under -race, whose sync.Pool drops
			// items: regexp then allocates a matcher per match.)
			t.Logf("allocated %d MiB while failing: %s", grew>>20, e.Message)
			if grew > 120<<20 && !raceEnabled {
				t.Errorf("the process allocated %d MiB while the attempt ran, want far less than the bomb", grew>>20)
			}
		})
	}
}

// TestWorkflowCacheBytes checks that the values of a workflow_cache,
// which outlive the attempts that store them, are bounded in bytes: a
// value too large is refused, and older entries are evicted.
func TestWorkflowCacheBytes(t *testing.T) {
	c := node.NewWorkflowCache(1000)
	a := &node.Attempt{Cache: c}
	e := mustFail(t, "workflow_cache.set(\"k\", \"x\" * (100 << 20))", a, node.CodeNodeError)
	if !strings.Contains(e.Message, "too large to cache") {
		t.Errorf("message = %q", e.Message)
	}
	// 20 values of 8 MiB each: the first ones are evicted.
	for i := range 20 {
		mustRun(t, fmt.Sprintf("workflow_cache.set(\"k%d\", \"y\" * (8 << 20))", i), a)
	}
	got := mustRun(t, "result = {\"first\": workflow_cache.get(\"k0\") != None, \"last\": workflow_cache.get(\"k19\") != None}", a)
	if got["first"] != false || got["last"] != true {
		t.Errorf("after 160 MiB of values: %v, want the first evicted and the last kept", got)
	}
	if c.Len() >= 20 {
		t.Errorf("cache holds %d entries, want fewer than 20", c.Len())
	}
}

// TestMemoryBudgetDefault checks the default budget of 256 MiB: a bomb
// fails, and code that builds some megabytes runs.
func TestMemoryBudgetDefault(t *testing.T) {
	e := mustFail(t, "x = [0] * (1 << 28)", nil, node.CodeMemoryLimit)
	if !strings.Contains(e.Message, "memory budget of 256 MiB") || e.Line != 1 || e.Col != 9 {
		t.Errorf("error = %d:%d %q", e.Line, e.Col, e.Message)
	}
	got := mustRun(t, "parts = []\nfor i in range(1000):\n    parts.append(\"x\" * 10000)\ns = \"\".join(parts)\nresult = {\"n\": len(s)}", nil)
	if got["n"] != int64(10_000_000) {
		t.Errorf("result = %v", got)
	}
	// Negative is unlimited (this list is just above the default budget).
	got = mustRun(t, "x = [0] * (1 << 24)\nresult = {\"n\": len(x)}", &node.Attempt{Limits: node.Limits{MaxMemory: -1}})
	if got["n"] != int64(1<<24) {
		t.Errorf("unlimited: result = %v", got)
	}
}

// TestMemoryBudgetPerAttempt checks that each attempt has its own budget:
// a bomb fails while another attempt runs to completion at the same time,
// and an attempt that spends most of the budget can run again.
func TestMemoryBudgetPerAttempt(t *testing.T) {
	lim := node.Limits{MaxMemory: testBudget, MaxSteps: 1 << 40}
	// 24 MiB of 32 per attempt: fine once, and again, and concurrently.
	spend := "parts = []\nfor i in range(24):\n    parts.append(\"x\" * (1 << 20))\nresult = {\"n\": len(parts)}"
	bomb := "parts = []\nfor i in range(1000000):\n    parts.append(\"x\" * (1 << 20))"
	for range 3 {
		mustRun(t, spend, &node.Attempt{Limits: lim})
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	results := make([]map[string]any, 4)
	for i := range 4 {
		wg.Go(func() {
			code := spend
			if i%2 == 1 {
				code = bomb
			}
			results[i], errs[i] = run(t, code, &node.Attempt{Limits: lim})
		})
	}
	wg.Wait()
	for i := range 4 {
		if i%2 == 1 {
			checkFail(t, results[i], errs[i], node.CodeMemoryLimit)
		} else if errs[i] != nil || results[i]["n"] != int64(24) {
			t.Errorf("attempt %d next to a bomb = %v, %v; want it to complete", i, results[i], errs[i])
		}
	}
	// parallel.map threads share their attempt's budget.
	e := mustFail(t, "def grow(i):\n    return [\"x\" * (1 << 20) for j in range(10)]\nr = parallel.map(grow, range(8))", &node.Attempt{Limits: lim}, node.CodeMemoryLimit)
	if e.Line != 2 {
		t.Errorf("parallel.map failure at line %d, want 2 (%s)", e.Line, e.Message)
	}
}

// TestMemoryWatchdog checks the backstop: with two attempts running and
// the heap past the watchdog's limit, only the attempt that charged the
// most to its budget is stopped; the other completes.
func TestMemoryWatchdog(t *testing.T) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	w := node.NewWatchdog(node.MemoryConfig{Limit: int64(ms.HeapAlloc) + 48<<20, Interval: time.Millisecond})
	defer w.Close()
	unlimited := node.Limits{MaxMemory: -1, MaxSteps: 1 << 40}
	// big holds 96 MiB and spins; small holds 1 MiB and spins for a
	// while, then ends.
	big := "x = [\"a\" * (1 << 20) + str(i) for i in range(96)]\nn = 0\nwhile True:\n    n += 1"
	small := "x = \"b\" * (1 << 20)\nn = 0\nfor i in range(3000000):\n    n += 1\nresult = {\"n\": n}"
	var wg sync.WaitGroup
	var bigErr, smallErr error
	var smallRes map[string]any
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	started := make(chan struct{})
	wg.Go(func() {
		close(started)
		smallRes, smallErr = runCtx(ctx, t, small, &node.Attempt{Limits: unlimited, Watchdog: w})
	})
	<-started
	wg.Go(func() {
		_, bigErr = runCtx(ctx, t, big, &node.Attempt{Limits: unlimited, Watchdog: w})
	})
	wg.Wait()
	e := checkFail(t, nil, bigErr, node.CodeMemoryLimit)
	if !strings.Contains(e.Message, "heap reached") || !slices.Contains([]int{1, 3, 4}, e.Line) {
		t.Errorf("stopped attempt: %d:%d %q", e.Line, e.Col, e.Message)
	}
	if smallErr != nil || smallRes["n"] != int64(3000000) {
		t.Errorf("the smaller attempt = %v, %v; want it to complete", smallRes, smallErr)
	}
}

// TestMemoryWatchdogDisabled checks that a negative limit turns the
// watchdog off, and that a nil watchdog watches nothing.
func TestMemoryWatchdogDisabled(t *testing.T) {
	w := node.NewWatchdog(node.MemoryConfig{Limit: -1})
	defer w.Close()
	code := "l = [1]\nfor i in range(20):\n    l = l + l\nresult = {\"n\": len(l)}"
	for _, w := range []*node.Watchdog{w, nil} {
		got := mustRun(t, code, &node.Attempt{Watchdog: w})
		if got["n"] != int64(1<<20) {
			t.Errorf("result = %v", got)
		}
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

// TestMemoryWatchdogClose checks that Close ends the watchdog's goroutine,
// and that attempts after Close run unwatched.
func TestMemoryWatchdogClose(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	w := node.NewWatchdog(node.MemoryConfig{Limit: 1}) // every attempt would trip
	mustFail(t, "l = [1]\nfor i in range(25):\n    l = l + l", &node.Attempt{Watchdog: w, Limits: node.Limits{MaxMemory: -1}}, node.CodeMemoryLimit)
	w.Close()
	if err := goleak.Find(ignore); err != nil {
		t.Fatalf("after Close: %v", err)
	}
	mustRun(t, "l = [1]\nfor i in range(20):\n    l = l + l", &node.Attempt{Watchdog: w})
	if err := goleak.Find(ignore); err != nil {
		t.Fatalf("an attempt after Close started the watchdog: %v", err)
	}
	w.Close() // twice is fine
}
