package node_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.starlark.net/starlark"
	"go.uber.org/goleak"

	"github.com/kailash-gateway/kgw/executor/node"
	"github.com/kailash-gateway/kgw/internal/starval"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// logLine is one captured log call.
type logLine struct {
	Level  node.LogLevel
	Msg    string
	Fields map[string]any
}

// logs collects Attempt.Log output.
type logs struct {
	mu    sync.Mutex
	lines []logLine
}

func (l *logs) log(level node.LogLevel, msg string, fields map[string]any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, logLine{level, msg, fields})
}

func run(t *testing.T, code string, a *node.Attempt) (map[string]any, error) {
	t.Helper()
	return runCtx(t.Context(), t, code, a)
}

func runCtx(ctx context.Context, t *testing.T, code string, a *node.Attempt) (map[string]any, error) {
	t.Helper()
	p, err := node.Compile("n1", code)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	if a == nil {
		a = &node.Attempt{}
	}
	if a.NodeID == "" {
		a.NodeID = "n1"
	}
	return p.Run(ctx, a)
}

// mustRun runs code and returns its result, failing the test on error.
func mustRun(t *testing.T, code string, a *node.Attempt) map[string]any {
	t.Helper()
	res, err := run(t, code, a)
	if err != nil {
		var ne *node.Error
		if errors.As(err, &ne) {
			t.Fatalf("Run: %v\n%s", err, ne.Traceback)
		}
		t.Fatalf("Run: %v", err)
	}
	return res
}

// mustFail runs code and returns its *node.Error with the wanted code.
func mustFail(t *testing.T, code string, a *node.Attempt, wantCode string) *node.Error {
	t.Helper()
	res, err := run(t, code, a)
	return checkFail(t, res, err, wantCode)
}

func checkFail(t *testing.T, res map[string]any, err error, wantCode string) *node.Error {
	t.Helper()
	var ne *node.Error
	if !errors.As(err, &ne) {
		t.Fatalf("Run = %v, %v; want a *node.Error with code %s", res, err, wantCode)
	}
	if ne.Code != wantCode {
		t.Fatalf("Run error code = %s (%v), want %s", ne.Code, ne, wantCode)
	}
	if ne.NodeID != "n1" || !strings.Contains(ne.Message, "n1") {
		t.Errorf("Run error %q does not name node n1 (NodeID %q)", ne.Message, ne.NodeID)
	}
	return ne
}

