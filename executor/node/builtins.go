package node

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"
	"golang.org/x/sync/errgroup"

	"github.com/kailash-gateway/kgw/internal/starval"
)

type builtinFunc = func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error)

// builtin returns a Starlark builtin that turns a Go panic in fn into an
// error, so that the node fails with code PANIC and the process lives.
func builtin(name string, fn builtinFunc) *starlark.Builtin {
	return starlark.NewBuiltin(name, func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (v starlark.Value, err error) {
		defer func() {
			if p := recover(); p != nil {
				v, err = nil, recovered(name, p)
			}
		}()
		return fn(th, b, args, kwargs)
	})
}

// module returns a frozen module of builtins.
func module(name string, members map[string]builtinFunc) *starlarkstruct.Module {
	m := &starlarkstruct.Module{Name: name, Members: starlark.StringDict{}}
	for k, fn := range members {
		m.Members[k] = builtin(name+"."+k, fn)
	}
	return m
}

// builtins are the predeclared names shared by every attempt. Per-attempt
// names (parameters, inputs, context, execution, workflow_cache) are bound
// by run.lookup.
var builtins starlark.StringDict

// moduleNames lists the modules for import hints.
var moduleNames = []string{"base64", "hashlib", "hmac", "json", "math", "re", "time", "uuid"}

func init() {
	builtins = starlark.StringDict{
		"get_resource": builtin("get_resource", getResource),
		"catch":        builtin("catch", catch),
		"logger": module("logger", map[string]builtinFunc{
			"debug":   logAt(LogDebug),
			"info":    logAt(LogInfo),
			"warning": logAt(LogWarning),
			"warn":    logAt(LogWarning),
			"error":   logAt(LogError),
		}),
		"parallel": module("parallel", map[string]builtinFunc{"map": parallelMap}),
		"json":     jsonModule(),
		"time":     timeModule(),
		"math":     mathModule(),
		"re":       reModule(),
		"uuid":     uuidModule(),
		"base64":   base64Module(),
		"hashlib":  hashlibModule(),
		"hmac":     hmacModule(),
		"struct":   starlark.NewBuiltin("struct", starlarkstruct.Make),
		"str":      depthGuarded("str"),
		"repr":     depthGuarded("repr"),
		"print":    depthGuarded("print"),
	}
	for name, v := range builtins {
		if m, ok := v.(*starlarkstruct.Module); ok {
			builtins[name] = listingModule{m}
		}
	}
	for _, name := range chargedBuiltins {
		builtins[name] = charged(name)
	}
	builtins["getattr"] = builtin("getattr", getattrCharged)
	builtins["fail"] = textCharged("fail")
	for name, b := range hiddenBuiltins() {
		builtins[name] = b
	}
	builtins.Freeze()
}

// chargedBuiltins are the universal builtins that build or scan a whole
// sequence in one call, where the interpreter counts no steps and cannot
// cancel: list(range(10**9)) would allocate 16 GiB, max(range(10**18))
// would spin for ever. Each call is charged one step per element of its
// sequence arguments, so both fail with the step limit at once.
var chargedBuiltins = []string{"all", "any", "bytes", "dict", "enumerate", "list", "max", "min", "reversed", "set", "sorted", "tuple", "zip"}

// charged wraps the universal builtin name. Each call is also charged
// the estimated size of what it builds to the memory budget, before it
// builds it.
func charged(name string) *starlark.Builtin {
	orig := starlark.Universe[name].(*starlark.Builtin)
	return starlark.NewBuiltin(name, func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if err := charge(th, name+"()", builtinSize(name, args, kwargs)); err != nil {
			return nil, err
		}
		var n int64
		for _, a := range args {
			if s, ok := a.(starlark.Sequence); ok {
				n += min(int64(s.Len()), math.MaxInt64-n) // saturating
			}
		}
		if n > 0 {
			if r := runOf(th); r != nil && !r.budget.charge(th, n) {
				return nil, fmt.Errorf("%s: too many steps: %d elements exceed the remaining step budget of the node", name, n)
			}
		}
		return orig.CallInternal(th, args, kwargs)
	})
}

