// Package codec converts the store's domain types to and from the column
// values that the SQL backends (store/sqlite and store/postgres) keep:
// times as Unix nanoseconds, structured fields as JSON text, string lists
// as JSON arrays, and execution page cursors. It also scans the rows of
// the column lists it names (ExecutionColumns and the others) into domain
// types, so both backends read and write the same stored form.
//
// All functions are safe for concurrent use.
package codec

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// defaultLimit bounds a page or event list whose limit is not positive.
const defaultLimit = 1000

// PageLimit returns n, or 1000 when n is not positive.
func PageLimit(n int) int {
	if n <= 0 {
		return defaultLimit
	}
	return n
}

// Nanos encodes a time as Unix nanoseconds; the zero time is 0.
func Nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// FromNanos decodes what Nanos encodes, in UTC; 0 is the zero time.
func FromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// EncodeStrings encodes a string list as a JSON array ("[]" for an empty
// or nil list).
func EncodeStrings(ss []string) string {
	if len(ss) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(ss) // a []string always encodes
	return string(b)
}

// DecodeStrings decodes what EncodeStrings encodes; an empty list is nil.
func DecodeStrings(s string) ([]string, error) {
	var ss []string
	if err := json.Unmarshal([]byte(s), &ss); err != nil {
		return nil, fmt.Errorf("decode string list: %w", err)
	}
	if len(ss) == 0 {
		return nil, nil
	}
	return ss, nil
}

// ExecutionCursor encodes the position of an execution, created at
// createNanos (see Nanos) with the given id, in the newest-first order of
// execution lists. ParseExecutionCursor reverses it.
func ExecutionCursor(createNanos int64, id string) string {
	return strconv.FormatInt(createNanos, 10) + "/" + id
}

// ParseExecutionCursor decodes a cursor made by ExecutionCursor into its
// creation time in nanoseconds and its execution id.
func ParseExecutionCursor(c string) (createNanos int64, id string, err error) {
	ts, id, ok := strings.Cut(c, "/")
	if !ok {
		return 0, "", fmt.Errorf("malformed execution cursor %q", c)
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return 0, "", fmt.Errorf("malformed execution cursor %q: %w", c, err)
	}
	return n, id, nil
}
