package kgw

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Reasons the gateway puts in the google.rpc.ErrorInfo of its errors
// (docs/api.md). New reasons may be added; these are never renamed.
const (
	ReasonInvalidRequest   = "INVALID_REQUEST"
	ReasonInvalidWorkflow  = "INVALID_WORKFLOW"
	ReasonInvalidPageToken = "INVALID_PAGE_TOKEN"
	ReasonWorkflowNotFound = "WORKFLOW_NOT_FOUND"
	ReasonNotFound         = "NOT_FOUND"
	ReasonAlreadyExists    = "ALREADY_EXISTS"
	ReasonConflict         = "CONFLICT"
	ReasonUnimplemented    = "UNIMPLEMENTED"
)

// An Error is a failed call to the gateway: its gRPC code and the details the
// gateway attached. Every error a Client method returns for a failed RPC is
// an *Error (use errors.As), and it also works with status.Code and
// status.FromError. Compare with the Err* sentinels through errors.Is rather
// than with Message, which is for humans.
type Error struct {
	// Op is the RPC that failed, e.g. "GetWorkflow", or "Build" for a
	// definition rejected by WorkflowBuilder.Build.
	Op string
	// Code is the gRPC status code.
	Code codes.Code
	// Reason is the stable UPPER_SNAKE reason of the google.rpc.ErrorInfo,
	// e.g. "WORKFLOW_NOT_FOUND"; empty when the status carried none (for
	// example a transport error or INTERNAL).
	Reason string
	// Domain is the ErrorInfo domain, "kgw" for the gateway's own errors.
	Domain string
	// Metadata is the ErrorInfo metadata, if any.
	Metadata map[string]string
	// Message is the status message.
	Message string
	// Violations lists the google.rpc.BadRequest field violations of an
	// INVALID_ARGUMENT error, one per problem.
	Violations []FieldViolation

	status *status.Status
	cause  error
}

// A FieldViolation is one problem with one field of a request, e.g. Field
// "workflow.nodes[1].code", Description "node 'b' line 2:5: undefined: x".
type FieldViolation struct {
	Field       string
	Description string
}

// Error formats the error as "kgw Op: Code [REASON]: message", followed by
// the violations when there are several.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("kgw")
	if e.Op != "" {
		b.WriteString(" " + e.Op)
	}
	b.WriteString(": " + e.Code.String())
	if e.Reason != "" {
		b.WriteString(" " + e.Reason)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if len(e.Violations) > 1 {
		const show = 10
		for i, v := range e.Violations {
			if i == show {
				fmt.Fprintf(&b, "; and %d more", len(e.Violations)-show)
				break
			}
			fmt.Fprintf(&b, "; %s: %s", v.Field, v.Description)
		}
	}
	return b.String()
}

// GRPCStatus returns the status the error was decoded from, so that
// status.Code(err) and status.FromError(err) work on it.
func (e *Error) GRPCStatus() *status.Status {
	if e.status != nil {
		return e.status
	}
	return status.New(e.Code, e.Message)
}

// Unwrap returns context.Canceled or context.DeadlineExceeded when the call
// failed because the caller's context ended, and nil otherwise.
func (e *Error) Unwrap() error { return e.cause }

// Is reports whether e matches target, one of the Err* sentinels of this
// package: by reason for reason sentinels (ErrWorkflowNotFound), by code for
// code sentinels (ErrNotFound).
func (e *Error) Is(target error) bool {
	s, ok := target.(*sentinel)
	if !ok {
		return false
	}
	return s.matches(e)
}

// A sentinel is an Err* value. It matches an *Error by reason, by code, or by
// code NOT_FOUND with the generic reason on one of ops.
type sentinel struct {
	msg    string
	code   codes.Code
	reason string
	ops    []string // with code: generic-reason errors of these RPCs also match
}

func (s *sentinel) Error() string { return s.msg }

func (s *sentinel) matches(e *Error) bool {
	switch {
	case s.ops != nil:
		return e.Code == s.code && (e.Reason == s.reason ||
			(e.Reason == "" || e.Reason == ReasonNotFound) && slices.Contains(s.ops, e.Op))
	case s.reason != "":
		return e.Reason == s.reason
	default:
		return e.Code == s.code
	}
}

