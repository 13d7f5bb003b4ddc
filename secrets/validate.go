package secrets

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"time"
)

// Limits on a StoreRequest.
const (
	// MaxNameLen is the longest secret name.
	MaxNameLen = 128
	// MaxValueSize is the largest JSON-encoded secret value, in bytes.
	MaxValueSize = 64 << 10
	// MaxKeyLen is the longest name of a field of a secret value.
	MaxKeyLen = 256
	// MaxDescriptionLen is the longest description, in bytes.
	MaxDescriptionLen = 1024
	// MaxAllowedHosts is the most allowed_hosts patterns a secret may have.
	MaxAllowedHosts = 64
)

// ValidName reports whether name is a valid secret name: a letter or digit,
// then up to 127 letters, digits, '_', '.' or '-'.
func ValidName(name string) bool {
	if name == "" || len(name) > MaxNameLen || !isAlnum(name[0]) {
		return false
	}
	for i := 1; i < len(name); i++ {
		c := name[i]
		if !isAlnum(c) && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

const nameRule = "must be 1 to 128 characters: a letter or digit, then letters, digits, '_', '.' or '-'"

// checkName returns a *ValidationError for an invalid name, else nil.
func checkName(name string) error {
	if ValidName(name) {
		return nil
	}
	v := &ValidationError{}
	v.add("name", nameRule)
	return v
}

// validated is a StoreRequest that passed validation.
type validated struct {
	plaintext    []byte // JSON-encoded value; cleared after sealing
	keys         []string
	expireTime   time.Time
	allowedHosts []string
}

// validate checks req at time now. No message it produces repeats any part
// of the value.
func validate(req *StoreRequest, now time.Time) (*validated, error) {
	verr := &ValidationError{}
	if !ValidName(req.Name) {
		verr.add("name", nameRule)
	}
	out := &validated{}
	out.setValue(req.Value, verr)
	out.setExpireTime(req, now, verr)
	if len(req.Description) > MaxDescriptionLen {
		verr.add("description", "must be at most %d bytes", MaxDescriptionLen)
	}
	out.setAllowedHosts(req.AllowedHosts, verr)
	if err := verr.err(); err != nil {
		clear(out.plaintext)
		return nil, err
	}
	return out, nil
}

// setValue checks the value and sets its sorted field names and, when it
// is valid, its JSON encoding; problems go to verr, without quoting the
// value.
func (out *validated) setValue(value map[string]any, verr *ValidationError) {
	if len(value) == 0 {
		verr.add("value", "must have at least one field")
		return
	}
	badKey := false
	for k := range value {
		if k == "" || len(k) > MaxKeyLen {
			badKey = true
			continue
		}
		out.keys = append(out.keys, k)
	}
	slices.Sort(out.keys)
	if badKey {
		verr.add("value", "field names must have 1 to %d characters", MaxKeyLen)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(value); err != nil {
		// The encoder's message may quote the offending value; don't pass it on.
		verr.add("value", "must hold only JSON values (strings, numbers, booleans, null, lists and objects)")
		clear(buf.Bytes())
	} else if buf.Len() > MaxValueSize {
		verr.add("value", "must be at most %d bytes when JSON-encoded", MaxValueSize)
		clear(buf.Bytes())
	} else {
		out.plaintext = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	}
}

// setExpireTime sets the expiry req asks for (a TTL from now, or a time
// that must be in the future), in UTC to the microsecond; problems go to
// verr.
func (out *validated) setExpireTime(req *StoreRequest, now time.Time, verr *ValidationError) {
	switch {
	case !req.ExpireTime.IsZero() && req.TTL != 0:
		verr.add("ttl", "set either expire_time or ttl, not both")
	case req.TTL < 0:
		verr.add("ttl", "must be positive")
	case req.TTL > 0:
		out.expireTime = now.Add(req.TTL)
	case !req.ExpireTime.IsZero():
		if !req.ExpireTime.After(now) {
			verr.add("expire_time", "must be in the future (it is %s, now is %s)",
				req.ExpireTime.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
		out.expireTime = req.ExpireTime
	}
	if !out.expireTime.IsZero() {
		out.expireTime = out.expireTime.UTC().Truncate(time.Microsecond)
	}
}

// setAllowedHosts sets the normalized host patterns, without duplicates;
// problems go to verr.
func (out *validated) setAllowedHosts(patterns []string, verr *ValidationError) {
	if len(patterns) > MaxAllowedHosts {
		verr.add("allowed_hosts", "must have at most %d patterns", MaxAllowedHosts)
		return
	}
	for i, p := range patterns {
		n, err := normalizeHostPattern(p)
		if err != nil {
			verr.add("allowed_hosts["+strconv.Itoa(i)+"]", "%s", err.Error())
			continue
		}
		if !slices.Contains(out.allowedHosts, n) {
			out.allowedHosts = append(out.allowedHosts, n)
		}
	}
}
