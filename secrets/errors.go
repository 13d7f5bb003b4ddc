package secrets

import (
	"errors"
	"fmt"
	"strings"
)

// Errors that callers branch on. Secrets that do not exist are reported with
// errors wrapping store.ErrNotFound ("secret 'x' not found").
var (
	// ErrDecrypt reports a secret record that does not open: it was altered,
	// renamed or given another record's ciphertext or wrapped key, or it was
	// sealed under another master key. The error names the secret and
	// version, never anything of its value.
	ErrDecrypt = errors.New("cannot be decrypted: the record was altered, swapped or renamed, or sealed under another master key")
	// ErrWrongMasterKey reports a master key that is not the one the store's
	// secrets were encrypted with.
	ErrWrongMasterKey = errors.New("master key does not match the one this data was encrypted with")
	// ErrExpired reports a secret whose expire time has passed; the error
	// reads "secret 'x' expired at <RFC 3339 time>".
	ErrExpired = errors.New("expired")
)

// decryptError returns the error for a record that does not open.
func decryptError(name string, version int32) error {
	return fmt.Errorf("secret '%s' version %d %w", name, version, ErrDecrypt)
}

// A FieldViolation is one invalid field of a request. Field is the request
// field's path ("name", "value", "allowed_hosts[1]"); Description says what
// is wrong without repeating any part of a value.
type FieldViolation struct {
	Field       string
	Description string
}

// A ValidationError reports invalid input; the server maps it to
// INVALID_ARGUMENT with one BadRequest field violation per entry. Its message
// never contains secret values.
type ValidationError struct {
	Violations []FieldViolation
}

// Error returns "invalid secret request: field: description; ...".
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid secret request: ")
	for i, v := range e.Violations {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(v.Field)
		b.WriteString(": ")
		b.WriteString(v.Description)
	}
	return b.String()
}

// add records a violation.
func (e *ValidationError) add(field, format string, args ...any) {
	e.Violations = append(e.Violations, FieldViolation{Field: field, Description: fmt.Sprintf(format, args...)})
}

// err returns e if it holds any violation, else nil.
func (e *ValidationError) err() error {
	if len(e.Violations) == 0 {
		return nil
	}
	return e
}
