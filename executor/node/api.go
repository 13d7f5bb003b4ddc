package node

import (
	"context"
	"errors"

	"go.starlark.net/starlark"
)

// Attempt is everything one attempt of a node needs to run.
//
// The functions Compile(nodeID, code string) (*Program, error) and
// (*Program).Run(ctx context.Context, a *Attempt) (map[string]any, error)
// are the entry points of this package.
type Attempt struct {
	// NodeID is the id of the node that runs.
	NodeID string
	// Execution identifies the execution and the attempt; visible to code as
	// `execution`.
	Execution ExecutionInfo
	// Parameters are the request parameters: each key becomes a variable and
	// the whole map is visible as `parameters`.
	Parameters map[string]any
	// Inputs are the values delivered by incoming connections, already merged
	// with the precedence of DESIGN.md §4; each key becomes a variable
	// (shadowing parameters) and the whole map is visible as `inputs`.
	Inputs map[string]any
	// Context is the request context, visible as `context`.
	Context map[string]any
	// RequiredResources are the names get_resource may open.
	RequiredResources []string
	// Resources opens resource handles; nil means the request has none.
	Resources ResourceOpener
	// Log receives logger/print output; nil discards it. Calls are
	// serialized by the runtime.
	Log func(level LogLevel, msg string, fields map[string]any)
	// Cache is the workflow_cache of the workflow; nil gives a private one.
	Cache *WorkflowCache
	// Redact masks the execution's credential values in a string; nil
	// masks nothing. workflow_cache applies it to what the attempt stores
	// and reads, so no credential value is carried between executions.
	Redact func(string) string
	// Limits bound the attempt; zero fields take the defaults.
	Limits Limits
	// Watchdog, if not nil, watches the heap while the attempt runs and
	// may stop it (see Watchdog).
	Watchdog *Watchdog
}

// LogLevel is the level of a line that node code logs.
type LogLevel int8

// Log levels, lowest first.
const (
	LogDebug LogLevel = iota + 1
	LogInfo
	LogWarning
	LogError
)

// ExecutionInfo is the `execution` struct visible to node code.
type ExecutionInfo struct {
	ID       string
	Workflow string
	Version  int32
	Attempt  int32
}

// ErrNotProvided is returned by a ResourceOpener for a resource name the
// request did not provide.
var ErrNotProvided = errors.New("resource not provided")

// ResourceOpener gives node code its resource handles. The executor supplies
// one per attempt and releases everything it lent when the attempt ends.
type ResourceOpener interface {
	// Open returns the handle of the resource named name. The runtime has
	// already checked that name is in RequiredResources; for a name the
	// request did not provide, Open returns an error satisfying
	// errors.Is(err, ErrNotProvided), which the runtime reports as
	// "resource 'x' was not provided in the request". Any other error is
	// shown to node code as it is, so it names the resource itself
	// ("resource 'x': ..."): the runtime adds no prefix of its own, and a
	// message never says the name twice. Open is called at most
	// once per name and attempt, but possibly from several goroutines
	// (parallel.map), so it must be safe for concurrent use; so must the
	// handles it returns.
	Open(ctx context.Context, name string) (starlark.Value, error)
}

// Limits bound one attempt. Zero fields take the defaults of DESIGN.md §5.
type Limits struct {
	MaxSteps       uint64 // default 10,000,000
	MaxResultBytes int    // default 4 MiB (JSON-encoded result)
	MaxDepth       int    // default 64
	MaxLogLines    int    // default 1,000
	MaxCallDepth   int    // default 1,000 nested Starlark calls
	// MaxLogLineBytes bounds one log line (message and fields); a longer
	// line is truncated and says so. Default 64 KiB.
	MaxLogLineBytes int
	// MaxLogBytes bounds the log lines of one attempt together; lines
	// past it are dropped after a warning line. Default 1 MiB.
	MaxLogBytes int
	// MaxMemory is the memory budget of the attempt in bytes: the
	// estimated size of every value its code builds, charged before the
	// value is built (see docs/node-api.md). Default 256 MiB; negative
	// means unlimited.
	MaxMemory int64
}

// Defaults of Limits.
const (
	DefaultMaxSteps       = 10_000_000
	DefaultMaxResultBytes = 4 << 20
	DefaultMaxDepth       = 64
	DefaultMaxLogLines    = 1000
	DefaultMaxCallDepth   = 1000
	// DefaultMaxLogLineBytes is the default of Limits.MaxLogLineBytes.
	DefaultMaxLogLineBytes = 64 << 10
	// DefaultMaxLogBytes is the default of Limits.MaxLogBytes.
	DefaultMaxLogBytes = 1 << 20
)

func (l Limits) withDefaults() Limits {
	if l.MaxSteps == 0 {
		l.MaxSteps = DefaultMaxSteps
	}
	if l.MaxResultBytes <= 0 {
		l.MaxResultBytes = DefaultMaxResultBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxLogLines <= 0 {
		l.MaxLogLines = DefaultMaxLogLines
	}
	if l.MaxMemory == 0 {
		l.MaxMemory = DefaultMaxMemory
	} else if l.MaxMemory < 0 {
		l.MaxMemory = -1
	}
	if l.MaxCallDepth <= 0 {
		l.MaxCallDepth = DefaultMaxCallDepth
	}
	if l.MaxLogLineBytes <= 0 {
		l.MaxLogLineBytes = DefaultMaxLogLineBytes
	}
	if l.MaxLogBytes <= 0 {
		l.MaxLogBytes = DefaultMaxLogBytes
	}
	return l
}
