package node

import (
	"errors"
	"fmt"
	"strings"
	"unicode"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// hiddenBuiltins returns the builtins the rewritten code calls (see
// rewrite.go). Their names start with "$", which node code cannot write.
func hiddenBuiltins() starlark.StringDict {
	hiddenBuiltins := starlark.StringDict{}
	for op, name := range binaryBuiltins {
		hiddenBuiltins[name] = starlark.NewBuiltin(name, binaryOp(op))
		hiddenBuiltins["$i"+name[1:]] = starlark.NewBuiltin("$i"+name[1:], inplaceOp(op))
	}
	hiddenBuiltins["$augindex"] = starlark.NewBuiltin("$augindex", augIndex)
	hiddenBuiltins["$augattr"] = starlark.NewBuiltin("$augattr", augAttr)
	hiddenBuiltins["$slice"] = starlark.NewBuiltin("$slice", sliceOp)
	hiddenBuiltins["$attr"] = starlark.NewBuiltin("$attr", attrOp)
	hiddenBuiltins["$spread"] = starlark.NewBuiltin("$spread", spread)
	hiddenBuiltins["$each"] = starlark.NewBuiltin("$each", each)
	return hiddenBuiltins
}

// binarySize estimates the size of x op y before it is built; 0 when the
// operation builds nothing large (numbers, or an error).
func binarySize(op syntax.Token, x, y starlark.Value) int64 {
	switch op {
	case syntax.PLUS:
		switch x := x.(type) {
		case starlark.String:
			if y, ok := y.(starlark.String); ok {
				return int64(len(x)+len(y)) + valueHeader
			}
		case starlark.Bytes:
			if y, ok := y.(starlark.Bytes); ok {
				return int64(len(x)+len(y)) + valueHeader
			}
		case *starlark.List:
			if y, ok := y.(*starlark.List); ok {
				return int64(x.Len()+y.Len())*sliceSlot + valueHeader
			}
		case starlark.Tuple:
			if y, ok := y.(starlark.Tuple); ok {
				return int64(len(x)+len(y))*sliceSlot + valueHeader
			}
		}
	case syntax.STAR:
		if xi, ok := x.(starlark.Int); ok {
			if yi, ok := y.(starlark.Int); ok {
				if _, small := xi.Int64(); small {
					if _, small := yi.Int64(); small {
						return 0
					}
				}
				// The product, and the scratch space of the
				// multiplication (Karatsuba): about 4 times the product.
				return 4 * (intBytes(xi) + intBytes(yi))
			}
			x, y = y, x // 3 * "ab"
		}
		n, ok := y.(starlark.Int)
		if !ok {
			return 0
		}
		times, ok := n.Int64()
		if !ok {
			times = maxCharge // the interpreter refuses it; charge it first
		}
		if times <= 0 {
			return 0
		}
		switch x := x.(type) {
		case starlark.String:
			return sat(mul(int64(len(x)), times), valueHeader)
		case starlark.Bytes:
			return sat(mul(int64(len(x)), times), valueHeader)
		case *starlark.List:
			return sat(mul(int64(x.Len())*sliceSlot, times), valueHeader)
		case starlark.Tuple:
			return sat(mul(int64(len(x))*sliceSlot, times), valueHeader)
		}
	case syntax.LTLT:
		xi, ok1 := x.(starlark.Int)
		yi, ok2 := y.(starlark.Int)
		if !ok1 || !ok2 {
			return 0
		}
		shift, ok := yi.Int64()
		if !ok {
			shift = maxCharge
		}
		if shift <= 64 {
			return 0
		}
		return sat(intBytes(xi), shift/8)
	case syntax.PIPE, syntax.MINUS, syntax.AMP, syntax.CIRCUMFLEX:
		_, xd := x.(*starlark.Dict)
		_, xs := x.(*starlark.Set)
		if xd || xs {
			return int64(starlark.Len(x)+max(starlark.Len(y), 0))*hashEntry + valueHeader
		}
	}
	return 0
}

// binaryOp returns the builtin of x op y: charge, then let the
// interpreter compute (and report its own errors).
func binaryOp(op syntax.Token) func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
	what := "the operation " + op.String()
	return func(th *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
		x, y := args[0], args[1]
		if op == syntax.PERCENT {
			if err := chargeFormat(th, x, y); err != nil {
				return nil, err
			}
		} else if err := charge(th, what, binarySize(op, x, y)); err != nil {
			return nil, err
		}
		return starlark.Binary(op, x, y)
	}
}