// builtinSize estimates what the universal builtin name builds from args.
func builtinSize(name string, args starlark.Tuple, kwargs []starlark.Tuple) int64 {
	if len(args) == 0 {
		if name == "dict" {
			return int64(len(kwargs)) * hashEntry
		}
		return 0
	}
	switch name {
	case "bytes":
		if s, ok := args[0].(starlark.String); ok {
			return int64(len(s)) + valueHeader
		}
		return sat(elems(args[0]), valueHeader)
	case "list", "tuple", "sorted", "reversed":
		return sat(mul(elems(args[0]), sliceSlot), valueHeader)
	case "dict", "set":
		return sat(mul(sat(elems(args[0]), int64(len(kwargs))), hashEntry), valueHeader)
	case "enumerate":
		return mul(elems(args[0]), sliceSlot+valueHeader+2*sliceSlot)
	case "zip":
		n := int64(maxCharge)
		for _, a := range args {
			n = min(n, elems(a))
		}
		return mul(n, sliceSlot+valueHeader+int64(len(args))*sliceSlot)
	}
	return 0
}

// getattrCharged is getattr(x, name[, default]) returning the charging
// wrapper of a method that can build large values (see chargedMethod), so
// that fetching a method by name does not escape the budget.
func getattrCharged(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	v, err := starlark.Universe["getattr"].(*starlark.Builtin).CallInternal(th, args, kwargs)
	if err != nil {
		return nil, err
	}
	return chargedMethod(v), nil
}

// textCharged wraps the universal builtin name, which prints its
// arguments, to charge their text first.
func textCharged(name string) *starlark.Builtin {
	orig := starlark.Universe[name].(*starlark.Builtin)
	return builtin(name, func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if err := chargeArgsText(th, name+"()", args, kwargs); err != nil {
			return nil, err
		}
		return orig.CallInternal(th, args, kwargs)
	})
}

// chargeArgsText charges the text of the arguments that are not strings
// (a string prints as itself).
func chargeArgsText(th *starlark.Thread, what string, args starlark.Tuple, kwargs []starlark.Tuple) error {
	var vs []starlark.Value
	for _, a := range args {
		if _, ok := a.(starlark.String); !ok {
			vs = append(vs, a)
		}
	}
	for _, kv := range kwargs {
		if _, ok := kv[1].(starlark.String); !ok {
			vs = append(vs, kv[1])
		}
	}
	if len(vs) == 0 {
		return nil
	}
	return chargeText(th, what, 1, vs...)
}

// resourceName unpacks the argument of get_resource(name).
func resourceName(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (string, error) {
	if len(args) == 1 && len(kwargs) == 0 {
		if s, ok := args[0].(starlark.String); ok {
			return string(s), nil // the usual call, without an allocation
		}
	}
	var name string // escapes: declared after the usual call returned
	err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &name)
	return name, err
}

// getResource implements get_resource(name).
func getResource(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	name, err := resourceName(b, args, kwargs)
	if err != nil {
		return nil, err
	}
	r := runOf(th)
	if !slices.Contains(r.a.RequiredResources, name) {
		return nil, &resourceError{fmt.Errorf("resource '%s' is not in required_resources of node '%s'", name, r.a.NodeID)}
	}
	r.resMu.Lock()
	defer r.resMu.Unlock()
	for _, o := range r.resources {
		if o.name == name {
			return o.v, nil
		}
	}
	if r.a.Resources == nil {
		return nil, &resourceError{fmt.Errorf("resource '%s' was not provided in the request", name)}
	}
	v, err := r.a.Resources.Open(starval.Context(th), name)
	if errors.Is(err, ErrNotProvided) {
		return nil, &resourceError{fmt.Errorf("resource '%s' was not provided in the request", name)}
	}
	if err != nil {
		// The opener names the resource (see ResourceOpener).
		return nil, &resourceError{err}
	}
	if r.resources == nil {
		r.resources = r.resBuf[:0]
	}
	r.resources = append(r.resources, openResource{name, v})
	return v, nil
}

// logAt implements logger.<level>(msg, *args, **fields): msg % args when
// args are given; fields become structured log fields.
func logAt(level LogLevel) builtinFunc {
	return func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if len(args) == 0 {
			return nil, fmt.Errorf("%s: missing argument msg", b.Name())
		}
		msg := text(args[0])
		if err := chargeArgsText(th, b.Name()+"()", args[1:], kwargs); err != nil {
			return nil, err
		}
		if len(args) > 1 {
			v, err := starlark.Binary(syntax.PERCENT, args[0], args[1:])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", b.Name(), err)
			}
			msg = text(v)
		}
		r := runOf(th)
		var fields map[string]any
		if len(kwargs) > 0 {
			// A field is converted only up to a line's size, so that a huge
			// value is never copied (the line would be cut anyway).
			limit := r.lim.MaxLogLineBytes
			fields = make(map[string]any, len(kwargs))
			for _, kv := range kwargs {
				k := string(kv[0].(starlark.String))
				v, err := starval.FromStarlarkOptions(kv[1], starval.Options{MaxBytes: limit})
				switch {
				case err == nil:
					fields[k] = v
				case errors.Is(err, starval.ErrTooLarge):
					fields[k] = fmt.Sprintf("[value dropped: larger than the %d-byte log line limit]", limit)
				default:
					s := kv[1].String()
					if len(s) > limit {
						s = fmt.Sprintf("[value dropped: larger than the %d-byte log line limit]", limit)
					}
					fields[k] = s
				}
			}
		}
		r.log(level, msg, fields)
		return starlark.None, nil
	}
}

