package node

import (
	"fmt"
	"regexp"
	"strings"
	"sync"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// Python flag values of the re module.
const (
	reIgnoreCase = 2
	reMultiline  = 8
	reDotAll     = 16
)

// regexpCache holds compiled patterns; it is bounded by dropping
// everything when full.
var regexpCache struct {
	sync.Mutex
	m map[string]*regexp.Regexp
}

const maxCachedRegexps = 1024

func compileRegexp(pattern string, flags int, anchored bool) (*regexp.Regexp, error) {
	var prefix string
	if flags&reIgnoreCase != 0 {
		prefix += "i"
	}
	if flags&reMultiline != 0 {
		prefix += "m"
	}
	if flags&reDotAll != 0 {
		prefix += "s"
	}
	src := pattern
	if prefix != "" {
		src = "(?" + prefix + ")" + src
	}
	if anchored {
		src = `^(?:` + src + `)\z`
	}
	regexpCache.Lock()
	defer regexpCache.Unlock()
	if re, ok := regexpCache.m[src]; ok {
		return re, nil
	}
	re, err := regexp.Compile(src)
	if err != nil {
		return nil, fmt.Errorf("invalid pattern %q (RE2 syntax: no backreferences or lookaround): %w", pattern, err)
	}
	if regexpCache.m == nil || len(regexpCache.m) >= maxCachedRegexps {
		regexpCache.m = map[string]*regexp.Regexp{}
	}
	regexpCache.m[src] = re
	return re, nil
}

func reModule() *starlarkstruct.Module {
	m := module("re", map[string]builtinFunc{
		"match":     reFind("match"),
		"search":    reFind("search"),
		"fullmatch": reFind("fullmatch"),
		"findall":   reFindall,
		"sub":       reSub,
		"split":     reSplit,
		"escape": func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var s string
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &s); err != nil {
				return nil, err
			}
			return starlark.String(regexp.QuoteMeta(s)), nil
		},
	})
	for name, v := range map[string]int{
		"I": reIgnoreCase, "IGNORECASE": reIgnoreCase,
		"M": reMultiline, "MULTILINE": reMultiline,
		"S": reDotAll, "DOTALL": reDotAll,
	} {
		m.Members[name] = starlark.MakeInt(v)
	}
	return m
}

// reFind implements re.match (at the start), re.search (anywhere) and
// re.fullmatch (the whole string); each returns a match object or None.
func reFind(mode string) builtinFunc {
	return func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var pattern, s string
		flags := 0
		if err := starlark.UnpackArgs(b.Name(), args, kwargs, "pattern", &pattern, "string", &s, "flags?", &flags); err != nil {
			return nil, err
		}
		re, err := compileRegexp(pattern, flags, mode == "fullmatch")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name(), err)
		}
		loc := re.FindStringSubmatchIndex(s)
		// RE2 finds the leftmost match, so a match at 0 exists iff the
		// leftmost one starts at 0.
		if loc == nil || (mode == "match" && loc[0] != 0) {
			return starlark.None, nil
		}
		return &matchValue{re: re, s: s, loc: loc}, nil
	}
}

// reFindall implements re.findall: the matched strings, or with one group
// that group, or with several groups a tuple of them (as Python).
func reFindall(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var pattern, s string
	flags := 0
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "pattern", &pattern, "string", &s, "flags?", &flags); err != nil {
		return nil, err
	}
	re, err := compileRegexp(pattern, flags, false)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	locs, err := findAllCharged(th, b.Name(), re, s, -1, int64(re.NumSubexp())*sliceSlot+valueHeader)
	if err != nil {
		return nil, err
	}
	var out []starlark.Value
	for _, loc := range locs {
		m := matchValue{re: re, s: s, loc: loc}
		switch n := re.NumSubexp(); n {
		case 0:
			out = append(out, m.group(0))
		case 1:
			out = append(out, m.groupOr(1, starlark.String("")))
		default:
			t := make(starlark.Tuple, n)
			for i := range n {
				t[i] = m.groupOr(i+1, starlark.String(""))
			}
			out = append(out, t)
		}
	}
	return starlark.NewList(out), nil
}