// chargeFormat charges fmt % args: the format and, for each of its
// conversions, the text of the largest argument.
func chargeFormat(th *starlark.Thread, x, y starlark.Value) error {
	f, ok := x.(starlark.String)
	if !ok {
		return nil
	}
	if err := charge(th, "the operation %", int64(len(f))+valueHeader); err != nil {
		return err
	}
	if t, ok := y.(starlark.Tuple); ok {
		return chargeText(th, "the operation %", 1, t...)
	}
	return chargeText(th, "the operation %", int64(strings.Count(string(f), "%")), y)
}

// inplaceOp returns the builtin of x op= y for an identifier x. For += on
// a list and |= on a dict it extends x in place, as the interpreter does.
func inplaceOp(op syntax.Token) func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
	plain := binaryOp(op)
	return func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if v, done, err := inplace(th, op, args[0], args[1]); done {
			return v, err
		}
		return plain(th, b, args, kwargs)
	}
}

// inplace does x += y for a list x and x |= y for a dict x; done is false
// for every other case.
func inplace(th *starlark.Thread, op syntax.Token, x, y starlark.Value) (v starlark.Value, done bool, err error) {
	var method, verb string
	var n int64
	switch {
	case op == syntax.PLUS:
		if _, ok := x.(*starlark.List); !ok {
			return nil, false, nil
		}
		if _, ok := y.(starlark.Iterable); !ok {
			return nil, false, nil
		}
		method, verb, n = "extend", "+=", elems(y)*sliceSlot
	case op == syntax.PIPE:
		if _, ok := x.(*starlark.Dict); !ok {
			return nil, false, nil
		}
		if _, ok := y.(*starlark.Dict); !ok {
			return nil, false, nil
		}
		method, verb, n = "update", "|=", elems(y)*hashEntry
	default:
		return nil, false, nil
	}
	if err := charge(th, "the operation "+verb, n); err != nil {
		return nil, true, err
	}
	m, err := x.(starlark.HasAttrs).Attr(method)
	if err != nil {
		return nil, true, err
	}
	if _, err := m.(*starlark.Builtin).CallInternal(th, starlark.Tuple{y}, nil); err != nil {
		// "extend: cannot extend frozen list" reads as the interpreter's
		// "cannot apply += to frozen list".
		msg := err.Error()
		for _, prefix := range []string{"extend: cannot extend ", "update: cannot insert into "} {
			if rest, ok := strings.CutPrefix(msg, prefix); ok {
				return nil, true, fmt.Errorf("cannot apply %s to %s", verb, rest)
			}
		}
		return nil, true, err
	}
	return x, true, nil
}

// augIndex implements a[k] op= y: $augindex(a, k, op, y).
func augIndex(th *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
	a, k, y := args[0], args[1], args[3]
	op := augToken(args[2])
	old, err := getIndex(a, k)
	if err != nil {
		return nil, err
	}
	v, err := applyAug(th, op, old, y)
	if err != nil {
		return nil, err
	}
	return starlark.None, setIndex(a, k, v)
}

// augAttr implements a.f op= y: $augattr(a, "f", op, y).
func augAttr(th *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
	a, name, y := args[0], string(args[1].(starlark.String)), args[3]
	op := augToken(args[2])
	old, err := getAttr(a, name)
	if err != nil {
		return nil, err
	}
	v, err := applyAug(th, op, old, y)
	if err != nil {
		return nil, err
	}
	setter, ok := a.(starlark.HasSetField)
	if !ok {
		return nil, fmt.Errorf("can't assign to .%s field of %s", name, a.Type())
	}
	return starlark.None, setter.SetField(name, v)
}

