package secrets

import (
	"cmp"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Redacted is what a Redactor puts in place of a secret value.
const Redacted = "[REDACTED]"

// MinRedactLen is the length in bytes from which a secret string is redacted
// wherever it occurs inside other text. Shorter (or all-white-space) secret
// strings are redacted only where a whole string equals them — a log message,
// an error text or a string in a result — because replacing every "ab" or
// "app" inside all text would garble output without protecting anything: a
// secret that short is guessable anyway.
const MinRedactLen = 4

// A Redactor replaces secret values with "[REDACTED]" in text and JSON-like
// values. The executor makes one per execution, and the resource broker adds
// the values of every secret it resolves for that execution. A Redactor is
// safe for concurrent use; its zero value is ready to use, and the String and
// Value methods of a nil *Redactor return their input unchanged.
type Redactor struct {
	mu sync.RWMutex
	// subs are the strings redacted wherever they occur, longest first;
	// whole are the short ones, redacted only as whole strings. Both are
	// replaced, never modified, so readers may use a snapshot unlocked.
	subs  []string
	whole map[string]struct{}
}

// NewRedactor returns an empty Redactor.
func NewRedactor() *Redactor { return &Redactor{} }

// Add registers every credential value of values (a resolved secret's
// values, walking nested maps and lists) as a secret: every string leaf
// except those under an identity field (IdentityField: user, host,
// database, …), which name where and as whom to connect and are ordinary
// data elsewhere — masking a user called "postgres" everywhere would turn a
// database of that name into "[REDACTED]" and protect nothing. Numbers,
// booleans and nulls are not registered: they hold ports and flags, and
// redacting every "5432" would garble output, so keep passwords and tokens
// as strings. Map keys are field names, not secrets, and are not registered
// either.
func (r *Redactor) Add(values map[string]any) {
	var found []string
	collectStrings(values, &found)
	r.addStrings(found)
}

// AddString registers one more secret string, for forms the broker derives
// from secret values (for example a base64 Basic authorization header).
func (r *Redactor) AddString(s string) { r.addStrings([]string{s}) }

func (r *Redactor) addStrings(found []string) {
	if len(found) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	subs := slices.Clone(r.subs)
	whole := make(map[string]struct{}, len(r.whole))
	for k := range r.whole {
		whole[k] = struct{}{}
	}
	for _, s := range found {
		if s == "" {
			continue
		}
		for _, form := range encodedForms(s) {
			if len(form) < MinRedactLen || strings.TrimSpace(form) == "" {
				whole[form] = struct{}{}
			} else if !slices.Contains(subs, form) {
				subs = append(subs, form)
			}
		}
	}
	slices.SortStableFunc(subs, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	r.subs, r.whole = subs, whole
}

// encodedForms returns s and the forms it takes inside JSON and quoted
// (Go or Starlark) string literals, where they differ, so that a secret with
// quotes, backslashes or control characters is redacted from an encoded dump
// too.
func encodedForms(s string) []string {
	forms := []string{s}
	if b, err := json.Marshal(s); err == nil {
		if j := string(b[1 : len(b)-1]); j != s {
			forms = append(forms, j)
		}
	}
	if q := strconv.Quote(s); q[1:len(q)-1] != s && !slices.Contains(forms, q[1:len(q)-1]) {
		forms = append(forms, q[1:len(q)-1])
	}
	return forms
}

// identityFields are the secret fields that are not credentials (DESIGN
// §7), in lower case.
var identityFields = map[string]bool{
	"user": true, "username": true, "host": true, "port": true, "database": true,
	"dbname": true, "db": true, "base_url": true, "sslmode": true,
}

// IdentityField reports whether a secret field called name (any case)
// names where or as whom to connect (user, username, host, port, database,
// dbname, db, base_url, sslmode) rather than holding a credential value.
// Identity fields are not redacted; every other field is.
func IdentityField(name string) bool { return identityFields[strings.ToLower(name)] }

func collectStrings(v any, out *[]string) {
	switch v := v.(type) {
	case string:
		*out = append(*out, v)
	case map[string]any:
		for k, e := range v {
			if IdentityField(k) {
				continue
			}
			collectStrings(e, out)
		}
	case []any:
		for _, e := range v {
			collectStrings(e, out)
		}
	case map[string]string:
		for k, e := range v {
			if !IdentityField(k) {
				*out = append(*out, e)
			}
		}
	case []string:
		*out = append(*out, v...)
	}
}

func (r *Redactor) snapshot() ([]string, map[string]struct{}) {
	if r == nil {
		return nil, nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.subs, r.whole
}

// String returns s with every registered secret replaced by "[REDACTED]".
// Where occurrences of secrets overlap, the whole overlapping stretch becomes
// a single "[REDACTED]", so no fragment of either survives.
func (r *Redactor) String(s string) string {
	subs, whole := r.snapshot()
	return redactString(s, subs, whole)
}

func redactString(s string, subs []string, whole map[string]struct{}) string {
	if s == "" {
		return s
	}
	if _, ok := whole[s]; ok {
		return Redacted
	}
	type span struct{ start, end int }
	var spans []span
	for _, p := range subs {
		if len(p) > len(s) {
			continue
		}
		for i := 0; i <= len(s)-len(p); {
			j := strings.Index(s[i:], p)
			if j < 0 {
				break
			}
			spans = append(spans, span{i + j, i + j + len(p)})
			i += j + 1
		}
	}
	if len(spans) == 0 {
		return s
	}
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	var b strings.Builder
	b.Grow(len(s))
	pos := 0
	for i := 0; i < len(spans); {
		start, end := spans[i].start, spans[i].end
		for i++; i < len(spans) && spans[i].start < end; i++ {
			end = max(end, spans[i].end)
		}
		b.WriteString(s[pos:start])
		b.WriteString(Redacted)
		pos = end
	}
	b.WriteString(s[pos:])
	return b.String()
}

// Value returns a copy of v with every registered secret redacted from its
// strings and map keys, walking map[string]any, []any, map[string]string and
// []string. Other values (numbers, booleans, nil, other types) are returned
// as they are. The input is never modified. If two keys of one map redact to
// the same text, the later ones (in sorted key order) get a "#2", "#3", …
// suffix so that no entry is lost.
func (r *Redactor) Value(v any) any {
	subs, whole := r.snapshot()
	if len(subs) == 0 && len(whole) == 0 {
		return v
	}
	return redactValue(v, subs, whole)
}

func redactValue(v any, subs []string, whole map[string]struct{}) any {
	switch v := v.(type) {
	case string:
		return redactString(v, subs, whole)
	case map[string]any:
		if v == nil {
			return v
		}
		out := make(map[string]any, len(v))
		for _, k := range sortedKeys(v) {
			out[uniqueKey(out, redactString(k, subs, whole))] = redactValue(v[k], subs, whole)
		}
		return out
	case map[string]string:
		if v == nil {
			return v
		}
		out := make(map[string]string, len(v))
		for _, k := range sortedKeys(v) {
			out[uniqueKey(out, redactString(k, subs, whole))] = redactString(v[k], subs, whole)
		}
		return out
	case []any:
		if v == nil {
			return v
		}
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = redactValue(e, subs, whole)
		}
		return out
	case []string:
		if v == nil {
			return v
		}
		out := make([]string, len(v))
		for i, e := range v {
			out[i] = redactString(e, subs, whole)
		}
		return out
	default:
		return v
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func uniqueKey[V any](m map[string]V, k string) string {
	if _, taken := m[k]; !taken {
		return k
	}
	for n := 2; ; n++ {
		c := k + "#" + strconv.Itoa(n)
		if _, taken := m[c]; !taken {
			return c
		}
	}
}

// Empty reports whether r holds no secret (a nil *Redactor holds none).
func (r *Redactor) Empty() bool {
	subs, whole := r.snapshot()
	return len(subs) == 0 && len(whole) == 0
}