// reSub implements re.sub(pattern, repl, string, count=0, flags=0). repl is
// a string with Python references (\1, \g<1>, \g<name>) or a function
// called with the match object.
func reSub(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var pattern, s string
	var repl starlark.Value
	count, flags := 0, 0
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "pattern", &pattern, "repl", &repl, "string", &s, "count?", &count, "flags?", &flags); err != nil {
		return nil, err
	}
	re, err := compileRegexp(pattern, flags, false)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	var template string
	fn, isFunc := repl.(starlark.Callable)
	if !isFunc {
		rs, ok := starlark.AsString(repl)
		if !ok {
			return nil, fmt.Errorf("%s: repl must be a str or a function, got %s", b.Name(), repl.Type())
		}
		template = pythonTemplate(rs)
	}
	n := -1
	if count > 0 {
		n = count
	}
	locs, err := findAllCharged(th, b.Name(), re, s, n, 0)
	if err != nil {
		return nil, err
	}
	// The result is charged as it grows, before each piece is added.
	var out strings.Builder
	last, charged := 0, int64(0)
	for _, loc := range locs {
		if grown := int64(out.Len()) - charged; grown > 1<<16 {
			if err := charge(th, b.Name(), grown); err != nil {
				return nil, err
			}
			charged += grown
		}
		out.WriteString(s[last:loc[0]])
		if isFunc {
			v, err := starlark.Call(th, fn, starlark.Tuple{&matchValue{re: re, s: s, loc: loc}}, nil)
			if err != nil {
				return nil, err
			}
			vs, ok := starlark.AsString(v)
			if !ok {
				return nil, fmt.Errorf("%s: repl function returned %s, want str", b.Name(), v.Type())
			}
			out.WriteString(vs)
		} else {
			out.Write(re.ExpandString(nil, template, s, loc))
		}
		last = loc[1]
	}
	out.WriteString(s[last:])
	if err := charge(th, b.Name(), int64(out.Len())-charged+valueHeader); err != nil {
		return nil, err
	}
	return starlark.String(out.String()), nil
}

// findAllCharged returns the submatch indexes of up to n (-1: all)
// matches of re in s, charging per bytes for each match to the budget on
// top of the indexes themselves. It asks the regexp for no more matches
// than the budget can take, so a pattern matching at every position of a
// long string fails before the matches are built.
func findAllCharged(th *starlark.Thread, what string, re *regexp.Regexp, s string, n int, per int64) ([][]int, error) {
	per += int64(2*(re.NumSubexp()+1))*8 + 24 // the index slice of a match
	if r := runOf(th); r != nil {
		if limit := r.mem.remaining()/per + 1; limit < int64(len(s))+1 && (n < 0 || int64(n) > limit) {
			n = int(limit)
		}
	}
	locs := re.FindAllStringSubmatchIndex(s, n)
	if err := charge(th, what, mul(int64(len(locs)), per)); err != nil {
		return nil, err
	}
	return locs, nil
}