func TestResult(t *testing.T) {
	tests := []struct {
		name string
		code string
		want map[string]any
	}{
		{"unset", `x = 1`, map[string]any{}},
		{"dict", `result = {"x": 1, "y": [1.5, "s", None, True]}`, map[string]any{"x": int64(1), "y": []any{1.5, "s", nil, true}}},
		{"top-level control", "result = {}\nfor i in range(3):\n    if i > 0:\n        result[str(i)] = i\nn = 0\nwhile n < 2:\n    n += 1\nresult[\"n\"] = n", map[string]any{"1": int64(1), "2": int64(2), "n": int64(2)}},
		{"global reassign", "x = 1\nx = x + 1\nresult = {\"x\": x}", map[string]any{"x": int64(2)}},
		{"recursion", "def f(n):\n    return 1 if n <= 1 else n * f(n - 1)\nresult = {\"f\": f(10)}", map[string]any{"f": int64(3628800)}},
		{"set", "s = set([1, 2, 2])\nresult = {\"n\": len(s)}", map[string]any{"n": int64(2)}},
		{"struct", `result = {"s": struct(a=1)}`, map[string]any{"s": map[string]any{"a": int64(1)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustRun(t, tt.code, nil)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("result mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestResultInvalid(t *testing.T) {
	tests := []struct {
		name, code, want string
		limits           node.Limits
	}{
		{"not a dict", `result = [1]`, "result must be a dict, got list", node.Limits{}},
		{"big int", `result = {"n": 9007199254740993}`, `result["n"]: integer 9007199254740993 is outside ±2^53`, node.Limits{}},
		{"nan", `result = {"f": float("nan")}`, "float nan has no JSON form", node.Limits{}},
		{"inf", `result = {"f": [float("inf")]}`, `result["f"][0]`, node.Limits{}},
		{"too large", `result = {"s": "x" * 2000}`, "exceeds 1000 bytes", node.Limits{MaxResultBytes: 1000}},
		{"default size limit", `result = {"s": "x" * (5 * 1024 * 1024)}`, "exceeds 4194304 bytes", node.Limits{}},
		{"too deep", "x = 1\nfor i in range(70):\n    x = [x]\nresult = {\"x\": x}", "nested more than 64 levels", node.Limits{}},
		{"function", `result = {"f": len}`, "has no JSON form", node.Limits{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustFail(t, tt.code, &node.Attempt{Limits: tt.limits}, node.CodeResultInvalid)
			if !strings.Contains(e.Message, tt.want) {
				t.Errorf("message = %q, want it to contain %q", e.Message, tt.want)
			}
		})
	}
}

func TestScope(t *testing.T) {
	a := &node.Attempt{
		Parameters: map[string]any{"p": "param", "shared": "from parameters", "n": 3.0},
		Inputs:     map[string]any{"i": []any{1.0, 2.5}, "shared": "from inputs"},
		Context:    map[string]any{"user": "u1"},
		Execution:  node.ExecutionInfo{ID: "e1", Workflow: "wf", Version: 2, Attempt: 3},
	}
	code := `
result = {
    "p": p, "i": i, "shared": shared, "n": n, "n_type": type(n),
    "parameters": parameters, "inputs": inputs, "user": context["user"],
    "execution": [execution.id, execution.workflow, execution.version, execution.node, execution.attempt],
}
`
	got := mustRun(t, code, a)
	want := map[string]any{
		"p": "param", "i": []any{int64(1), 2.5}, "shared": "from inputs", "n": int64(3), "n_type": "int",
		"parameters": map[string]any{"p": "param", "shared": "from parameters", "n": int64(3)},
		"inputs":     map[string]any{"i": []any{int64(1), 2.5}, "shared": "from inputs"},
		"user":       "u1",
		"execution":  []any{"e1", "wf", int64(2), "n1", int64(3)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("result mismatch (-want +got):\n%s", diff)
	}
	// Scope values are frozen.
	e := mustFail(t, `parameters["x"] = 1`, a, node.CodeNodeError)
	if !strings.Contains(e.Message, "frozen") {
		t.Errorf("mutating parameters: %q, want a frozen error", e.Message)
	}
	mustFail(t, `i.append(3)`, a, node.CodeNodeError)
	// A parameter may shadow a builtin, as Python variables do.
	got = mustRun(t, `result = {"t": time}`, &node.Attempt{Parameters: map[string]any{"time": "10:00"}})
	if got["t"] != "10:00" {
		t.Errorf("parameter named time = %v, want 10:00", got["t"])
	}
}

// The environment shared by attempts that need no attempt-specific values
// (builtins only) is not changed by attempts whose parameters or inputs
// shadow a builtin.
func TestSharedEnvironment(t *testing.T) {
	code := `result = {"t": type(time), "j": json.encode(1)}`
	plain := map[string]any{"t": "module", "j": "1"}
	for k, tc := range []struct {
		a    *node.Attempt
		want map[string]any
	}{
		{&node.Attempt{}, plain},
		{&node.Attempt{Parameters: map[string]any{"time": "10:00"}}, map[string]any{"t": "string", "j": "1"}},
		{&node.Attempt{Inputs: map[string]any{"time": 1.0}, Parameters: map[string]any{"other": 1.0}}, map[string]any{"t": "int", "j": "1"}},
		{&node.Attempt{Parameters: map[string]any{"other": 1.0}}, plain},
		{&node.Attempt{}, plain},
	} {
		if diff := cmp.Diff(tc.want, mustRun(t, code, tc.a)); diff != "" {
			t.Errorf("attempt %d: result mismatch (-want +got):\n%s", k, diff)
		}
	}
}

func TestUndefinedName(t *testing.T) {
	a := &node.Attempt{Parameters: map[string]any{"b": 1.0}, Inputs: map[string]any{"a": 1.0}}
	// A path that does not read the missing name works.
	got := mustRun(t, "if False:\n    x = missing\nresult = {\"a\": a}", a)
	if got["a"] != int64(1) {
		t.Errorf("result = %v", got)
	}
	// Reading it fails at that line with the available names.
	e := mustFail(t, "x = a\ny = b\n\nz = missing + 1\n", a, node.CodeNodeError)
	want := "node 'n1' failed at 4:5: name 'missing' is not defined: node 'n1' received no 'missing' from its parameters or inputs (available: a, b)"
	if e.Message != want {
		t.Errorf("message =\n%q\nwant\n%q", e.Message, want)
	}
	if e.Line != 4 || e.Col != 5 {
		t.Errorf("position = %d:%d, want 4:5", e.Line, e.Col)
	}
	// Inside a function, it fails when the function runs.
	e = mustFail(t, "def f():\n    return nope\nresult = {}\nf()", a, node.CodeNodeError)
	if e.Line != 2 || !strings.Contains(e.Message, "name 'nope' is not defined") {
		t.Errorf("in function: %d: %q", e.Line, e.Message)
	}
}

func TestCompileHints(t *testing.T) {
	tests := []struct {
		name string
		code string
		want []string // line:col: message fragments, in order
	}{
		{"import", "import json\nresult = {}", []string{"1:1: `json` is already available; Starlark has no import"}},
		{"from import", "from datetime import datetime", []string{"1:1: Starlark has no import and there is no module `datetime`"}},
		{"try", "try:\n    x = 1\nexcept Exception as e:\n    x = 2\n", []string{"1:1: Starlark has no try/except: call catch(fn, *args)", "3:1: Starlark has no except"}},
		{"with", "with open('f') as f:\n    pass", []string{"1:1: Starlark has no `with`"}},
		{"async", "async def f():\n    await g()", []string{"1:1: Starlark has no async/await", "2:5: Starlark has no async/await"}},
		{"class", "class A:\n    pass", []string{"1:1: Starlark has no classes"}},
		{"f-string", "x = 1\ny = f\"v={x}\"", []string{"2:5: Starlark has no f-strings"}},
		{"return", "x = 1\nreturn x", []string{"2:1: top-level return is not allowed"}},
		{"power", "x = 2 ** 10", []string{"1:5: Starlark has no ** operator"}},
		{"raise", "raise ValueError('x')", []string{"1:1: Starlark has no raise"}},
		{"is none", "x = 1\nif x is not None:\n    pass", []string{"2:6: Starlark has no `is` operator: write `x != None`"}},
		{"many", "import re\nx = 2 ** 3\nclass B:\n    pass", []string{"1:1: `re` is already available", "2:5: Starlark has no **", "3:1: Starlark has no classes"}},
		{"plain syntax error", "x = (1", []string{"1:7: got end of file, want ')'"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := node.Compile("n1", tt.code)
			var ce *node.CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("Compile(%q) = %v, want *CompileError", tt.code, err)
			}
			if ce.NodeID != "n1" {
				t.Errorf("NodeID = %q", ce.NodeID)
			}
			if len(ce.Problems) < len(tt.want) {
				t.Fatalf("Compile(%q) problems = %v, want %d", tt.code, ce.Problems, len(tt.want))
			}
			for i, w := range tt.want {
				if got := ce.Problems[i].String(); !strings.HasPrefix(got, w) {
					t.Errorf("problem %d = %q, want prefix %q", i, got, w)
				}
			}
		})
	}
	// Strings and comments do not trigger hints; kwargs are not power.
	ok := "# import json; try: f\"x\"\ns = \"import os\" + 'x ** y'\ndef f(**kw):\n    return kw\nresult = f(**{\"a\": 1})"
	if _, err := node.Compile("n1", ok); err != nil {
		t.Errorf("Compile(valid code) = %v", err)
	}
}

func TestCompileCache(t *testing.T) {
	p1, err := node.Compile("a", `result = {"cache": 1}`)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := node.Compile("b", `result = {"cache": 1}`)
	if err != nil {
		t.Fatal(err)
	}
	if p1 != p2 {
		t.Errorf("Compile of identical code returned different programs")
	}
	_, e1 := node.Compile("a", "import x")
	_, e2 := node.Compile("b", "import x")
	var c1, c2 *node.CompileError
	if !errors.As(e1, &c1) || !errors.As(e2, &c2) || c1.NodeID != "a" || c2.NodeID != "b" {
		t.Errorf("cached compile errors must carry their own node id: %v, %v", e1, e2)
	}
}

func TestStepLimit(t *testing.T) {
	e := mustFail(t, "while True:\n    pass", nil, node.CodeStepLimit)
	if !strings.Contains(e.Message, "too many steps") || !strings.Contains(e.Message, "10000000") {
		t.Errorf("message = %q", e.Message)
	}
	e = mustFail(t, "x = 0\nfor i in range(100000):\n    x += i", &node.Attempt{Limits: node.Limits{MaxSteps: 1000}}, node.CodeStepLimit)
	if e.Line == 0 {
		t.Errorf("step limit error has no position: %+v", e)
	}
	// The budget is shared with parallel.map threads.
	code := "def spin(i):\n    x = 0\n    for j in range(100000):\n        x += j\n    return x\nresult = {\"r\": parallel.map(spin, range(8))}"
	mustFail(t, code, &node.Attempt{Limits: node.Limits{MaxSteps: 200000}}, node.CodeStepLimit)
	// ... and enough budget lets it finish.
	mustRun(t, code, &node.Attempt{Limits: node.Limits{MaxSteps: 20_000_000}})
}

func TestHugeAllocation(t *testing.T) {
	// What would build a huge value is charged to the memory budget
	// before it is built (memory_test.go has many more).
	for _, code := range []string{
		`x = "x" * 10000000000`,
		`x = [1] * 10000000000`,
		`x = "ab" * (1 << 40)`,
		`x = list(range(1000000000))`,
		`x = sorted(range(1 << 40))`,
		`x = zip(range(1 << 62), range(1 << 62))`,
		`x = catch(list, range(1 << 40))`,
	} {
		e := mustFail(t, code, nil, node.CodeMemoryLimit)
		t.Logf("%s: %s", code, e.Message)
	}
	// Builtins that scan a whole sequence are charged one step per
	// element, so they cannot spin without bound.
	for _, code := range []string{
		`x = max(range(1 << 62))`,
		`x = all(range(1, 1 << 40))`,
	} {
		e := mustFail(t, code, nil, node.CodeStepLimit)
		if !strings.Contains(e.Message, "too many steps") {
			t.Errorf("%s: %q", code, e.Message)
		}
	}
	got := mustRun(t, `result = {"n": len(list(range(1000))) + len(sorted([3, 1, 2])) + max([1, 5])}`, &node.Attempt{Limits: node.Limits{MaxSteps: 2000}})
	if got["n"] != int64(1008) {
		t.Errorf("charged builtins within the budget: %v", got)
	}
	// List growth by append stops at the step limit.
	mustFail(t, "l = []\nwhile True:\n    l.append(1)", &node.Attempt{Limits: node.Limits{MaxSteps: 100000}}, node.CodeStepLimit)
}

func TestDeepRecursion(t *testing.T) {
	e := mustFail(t, "def f(n):\n    return f(n + 1)\nf(0)", nil, node.CodeNodeError)
	if !strings.Contains(e.Message, "call depth limit exceeded") || e.Line != 2 {
		t.Errorf("message = %q at %d", e.Message, e.Line)
	}
	// Reasonable recursion works.
	mustRun(t, "def f(n):\n    return 0 if n == 0 else 1 + f(n - 1)\nresult = {\"d\": f(500)}", nil)
}

func TestDeepNesting(t *testing.T) {
	// Printing a value nested 200,000 deep would stall the interpreter.
	for _, fn := range []string{"str", "repr", "print"} {
		e := mustFail(t, "x = 1\nfor i in range(200000):\n    x = [x]\n"+fn+"(x)", nil, node.CodeNodeError)
		if !strings.Contains(e.Message, "nested more than 1000 levels") {
			t.Errorf("%s: %q", fn, e.Message)
		}
	}
	// json.encode stops at 64 levels.
	e := mustFail(t, "x = 1\nfor i in range(100):\n    x = [x]\njson.encode(x)", nil, node.CodeNodeError)
	if !strings.Contains(e.Message, "nested more than 64 levels") {
		t.Errorf("json.encode: %q", e.Message)
	}
	mustRun(t, `result = {"s": str([[1]]), "r": repr("a")}`, nil)
}

func TestCatch(t *testing.T) {
	code := `
def div(a, b):
    return a / b
ok = catch(div, 6, b=3)
bad = catch(div, 1, 0)
failed = catch(fail, "boom")
result = {
    "ok": [ok.ok, ok.value, ok.error],
    "bad": [bad.ok, bad.value, bad.error, "div" in bad.traceback],
    "failed": failed.error,
}
`
	got := mustRun(t, code, nil)
	want := map[string]any{
		"ok":     []any{true, 2.0, nil},
		"bad":    []any{false, nil, "floating-point division by zero", true},
		"failed": "boom",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("catch mismatch (-want +got):\n%s", diff)
	}
	// catch does not swallow the step limit.
	mustFail(t, "def spin():\n    while True:\n        pass\ncatch(spin)\nresult = {}", &node.Attempt{Limits: node.Limits{MaxSteps: 10000}}, node.CodeStepLimit)
}

func TestFail(t *testing.T) {
	e := mustFail(t, "x = 1\nfail(\"bad input\", x)", nil, node.CodeNodeError)
	if e.Message != "node 'n1' failed at 2:5: bad input 1" || e.Line != 2 {
		t.Errorf("message = %q line %d", e.Message, e.Line)
	}
	if !strings.Contains(e.Traceback, "node.star:2:5: in <toplevel>") {
		t.Errorf("traceback = %q", e.Traceback)
	}
}

func TestParallelMap(t *testing.T) {
	code := `
base = {"k": 10}
def f(x):
    return x * 2 + base["k"]
result = {"r": parallel.map(f, [1, 2, 3, 4, 5], limit=2), "empty": parallel.map(f, [])}
out = []
out.append(1)  # globals that f does not read stay mutable
result["out"] = out
`
	got := mustRun(t, code, nil)
	want := map[string]any{"r": []any{int64(12), int64(14), int64(16), int64(18), int64(20)}, "empty": []any{}, "out": []any{int64(1)}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parallel.map mismatch (-want +got):\n%s", diff)
	}
	// What f reads is frozen: mutation inside f fails rather than racing.
	e := mustFail(t, "acc = []\ndef f(x):\n    acc.append(x)\nparallel.map(f, range(4))", nil, node.CodeNodeError)
	if !strings.Contains(e.Message, "frozen") {
		t.Errorf("mutating shared state: %q", e.Message)
	}
	// A failing builtin inside fails the node with the item's traceback.
	e = mustFail(t, "def f(x):\n    if x == 3:\n        json.decode(\"{bad\")\n    return x\nparallel.map(f, range(6))", nil, node.CodeNodeError)
	if e.Line != 3 || !strings.Contains(e.Message, "invalid character") || !strings.Contains(e.Traceback, "Error in json.decode") || !strings.Contains(e.Traceback, "item 3 failed") || !strings.Contains(e.Traceback, "in f") {
		t.Errorf("failure in item: line %d, message %q, traceback:\n%s", e.Line, e.Message, e.Traceback)
	}
	// catch inside fn collects errors instead.
	got = mustRun(t, "def f(x):\n    return catch(lambda: 10 // x).ok\nresult = {\"r\": parallel.map(f, [1, 0, 2])}", nil)
	if diff := cmp.Diff(map[string]any{"r": []any{true, false, true}}, got); diff != "" {
		t.Errorf("catch in parallel.map (-want +got):\n%s", diff)
	}
}

func TestCancellation(t *testing.T) {
	for _, tc := range []struct{ name, code string }{
		{"sleep", "time.sleep(3600)"},
		{"busy loop", "while True:\n    pass"},
		{"sleep in parallel.map", "parallel.map(lambda x: time.sleep(3600), range(3))"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			p, err := node.Compile("n1", tc.code)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				_, err := p.Run(ctx, &node.Attempt{NodeID: "n1", Limits: node.Limits{MaxSteps: 1 << 62}})
				done <- err
			}()
			cancel()
			err = <-done
			e := checkFail(t, nil, err, node.CodeCancelled)
			if !errors.Is(e, context.Canceled) {
				t.Errorf("error chain does not hold context.Canceled: %v", e.Err)
			}
		})
	}
	for _, tc := range []struct {
		name, code string
		a          *node.Attempt
	}{
		{"sleep", "time.sleep(3600)", nil},
		// The deadline passes while the loop runs: the thread sees it
		// when it next draws steps.
		{"busy loop", "while True:\n    pass", &node.Attempt{Limits: node.Limits{MaxSteps: 1 << 62}}},
		// The deadline passes inside a builtin that does not watch ctx;
		// the code would finish after it without another step check.
		{"builtin ignoring ctx", `get_resource("slow")()
result = {}`, &node.Attempt{RequiredResources: []string{"slow"}, Resources: &testOpener{}}},
	} {
		t.Run("deadline/"+tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Millisecond)
			defer cancel()
			_, err := runCtx(ctx, t, tc.code, tc.a)
			e := checkFail(t, nil, err, node.CodeTimeout)
			if !errors.Is(e, context.DeadlineExceeded) {
				t.Errorf("error chain does not hold DeadlineExceeded: %v", e.Err)
			}
		})
	}
}

// testOpener opens a test resource: a struct with a greet method, or a
// panicking builtin for "boom".
type testOpener struct {
	mu     sync.Mutex
	opened map[string]int
}

func (o *testOpener) Open(ctx context.Context, name string) (starlark.Value, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.opened == nil {
		o.opened = map[string]int{}
	}
	o.opened[name]++
	switch name {
	case "db":
		return starlark.NewBuiltin("db.greet", func(_ *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
			return starlark.String("hello " + args[0].(starlark.String).GoString()), nil
		}), nil
	case "boom":
		return starlark.NewBuiltin("boom", func(_ *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
			var handles []starlark.Value
			return handles[len(args)], nil // out of range: a Go runtime panic
		}), nil
	case "broken":
		return nil, errors.New("resource 'broken': connection refused") // an opener names the resource
	case "slow": // a method that takes 30 ms and ignores cancellation
		return starlark.NewBuiltin("slow", func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
			time.Sleep(30 * time.Millisecond)
			return starlark.None, nil
		}), nil
	case "flaky": // a handle whose method fails as the resource (a driver error)
		return starlark.NewBuiltin("flaky.fetch", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
			if len(args) > 0 {
				return nil, fmt.Errorf("%s: sql must be a string", b.Name()) // the code's mistake
			}
			return nil, starval.NewResourceError("flaky", "fetch", errors.New("connection reset by peer"))
		}), nil
	}
	return nil, fmt.Errorf("%q: %w", name, node.ErrNotProvided)
}

