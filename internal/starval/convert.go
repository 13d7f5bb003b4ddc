package starval

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	stime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// Defaults of Options.
const (
	// DefaultMaxDepth is the deepest nesting of lists and dicts converted.
	DefaultMaxDepth = 64
	// MaxSafeInt is the largest integer magnitude that survives a round trip
	// through a JSON double (google.protobuf.Struct has only doubles): 2^53.
	MaxSafeInt = 1 << 53
)

// Errors a conversion can fail with. They are wrapped in an *Error that
// names the path of the offending value; test for them with errors.Is.
var (
	// ErrTooDeep: lists and dicts are nested deeper than the depth limit.
	ErrTooDeep = errors.New("value is nested too deeply")
	// ErrIntRange: an integer lies outside ±2^53.
	ErrIntRange = errors.New("integer is outside ±2^53")
	// ErrNotFinite: a float is NaN or infinite.
	ErrNotFinite = errors.New("float is NaN or infinite")
	// ErrKeyType: a dict key is not a string.
	ErrKeyType = errors.New("dict key is not a string")
	// ErrTooLarge: the JSON encoding of the value exceeds the size limit.
	ErrTooLarge = errors.New("value is too large")
	// ErrUnsupported: the value has no JSON form (a function, a module, ...).
	ErrUnsupported = errors.New("value has no JSON form")
)

// An Error is a failed conversion of the value at Path, a Python-like
// subscript path such as `["rows"][3]["id"]` relative to Root.
type Error struct {
	Root string // name of the converted value, e.g. "result"; "" reads "value"
	Path string // path inside the value; empty for the value itself
	Msg  string // description of the offending value, with a hint
	Err  error  // one of the sentinels of this package
}

func (e *Error) Error() string {
	root := e.Root
	if root == "" {
		root = "value"
	}
	return root + e.Path + ": " + e.Msg
}

// Unwrap returns the sentinel error.
func (e *Error) Unwrap() error { return e.Err }

// Options control FromStarlarkOptions. The zero value gives the defaults.
type Options struct {
	// MaxDepth bounds the nesting of lists and dicts; 0 means
	// DefaultMaxDepth. The outermost container has depth 1.
	MaxDepth int
	// MaxBytes bounds the approximate size of the JSON encoding (strings
	// are counted without escapes); 0 means unlimited.
	MaxBytes int
	// Native keeps bytes as []byte and time values as time.Time, for
	// drivers that take them, instead of their JSON forms.
	Native bool
	// Root names the value in error messages, e.g. "result".
	Root string
}

// FromStarlark converts v into a JSON-compatible Go value with the default
// Options. See FromStarlarkOptions for the rules.
func FromStarlark(v starlark.Value) (any, error) {
	return FromStarlarkOptions(v, Options{})
}

// FromStarlarkOptions converts v into a JSON-compatible Go value:
//
//	None → nil; bool → bool; int → int64 (only within ±2^53, else an error
//	suggesting str()); float → float64 (NaN and ±Inf are errors);
//	string → string; bytes → standard base64 string; list, tuple and set
//	→ []any; dict → map[string]any (keys must be strings); struct →
//	map[string]any of its fields; time.time → RFC 3339 string with
//	nanoseconds; time.duration → its string form ("1h2m3s").
//
// Other values (functions, modules, ...) are errors. Every error is an
// *Error that names the path of the offending value.
func FromStarlarkOptions(v starlark.Value, opts Options) (any, error) {
	if opts.MaxDepth <= 0 {
		opts.MaxDepth = DefaultMaxDepth
	}
	c := fromConv{opts: opts}
	out, err := c.conv(v, 0)
	if err != nil {
		return nil, c.finish(err)
	}
	return out, nil
}

type fromConv struct {
	opts Options
	size int
	path []string // reversed path segments, filled while unwinding
}

// convErr is the error used while unwinding; finish turns it into *Error.
type convErr struct {
	msg string
	err error
}

func (e *convErr) Error() string { return e.msg }

func (c *fromConv) finish(err error) error {
	ce, ok := err.(*convErr)
	if !ok {
		return err
	}
	var b strings.Builder
	for i := len(c.path) - 1; i >= 0; i-- {
		b.WriteString(c.path[i])
	}
	return &Error{Root: c.opts.Root, Path: b.String(), Msg: ce.msg, Err: ce.err}
}

func (c *fromConv) add(n int) error {
	c.size += n
	if c.opts.MaxBytes > 0 && c.size > c.opts.MaxBytes {
		return &convErr{fmt.Sprintf("value is too large: its JSON encoding exceeds %d bytes", c.opts.MaxBytes), ErrTooLarge}
	}
	return nil
}