func applyAug(th *starlark.Thread, op syntax.Token, x, y starlark.Value) (starlark.Value, error) {
	if v, done, err := inplace(th, op, x, y); done {
		return v, err
	}
	return binaryOp(op)(th, nil, starlark.Tuple{x, y}, nil)
}

// augToken parses the operator literal of $augindex and $augattr.
func augToken(v starlark.Value) syntax.Token {
	s := string(v.(starlark.String))
	for op := range binaryBuiltins {
		if op.String() == s {
			return op
		}
	}
	panic("unknown operator " + s)
}

// getIndex is x[y], with the interpreter's messages.
func getIndex(x, y starlark.Value) (starlark.Value, error) {
	switch x := x.(type) {
	case starlark.Mapping:
		z, found, err := x.Get(y)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, fmt.Errorf("key %v not in %s", y, x.Type())
		}
		return z, nil
	case starlark.Indexable:
		n := x.Len()
		i, err := starlark.AsInt32(y)
		if err != nil {
			return nil, fmt.Errorf("%s index: %s", x.Type(), err)
		}
		orig := i
		if i < 0 {
			i += n
		}
		if i < 0 || i >= n {
			return nil, outOfRange(orig, n, x)
		}
		return x.Index(i), nil
	}
	return nil, fmt.Errorf("unhandled index operation %s[%s]", x.Type(), y.Type())
}

func outOfRange(i, n int, x starlark.Value) error {
	if n == 0 {
		return fmt.Errorf("index %d out of range: empty %s", i, x.Type())
	}
	return fmt.Errorf("%s index %d out of range [%d:%d]", x.Type(), i, -n, n-1)
}

// setIndex is x[y] = z, with the interpreter's messages.
func setIndex(x, y, z starlark.Value) error {
	switch x := x.(type) {
	case starlark.HasSetKey:
		return x.SetKey(y, z)
	case starlark.HasSetIndex:
		n := x.Len()
		i, err := starlark.AsInt32(y)
		if err != nil {
			return err
		}
		orig := i
		if i < 0 {
			i += n
		}
		if i < 0 || i >= n {
			return outOfRange(orig, n, x)
		}
		return x.SetIndex(i, z)
	}
	return fmt.Errorf("%s value does not support item assignment", x.Type())
}

// getAttr is x.name, with the interpreter's messages and spelling hint.
func getAttr(x starlark.Value, name string) (starlark.Value, error) {
	h, ok := x.(starlark.HasAttrs)
	if !ok {
		return nil, fmt.Errorf("%s has no .%s field or method", x.Type(), name)
	}
	v, err := h.Attr(name)
	var msg string
	switch nsa, isNSA := err.(starlark.NoSuchAttrError); {
	case isNSA:
		msg = string(nsa)
	case err != nil:
		return nil, err
	case v != nil:
		return v, nil
	default:
		msg = fmt.Sprintf("%s has no .%s field or method", x.Type(), name)
	}
	if n := nearestName(name, h.AttrNames()); n != "" {
		msg = fmt.Sprintf("%s (did you mean .%s?)", msg, n)
	}
	return nil, errors.New(msg)
}

