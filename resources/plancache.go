package resources

import (
	"math"
	"slices"
	"strconv"
	"sync"

	"github.com/kailash-gateway/kgw/secrets"
	"github.com/kailash-gateway/kgw/store"
)

// maxCachedPlans bounds the plan cache; when it is full it starts over.
const maxCachedPlans = 1024

// planCache remembers the plans built from specs, so that a node attempt
// opening a resource it (or any execution) opened before does not parse
// and canonicalise the config and hash the pool key again. A plan depends
// only on the spec's content (after ref lookup) and on the identity of
// the secret version it merges, which is immutable; the checks that
// depend on more (allowed hosts, redaction) run on every use. It is safe
// for concurrent use.
type planCache struct {
	mu    sync.RWMutex
	plans map[string]*plan
}

func (c *planCache) get(key []byte) *plan {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.plans[string(key)]
}

func (c *planCache) put(key []byte, pl *plan) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.plans == nil || len(c.plans) >= maxCachedPlans {
		c.plans = make(map[string]*plan)
	}
	c.plans[string(key)] = pl
}

var fingerprintBufs = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// fingerprint appends to buf an exact, unambiguous encoding of everything
// a plan is built from: the spec's type, config and credentials key and
// the secret version merged into it. ok is false when the config holds a
// value of a type the encoding does not know; such a spec is not cached.
func fingerprint(buf []byte, spec store.ResourceSpec, resolved *secrets.Resolved) (_ []byte, ok bool) {
	buf = appendString(buf, spec.Type)
	buf = appendString(buf, spec.CredentialsKey)
	if resolved != nil {
		buf = append(buf, 'S')
		buf = appendString(buf, resolved.Name)
		buf = strconv.AppendInt(buf, int64(resolved.Version), 10)
		buf = append(buf, '@')
		buf = strconv.AppendInt(buf, resolved.CreateTime.UnixNano(), 10)
		buf = append(buf, ';')
	}
	return appendValue(buf, spec.Config, 0)
}

func appendString(buf []byte, s string) []byte {
	buf = strconv.AppendInt(buf, int64(len(s)), 10)
	buf = append(buf, ':')
	return append(buf, s...)
}

func appendValue(buf []byte, v any, depth int) ([]byte, bool) {
	if depth > 8 {
		return buf, false
	}
	switch v := v.(type) {
	case nil:
		return append(buf, 'n'), true
	case bool:
		if v {
			return append(buf, 't'), true
		}
		return append(buf, 'f'), true
	case string:
		return appendString(append(buf, 's'), v), true
	case int64:
		return append(strconv.AppendInt(append(buf, 'i'), v, 10), ';'), true
	case int:
		return append(strconv.AppendInt(append(buf, 'i'), int64(v), 10), ';'), true
	case float64:
		return append(strconv.AppendUint(append(buf, 'd'), math.Float64bits(v), 16), ';'), true
	case []any:
		buf = append(strconv.AppendInt(append(buf, 'l'), int64(len(v)), 10), ';')
		for _, x := range v {
			var ok bool
			if buf, ok = appendValue(buf, x, depth+1); !ok {
				return buf, false
			}
		}
		return buf, true
	case map[string]any:
		var arr [16]string
		keys := arr[:0]
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		buf = append(strconv.AppendInt(append(buf, 'm'), int64(len(v)), 10), ';')
		for _, k := range keys {
			buf = appendString(buf, k)
			var ok bool
			if buf, ok = appendValue(buf, v[k], depth+1); !ok {
				return buf, false
			}
		}
		return buf, true
	}
	return buf, false
}
