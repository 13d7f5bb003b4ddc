package node

import (
	"container/list"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	stime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// WorkflowCache is the process-local cache that the executions of one
// workflow share, visible to node code as `workflow_cache`. It holds at most
// maxEntries entries, evicting the least recently used. Values are stored
// as frozen deep copies, so a node can neither change a stored value nor
// see later changes of the value it stored. A WorkflowCache is safe for
// concurrent use; the zero value is not usable, call NewWorkflowCache.
type WorkflowCache struct {
	mu    sync.Mutex
	max   int
	bytes int64      // estimated size of the entries
	ll    *list.List // front = most recently used; elements are *cacheEntry
	items map[string]*list.Element
	now   func() time.Time
}

type cacheEntry struct {
	key     string
	value   starlark.Value
	size    int64
	expires time.Time // zero: never
}

// NewWorkflowCache returns an empty cache holding at most maxEntries
// entries (at least 1).
func NewWorkflowCache(maxEntries int) *WorkflowCache {
	return &WorkflowCache{max: max(maxEntries, 1), ll: list.New(), items: map[string]*list.Element{}, now: time.Now}
}

// MaxCacheBytes bounds the estimated size of the values of one
// WorkflowCache: they outlive the attempts that stored them, so no
// attempt's memory budget bounds them.
const MaxCacheBytes = 64 << 20

// cacheValueSize estimates the memory a stored copy of v holds: the
// bytes of its strings, a slot per element and an entry per key, or
// more than limit. Shared values count each time they are reached, as the
// copy shares none of its containers.
func cacheValueSize(v starlark.Value, limit int64) int64 {
	var n, visits int64
	var walk func(v starlark.Value)
	walk = func(v starlark.Value) {
		if n > limit {
			return
		}
		if visits++; visits > maxVisits {
			n = maxCharge
			return
		}
		switch v := v.(type) {
		case starlark.String:
			n += int64(len(v)) + valueHeader
		case starlark.Bytes:
			n += int64(len(v)) + valueHeader
		case starlark.Int:
			n += intBytes(v)
		case *starlark.List:
			n += valueHeader
			for i := range v.Len() {
				n += sliceSlot
				walk(v.Index(i))
			}
		case starlark.Tuple:
			n += valueHeader
			for _, x := range v {
				n += sliceSlot
				walk(x)
			}
		case *starlark.Dict:
			n += valueHeader
			for _, kv := range v.Items() {
				n += hashEntry
				walk(kv[0])
				walk(kv[1])
			}
		case *starlark.Set:
			n += valueHeader
			iter := v.Iterate()
			var x starlark.Value
			for iter.Next(&x) {
				n += hashEntry
				walk(x)
			}
			iter.Done()
		case *starlarkstruct.Struct:
			n += valueHeader
			for _, name := range v.AttrNames() {
				n += hashEntry
				if x, err := v.Attr(name); err == nil {
					walk(x)
				}
			}
		default:
			n += valueHeader
		}
	}
	walk(v)
	return min(n, maxCharge)
}

// ErrNotCacheable reports a value that cannot be stored: a function, a
// resource handle or anything else that is not plain data.
var ErrNotCacheable = errors.New("value cannot be cached")

// Get returns the value stored under key, if any and not expired.
func (c *WorkflowCache) Get(key string) (starlark.Value, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return nil, false
	}
	e := el.Value.(*cacheEntry)
	if !e.expires.IsZero() && !c.now().Before(e.expires) {
		c.remove(el)
		return nil, false
	}
	c.ll.MoveToFront(el)
	return e.value, true
}

// Set stores a frozen deep copy of v under key; ttl > 0 makes it expire.
// Values that are not plain data (None, bool, int, float, str, bytes,
// time values, and lists, tuples, dicts, sets and structs of those) fail
// with ErrNotCacheable.
func (c *WorkflowCache) Set(key string, v starlark.Value, ttl time.Duration) error {
	return c.set(key, v, ttl, nil)
}

