package resources

import (
	"fmt"
	"strconv"

	startime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"

	"github.com/kailash-gateway/kgw/secrets"
)

// Credential values never reach node code.
//
// A handle gives node code what the server sent: rows, replies, response
// bodies and headers, error messages. Any of them may hold a credential of
// the execution — an upstream that echoes the Authorization header, a
// table that stores the database password, a cache key set to it, an
// error that quotes it. Masking the result, logs and error of the node is
// not enough once node code holds the value: slicing, reversing or
// base64-encoding it defeats any later search. So every value a handle
// gives node code passes through the session's redactor first (mask),
// and node code only ever sees "[REDACTED]" where a credential was.
//
// mask wraps the handle itself: each method it returns is wrapped so that
// its result and its error are masked, values with attributes (an HTTP
// response, an acquired connection, a transaction) are wrapped the same
// way, containers are copied with masked elements, and a function node
// code passes to a method (transaction(fn)) is wrapped so that the values
// the method passes to it (the transaction) are masked. The redactor is
// read at each call, so a secret resolved later in the attempt (another
// resource opened) is masked from then on by every handle.
//
// What masking cannot stop is a transformation done by the upstream
// itself: SELECT reverse(password), GETRANGE on a key holding the
// password, an API that returns the token base64-encoded. Least-privilege
// database roles and Redis ACL users remain the operator's job
// (docs/security.md).

// mask returns v with every credential value red knows replaced by
// "[REDACTED]" (see above). A nil red, or one that holds no secret when
// called, gives plain values back unchanged.
func mask(v starlark.Value, red *secrets.Redactor) starlark.Value {
	if red == nil {
		return v
	}
	return maskValue(v, red, 0)
}

// maxMaskDepth bounds the recursion into nested containers; handle results
// are far shallower (the node runtime limits nesting to 64).
const maxMaskDepth = 1000

func maskValue(v starlark.Value, red *secrets.Redactor, depth int) starlark.Value {
	switch x := v.(type) {
	case nil, starlark.NoneType, starlark.Bool, starlark.Int, starlark.Float, startime.Time, startime.Duration, *maskedAttrs:
		return v
	case *starlark.Builtin:
		return maskBuiltin(x, red)
	}
	if depth > maxMaskDepth {
		return starlark.String(secrets.Redacted)
	}
	switch x := v.(type) {
	case starlark.String:
		if red.Empty() {
			return v
		}
		return starlark.String(red.String(string(x)))
	case starlark.Bytes:
		if red.Empty() {
			return v
		}
		return starlark.Bytes(red.String(string(x)))
	case *starlark.List:
		if red.Empty() {
			return v
		}
		items := make([]starlark.Value, x.Len())
		for i := range items {
			items[i] = maskValue(x.Index(i), red, depth+1)
		}
		return starlark.NewList(items)
	case starlark.Tuple:
		if red.Empty() {
			return v
		}
		out := make(starlark.Tuple, len(x))
		for i, e := range x {
			out[i] = maskValue(e, red, depth+1)
		}
		return out
	case *starlark.Dict:
		if red.Empty() {
			return v
		}
		out := starlark.NewDict(x.Len())
		for _, kv := range x.Items() {
			k := maskValue(kv[0], red, depth+1)
			if s, ok := k.(starlark.String); ok && s != kv[0] {
				k = uniqueDictKey(out, string(s))
			}
			_ = out.SetKey(k, maskValue(kv[1], red, depth+1)) // unfrozen, hashable keys
		}
		return out
	case *starlark.Set:
		if red.Empty() {
			return v
		}
		out := starlark.NewSet(x.Len())
		iter := x.Iterate()
		defer iter.Done()
		var e starlark.Value
		for iter.Next(&e) {
			_ = out.Insert(maskValue(e, red, depth+1))
		}
		return out
	case starlark.HasAttrs:
		return &maskedAttrs{v: x, red: red}
	case starlark.Callable:
		return maskCallable(x, red)
	}
	// A type no handle returns today: hide it rather than pass an
	// unmasked value through.
	return starlark.String(red.String(v.String()))
}