// text is str(v): strings without quotes, everything else as repr.
func text(v starlark.Value) string {
	if s, ok := starlark.AsString(v); ok {
		return s
	}
	return v.String()
}

// fatal reports whether err must not be caught: the attempt is ending
// (cancelled, out of steps) or a Go panic happened.
func fatal(th *starlark.Thread, err error) bool {
	var pe *panicError
	if errors.As(err, &pe) {
		return true
	}
	r := runOf(th)
	return r.budget.exhausted.Load() || r.callDepthExceeded.Load() || r.memTrip.Load() != nil || r.mem.exceeded.Load() != nil || starval.Context(th).Err() != nil
}

// catch implements catch(fn, *args, **kwargs).
func catch(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("catch: missing argument fn")
	}
	fn, ok := args[0].(starlark.Callable)
	if !ok {
		return nil, fmt.Errorf("catch: fn must be callable, got %s", args[0].Type())
	}
	v, err := starlark.Call(th, fn, args[1:], kwargs)
	fields := starlark.StringDict{}
	if err != nil {
		if fatal(th, err) {
			return nil, err
		}
		tb := ""
		var ev *starlark.EvalError
		if errors.As(err, &ev) {
			tb = backtrace(ev)
		}
		msg := runOf(th).describe(err)
		// An error message can repeat a value (key ... not in dict):
		// kept in a list, such strings would escape the budget. The
		// interpreter formatted it about twice on the way (the error,
		// its traceback), hence twice their size.
		if cerr := charge(th, "catch", 2*int64(len(msg)+len(tb))+2*valueHeader); cerr != nil {
			return nil, cerr
		}
		fields["ok"] = starlark.False
		fields["value"] = starlark.None
		fields["error"] = starlark.String(msg)
		fields["traceback"] = starlark.String(tb)
	} else {
		fields["ok"] = starlark.True
		fields["value"] = v
		fields["error"] = starlark.None
		fields["traceback"] = starlark.None
	}
	return starlarkstruct.FromStringDict(starlarkstruct.Default, fields), nil
}

// parallelMap implements parallel.map(fn, items, limit=10).
func parallelMap(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var fn starlark.Callable
	var items starlark.Iterable
	limit := 10
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "fn", &fn, "items", &items, "limit?", &limit); err != nil {
		return nil, err
	}
	if limit < 1 {
		return nil, fmt.Errorf("%s: limit must be at least 1, got %d", b.Name(), limit)
	}
	// Freeze what the function can reach so that the threads cannot race:
	// the function (its defaults and closure), the globals it reads and
	// the items.
	r := runOf(th)
	// The items are copied into a list, and the results collected in
	// another.
	if err := charge(th, b.Name(), mul(elems(items), 2*sliceSlot)); err != nil {
		return nil, err
	}
	r.freezeReachable(fn)
	items.Freeze()
	var list []starlark.Value
	iter := items.Iterate()
	var x starlark.Value
	for iter.Next(&x) {
		list = append(list, x)
	}
	iter.Done()

	parent := starval.Context(th)
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	defer r.addStopper(&cancel)()
	results := make([]starlark.Value, len(list))
	g := errgroup.Group{}
	g.SetLimit(limit)
	var firstErr error
	var once sync.Once
	for i, item := range list {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() (err error) {
			child := r.newThread(ctx, fmt.Sprintf("%s/parallel[%d]", th.Name, i), nil, nil)
			stop := context.AfterFunc(ctx, func() { child.Cancel(context.Cause(ctx).Error()) })
			defer stop()
			defer r.budget.giveBack(child)
			defer func() {
				if p := recover(); p != nil {
					err = recovered("parallel.map", p)
				}
				if err != nil {
					once.Do(func() {
						firstErr = &itemError{index: i, err: err, msg: r.describe(err)}
						cancel(fmt.Errorf("parallel.map item %d failed", i))
					})
				}
			}()
			v, err := starlark.Call(child, fn, starlark.Tuple{item}, nil)
			if err != nil {
				return err
			}
			results[i] = v
			return nil
		})
	}
	_ = g.Wait() // the first error is recorded in firstErr
	if firstErr != nil {
		return nil, firstErr
	}
	if err := parent.Err(); err != nil {
		return nil, fmt.Errorf("parallel.map: %w", context.Cause(parent))
	}
	if ctx.Err() != nil { // stopped by the memory watchdog
		return nil, fmt.Errorf("parallel.map: %w", context.Cause(ctx))
	}
	return starlark.NewList(results), nil
}