// set is Set with the strings of the copy passed through redact (nil:
// unchanged).
func (c *WorkflowCache) set(key string, v starlark.Value, ttl time.Duration, redact func(string) string) error {
	size := cacheValueSize(v, MaxCacheBytes) + int64(len(key))
	if size > MaxCacheBytes {
		return fmt.Errorf("value is too large to cache (about %s, at most %s): %w", byteSize(size), byteSize(MaxCacheBytes), ErrNotCacheable)
	}
	cp, err := deepCopy(v, 0, redact)
	if err != nil {
		return err
	}
	cp.Freeze()
	e := &cacheEntry{key: key, value: cp, size: size}
	if ttl > 0 {
		e.expires = c.now().Add(ttl)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.bytes -= el.Value.(*cacheEntry).size
		el.Value = e
		c.ll.MoveToFront(el)
	} else {
		c.items[key] = c.ll.PushFront(e)
	}
	c.bytes += size
	for c.ll.Len() > c.max || c.bytes > MaxCacheBytes {
		last := c.ll.Back()
		c.remove(last)
	}
	return nil
}

// Delete removes key and reports whether it was present.
func (c *WorkflowCache) Delete(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if ok {
		c.remove(el)
	}
	return ok
}

// remove drops the entry el; c.mu must be held.
func (c *WorkflowCache) remove(el *list.Element) {
	e := el.Value.(*cacheEntry)
	c.ll.Remove(el)
	delete(c.items, e.key)
	c.bytes -= e.size
}

