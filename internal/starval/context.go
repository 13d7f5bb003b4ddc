// Package starval converts between Starlark values and JSON-compatible Go
// values (nil, bool, int64, float64, string, []any, map[string]any), and
// carries the per-thread context that builtins and resource handles use.
// It is the one place where those conversions live: the node runtime uses it
// for scopes and results, resource handles for arguments and rows, and the
// server turns the Go values into google.protobuf.Struct.
package starval

import (
	"context"

	"go.starlark.net/starlark"
)

const contextKey = "kgw.context"

// SetContext attaches ctx to th so that builtins called on th can honour
// cancellation and deadlines. Call it before running code on th.
func SetContext(th *starlark.Thread, ctx context.Context) { th.SetLocal(contextKey, ctx) }

// Context returns the context attached to th by SetContext, or
// context.Background() if there is none.
func Context(th *starlark.Thread) context.Context {
	if ctx, ok := th.Local(contextKey).(context.Context); ok {
		return ctx
	}
	return context.Background()
}