// Sentinels for errors.Is. Code sentinels match any *Error with that gRPC
// code; reason sentinels match the ErrorInfo reason. The *NotFound sentinels
// for executions, secrets and resources match NOT_FOUND from the RPCs that
// look those objects up by name or id.
var (
	// ErrNotFound matches every NOT_FOUND error.
	ErrNotFound error = &sentinel{msg: "kgw: not found", code: codes.NotFound}
	// ErrWorkflowNotFound matches an unknown workflow name or version.
	ErrWorkflowNotFound error = &sentinel{msg: "kgw: workflow not found", reason: ReasonWorkflowNotFound}
	// ErrExecutionNotFound matches an unknown execution id.
	ErrExecutionNotFound error = &sentinel{msg: "kgw: execution not found", code: codes.NotFound,
		reason: "EXECUTION_NOT_FOUND", ops: []string{"GetExecution", "WatchExecution", "CancelExecution"}}
	// ErrSecretNotFound matches an unknown secret name.
	ErrSecretNotFound error = &sentinel{msg: "kgw: secret not found", code: codes.NotFound,
		reason: "SECRET_NOT_FOUND", ops: []string{"GetSecret", "DeleteSecret"}}
	// ErrResourceNotFound matches an unknown named resource.
	ErrResourceNotFound error = &sentinel{msg: "kgw: resource not found", code: codes.NotFound,
		reason: "RESOURCE_NOT_FOUND", ops: []string{"GetResource", "DeleteResource"}}
	// ErrInvalidArgument matches every INVALID_ARGUMENT error.
	ErrInvalidArgument error = &sentinel{msg: "kgw: invalid argument", code: codes.InvalidArgument}
	// ErrInvalidWorkflow matches a workflow definition the gateway (or
	// WorkflowBuilder.Build) rejected; Violations says why.
	ErrInvalidWorkflow error = &sentinel{msg: "kgw: invalid workflow", reason: ReasonInvalidWorkflow}
	// ErrInvalidRequest matches any other invalid request field.
	ErrInvalidRequest error = &sentinel{msg: "kgw: invalid request", reason: ReasonInvalidRequest}
	// ErrInvalidPageToken matches a page token the gateway refused.
	ErrInvalidPageToken error = &sentinel{msg: "kgw: invalid page token", reason: ReasonInvalidPageToken}
	// ErrAlreadyExists matches a duplicate create.
	ErrAlreadyExists error = &sentinel{msg: "kgw: already exists", code: codes.AlreadyExists}
	// ErrConflict matches a write that lost a race (ABORTED); retry it.
	ErrConflict error = &sentinel{msg: "kgw: conflict", code: codes.Aborted}
	// ErrUnimplemented matches an RPC the gateway does not implement.
	ErrUnimplemented error = &sentinel{msg: "kgw: unimplemented", code: codes.Unimplemented}
	// ErrUnauthenticated matches a missing or invalid token.
	ErrUnauthenticated error = &sentinel{msg: "kgw: unauthenticated", code: codes.Unauthenticated}
	// ErrPermissionDenied matches a call the caller's role does not allow.
	ErrPermissionDenied error = &sentinel{msg: "kgw: permission denied", code: codes.PermissionDenied}
	// ErrResourceExhausted matches overload, a full pool or a message too large.
	ErrResourceExhausted error = &sentinel{msg: "kgw: resource exhausted", code: codes.ResourceExhausted}
	// ErrUnavailable matches a gateway that cannot be reached or is shutting down.
	ErrUnavailable error = &sentinel{msg: "kgw: unavailable", code: codes.Unavailable}
)

// IsNotFound reports whether err is a NOT_FOUND error of any kind.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsInvalidArgument reports whether err is an INVALID_ARGUMENT error; its
// *Error has the violations.
func IsInvalidArgument(err error) bool { return errors.Is(err, ErrInvalidArgument) }

// rpcError converts an error returned by a generated stub for RPC op into an
// *Error. ctx is the caller's context: when it has ended, the *Error unwraps
// to its cause.
func rpcError(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("kgw %s: %w", op, err)
	}
	e := fromStatus(op, st)
	if ctx.Err() != nil && (e.Code == codes.Canceled || e.Code == codes.DeadlineExceeded) {
		e.cause = ctx.Err()
	}
	return e
}

// fromStatus decodes st and its ErrorInfo and BadRequest details.
func fromStatus(op string, st *status.Status) *Error {
	e := &Error{Op: op, Code: st.Code(), Message: st.Message(), status: st}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			if e.Reason == "" {
				e.Reason, e.Domain = d.GetReason(), d.GetDomain()
				if len(d.GetMetadata()) > 0 {
					e.Metadata = d.GetMetadata()
				}
			}
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				e.Violations = append(e.Violations, FieldViolation{Field: v.GetField(), Description: v.GetDescription()})
			}
		}
	}
	return e
}

// DecodeError converts an error returned by a generated kgwv1 stub (for
// example one reached through Client.Conn) into an *Error naming op, as the
// Client methods do. A nil error gives nil; an error that is not a gRPC
// status is returned wrapped.
func DecodeError(op string, err error) error {
	return rpcError(context.Background(), op, err)
}