// nearestName returns the candidate closest to name, ignoring case and
// underscores, with at most half of name's letters wrong; "" if none is.
// It gives the interpreter's hint for a misspelt field or method.
func nearestName(name string, candidates []string) string {
	fold := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r == '_' {
				return -1
			}
			return unicode.ToLower(r)
		}, s)
	}
	x := fold(name)
	best, bestD := "", (len(x)+1)/2
	for _, c := range candidates {
		if d := editDistance(x, fold(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of the bytes of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// attrOp implements $attr(x, name): x.name, with the methods of the
// built-in types that can build large values wrapped to charge first.
func attrOp(th *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
	v, err := getAttr(args[0], string(args[1].(starlark.String)))
	if err != nil {
		return nil, err
	}
	return chargedMethod(v), nil
}

// chargedMethod returns v, or for a bound method of str, bytes, list,
// dict or set whose result can be large, a builtin of the same name that
// charges its estimated result before calling it.
func chargedMethod(v starlark.Value) starlark.Value {
	b, ok := v.(*starlark.Builtin)
	if !ok || b.Receiver() == nil || !chargedMethods[b.Name()] {
		return v
	}
	switch b.Receiver().(type) {
	case starlark.String, starlark.Bytes, *starlark.List, *starlark.Dict, *starlark.Set:
	default:
		return v
	}
	return starlark.NewBuiltin(b.Name(), func(th *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if err := chargeMethod(th, b, args, kwargs); err != nil {
			return nil, err
		}
		return b.CallInternal(th, args, kwargs)
	}).BindReceiver(b.Receiver()) // prints as the method it wraps
}

// chargeMethod charges the estimated result of the bound method b.
func chargeMethod(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) error {
	recv := b.Receiver()
	what := recv.Type() + "." + b.Name()
	var n int64
	switch b.Name() {
	case "join":
		n = joinSize(recv, args)
	case "replace":
		n = replaceSize(recv, args)
	case "format":
		return chargeFormatMethod(th, what, recv, args, kwargs)
	case "split", "rsplit", "splitlines":
		s, _ := recv.(starlark.String)
		parts := int64(len(s))/2 + 1
		if b.Name() != "splitlines" && len(args) > 0 {
			if sep, ok := args[0].(starlark.String); ok && len(sep) > 0 {
				parts = int64(strings.Count(string(s), string(sep))) + 1
			}
		}
		n = mul(parts, sliceSlot+valueHeader)
	case "upper", "lower", "title", "capitalize":
		if s, ok := recv.(starlark.String); ok {
			n = int64(len(s))*3/2 + valueHeader
		}
	case "extend":
		if len(args) == 1 {
			n = mul(elems(args[0]), sliceSlot)
		}
	case "update":
		for _, a := range args {
			n = sat(n, mul(elems(a), hashEntry))
		}
		n = sat(n, int64(len(kwargs))*hashEntry)
	case "items":
		n = mul(int64(starlark.Len(recv)), sliceSlot+valueHeader+2*sliceSlot)
	case "keys", "values":
		n = mul(int64(starlark.Len(recv)), sliceSlot)
	case "union", "difference", "intersection", "symmetric_difference":
		n = int64(starlark.Len(recv))
		for _, a := range args {
			n = sat(n, elems(a))
		}
		n = mul(n, hashEntry)
	}
	return charge(th, what, n)
}

// joinSize estimates sep.join(args[0]): the separator once per element
// plus the length of every string element; 0 for a call that will fail.
func joinSize(recv starlark.Value, args starlark.Tuple) int64 {
	s, _ := recv.(starlark.String)
	if len(args) != 1 {
		return 0
	}
	n := mul(int64(len(s)), elems(args[0]))
	if it, ok := args[0].(starlark.Iterable); ok {
		iter := it.Iterate()
		var x starlark.Value
		for iter.Next(&x) {
			if xs, ok := x.(starlark.String); ok {
				n = sat(n, int64(len(xs)))
			}
		}
		iter.Done()
	}
	return n
}

// replaceSize estimates s.replace(old, new[, count]): s grown by each
// replacement that lengthens it; 0 for a call that will fail.
func replaceSize(recv starlark.Value, args starlark.Tuple) int64 {
	s, ok := recv.(starlark.String)
	if !ok || len(args) < 2 {
		return 0
	}
	old, ok1 := args[0].(starlark.String)
	repl, ok2 := args[1].(starlark.String)
	if !ok1 || !ok2 {
		return 0
	}
	count := int64(strings.Count(string(s), string(old)))
	if len(args) > 2 {
		if c, ok := args[2].(starlark.Int); ok {
			if c64, ok := c.Int64(); ok && c64 >= 0 {
				count = min(count, c64)
			}
		}
	}
	return sat(int64(len(s)), mul(count, max(int64(len(repl)-len(old)), 0)))
}

// chargeFormatMethod charges s.format(*args, **kwargs): the format string, then
// for each field the text of the largest argument (measuring the
// arguments costs steps when they are large).
func chargeFormatMethod(th *starlark.Thread, what string, recv starlark.Value, args starlark.Tuple, kwargs []starlark.Tuple) error {
	s, _ := recv.(starlark.String)
	fields := int64(strings.Count(string(s), "{"))
	vals := append(starlark.Tuple(nil), args...)
	for _, kv := range kwargs {
		vals = append(vals, kv[1])
	}
	if err := charge(th, what, int64(len(s))+valueHeader); err != nil {
		return err
	}
	r := runOf(th)
	if r == nil {
		return nil
	}
	var largest, visits int64
	for _, v := range vals {
		largest = max(largest, textSize(v, r.mem.remaining(), &visits))
	}
	if visits > 64 && !r.budget.charge(th, visits) {
		return fmt.Errorf("%s: too many steps: its values exceed the remaining step budget of the node", what)
	}
	return r.mem.add(what, mul(largest, fields))
}

// sliceOp implements $slice(x, lo, hi, step): x[lo:hi:step], charging a
// copy (lists, tuples, and strings with a step other than 1; a string
// slice with step 1 shares the string's bytes).
func sliceOp(th *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
	x, lo, hi, stepv := args[0], args[1], args[2], args[3]
	s, ok := x.(starlark.Sliceable)
	if !ok {
		return nil, fmt.Errorf("invalid slice operand %s", x.Type())
	}
	n := s.Len()
	step := 1
	if stepv != starlark.None {
		var err error
		if step, err = starlark.AsInt32(stepv); err != nil {
			return nil, fmt.Errorf("invalid slice step: %s", err)
		}
		if step == 0 {
			return nil, fmt.Errorf("zero is not a valid slice step")
		}
	}
	var start, end int
	if step > 0 {
		start = 0
		if err := asIndex(lo, n, &start); err != nil {
			return nil, fmt.Errorf("invalid start index: %s", err)
		}
		start = min(max(start, 0), n)
		end = n
		if err := asIndex(hi, n, &end); err != nil {
			return nil, fmt.Errorf("invalid end index: %s", err)
		}
		end = min(max(end, 0), n)
		end = max(end, start)
	} else {
		start = n - 1
		if err := asIndex(lo, n, &start); err != nil {
			return nil, fmt.Errorf("invalid start index: %s", err)
		}
		start = min(start, n-1)
		end = -1
		if err := asIndex(hi, n, &end); err != nil {
			return nil, fmt.Errorf("invalid end index: %s", err)
		}
		end = max(end, -1)
		start = max(start, end)
	}
	count := int64(end - start)
	if count < 0 {
		count = -count
	}
	count = count/int64(max(step, -step)) + 1
	// With a step other than 1 the interpreter appends element by
	// element: the doubling buffer and the final copy take up to 4 times
	// the result for strings, twice for lists.
	var cost int64
	switch x.(type) {
	case starlark.String, starlark.Bytes:
		if step != 1 {
			cost = 4*count + valueHeader
		}
	case *starlark.List, starlark.Tuple:
		cost = count*sliceSlot + valueHeader
		if step != 1 {
			cost *= 2
		}
	} // a range slice is a range
	if err := charge(th, "the slice", cost); err != nil {
		return nil, err
	}
	return s.Slice(start, end, step), nil
}

// asIndex sets *result to the index v, counting a negative one from the
// end; None leaves it unchanged (the interpreter's rule for slices).
func asIndex(v starlark.Value, n int, result *int) error {
	if v == starlark.None {
		return nil
	}
	var err error
	if *result, err = starlark.AsInt32(v); err != nil {
		return err
	}
	if *result < 0 {
		*result += n
	}
	return nil
}

// spread implements $spread(x) for f(*x) and f(**x): the call copies x
// into a tuple or dict.
func spread(th *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
	x := args[0]
	per := int64(sliceSlot)
	if _, ok := x.(starlark.IterableMapping); ok {
		per = hashEntry
	}
	if err := charge(th, "the call's arguments", mul(elems(x), per)); err != nil {
		return nil, err
	}
	return x, nil
}

// each implements $each(xs, per) for a comprehension's for clause: the
// comprehension may add one element (per bytes) for each item of xs.
func each(th *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
	per, _ := args[1].(starlark.Int).Int64()
	if err := charge(th, "the comprehension", mul(int64(max(starlark.Len(args[0]), 0)), per)); err != nil {
		return nil, err
	}
	return args[0], nil
}
