// Package confmap reads typed settings out of the JSON-like maps that carry
// resource configs and secret values (map[string]any holding nil, bool,
// float64, int64, string, []any and map[string]any).
//
// A Reader records the first problem of each key and the keys it was never
// asked about, so a config is checked completely in one pass. Errors name
// keys and expected types, never values, so a Reader can safely read
// secrets.
package confmap

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Reader reads settings from one map. It is not safe for concurrent use.
type Reader struct {
	what string
	m    map[string]any
	used map[string]bool
	errs []error
}

// New returns a Reader over m; what names the map in errors ("database config").
func New(what string, m map[string]any) *Reader {
	return &Reader{what: what, m: m, used: make(map[string]bool)}
}

// Has reports whether key is present with a non-nil value.
func (r *Reader) Has(key string) bool {
	v, ok := r.m[key]
	return ok && v != nil
}

func (r *Reader) get(key string) (any, bool) {
	r.used[key] = true
	v, ok := r.m[key]
	if !ok || v == nil {
		return nil, false
	}
	return v, true
}

func (r *Reader) fail(key, want string) {
	r.errs = append(r.errs, fmt.Errorf("%s: %q must be %s", r.what, key, want))
}

// String returns the string at key, or def when absent.
func (r *Reader) String(key, def string) string {
	v, ok := r.get(key)
	if !ok {
		return def
	}
	s, ok := v.(string)
	if !ok {
		r.fail(key, "a string")
		return def
	}
	return s
}

// Int returns the integer at key (a whole number, or a string of digits,
// as ports often are), or def when absent.
func (r *Reader) Int(key string, def int) int {
	v, ok := r.get(key)
	if !ok {
		return def
	}
	switch n := v.(type) {
	case int64:
		return int(n)
	case int:
		return n
	case float64:
		if n == math.Trunc(n) && math.Abs(n) < 1<<53 {
			return int(n)
		}
	case string:
		if i, err := strconv.Atoi(n); err == nil {
			return i
		}
	}
	r.fail(key, "a whole number")
	return def
}

// Seconds returns the duration at key, given in seconds (whole or
// fractional), or def when absent. Negative values are errors.
func (r *Reader) Seconds(key string, def time.Duration) time.Duration {
	v, ok := r.get(key)
	if !ok {
		return def
	}
	var f float64
	switch n := v.(type) {
	case int64:
		f = float64(n)
	case int:
		f = float64(n)
	case float64:
		f = n
	default:
		r.fail(key, "a number of seconds")
		return def
	}
	if f < 0 || math.IsNaN(f) || f > 1e9 {
		r.fail(key, "a non-negative number of seconds")
		return def
	}
	return time.Duration(f * float64(time.Second))
}

// Bool returns the boolean at key, or def when absent.
func (r *Reader) Bool(key string, def bool) bool {
	v, ok := r.get(key)
	if !ok {
		return def
	}
	b, ok := v.(bool)
	if !ok {
		r.fail(key, "true or false")
		return def
	}
	return b
}

// StringMap returns the map at key with every value rendered as a string
// (numbers and booleans are accepted), or nil when absent.
func (r *Reader) StringMap(key string) map[string]string {
	v, ok := r.get(key)
	if !ok {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		r.fail(key, "a map of strings")
		return nil
	}
	out := make(map[string]string, len(m))
	for k, x := range m {
		switch x := x.(type) {
		case string:
			out[k] = x
		case bool:
			out[k] = strconv.FormatBool(x)
		case int64:
			out[k] = strconv.FormatInt(x, 10)
		case float64:
			out[k] = strconv.FormatFloat(x, 'f', -1, 64)
		default:
			r.fail(key+"."+k, "a string")
		}
	}
	return out
}

// Map returns the nested map at key, or nil when absent.
func (r *Reader) Map(key string) map[string]any {
	v, ok := r.get(key)
	if !ok {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		r.fail(key, "a map")
		return nil
	}
	return m
}

// Err returns every problem found so far, plus, when strict, the keys that
// were never read (unknown settings, usually typos).
func (r *Reader) Err(strict bool) error {
	errs := slices.Clone(r.errs)
	if strict {
		var unknown []string
		for k := range r.m {
			if !r.used[k] {
				unknown = append(unknown, k)
			}
		}
		if len(unknown) > 0 {
			slices.Sort(unknown)
			known := make([]string, 0, len(r.used))
			for k := range r.used {
				known = append(known, k)
			}
			slices.Sort(known)
			errs = append(errs, fmt.Errorf("%s: unknown key(s) %s (known: %s)",
				r.what, strings.Join(unknown, ", "), strings.Join(known, ", ")))
		}
	}
	return errors.Join(errs...)
}