// Len returns the number of entries, expired ones included.
func (c *WorkflowCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

const maxCopyDepth = 64

// deepCopy copies plain data.
// redact, if not nil, rewrites every string and bytes value on the way
// (masking credential values).
func deepCopy(v starlark.Value, depth int, redact func(string) string) (starlark.Value, error) {
	if depth > maxCopyDepth {
		return nil, fmt.Errorf("value is nested more than %d levels deep: %w", maxCopyDepth, ErrNotCacheable)
	}
	switch v := v.(type) {
	case starlark.String:
		if redact != nil {
			return starlark.String(redact(string(v))), nil
		}
		return v, nil
	case starlark.Bytes:
		if redact != nil {
			return starlark.Bytes(redact(string(v))), nil
		}
		return v, nil
	case starlark.NoneType, starlark.Bool, starlark.Int, starlark.Float, stime.Time, stime.Duration:
		return v, nil
	case *starlark.List:
		elems := make([]starlark.Value, v.Len())
		for i := range elems {
			x, err := deepCopy(v.Index(i), depth+1, redact)
			if err != nil {
				return nil, err
			}
			elems[i] = x
		}
		return starlark.NewList(elems), nil
	case starlark.Tuple:
		out := make(starlark.Tuple, len(v))
		for i, x := range v {
			y, err := deepCopy(x, depth+1, redact)
			if err != nil {
				return nil, err
			}
			out[i] = y
		}
		return out, nil
	case *starlark.Dict:
		d := starlark.NewDict(v.Len())
		for _, kv := range v.Items() {
			k, err := deepCopy(kv[0], depth+1, redact)
			if err != nil {
				return nil, err
			}
			x, err := deepCopy(kv[1], depth+1, redact)
			if err != nil {
				return nil, err
			}
			if err := d.SetKey(k, x); err != nil {
				return nil, err
			}
		}
		return d, nil
	case *starlark.Set:
		s := starlark.NewSet(v.Len())
		iter := v.Iterate()
		defer iter.Done()
		var x starlark.Value
		for iter.Next(&x) {
			y, err := deepCopy(x, depth+1, redact)
			if err != nil {
				return nil, err
			}
			if err := s.Insert(y); err != nil {
				return nil, err
			}
		}
		return s, nil
	case *starlarkstruct.Struct:
		fields := starlark.StringDict{}
		for _, name := range v.AttrNames() {
			f, err := v.Attr(name)
			if err != nil {
				return nil, err
			}
			y, err := deepCopy(f, depth+1, redact)
			if err != nil {
				return nil, err
			}
			fields[name] = y
		}
		return starlarkstruct.FromStringDict(v.Constructor(), fields), nil
	}
	return nil, fmt.Errorf("a %s: %w (store plain data: None, bool, int, float, str, bytes, time, list, tuple, dict, set, struct)", v.Type(), ErrNotCacheable)
}

// cacheValue is the `workflow_cache` object of node code. redact (nil:
// none) masks the credential values of the attempt's execution: applied
// to what a node stores and to what it reads, so that no credential value
// travels between executions through the cache, whichever execution's
// secrets it belongs to.
type cacheValue struct {
	c      *WorkflowCache
	redact func(string) string
}

// masked returns v, or a frozen copy with credential values masked if v
// holds any.
func (v *cacheValue) masked(x starlark.Value) starlark.Value {
	if v.redact == nil || !holdsMasked(x, v.redact, 0) {
		return x
	}
	cp, err := deepCopy(x, 0, v.redact)
	if err != nil { // stored values are plain data; cannot happen
		return starlark.None
	}
	cp.Freeze()
	return cp
}

// holdsMasked reports whether redact changes a string or bytes value in x.
func holdsMasked(x starlark.Value, redact func(string) string, depth int) bool {
	if depth > maxCopyDepth {
		return true
	}
	switch x := x.(type) {
	case starlark.String:
		return redact(string(x)) != string(x)
	case starlark.Bytes:
		return redact(string(x)) != string(x)
	case *starlark.List:
		for i := range x.Len() {
			if holdsMasked(x.Index(i), redact, depth+1) {
				return true
			}
		}
	case starlark.Tuple:
		for _, e := range x {
			if holdsMasked(e, redact, depth+1) {
				return true
			}
		}
	case *starlark.Dict:
		for _, kv := range x.Items() {
			if holdsMasked(kv[0], redact, depth+1) || holdsMasked(kv[1], redact, depth+1) {
				return true
			}
		}
	case *starlark.Set:
		iter := x.Iterate()
		defer iter.Done()
		var e starlark.Value
		for iter.Next(&e) {
			if holdsMasked(e, redact, depth+1) {
				return true
			}
		}
	case *starlarkstruct.Struct:
		for _, name := range x.AttrNames() {
			if f, err := x.Attr(name); err == nil && holdsMasked(f, redact, depth+1) {
				return true
			}
		}
	}
	return false
}

var _ starlark.HasAttrs = (*cacheValue)(nil)

func (v *cacheValue) String() string        { return "<workflow_cache>" }
func (v *cacheValue) Type() string          { return "workflow_cache" }
func (v *cacheValue) Freeze()               {}
func (v *cacheValue) Truth() starlark.Bool  { return true }
func (v *cacheValue) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: workflow_cache") }
func (v *cacheValue) AttrNames() []string   { return []string{"delete", "get", "set"} }

func (v *cacheValue) Attr(name string) (starlark.Value, error) {
	switch name {
	case "get":
		return builtin("workflow_cache.get", func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var key string
			var dflt starlark.Value = starlark.None
			if err := starlark.UnpackArgs(b.Name(), args, kwargs, "key", &key, "default?", &dflt); err != nil {
				return nil, err
			}
			if x, ok := v.c.Get(key); ok {
				return v.masked(x), nil
			}
			return dflt, nil
		}), nil
	case "set":
		return builtin("workflow_cache.set", func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var key string
			var value, ttl starlark.Value = nil, starlark.None
			if err := starlark.UnpackArgs(b.Name(), args, kwargs, "key", &key, "value", &value, "ttl?", &ttl); err != nil {
				return nil, err
			}
			var d time.Duration
			switch t := ttl.(type) {
			case starlark.NoneType:
			case stime.Duration:
				d = time.Duration(t)
			default:
				f, ok := starlark.AsFloat(ttl)
				if !ok || f <= 0 || f > math.MaxInt64/float64(time.Second) {
					return nil, fmt.Errorf("%s: ttl must be a positive number of seconds, got %s", b.Name(), ttl)
				}
				d = time.Duration(f * float64(time.Second))
			}
			// The copy is charged to the attempt that makes it (one
			// too large for the cache fails in Set without a charge).
			if size := cacheValueSize(value, MaxCacheBytes); size <= MaxCacheBytes {
				if err := charge(th, b.Name(), size); err != nil {
					return nil, err
				}
			}
			if err := v.c.set(key, value, d, v.redact); err != nil {
				return nil, fmt.Errorf("%s: %w", b.Name(), err)
			}
			return starlark.None, nil
		}), nil
	case "delete":
		return builtin("workflow_cache.delete", func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var key string
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &key); err != nil {
				return nil, err
			}
			return starlark.Bool(v.c.Delete(key)), nil
		}), nil
	}
	return nil, nil
}
