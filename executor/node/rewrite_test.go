package node

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"go.starlark.net/starlark"
)

// outcome runs code, rewritten or not, with the Starlark universe and the
// hidden builtins, and describes what happened: the globals it left, or
// its error's message, innermost position in the code and traceback
// ending.
func outcome(t *testing.T, code string, rewrite bool) string {
	t.Helper()
	f, err := fileOptions.Parse(codeFilename, code, 0)
	if err != nil {
		t.Fatalf("parse %q: %v", code, err)
	}
	if rewrite {
		rewriteFile(f)
	}
	env := starlark.StringDict{}
	for k, v := range starlark.Universe {
		env[k] = v
	}
	for k, v := range hiddenBuiltins() {
		env[k] = v
	}
	env["struct"] = builtins["struct"]
	prog, err := starlark.FileProgram(f, env.Has)
	if err != nil {
		return "compile: " + err.Error()
	}
	th := &starlark.Thread{Name: "test"}
	globals, err := prog.Init(th, env)
	if err != nil {
		var ev *starlark.EvalError
		if !errors.As(err, &ev) {
			return "error: " + err.Error()
		}
		line, col := errorPosition(err)
		tb := backtrace(ev)
		return fmt.Sprintf("error at %d:%d: %s\n%s", line, col, ev.Msg, tb[strings.LastIndex(tb, "\nError")+1:])
	}
	names := make([]string, 0, len(globals))
	for k := range globals {
		names = append(names, k)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, k := range names {
		fmt.Fprintf(&b, "%s = %s\n", k, globals[k])
	}
	return b.String()
}

// TestRewriteKeepsBehaviour runs ordinary code and code with ordinary
// errors both as written and rewritten (without a memory budget) and
// checks that the results, error messages, positions and tracebacks are
// the same.
func TestRewriteKeepsBehaviour(t *testing.T) {
	codes := []string{
		// Operators.
		"x = 1 + 2\ny = x * 3 - 1\nz = x % 2\nw = 7 // 2\nv = 1.5 * 2\nu = 1 << 3\ns = -x",
		"a = 2\nb = 5\nc = a + b\nd = a * b\ne = b % a\nf = a << b\ng = a | b\nh = a & b\ni = a ^ b\nj = a - b",
		"s = \"ab\" + \"cd\"\nt = s * 3\nu = 3 * s\nv = s * 0\nw = s * -2\nb = b\"x\" * 3",
		"l = [1, 2] + [3]\nm = l * 2\nn = (1,) + (2, 3)\no = (1, 2) * 2\np = [1] * 0",
		"x = 1 << 70\ny = x * x\nz = x + 1",
		"s = set([1, 2]) | set([3])\nt = set([1, 2]) - set([2])\nu = set([1, 2]) & set([2, 3])\nv = set([1, 2]) ^ set([2, 3])",
		"d = {\"a\": 1} | {\"b\": 2}",
		"x = \"%s and %d\" % (\"a\", 3)\ny = \"%(k)s\" % {\"k\": [1, 2]}\nz = \"%r\" % \"q\"\nw = \"%d%%\" % 5",
		// Augmented assignment, with the aliasing of += on lists.
		"a = [1]\nb = a\na += [2]\na += (3,)\nc = a == b\nn = 1\nn += 2\nn *= 3\nn -= 1\nn <<= 2\nn |= 1\nn &= 7\nn ^= 2\nn %= 5",
		"s = \"x\"\ns += \"y\"\ns *= 3\nt = (1,)\nu = t\nt += (2,)\n(s) += \"z\"",
		"d = {\"a\": 1}\ne = d\nd |= {\"b\": 2}\nsame = d == e",
		"l = [[1], 2]\nk = l[0]\nl[0] += [5]\nl[1] += 3\nsame = k == l[0]\nd = {\"x\": \"a\"}\nd[\"x\"] += \"b\"\nd[\"x\"] *= 2",
		"def f():\n    x = []\n    for i in range(3):\n        x += [i]\n    return x\ny = f()",
		"l = [1, 2, 3]\nfor x in l:\n    l += [4]",
		// Slices.
		"l = [0, 1, 2, 3, 4, 5]\na = l[1:3]\nb = l[::-1]\nc = l[::2]\nd = l[-10:10]\ne = l[10:-10:-1]\nf = l[4:1:-1]\ng = l[:]\nh = l[-2:]\ni = l[:-2]\nj = l[5:1]\nk = l[1:5:-2]",
		"s = \"hello\"\na = s[1:3]\nb = s[::-1]\nc = s[::2]\nd = s[-100:100]\ne = s[3:0:-1]\nt = (1, 2, 3)[::-1]\nu = b\"abc\"[1:]\nv = range(10)[2:8:3]",
		"x = [1, 2][::0]",
		"x = [1, 2][\"a\":]",
		"x = [1, 2][:\"b\"]",
		"x = [1, 2][::\"c\"]",
		"x = 5[1:2]",
		"x = {}[1:2]",
		// Methods.
		"a = \",\".join([\"x\", \"y\"])\nb = \"a-b-c\".replace(\"-\", \"+\")\nc = \"a-b-c\".replace(\"-\", \"+\", 1)\nd = \"a b  c\".split()\ne = \"a,b\".split(\",\")\nf = \"a\\nb\".splitlines()\ng = \"{} {x}\".format(1, x=2)\nh = \"ab\".upper()\ni = \"AB\".lower()\nj = \"ab cd\".title()\nk = \"ab\".capitalize()\nl = \"a,b,c\".rsplit(\",\", 1)",
		"l = [1]\nl.extend([2, 3])\nd = {\"a\": 1}\nd.update({\"b\": 2}, c=3)\ni = d.items()\nk = d.keys()\nv = d.values()\ns = set([1]).union([2], [3])\nt = set([1, 2]).difference([2])\nu = set([1, 2]).intersection([2])\nw = set([1, 2]).symmetric_difference([2, 3])",
		"j = \"-\".join\nx = j([\"a\", \"b\"])\ne = [].extend\ny = str(j)\nz = type(j)",
		"x = \"a\".join(1)",
		"x = \"a\".join([1])",
		"x = [].join",
		"x = struct(itemz=1).items", // with the interpreter's spelling hint
		"x = struct(a=1).keys",
		"x = {}.nope",
		"x = 1 .join",
		"x = \"a\".replace(1, 2)",
		"x = \"{}\".format()",
		"l = [1]\nl.extend(1)",
		// Comprehensions and calls.
		"a = [x * 2 for x in range(5) if x % 2]\nb = {x: x + 1 for x in range(3)}\nc = [(x, y) for x in range(3) for y in \"ab\" if x]\nd = [[y for y in range(x)] for x in range(3)]",
		"x = [y for y in 5]",
		"def f(a, b=1 + 1, *args, **kwargs):\n    return (a, b, args, kwargs)\nx = f(*[1, 2, 3], **{\"k\": 4})\ny = f(1, *(), **{})\nz = (lambda p, q=[1] * 2: p + q)([0])",
		"def f(*a):\n    return a\nx = f(*1)",
		"def f(**a):\n    return a\nx = f(**1)",
		// Ordinary errors.
		"x = 1 + \"a\"",
		"x = \"a\" * \"b\"",
		"x = [] + ()",
		"x = 1 % 0",
		"x = \"%d\" % \"x\"",
		"x = \"%s %s\" % (1,)",
		"x = 1 << -1",
		"x = set([1]) | [2]",
		"l = []\nl += 1",
		"s = \"a\"\ns += 1",
		"t = (1,)\nt[0] += 1",
		"d = {}\nd[\"missing\"] += 1",
		"l = [1]\nl[5] += 1",
		"x = undefined_name + 1",
		"def f():\n    return g()\ndef g():\n    return 1 + None\nf()",
		"def f(n):\n    return [1] + f(n - 1) if n else \"x\"\nf(3)",
	}
	for _, code := range codes {
		want := outcome(t, code, false)
		got := outcome(t, code, true)
		if got != want {
			t.Errorf("code:\n%s\nrewritten:\n%s\nas written:\n%s", code, got, want)
		}
	}
}

// TestRewriteAugmentedElementError checks the one known difference: the
// error of the operation of a[k] op= y (not of reading or storing a[k])
// is reported at the bracket, on the same line, instead of at the
// operator.
func TestRewriteAugmentedElementError(t *testing.T) {
	code := "d = {\"x\": \"a\"}\nd[\"x\"] += 1"
	want := strings.Replace(outcome(t, code, false), "error at 2:8:", "error at 2:2:", 1)
	if got := outcome(t, code, true); got != want {
		t.Errorf("rewritten:\n%s\nwant:\n%s", got, want)
	}
}

// TestRewriteHidesItsNames checks that node code can neither name nor
// shadow the hidden builtins.
func TestRewriteHidesItsNames(t *testing.T) {
	if _, err := fileOptions.Parse(codeFilename, "x = $add(1, 2)", 0); err == nil {
		t.Errorf("code naming $add parsed")
	}
	// A user variable called add does not change what + does.
	got := outcome(t, "def add(x, y):\n    return 0\nx = 1 + 2", true)
	if !strings.Contains(got, "x = 3") {
		t.Errorf("outcome = %q", got)
	}
}
