// Package poolerr holds the error that every resource type reports when its
// pool has no connection to lend. The resources package re-exports it as
// resources.ErrExhausted; callers should test against that name.
package poolerr

import (
	"errors"
	"fmt"
	"time"
)

// ErrExhausted reports that a pool (or the per-target connection cap) had
// no free connection within the acquire timeout.
var ErrExhausted = errors.New("connection pool exhausted")

// Exhausted returns the error for resource name whose pool of maxSize
// connections stayed busy for waited. It wraps ErrExhausted.
func Exhausted(name string, maxSize int, waited time.Duration) error {
	return &exhaustedError{name: name, maxSize: maxSize, waited: waited}
}

type exhaustedError struct {
	name    string
	maxSize int
	waited  time.Duration
}

func (e *exhaustedError) Error() string {
	return fmt.Sprintf("connection pool exhausted for resource '%s' (max_size=%d, waited %s)",
		e.name, e.maxSize, formatWait(e.waited))
}

func (e *exhaustedError) Unwrap() error { return ErrExhausted }

// formatWait prints seconds the way people write them: "10s", "0.5s".
func formatWait(d time.Duration) string {
	return fmt.Sprintf("%gs", d.Round(100*time.Millisecond).Seconds())
}