// pythonTemplate turns a Python replacement string into a Go template.
func pythonTemplate(r string) string {
	var b strings.Builder
	for i := 0; i < len(r); i++ {
		c := r[i]
		switch {
		case c == '$':
			b.WriteString("$$")
		case c == '\\' && i+1 < len(r) && r[i+1] >= '0' && r[i+1] <= '9':
			j := i + 1
			for j < len(r) && j < i+3 && r[j] >= '0' && r[j] <= '9' {
				j++
			}
			b.WriteString("${" + r[i+1:j] + "}")
			i = j - 1
		case c == '\\' && strings.HasPrefix(r[i:], `\g<`):
			end := strings.IndexByte(r[i:], '>')
			if end < 0 {
				b.WriteByte(c)
				continue
			}
			b.WriteString("${" + r[i+3:i+end] + "}")
			i += end
		case c == '\\' && i+1 < len(r):
			switch r[i+1] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case '\\':
				b.WriteByte('\\')
			default:
				b.WriteByte(c)
				b.WriteByte(r[i+1])
			}
			i++
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// reSplit implements re.split(pattern, string, maxsplit=0, flags=0);
// captured groups are included in the result, as in Python.
func reSplit(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var pattern, s string
	maxsplit, flags := 0, 0
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "pattern", &pattern, "string", &s, "maxsplit?", &maxsplit, "flags?", &flags); err != nil {
		return nil, err
	}
	re, err := compileRegexp(pattern, flags, false)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	n := -1
	if maxsplit > 0 {
		n = maxsplit
	}
	locs, err := findAllCharged(th, b.Name(), re, s, n, int64(re.NumSubexp()+1)*(sliceSlot+valueHeader))
	if err != nil {
		return nil, err
	}
	var out []starlark.Value
	last := 0
	for _, loc := range locs {
		out = append(out, starlark.String(s[last:loc[0]]))
		m := matchValue{re: re, s: s, loc: loc}
		for i := 1; i <= re.NumSubexp(); i++ {
			out = append(out, m.group(i))
		}
		last = loc[1]
	}
	out = append(out, starlark.String(s[last:]))
	return starlark.NewList(out), nil
}

// matchValue is a match object: group(i=0 or name), groups(default=None),
// groupdict(), start(i=0), end(i=0), span(i=0), and the attribute string.
type matchValue struct {
	re  *regexp.Regexp
	s   string
	loc []int
}

var _ starlark.HasAttrs = (*matchValue)(nil)

func (m *matchValue) String() string {
	return fmt.Sprintf("<re.Match span=(%d, %d) match=%q>", m.loc[0], m.loc[1], m.s[m.loc[0]:m.loc[1]])
}
func (m *matchValue) Type() string          { return "re.Match" }
func (m *matchValue) Freeze()               {}
func (m *matchValue) Truth() starlark.Bool  { return true }
func (m *matchValue) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: re.Match") }

func (m *matchValue) AttrNames() []string {
	return []string{"end", "group", "groupdict", "groups", "span", "start", "string"}
}

func (m *matchValue) group(i int) starlark.Value { return m.groupOr(i, starlark.None) }

func (m *matchValue) groupOr(i int, dflt starlark.Value) starlark.Value {
	if m.loc[2*i] < 0 {
		return dflt
	}
	return starlark.String(m.s[m.loc[2*i]:m.loc[2*i+1]])
}

// index resolves a group number or name.
func (m *matchValue) index(v starlark.Value) (int, error) {
	if s, ok := v.(starlark.String); ok {
		i := m.re.SubexpIndex(string(s))
		if i < 0 {
			return 0, fmt.Errorf("no such group %s", s)
		}
		return i, nil
	}
	var i int
	if err := starlark.AsInt(v, &i); err != nil {
		return 0, fmt.Errorf("group must be an int or a str, got %s", v.Type())
	}
	if i < 0 || i > m.re.NumSubexp() {
		return 0, fmt.Errorf("no such group %d", i)
	}
	return i, nil
}

func (m *matchValue) Attr(name string) (starlark.Value, error) {
	method := func(fn builtinFunc) starlark.Value { return builtin("re.Match."+name, fn) }
	switch name {
	case "string":
		return starlark.String(m.s), nil
	case "group":
		return method(func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			if len(kwargs) > 0 {
				return nil, fmt.Errorf("%s: unexpected keyword arguments", b.Name())
			}
			if len(args) == 0 {
				return m.group(0), nil
			}
			out := make(starlark.Tuple, len(args))
			for j, a := range args {
				i, err := m.index(a)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", b.Name(), err)
				}
				out[j] = m.group(i)
			}
			if len(out) == 1 {
				return out[0], nil
			}
			return out, nil
		}), nil
	case "groups":
		return method(func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var dflt starlark.Value = starlark.None
			if err := starlark.UnpackArgs(b.Name(), args, kwargs, "default?", &dflt); err != nil {
				return nil, err
			}
			out := make(starlark.Tuple, m.re.NumSubexp())
			for i := range out {
				out[i] = m.groupOr(i+1, dflt)
			}
			return out, nil
		}), nil
	case "groupdict":
		return method(func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var dflt starlark.Value = starlark.None
			if err := starlark.UnpackArgs(b.Name(), args, kwargs, "default?", &dflt); err != nil {
				return nil, err
			}
			d := starlark.NewDict(0)
			for i, name := range m.re.SubexpNames() {
				if name != "" {
					_ = d.SetKey(starlark.String(name), m.groupOr(i, dflt))
				}
			}
			return d, nil
		}), nil
	case "start", "end", "span":
		return method(func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var g starlark.Value = starlark.MakeInt(0)
			if err := starlark.UnpackArgs(b.Name(), args, kwargs, "group?", &g); err != nil {
				return nil, err
			}
			i, err := m.index(g)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", b.Name(), err)
			}
			start, end := starlark.MakeInt(m.loc[2*i]), starlark.MakeInt(m.loc[2*i+1])
			switch name {
			case "start":
				return start, nil
			case "end":
				return end, nil
			}
			return starlark.Tuple{start, end}, nil
		}), nil
	}
	return nil, nil
}