// uniqueDictKey returns k, or k#2, k#3, … if d already has it: two keys
// that mask to the same text both survive.
func uniqueDictKey(d *starlark.Dict, k string) starlark.Value {
	key := starlark.String(k)
	for n := 2; ; n++ {
		if _, found, _ := d.Get(key); !found {
			return key
		}
		key = starlark.String(k + "#" + strconv.Itoa(n))
	}
}

// maskBuiltin wraps a method: its arguments that are functions are wrapped
// (maskArgs), its result and error are masked.
func maskBuiltin(b *starlark.Builtin, red *secrets.Redactor) *starlark.Builtin {
	return starlark.NewBuiltin(b.Name(), func(th *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		args, kwargs = maskCallbacks(args, kwargs, red)
		v, err := starlark.Call(th, b, args, kwargs)
		if err != nil {
			return nil, maskError(err, red)
		}
		return maskValue(v, red, 0), nil
	})
}

// maskCallable wraps a callable value other than a Builtin.
func maskCallable(c starlark.Callable, red *secrets.Redactor) starlark.Value {
	return starlark.NewBuiltin(c.Name(), func(th *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		args, kwargs = maskCallbacks(args, kwargs, red)
		v, err := starlark.Call(th, c, args, kwargs)
		if err != nil {
			return nil, maskError(err, red)
		}
		return maskValue(v, red, 0), nil
	})
}

// maskCallbacks wraps the functions among a method's arguments so that
// whatever the method passes to them is masked.
func maskCallbacks(args starlark.Tuple, kwargs []starlark.Tuple, red *secrets.Redactor) (starlark.Tuple, []starlark.Tuple) {
	var outArgs starlark.Tuple
	for i, a := range args {
		if f, ok := a.(starlark.Callable); ok {
			if outArgs == nil {
				outArgs = append(starlark.Tuple(nil), args...)
			}
			outArgs[i] = callback(f, red)
		}
	}
	if outArgs == nil {
		outArgs = args
	}
	var outKw []starlark.Tuple
	for i, kv := range kwargs {
		if f, ok := kv[1].(starlark.Callable); ok {
			if outKw == nil {
				outKw = append([]starlark.Tuple(nil), kwargs...)
			}
			outKw[i] = starlark.Tuple{kv[0], callback(f, red)}
		}
	}
	if outKw == nil {
		outKw = kwargs
	}
	return outArgs, outKw
}

// callback wraps a node function given to a method: the method's arguments
// to it are masked; what it returns, and its errors, are the node's own
// and pass unchanged.
func callback(f starlark.Callable, red *secrets.Redactor) *starlark.Builtin {
	return starlark.NewBuiltin(f.Name(), func(th *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		margs := make(starlark.Tuple, len(args))
		for i, a := range args {
			margs[i] = maskValue(a, red, 0)
		}
		var mkw []starlark.Tuple
		for _, kv := range kwargs {
			mkw = append(mkw, starlark.Tuple{kv[0], maskValue(kv[1], red, 0)})
		}
		return starlark.Call(th, f, margs, mkw)
	})
}

// maskError returns err, or an error with the same chain whose message
// has the credential values masked when it held any.
func maskError(err error, red *secrets.Redactor) error {
	msg := err.Error()
	if m := red.String(msg); m != msg {
		return &redactedError{msg: m, err: err}
	}
	return err
}

// maskedAttrs is a value with attributes (a handle, a response, a
// connection, a transaction) whose attributes are masked when read.
type maskedAttrs struct {
	v   starlark.HasAttrs
	red *secrets.Redactor
}

var _ starlark.HasAttrs = (*maskedAttrs)(nil)

func (m *maskedAttrs) String() string        { return m.red.String(m.v.String()) }
func (m *maskedAttrs) Type() string          { return m.v.Type() }
func (m *maskedAttrs) Freeze()               { m.v.Freeze() }
func (m *maskedAttrs) Truth() starlark.Bool  { return m.v.Truth() }
func (m *maskedAttrs) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable type: %s", m.v.Type()) }
func (m *maskedAttrs) AttrNames() []string   { return m.v.AttrNames() }

func (m *maskedAttrs) Attr(name string) (starlark.Value, error) {
	v, err := m.v.Attr(name)
	if err != nil {
		return nil, maskError(err, m.red)
	}
	if v == nil {
		return nil, nil
	}
	return maskValue(v, m.red, 0), nil
}