// itemError is the failure of one parallel.map item; it keeps the item's
// own traceback.
type itemError struct {
	index int
	err   error
	msg   string
}

func (e *itemError) Error() string {
	s := fmt.Sprintf("item %d failed: %s", e.index, e.msg)
	var ev *starlark.EvalError
	if errors.As(e.err, &ev) {
		s += "\n" + backtrace(ev)
	}
	return s
}

func (e *itemError) Unwrap() error { return e.err }

// freezeReachable freezes fn (its defaults and closure) and the module
// globals that its body, or the body of any function those globals hold,
// reads. Other globals stay mutable.
func (r *run) freezeReachable(fn starlark.Callable) {
	fn.Freeze()
	f, ok := fn.(*starlark.Function)
	if !ok {
		return
	}
	globals := f.Globals()
	seen := map[*starlark.Function]bool{}
	var visit func(f *starlark.Function)
	visit = func(f *starlark.Function) {
		if seen[f] {
			return
		}
		seen[f] = true
		f.Freeze()
		pos := f.Position()
		names, ok := r.prog.funcGlobals[[2]int32{pos.Line, pos.Col}]
		if !ok { // not a function of this code: be safe
			globals.Freeze()
			return
		}
		for _, name := range names {
			v, ok := globals[name]
			if !ok {
				continue
			}
			v.Freeze()
			if g, ok := v.(*starlark.Function); ok {
				visit(g)
			}
		}
	}
	visit(f)
}

// maxPrintDepth bounds the nesting that str, repr and print accept:
// Starlark's printer is quadratic in the nesting depth and cannot be
// interrupted, so a list nested 100,000 deep would stall the node.
const maxPrintDepth = 1000

// nestedDeeper reports whether v nests lists, tuples or dicts deeper than
// limit.
func nestedDeeper(v starlark.Value, limit int) bool {
	if limit < 0 {
		return true
	}
	switch v := v.(type) {
	case *starlark.List:
		for i := range v.Len() {
			if nestedDeeper(v.Index(i), limit-1) {
				return true
			}
		}
	case starlark.Tuple:
		for _, x := range v {
			if nestedDeeper(x, limit-1) {
				return true
			}
		}
	case *starlark.Dict:
		for _, kv := range v.Items() {
			if nestedDeeper(kv[1], limit-1) {
				return true
			}
		}
	}
	return false
}

// depthGuarded wraps a universal builtin that prints its arguments.
func depthGuarded(name string) *starlark.Builtin {
	orig := starlark.Universe[name].(*starlark.Builtin)
	return builtin(name, func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		// Charging first also bounds the values nestedDeeper visits
		// (textSize gives up past maxVisits): a list that shares itself,
		// l = [l, l] forty times, has 2^40 paths.
		if name == "repr" { // repr copies a string too
			if err := chargeText(th, "repr()", 1, args...); err != nil {
				return nil, err
			}
		} else if err := chargeArgsText(th, name+"()", args, kwargs); err != nil {
			return nil, err
		}
		for _, a := range args {
			if nestedDeeper(a, maxPrintDepth) {
				return nil, fmt.Errorf("%s: value is nested more than %d levels deep", name, maxPrintDepth)
			}
		}
		return starlark.Call(th, orig, args, kwargs)
	})
}

// listingModule is a module whose unknown attribute error names the module
// and lists its members ("module 'time' has no .nwo field or method;
// valid: …"), where starlarkstruct.Module says only "module has no …".
type listingModule struct{ *starlarkstruct.Module }

func (m listingModule) Attr(name string) (starlark.Value, error) {
	if v := m.Members[name]; v != nil {
		return v, nil
	}
	return nil, starval.NoSuchAttr("module '"+m.Name+"'", name, m.AttrNames())
}
