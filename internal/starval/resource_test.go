package starval_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.starlark.net/starlark"

	"github.com/kailash-gateway/kgw/internal/starval"
)

func TestResourceError(t *testing.T) {
	cause := fmt.Errorf("dial: %w", context.DeadlineExceeded)
	err := starval.NewResourceError("db", "fetch", cause)
	if got, want := err.Error(), "db.fetch: dial: context deadline exceeded"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("errors.Is(%v, DeadlineExceeded) = false, want true", err)
	}
	var re *starval.ResourceError
	if !errors.As(err, &re) || re.Resource != "db" || re.Op != "fetch" {
		t.Errorf("errors.As(%v) = %+v, want Resource db, Op fetch", err, re)
	}

	// The marker survives a Starlark call: a builtin's error becomes the
	// cause of the *starlark.EvalError.
	fetch := starlark.NewBuiltin("fetch", func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
		return nil, err
	})
	_, evalErr := starlark.Call(&starlark.Thread{}, fetch, nil, nil)
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"direct", err, true},
		{"wrapped", fmt.Errorf("item 3: %w", err), true},
		{"through a Starlark call", evalErr, true},
		{"plain", cause, false},
		{"nil", nil, false},
	} {
		if got := starval.IsResourceError(tc.err); got != tc.want {
			t.Errorf("%s: IsResourceError(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