func TestGetResource(t *testing.T) {
	o := &testOpener{}
	a := &node.Attempt{RequiredResources: []string{"db", "missing", "broken", "boom"}, Resources: o}
	got := mustRun(t, `result = {"g": get_resource("db")("kgw"), "same": get_resource("db") == get_resource("db")}`, a)
	if got["g"] != "hello kgw" || got["same"] != true || o.opened["db"] != 1 {
		t.Errorf("result = %v, opened = %v", got, o.opened)
	}
	// Several resources in one attempt: each opened once.
	o = &testOpener{}
	a3 := &node.Attempt{RequiredResources: []string{"db", "slow", "flaky"}, Resources: o}
	mustRun(t, `for i in range(3):
    get_resource("db")
    get_resource("slow")
    get_resource("flaky")
result = {}`, a3)
	if want := map[string]int{"db": 1, "slow": 1, "flaky": 1}; !maps.Equal(o.opened, want) {
		t.Errorf("opened = %v, want %v", o.opened, want)
	}
	for _, tc := range []struct {
		code, code2 string
		a           *node.Attempt
		want        string
	}{
		{`get_resource("other")`, node.CodeResourceError, a, "resource 'other' is not in required_resources of node 'n1'"},
		{`get_resource("missing")`, node.CodeResourceError, a, "resource 'missing' was not provided in the request"},
		{`get_resource("db")`, node.CodeResourceError, &node.Attempt{RequiredResources: []string{"db"}}, "resource 'db' was not provided in the request"},
		{`get_resource("broken")`, node.CodeResourceError, a, "resource 'broken': connection refused"},
		{`get_resource()`, node.CodeNodeError, a, "get_resource: got 0 arguments, want 1"},
		{`get_resource(1)`, node.CodeNodeError, a, "get_resource: for parameter 1: got int, want string"},
		{`get_resource(name = "db")`, node.CodeNodeError, a, "get_resource: unexpected keyword arguments"},
	} {
		e := mustFail(t, tc.code, tc.a, tc.code2)
		if !strings.Contains(e.Message, tc.want) {
			t.Errorf("%s: %q, want %q", tc.code, e.Message, tc.want)
		}
	}
}

