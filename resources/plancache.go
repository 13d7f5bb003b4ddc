package resources

import (
	"encoding/binary"
	"math"
	"slices"
	"strings"
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
//
// Every value starts with a tag byte, strings and collections with their
// length, and numbers are varints or fixed-size, so that no two different
// inputs have the same encoding.
func fingerprint(buf []byte, spec store.ResourceSpec, resolved *secrets.Resolved) (_ []byte, ok bool) {
	buf = appendString(buf, spec.Type)
	buf = appendString(buf, spec.CredentialsKey)
	if resolved != nil {
		buf = append(buf, 'S')
		buf = appendString(buf, resolved.Name)
		buf = binary.AppendVarint(buf, int64(resolved.Version))
		buf = binary.AppendVarint(buf, resolved.CreateTime.UnixNano())
	} else {
		buf = append(buf, '-')
	}
	return appendValue(buf, spec.Config, 0)
}

func appendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

// entry is a map entry, for appendValue.
type entry struct {
	k string
	v any
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
		return binary.AppendVarint(append(buf, 'i'), v), true
	case int:
		return binary.AppendVarint(append(buf, 'i'), int64(v)), true
	case float64:
		return binary.LittleEndian.AppendUint64(append(buf, 'd'), math.Float64bits(v)), true
	case []any:
		buf = binary.AppendUvarint(append(buf, 'l'), uint64(len(v)))
		for _, x := range v {
			var ok bool
			if buf, ok = appendValue(buf, x, depth+1); !ok {
				return buf, false
			}
		}
		return buf, true
	case map[string]any:
		// The entries in key order, collected in one pass (no lookups).
		var arr [16]entry
		entries := arr[:0]
		for k, x := range v {
			entries = append(entries, entry{k, x})
		}
		sortEntries(entries)
		buf = binary.AppendUvarint(append(buf, 'm'), uint64(len(v)))
		for _, e := range entries {
			buf = appendString(buf, e.k)
			var ok bool
			if buf, ok = appendValue(buf, e.v, depth+1); !ok {
				return buf, false
			}
		}
		return buf, true
	}
	return buf, false
}

// sortEntries sorts entries by key: by insertion when there are few, as
// in every config.
func sortEntries(entries []entry) {
	if len(entries) > 16 {
		slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.k, b.k) })
		return
	}
	for i := 1; i < len(entries); i++ {
		for j := i; j > 0 && entries[j].k < entries[j-1].k; j-- {
			entries[j], entries[j-1] = entries[j-1], entries[j]
		}
	}
}
