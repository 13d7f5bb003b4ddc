package starval

import "errors"

// A ResourceError is the failure of an operation of a resource handle: the
// database, cache or HTTP server failed the request, could not be
// reached, timed out, or the handle is no longer usable. Mistakes in the
// node code's own arguments are ordinary errors, not ResourceErrors.
// The node runtime reports a failure whose chain holds a *ResourceError
// with code RESOURCE_ERROR; `catch` catches it like any other error.
//
// Its message reads "resource.op: cause". Handles build it from errors
// that never contain credentials or DSNs.
type ResourceError struct {
	Resource string // the resource's name in the request, e.g. "db"
	Op       string // the method that failed, e.g. "fetch"
	Err      error  // the cause; never nil
}

// NewResourceError returns a *ResourceError for the failed operation op
// of the resource named resource.
func NewResourceError(resource, op string, err error) error {
	return &ResourceError{Resource: resource, Op: op, Err: err}
}

func (e *ResourceError) Error() string {
	return e.Resource + "." + e.Op + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *ResourceError) Unwrap() error { return e.Err }

// IsResourceError reports whether err's chain holds a *ResourceError.
func IsResourceError(err error) bool {
	var re *ResourceError
	return errors.As(err, &re)
}