func (c *fromConv) conv(v starlark.Value, depth int) (any, error) {
	switch v := v.(type) {
	case starlark.NoneType:
		return nil, c.add(4)
	case starlark.Bool:
		return bool(v), c.add(5)
	case starlark.Int:
		i, ok := v.Int64()
		if !ok || i > MaxSafeInt || i < -MaxSafeInt {
			return nil, &convErr{fmt.Sprintf("integer %s is outside ±2^53 and would lose precision; convert it with str()", v), ErrIntRange}
		}
		return i, c.add(intLen(i))
	case starlark.Float:
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, &convErr{fmt.Sprintf("float %s has no JSON form; check the computation or convert it with str()", v), ErrNotFinite}
		}
		return f, c.add(24)
	case starlark.String:
		return string(v), c.add(len(v) + 2)
	case starlark.Bytes:
		if c.opts.Native {
			return []byte(v), c.add(base64.StdEncoding.EncodedLen(len(v)) + 2)
		}
		return base64.StdEncoding.EncodeToString([]byte(v)), c.add(base64.StdEncoding.EncodedLen(len(v)) + 2)
	case stime.Time:
		if c.opts.Native {
			return time.Time(v), c.add(37)
		}
		return time.Time(v).Format(time.RFC3339Nano), c.add(37)
	case stime.Duration:
		s := time.Duration(v).String()
		return s, c.add(len(s) + 2)
	case *starlark.Dict:
		if depth >= c.opts.MaxDepth {
			return nil, c.tooDeep()
		}
		out := make(map[string]any, v.Len())
		if err := c.add(2); err != nil {
			return nil, err
		}
		for _, kv := range v.Items() {
			k, ok := kv[0].(starlark.String)
			if !ok {
				c.path = append(c.path, "["+kv[0].String()+"]")
				return nil, &convErr{fmt.Sprintf("dict key %s (%s) is not a string; JSON objects have string keys, use str(key)", kv[0], kv[0].Type()), ErrKeyType}
			}
			if err := c.add(len(k) + 4); err != nil {
				return nil, err
			}
			x, err := c.conv(kv[1], depth+1)
			if err != nil {
				c.path = append(c.path, "["+k.String()+"]")
				return nil, err
			}
			out[string(k)] = x
		}
		return out, nil
	case *starlarkstruct.Struct:
		if depth >= c.opts.MaxDepth {
			return nil, c.tooDeep()
		}
		names := v.AttrNames()
		out := make(map[string]any, len(names))
		if err := c.add(2); err != nil {
			return nil, err
		}
		for _, name := range names {
			f, err := v.Attr(name)
			if err != nil {
				return nil, &convErr{fmt.Sprintf("struct field %s: %v", name, err), ErrUnsupported}
			}
			if err := c.add(len(name) + 4); err != nil {
				return nil, err
			}
			x, err := c.conv(f, depth+1)
			if err != nil {
				c.path = append(c.path, "."+name)
				return nil, err
			}
			out[name] = x
		}
		return out, nil
	case starlark.Indexable: // list, tuple, range
		if depth >= c.opts.MaxDepth {
			return nil, c.tooDeep()
		}
		n := v.Len()
		out := make([]any, n)
		if err := c.add(2); err != nil {
			return nil, err
		}
		for i := range n {
			if err := c.add(1); err != nil {
				return nil, err
			}
			x, err := c.conv(v.Index(i), depth+1)
			if err != nil {
				c.path = append(c.path, "["+strconv.Itoa(i)+"]")
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	case *starlark.Set:
		if depth >= c.opts.MaxDepth {
			return nil, c.tooDeep()
		}
		out := make([]any, 0, v.Len())
		if err := c.add(2); err != nil {
			return nil, err
		}
		iter := v.Iterate()
		defer iter.Done()
		var x starlark.Value
		for i := 0; iter.Next(&x); i++ {
			if err := c.add(1); err != nil {
				return nil, err
			}
			y, err := c.conv(x, depth+1)
			if err != nil {
				c.path = append(c.path, "["+strconv.Itoa(i)+"]")
				return nil, err
			}
			out = append(out, y)
		}
		return out, nil
	}
	return nil, &convErr{fmt.Sprintf("a value of type %s has no JSON form; use only None, bool, int, float, string, bytes, list, tuple, dict, struct and time", v.Type()), ErrUnsupported}
}

func (c *fromConv) tooDeep() error {
	return &convErr{fmt.Sprintf("lists and dicts are nested more than %d levels deep", c.opts.MaxDepth), ErrTooDeep}
}

func intLen(i int64) int {
	n := 1
	if i < 0 {
		n++
		i = -i
	}
	for i >= 10 {
		i /= 10
		n++
	}
	return n
}

// ToStarlark converts a Go value into a Starlark value:
//
//	nil → None; bool → bool; signed and unsigned integers → int;
//	float32/float64 → int when the value is whole and within ±2^53
//	(google.protobuf.Struct has only doubles, so 3 arrives as 3.0), else
//	float; json.Number → int or float by its text; string → string;
//	[]byte → bytes; time.Time → time.time; time.Duration → time.duration;
//	slices and arrays → list; maps with string keys → dict, keys sorted.
//
// A starlark.Value is returned unchanged. The result is not frozen.
// Values nested deeper than DefaultMaxDepth and unsupported types are
// errors.
func ToStarlark(v any) (starlark.Value, error) {
	return toStarlark(v, 0)
}

func toStarlark(v any, depth int) (starlark.Value, error) {
	switch v := v.(type) {
	case nil:
		return starlark.None, nil
	case starlark.Value:
		return v, nil
	case bool:
		return starlark.Bool(v), nil
	case int:
		return starlark.MakeInt(v), nil
	case int64:
		return starlark.MakeInt64(v), nil
	case int32:
		return starlark.MakeInt64(int64(v)), nil
	case uint64:
		return starlark.MakeUint64(v), nil
	case float64:
		return floatValue(v), nil
	case float32:
		return floatValue(float64(v)), nil
	case json.Number:
		return numberValue(v)
	case string:
		return starlark.String(v), nil
	case []byte:
		return starlark.Bytes(v), nil
	case time.Time:
		return stime.Time(v), nil
	case time.Duration:
		return stime.Duration(v), nil
	case []any:
		if depth >= DefaultMaxDepth {
			return nil, toDeep()
		}
		elems := make([]starlark.Value, len(v))
		for i, x := range v {
			y, err := toStarlark(x, depth+1)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			elems[i] = y
		}
		return starlark.NewList(elems), nil
	case map[string]any:
		if depth >= DefaultMaxDepth {
			return nil, toDeep()
		}
		d := starlark.NewDict(len(v))
		for _, k := range slices.Sorted(maps.Keys(v)) {
			y, err := toStarlark(v[k], depth+1)
			if err != nil {
				return nil, fmt.Errorf("[%q]: %w", k, err)
			}
			_ = d.SetKey(starlark.String(k), y) // cannot fail: fresh dict, string key
		}
		return d, nil
	}
	return reflectToStarlark(reflect.ValueOf(v), depth)
}

func toDeep() error {
	return fmt.Errorf("lists and dicts are nested more than %d levels deep: %w", DefaultMaxDepth, ErrTooDeep)
}

// reflectToStarlark handles the less common Go types: other integer and
// float kinds, typed slices and string-keyed maps.
func reflectToStarlark(rv reflect.Value, depth int) (starlark.Value, error) {
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return starlark.MakeInt64(rv.Int()), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return starlark.MakeUint64(rv.Uint()), nil
	case reflect.Float32, reflect.Float64:
		return floatValue(rv.Float()), nil
	case reflect.Bool:
		return starlark.Bool(rv.Bool()), nil
	case reflect.String:
		return starlark.String(rv.String()), nil
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return starlark.None, nil
		}
		if depth >= DefaultMaxDepth {
			return nil, toDeep()
		}
		return toStarlark(rv.Elem().Interface(), depth+1)
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			return starlark.None, nil
		}
		if depth >= DefaultMaxDepth {
			return nil, toDeep()
		}
		elems := make([]starlark.Value, rv.Len())
		for i := range elems {
			y, err := toStarlark(rv.Index(i).Interface(), depth+1)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			elems[i] = y
		}
		return starlark.NewList(elems), nil
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			break
		}
		if rv.IsNil() {
			return starlark.None, nil
		}
		if depth >= DefaultMaxDepth {
			return nil, toDeep()
		}
		keys := rv.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		d := starlark.NewDict(len(keys))
		for _, k := range keys {
			y, err := toStarlark(rv.MapIndex(k).Interface(), depth+1)
			if err != nil {
				return nil, fmt.Errorf("[%q]: %w", k.String(), err)
			}
			_ = d.SetKey(starlark.String(k.String()), y)
		}
		return d, nil
	}
	if !rv.IsValid() {
		return starlark.None, nil
	}
	return nil, fmt.Errorf("cannot convert Go %s to a Starlark value: %w", rv.Type(), ErrUnsupported)
}

// floatValue applies the whole-number rule of ToStarlark.
func floatValue(f float64) starlark.Value {
	if f == math.Trunc(f) && f >= -MaxSafeInt && f <= MaxSafeInt {
		return starlark.MakeInt64(int64(f))
	}
	return starlark.Float(f)
}

// numberValue turns JSON number text into an int (any size) or a float.
func numberValue(n json.Number) (starlark.Value, error) {
	s := string(n)
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return starlark.MakeInt64(i), nil
		}
		b, ok := new(big.Int).SetString(s, 10)
		if !ok {
			return nil, fmt.Errorf("invalid number %q: %w", s, ErrUnsupported)
		}
		return starlark.MakeBigInt(b), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, fmt.Errorf("invalid number %q: %w", s, ErrUnsupported)
	}
	return starlark.Float(f), nil
}