// TestResourceErrors: failures of a handle's methods that wrap
// starval.ResourceError are RESOURCE_ERROR, with position and traceback,
// also inside parallel.map; catch catches them; other handle errors stay
// NODE_ERROR.
func TestResourceErrors(t *testing.T) {
	a := &node.Attempt{RequiredResources: []string{"flaky"}, Resources: &testOpener{}}
	e := mustFail(t, "db = get_resource(\"flaky\")\nrows = db()", a, node.CodeResourceError)
	if want := "node 'n1' failed at 2:10: flaky.fetch: connection reset by peer"; e.Message != want {
		t.Errorf("message = %q, want %q", e.Message, want)
	}
	if !strings.Contains(e.Traceback, "node.star:2:10: in <toplevel>") || !strings.Contains(e.Traceback, "Error in flaky.fetch") {
		t.Errorf("traceback = %q", e.Traceback)
	}
	var re *starval.ResourceError
	if !errors.As(e, &re) || re.Resource != "flaky" || re.Op != "fetch" {
		t.Errorf("error chain %v does not hold the *starval.ResourceError", e.Err)
	}
	e = mustFail(t, "def f(i):\n    return get_resource(\"flaky\")()\nparallel.map(f, range(3))", a, node.CodeResourceError)
	if e.Line != 2 || !strings.Contains(e.Message, "flaky.fetch: connection reset by peer") {
		t.Errorf("in parallel.map: %q at line %d", e.Message, e.Line)
	}
	mustFail(t, `get_resource("flaky")("SELECT 1")`, a, node.CodeNodeError)
	got := mustRun(t, "r = catch(get_resource(\"flaky\"))\nresult = {\"ok\": r.ok, \"error\": r.error}", a)
	if diff := cmp.Diff(map[string]any{"ok": false, "error": "flaky.fetch: connection reset by peer"}, got); diff != "" {
		t.Errorf("catch of a resource error (-want +got):\n%s", diff)
	}
}

