package node

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// fileOptions is the Starlark dialect of node code (DESIGN.md §5).
var fileOptions = &syntax.FileOptions{
	Set:             true,
	While:           true,
	TopLevelControl: true,
	GlobalReassign:  true,
	Recursion:       true,
}

// A Program is the compiled code of a node. It is immutable and safe for
// concurrent use: any number of attempts may Run it at once.
type Program struct {
	prog *starlark.Program
	// names are the free names the code reads (everything not bound in
	// the code itself), sorted; each attempt binds only these.
	names []string
	// static binds the names that are builtins or Starlark universals;
	// it is shared by every attempt that needs nothing else (see bind).
	static starlark.StringDict
	// dynamic reports that the code reads a reserved name (parameters,
	// inputs, ...), which each attempt binds to its own value.
	dynamic bool
	// funcGlobals maps the position of each def and lambda to the global
	// names its body reads (for parallel.map freezing).
	funcGlobals map[[2]int32][]string
}

// A Problem is one error in node code, at a 1-based line and column.
type Problem struct {
	Line, Col int
	Message   string
}

func (p Problem) String() string { return fmt.Sprintf("%d:%d: %s", p.Line, p.Col, p.Message) }

// CompileError reports every problem found in the code of a node.
type CompileError struct {
	NodeID   string
	Problems []Problem // sorted by position; never empty
}

func (e *CompileError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "node %q: ", e.NodeID)
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// maxCachedPrograms bounds the compile cache.
const maxCachedPrograms = 4096

// compiled is a cache entry: a program or the problems of its code.
type compiled struct {
	prog     *Program
	problems []Problem
}

var programCache = struct {
	sync.Mutex
	m map[[sha256.Size]byte]compiled
}{m: make(map[[sha256.Size]byte]compiled)}

// Compile compiles the code of the node nodeID, or returns the cached
// program of identical code. Compile is safe for concurrent use. Problems
// are reported as a *CompileError listing the first syntax or resolution
// errors and, for every Python habit that Starlark lacks (import, try,
// with, class, f-strings, ...), a hint that says what to write instead.
func Compile(nodeID, code string) (*Program, error) {
	key := sha256.Sum256([]byte(code))
	programCache.Lock()
	c, ok := programCache.m[key]
	programCache.Unlock()
	if !ok {
		c = compileCode(code)
		programCache.Lock()
		if len(programCache.m) >= maxCachedPrograms {
			for k := range programCache.m { // evict an arbitrary entry
				delete(programCache.m, k)
				break
			}
		}
		programCache.m[key] = c
		programCache.Unlock()
	}
	if c.problems != nil {
		return nil, &CompileError{NodeID: nodeID, Problems: slices.Clone(c.problems)}
	}
	return c.prog, nil
}

func compileCode(code string) compiled {
	hints := scanHabits(code)
	f, err := fileOptions.Parse("node.star", code, 0)
	var problems []Problem
	if err == nil {
		rewriteFile(f)
		var prog *starlark.Program
		// Every free name is "predeclared": the attempt binds what it has,
		// and a name nobody provided fails only when its line runs.
		prog, err = starlark.FileProgram(f, func(string) bool { return true })
		if err == nil && len(hints) == 0 {
			return compiled{prog: newProgram(prog, freeNames(f), funcGlobals(f))}
		}
	}
	problems = append(problems, hints...)
	for _, p := range starlarkProblems(err) {
		if !slices.ContainsFunc(hints, func(h Problem) bool { return h.Line == p.Line }) {
			problems = append(problems, p)
		}
	}
	slices.SortStableFunc(problems, func(a, b Problem) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Col - b.Col
	})
	return compiled{problems: problems}
}

// starlarkProblems turns a parse or resolve error into problems.
func starlarkProblems(err error) []Problem {
	if err == nil {
		return nil
	}
	var se syntax.Error
	if errors.As(err, &se) {
		return []Problem{{Line: int(se.Pos.Line), Col: int(se.Pos.Col), Message: se.Msg}}
	}
	var rl resolve.ErrorList
	if errors.As(err, &rl) {
		out := make([]Problem, len(rl))
		for i, e := range rl {
			out[i] = Problem{Line: int(e.Pos.Line), Col: int(e.Pos.Col), Message: e.Msg}
		}
		return out
	}
	return []Problem{{Line: 1, Col: 1, Message: err.Error()}}
}