func TestPanic(t *testing.T) {
	a := &node.Attempt{RequiredResources: []string{"boom"}, Resources: &testOpener{}}
	e := mustFail(t, `get_resource("boom")()`, a, node.CodePanic)
	if !strings.Contains(e.Message, "index out of range") {
		t.Errorf("message = %q", e.Message)
	}
	// Also inside parallel.map, and catch does not hide it.
	mustFail(t, `parallel.map(lambda x: catch(get_resource("boom")), range(3))`, a, node.CodePanic)
	// The process lives on.
	mustRun(t, `result = {}`, nil)
}

func TestLogging(t *testing.T) {
	var l logs
	code := `
print("hello", 1)
logger.debug("d")
logger.info("user %s has %d items", "bob", 3, user="bob", n=3)
logger.warning("w")
logger.error("e", err=None)
`
	mustRun(t, code, &node.Attempt{Log: l.log})
	want := []logLine{
		{node.LogInfo, "hello 1", nil},
		{node.LogDebug, "d", nil},
		{node.LogInfo, "user bob has 3 items", map[string]any{"user": "bob", "n": int64(3)}},
		{node.LogWarning, "w", nil},
		{node.LogError, "e", map[string]any{"err": nil}},
	}
	if diff := cmp.Diff(want, l.lines); diff != "" {
		t.Errorf("logs mismatch (-want +got):\n%s", diff)
	}
	var l2 logs
	mustRun(t, "for i in range(10):\n    print(i)", &node.Attempt{Log: l2.log, Limits: node.Limits{MaxLogLines: 3}})
	if len(l2.lines) != 4 || !strings.Contains(l2.lines[3].Msg, "log limit reached") || l2.lines[2].Msg != "2" {
		t.Errorf("capped logs = %v", l2.lines)
	}
}

func TestModules(t *testing.T) {
	tests := []struct {
		name string
		code string // sets result
		want map[string]any
	}{
		{"json", `
d = json.decode('{"b": 1, "a": [1.5, null]}')
result = {"enc": json.encode(d), "dumps": json.dumps(d, sort_keys=True), "indent": json.dumps({"a": 1}, indent=2),
          "loads": json.loads(b'[1]'), "ind": json.indent('{"a":1}')}`, map[string]any{
			"enc": `{"b":1,"a":[1.5,null]}`, "dumps": `{"a":[1.5,null],"b":1}`, "indent": "{\n  \"a\": 1\n}",
			"loads": []any{int64(1)}, "ind": "{\n\t\"a\": 1\n}"}},
		{"time", `
t = time.parse_time("2024-01-02T03:04:05Z")
now = time.time()
built = time.time(year=2024, month=3, day=5, location="UTC")
time.sleep(0.001)
result = {"year": t.year, "now_ok": now > 1.7e9, "fmt": t.format("2006-01-02"), "d": str(time.parse_duration("1m") * 2),
          "built": built.format("2006-01-02")}`,
			map[string]any{"year": int64(2024), "now_ok": true, "fmt": "2024-01-02", "d": "2m0s", "built": "2024-03-05"}},
		{"math", `result = {"s": math.sqrt(16.0), "p": math.pow(2, 10), "f": math.floor(2.7)}`,
			map[string]any{"s": 4.0, "p": 1024.0, "f": int64(2)}},
		{"re", `
m = re.match(r"(\w+)@(?P<host>\w+)\.com", "bob@example.com!")
result = {
    "g": [m.group(), m.group(1), m.group("host"), m.groups(), m.span()],
    "gd": m.groupdict(),
    "nomatch": re.match("b", "ab"), "search": re.search("b", "ab").group(0),
    "full": [re.fullmatch("a|ab", "ab") != None, re.fullmatch("a", "ab")],
    "findall": [re.findall(r"\d+", "a1b22"), re.findall(r"(\w)=(\d)", "a=1 b=2")],
    "sub": [re.sub(r"(\w+)@(\w+)", r"\2 at \1 $", "bob@home"), re.sub("a", lambda m: m.group().upper(), "banana", count=2)],
    "split": [re.split(r",\s*", "a, b,c"), re.split("(-)", "a-b")],
    "flags": re.search("B", "abc", re.I).group(),
}`, map[string]any{
			"g":       []any{"bob@example.com", "bob", "example", []any{"bob", "example"}, []any{int64(0), int64(15)}},
			"gd":      map[string]any{"host": "example"},
			"nomatch": nil, "search": "b",
			"full":    []any{true, nil},
			"findall": []any{[]any{"1", "22"}, []any{[]any{"a", "1"}, []any{"b", "2"}}},
			"sub":     []any{"home at bob $", "bAnAna"},
			"split":   []any{[]any{"a", "b", "c"}, []any{"a", "-", "b"}},
			"flags":   "b",
		}},
		{"uuid", `u = uuid.uuid4()
result = {"len": len(u), "v": u[14], "uniq": u != uuid.uuid4()}`, map[string]any{"len": int64(36), "v": "4", "uniq": true}},
		{"base64", `result = {"e": base64.b64encode("hi?>"), "d": str(base64.b64decode("aGk/Pg==")), "u": base64.urlsafe_b64encode(b"hi?>"), "ud": str(base64.urlsafe_b64decode("aGk_Pg"))}`,
			map[string]any{"e": "aGk/Pg==", "d": "hi?>", "u": "aGk_Pg==", "ud": "hi?>"}},
		{"hashlib", `result = {"sha256": hashlib.sha256("abc"), "md5": hashlib.md5(b"abc")}`, map[string]any{
			"sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "md5": "900150983cd24fb0d6963f7d28e17f72"}},
		{"hmac", `result = {"h": hmac.sha256("key", "The quick brown fox jumps over the lazy dog")}`, map[string]any{
			"h": "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustRun(t, tt.code, nil)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("result mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWorkflowCache(t *testing.T) {
	c := node.NewWorkflowCache(2)
	a := &node.Attempt{Cache: c}
	mustRun(t, `
v = {"list": [1, 2]}
workflow_cache.set("k", v)
v["list"].append(3)  # the cache holds a copy
workflow_cache.set("t", 1, ttl=3600)
`, a)
	got := mustRun(t, `
k = workflow_cache.get("k")
r = catch(lambda: k["list"].append(4))
result = {"k": k, "frozen": r.ok, "missing": workflow_cache.get("nope", default=7), "del": [workflow_cache.delete("t"), workflow_cache.delete("t")]}
`, a)
	want := map[string]any{"k": map[string]any{"list": []any{int64(1), int64(2)}}, "frozen": false, "missing": int64(7), "del": []any{true, false}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("cache mismatch (-want +got):\n%s", diff)
	}
	// Bounded: LRU eviction.
	for _, k := range []string{"a", "b", "c"} {
		if err := c.Set(k, starlark.String(k), 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := c.Get("a"); ok || c.Len() != 2 {
		t.Errorf("after 3 sets in a cache of 2: a present = %v, len = %d", ok, c.Len())
	}
	// TTL expiry.
	if err := c.Set("short", starlark.True, time.Nanosecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Millisecond)
	if _, ok := c.Get("short"); ok {
		t.Errorf("expired entry still present")
	}
	if err := c.Set("f", starlark.NewBuiltin("f", nil), 0); !errors.Is(err, node.ErrNotCacheable) {
		t.Errorf("Set(function) error = %v, want ErrNotCacheable", err)
	}
}

// TestConcurrentRuns runs one program from many goroutines (with -race).
func TestConcurrentRuns(t *testing.T) {
	p, err := node.Compile("n1", "def f(x):\n    return x * k\nresult = {\"r\": parallel.map(f, range(5)), \"c\": workflow_cache.get(\"x\", 0)}")
	if err != nil {
		t.Fatal(err)
	}
	c := node.NewWorkflowCache(10)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			res, err := p.Run(t.Context(), &node.Attempt{NodeID: "n1", Parameters: map[string]any{"k": float64(i)}, Cache: c})
			if err != nil {
				t.Errorf("run %d: %v", i, err)
				return
			}
			if got := res["r"].([]any)[4]; got != int64(4*i) {
				t.Errorf("run %d: r[4] = %v", i, got)
			}
		})
	}
	wg.Wait()
}

// TestThreadReuse runs attempts that end every way a thread can end
// (cancelled, out of steps, failed, timed out) between normal ones on one
// goroutine, so that the runtime's reused threads carry nothing over: no
// cancellation, no steps, no context.
func TestThreadReuse(t *testing.T) {
	ctxErr := &ctxOpener{}
	normal := func(i int) {
		t.Helper()
		res := mustRun(t, "x = 0\nfor i in range(100):\n    x += i\nresult = {\"x\": x, \"ctx\": get_resource(\"ctx\")()}",
			&node.Attempt{Limits: node.Limits{MaxSteps: 3000}, RequiredResources: []string{"ctx"}, Resources: ctxErr})
		if res["x"] != int64(4950) || res["ctx"] != "ok" {
			t.Errorf("run %d after an abnormal end: result %v", i, res)
		}
	}
	for i := range 20 {
		switch i % 4 {
		case 0:
			mustFail(t, "while True:\n    pass", &node.Attempt{Limits: node.Limits{MaxSteps: 5000}}, node.CodeStepLimit)
		case 1:
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			_, err := runCtx(ctx, t, "while True:\n    pass", nil)
			checkFail(t, nil, err, node.CodeCancelled)
		case 2:
			mustFail(t, "fail(\"no\")", nil, node.CodeNodeError)
		case 3:
			ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
			_, err := runCtx(ctx, t, "time.sleep(1)", nil)
			cancel()
			checkFail(t, nil, err, node.CodeTimeout)
		}
		normal(i)
	}
}

// ctxOpener opens "ctx": a builtin that reports the error of the context
// of the thread that calls it ("ok" when there is none).
type ctxOpener struct{}

func (ctxOpener) Open(context.Context, string) (starlark.Value, error) {
	return starlark.NewBuiltin("ctx", func(th *starlark.Thread, _ *starlark.Builtin, _ starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
		if err := starval.Context(th).Err(); err != nil {
			return starlark.String(err.Error()), nil
		}
		return starlark.String("ok"), nil
	}), nil
}

// TestWorkflowCacheMasksCredentials: no credential value crosses executions
// through workflow_cache. What an attempt stores has its execution's
// credentials masked; what it reads has its own execution's credentials
// masked, whoever stored it; other values pass unchanged.
func TestWorkflowCacheMasksCredentials(t *testing.T) {
	c := node.NewWorkflowCache(10)
	masker := func(secret string) func(string) string {
		return func(s string) string { return strings.ReplaceAll(s, secret, "[REDACTED]") }
	}
	// Execution A knows the secret "tok-A-1234" (a caller passed it as a
	// parameter, the way a handle result could not) and tries to store it.
	mustRun(t, `
workflow_cache.set("plain", p)
workflow_cache.set("nested", {"k": [p, b"raw " + bytes(p), (1, "x" + p)], p: "key"})
workflow_cache.set("other", "tok-B-5678 is B's")
`, &node.Attempt{Parameters: map[string]any{"p": "tok-A-1234"}, Cache: c, Redact: masker("tok-A-1234")})
	// Execution B reads: A's secret never arrived; B's own secret, stored by
	// A (which did not know it was one), is masked for B.
	res := mustRun(t, `
n = workflow_cache.get("nested")
result = {"plain": workflow_cache.get("plain"), "k": n["k"][0], "raw": str(n["k"][1]), "t": n["k"][2][1],
          "keys": sorted(n.keys()), "other": workflow_cache.get("other")}
`, &node.Attempt{Cache: c, Redact: masker("tok-B-5678")})
	want := map[string]any{
		"plain": "[REDACTED]", "k": "[REDACTED]", "raw": "raw [REDACTED]", "t": "x[REDACTED]",
		"keys": []any{"[REDACTED]", "k"}, "other": "[REDACTED] is B's",
	}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("cache values (-want +got):\n%s", diff)
	}
	// Without a redactor nothing is rewritten.
	res = mustRun(t, `result = {"v": workflow_cache.get("other")}`, &node.Attempt{Cache: c})
	if res["v"] != "tok-B-5678 is B's" {
		t.Errorf("without Redact: %v", res)
	}
}