// newProgram returns the Program of a compiled file that reads names.
func newProgram(prog *starlark.Program, names []string, funcs map[[2]int32][]string) *Program {
	p := &Program{prog: prog, names: names, funcGlobals: funcs, static: starlark.StringDict{}}
	for _, name := range names {
		if slices.Contains(reservedNames, name) {
			p.dynamic = true
		} else if v := builtinValue(name); v != nil {
			p.static[name] = v
		}
	}
	return p
}

// freeNames returns the sorted names the resolved file reads from the
// predeclared environment.
func freeNames(f *syntax.File) []string {
	seen := map[string]bool{}
	syntax.Walk(f, func(n syntax.Node) bool {
		if id, ok := n.(*syntax.Ident); ok {
			if b, ok := id.Binding.(*resolve.Binding); ok && b.Scope == resolve.Predeclared {
				seen[id.Name] = true
			}
		}
		return true
	})
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// funcGlobals returns, for every def and lambda of the resolved file, the
// global names read in its body (nested functions included).
func funcGlobals(f *syntax.File) map[[2]int32][]string {
	out := map[[2]int32][]string{}
	syntax.Walk(f, func(n syntax.Node) bool {
		var fn any
		switch n := n.(type) {
		case *syntax.DefStmt:
			fn = n.Function
		case *syntax.LambdaExpr:
			fn = n.Function
		default:
			return true
		}
		rf, ok := fn.(*resolve.Function)
		if !ok {
			return true
		}
		var names []string
		syntax.Walk(n, func(m syntax.Node) bool {
			if id, ok := m.(*syntax.Ident); ok {
				if b, ok := id.Binding.(*resolve.Binding); ok && b.Scope == resolve.Global && !slices.Contains(names, id.Name) {
					names = append(names, id.Name)
				}
			}
			return true
		})
		out[[2]int32{rf.Pos.Line, rf.Pos.Col}] = names
		return true
	})
	return out
}

// A habit is a Python construct that Starlark lacks, found by a line scan
// of the code with string contents and comments blanked out.
type habit struct {
	re   *regexp.Regexp
	hint func(m []string) string
}

var habits = []habit{
	{regexp.MustCompile(`^\s*(?:from\s+([\w.]+)\s+)?import\s+([\w.]+)`), func(m []string) string {
		mod := m[2]
		if m[1] != "" {
			mod = m[1]
		}
		mod, _, _ = strings.Cut(mod, ".")
		if slices.Contains(moduleNames, mod) {
			return fmt.Sprintf("`%s` is already available; Starlark has no import", mod)
		}
		return fmt.Sprintf("Starlark has no import and there is no module `%s`; the available modules are %s", mod, strings.Join(moduleNames, ", "))
	}},
	{regexp.MustCompile(`^\s*try\s*:`), func([]string) string {
		return "Starlark has no try/except: call catch(fn, *args) and test .ok, .value and .error of what it returns"
	}},
	{regexp.MustCompile(`^\s*(except\b|finally\s*:)`), func(m []string) string {
		return "Starlark has no " + strings.TrimRight(m[1], " :") + ": use catch(fn, *args), which returns a struct with ok, value, error and traceback"
	}},
	{regexp.MustCompile(`^\s*with\b.*:`), func([]string) string {
		return "Starlark has no `with`: call the function directly; resources are released when the node ends (use db.transaction(fn) for transactions)"
	}},
	{regexp.MustCompile(`^\s*async\s+(def|for|with)\b|\bawait\b`), func([]string) string {
		return "Starlark has no async/await: calls are synchronous; use parallel.map(fn, items) to run calls concurrently"
	}},
	{regexp.MustCompile(`^\s*class\s+\w+`), func([]string) string {
		return "Starlark has no classes: use dicts (or struct-like dicts) and functions"
	}},
	{regexp.MustCompile(`^return\b`), func([]string) string {
		return "top-level return is not allowed: set `result = {...}` and put the rest under if/else"
	}},
	{regexp.MustCompile(`[\w)\]]\s*\*\*\s*[\w(\[.-]`), func([]string) string {
		return "Starlark has no ** operator: use math.pow(x, y) for floats or multiply (x * x) for ints"
	}},
	{regexp.MustCompile(`^\s*raise\b`), func([]string) string {
		return "Starlark has no raise: call fail(\"message\") to fail the node"
	}},
	{regexp.MustCompile(`^\s*(global|nonlocal)\b`), func(m []string) string {
		return "Starlark has no " + m[1] + " statement: functions cannot assign outer variables; return the value instead"
	}},
	{regexp.MustCompile(`\bis\s+(not\s+)?None\b`), func(m []string) string {
		if m[1] != "" {
			return "Starlark has no `is` operator: write `x != None`"
		}
		return "Starlark has no `is` operator: write `x == None`"
	}},
	{regexp.MustCompile(`^\s*(del|assert|yield)\b`), func(m []string) string {
		switch m[1] {
		case "del":
			return "Starlark has no del: use d.pop(key) for dicts and l.pop(i) for lists"
		case "assert":
			return "Starlark has no assert: write `if not cond: fail(\"message\")`"
		}
		return "Starlark has no generators (yield): build and return a list"
	}},
}

// fStringHint is reported for a string literal with an f prefix.
const fStringHint = "Starlark has no f-strings: write \"{} {}\".format(a, b) or \"%s %d\" % (a, b)"

// scanHabits reports every Python habit in code with a hint.
func scanHabits(code string) []Problem {
	masked, fstrings := maskStrings(code)
	var out []Problem
	for i, line := range strings.Split(masked, "\n") {
		for _, h := range habits {
			if m := h.re.FindStringSubmatchIndex(line); m != nil {
				sub := make([]string, len(m)/2)
				for j := range sub {
					if m[2*j] >= 0 {
						sub[j] = line[m[2*j]:m[2*j+1]]
					}
				}
				col := m[0] + 1 + len(line[m[0]:]) - len(strings.TrimLeft(line[m[0]:], " \t"))
				out = append(out, Problem{Line: i + 1, Col: col, Message: h.hint(sub)})
			}
		}
	}
	for _, p := range fstrings {
		out = append(out, Problem{Line: p.Line, Col: p.Col, Message: fStringHint})
	}
	return out
}

// maskStrings blanks the contents of string literals and comments (keeping
// line structure) and returns the positions of f-string literals.
func maskStrings(code string) (string, []Problem) {
	b := []byte(code)
	var fstrings []Problem
	line, col := 1, 1
	advance := func(c byte) {
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == '#':
			for i < len(b) && b[i] != '\n' {
				b[i] = ' '
				i++
				col++
			}
		case c == '"' || c == '\'':
			// prefix letters just before the quote: f, rf, fr, b, r...
			j := i
			for j > 0 && strings.IndexByte("rRbBfFuU", b[j-1]) >= 0 {
				j--
			}
			if j == 0 || !isIdentByte(b[j-1]) {
				if strings.ContainsAny(string(b[j:i]), "fF") {
					fstrings = append(fstrings, Problem{Line: line, Col: col - (i - j)})
				}
			}
			quote := string(c)
			if i+2 < len(b) && b[i+1] == c && b[i+2] == c {
				quote = strings.Repeat(quote, 3)
			}
			for range len(quote) {
				advance(b[i])
				i++
			}
			for i < len(b) && !strings.HasPrefix(string(b[i:min(i+len(quote), len(b))]), quote) {
				if b[i] == '\\' && i+1 < len(b) {
					advance(b[i])
					b[i] = ' '
					i++
				}
				if b[i] == '\n' && len(quote) == 1 {
					break // unterminated; the parser reports it
				}
				advance(b[i])
				if b[i] != '\n' {
					b[i] = ' '
				}
				i++
			}
			for k := 0; k < len(quote) && i < len(b) && b[i] == c; k++ {
				advance(b[i])
				i++
			}
		default:
			advance(c)
			i++
		}
	}
	return string(b), fstrings
}

func isIdentByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
