package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/kailash-gateway/kgw/access"
	"github.com/kailash-gateway/kgw/executor"
	"github.com/kailash-gateway/kgw/resources"
	"github.com/kailash-gateway/kgw/secrets"
	"github.com/kailash-gateway/kgw/store"
)

// errorDomain is the ErrorInfo domain of every error the gateway returns.
const errorDomain = "kgw"

// Stable ErrorInfo reasons. They are part of the API (docs/api.md): add new
// ones, never rename or reuse.
const (
	ReasonInvalidRequest   = "INVALID_REQUEST"
	ReasonInvalidWorkflow  = "INVALID_WORKFLOW"
	ReasonInvalidPageToken = "INVALID_PAGE_TOKEN"
	ReasonWorkflowNotFound = "WORKFLOW_NOT_FOUND"
	ReasonNotFound         = "NOT_FOUND"
	ReasonAlreadyExists    = "ALREADY_EXISTS"
	ReasonConflict         = "CONFLICT"
	ReasonUnimplemented    = "UNIMPLEMENTED"

	ReasonExecutionNotFound = "EXECUTION_NOT_FOUND"
	ReasonSecretNotFound    = "SECRET_NOT_FOUND"
	ReasonResourceNotFound  = "RESOURCE_NOT_FOUND"
	// ReasonWatchLagging: a stream fell too far behind its execution; the
	// ErrorInfo metadata "resume_after_seq" is the after_seq to resume from.
	ReasonWatchLagging        = "WATCH_LAGGING"
	ReasonResourceExhausted   = "RESOURCE_EXHAUSTED"
	ReasonShuttingDown        = "SHUTTING_DOWN"
	ReasonExecutionNotLocal   = "EXECUTION_NOT_LOCAL"
	ReasonWorkflowNotRunnable = "WORKFLOW_NOT_RUNNABLE"
	ReasonUnavailable         = "UNAVAILABLE"

	// ReasonUnauthenticated: the call has no valid credentials
	// (UNAUTHENTICATED).
	ReasonUnauthenticated = "UNAUTHENTICATED"
	// ReasonPermissionDenied: the caller lacks the role or grant
	// (PERMISSION_DENIED).
	ReasonPermissionDenied = "PERMISSION_DENIED"
	// ReasonCallerLimit: the caller has --max-executions-per-caller
	// executions running on this replica (RESOURCE_EXHAUSTED).
	ReasonCallerLimit = "CALLER_LIMIT"
	// ReasonIdempotencyKeyReused: the request's idempotency_key belongs to
	// an execution started by a different request; the ErrorInfo metadata
	// "idempotency_key" and "execution_id" name them.
	ReasonIdempotencyKeyReused = "IDEMPOTENCY_KEY_REUSED"
)

// A violation is one problem with one request field. Field is the path of the
// field in the request (proto names, e.g. "workflow.nodes[2].id").
type violation struct {
	Field       string
	Description string
}

// invalidError reports a request that fails validation. It becomes
// INVALID_ARGUMENT with a BadRequest listing every violation.
type invalidError struct {
	reason     string
	violations []violation
}

func (e *invalidError) Error() string {
	if len(e.violations) == 1 {
		return fmt.Sprintf("invalid request: %s: %s", e.violations[0].Field, e.violations[0].Description)
	}
	return fmt.Sprintf("invalid request: %d problems, first %s: %s",
		len(e.violations), e.violations[0].Field, e.violations[0].Description)
}

// invalid returns an *invalidError with one violation.
func invalid(reason, field, format string, args ...any) error {
	return &invalidError{reason: reason, violations: []violation{{field, fmt.Sprintf(format, args...)}}}
}

// reasonError attaches a stable reason and a client-safe message to a domain
// error (typically a store sentinel) without hiding it from errors.Is.
type reasonError struct {
	reason string
	msg    string
	err    error
}

func (e *reasonError) Error() string { return e.msg + ": " + e.err.Error() }
func (e *reasonError) Unwrap() error { return e.err }

// withReason wraps err with a reason and the message clients see.
func withReason(err error, reason, format string, args ...any) error {
	return &reasonError{reason: reason, msg: fmt.Sprintf(format, args...), err: err}
}

// notFound gives err a reason and message when it is store.ErrNotFound and
// returns it unchanged otherwise.
func notFound(err error, reason, format string, args ...any) error {
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return withReason(err, reason, format, args...)
}

// permissionError is a denied call: PERMISSION_DENIED with msg, which never
// tells whether the thing denied exists.
type permissionError struct{ msg string }

func (e *permissionError) Error() string { return e.msg }

func denied(format string, args ...any) error {
	return &permissionError{msg: "permission denied: " + fmt.Sprintf(format, args...)}
}

// panicError is what the recovery interceptor turns a handler panic into.
type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string { return fmt.Sprintf("panic: %v", e.value) }

// toStatus is the one place where errors become gRPC statuses (STYLE.md §3).
// Errors that become INTERNAL are logged in full with method; the client only
// sees a generic message. Messages sent to clients are built from validated
// request fields and fixed text, never from driver errors, so they hold no
// secrets, SQL or DSNs.
func toStatus(ctx context.Context, log *slog.Logger, method string, err error) error {
	if err == nil {
		return nil
	}
	var inv *invalidError
	if errors.As(err, &inv) {
		br := &errdetails.BadRequest{}
		for _, v := range inv.violations {
			br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
				Field: v.Field, Description: v.Description,
			})
		}
		msg := "invalid request"
		if inv.reason == ReasonInvalidWorkflow {
			msg = "invalid workflow"
		}
		if len(inv.violations) == 1 {
			msg += ": " + inv.violations[0].Field + ": " + inv.violations[0].Description
		} else {
			msg += fmt.Sprintf(": %d problems (see BadRequest details)", len(inv.violations))
		}
		return withDetails(codes.InvalidArgument, msg, errorInfo(inv.reason), br)
	}

	var sv *secrets.ValidationError
	if errors.As(err, &sv) && len(sv.Violations) > 0 {
		vs := make([]violation, 0, len(sv.Violations))
		for _, v := range sv.Violations {
			vs = append(vs, violation{Field: v.Field, Description: v.Description})
		}
		return toStatus(ctx, log, method, &invalidError{reason: ReasonInvalidRequest, violations: vs})
	}

	var ae *access.AuthError
	if errors.As(err, &ae) {
		return withDetails(codes.Unauthenticated, ae.Msg, errorInfo(ReasonUnauthenticated))
	}
	var pe *permissionError
	if errors.As(err, &pe) {
		return withDetails(codes.PermissionDenied, pe.msg, errorInfo(ReasonPermissionDenied))
	}
	if errors.Is(err, executor.ErrCallerLimit) {
		return withDetails(codes.ResourceExhausted, "too many running executions for this caller on this gateway; retry when some have finished",
			errorInfo(ReasonCallerLimit),
			&errdetails.QuotaFailure{Violations: []*errdetails.QuotaFailure_Violation{{
				Subject: "caller", Description: "--max-executions-per-caller reached",
			}}},
			&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Second)})
	}

	var lag *executor.LaggingError
	if errors.As(err, &lag) {
		resume := strconv.FormatInt(lag.ResumeAfter, 10)
		info := errorInfo(ReasonWatchLagging)
		info.Metadata = map[string]string{"execution_id": lag.ExecutionID, "resume_after_seq": resume}
		return withDetails(codes.ResourceExhausted,
			fmt.Sprintf("this stream fell too far behind execution %s; resume with WatchExecution after_seq %s", lag.ExecutionID, resume),
			info)
	}

	var reused *executor.IdempotencyMismatchError
	if errors.As(err, &reused) {
		info := errorInfo(ReasonIdempotencyKeyReused)
		info.Metadata = map[string]string{"idempotency_key": reused.Key, "execution_id": reused.ExecutionID}
		return withDetails(codes.FailedPrecondition,
			fmt.Sprintf("idempotency_key %q is already used by execution %s, started by a different request "+
				"(workflow, version, parameters, context, resources or timeout differ); "+
				"repeat the same request to attach to it, or use a new key", clip(reused.Key), reused.ExecutionID),
			info,
			&errdetails.PreconditionFailure{Violations: []*errdetails.PreconditionFailure_Violation{{
				Type: "IDEMPOTENCY_KEY", Subject: clip(reused.Key),
				Description: "key already used by execution " + reused.ExecutionID + " with a different request",
			}}})
	}

	if errors.Is(err, resources.ErrExhausted) {
		return withDetails(codes.ResourceExhausted, "a resource pool is exhausted; retry later",
			errorInfo(ReasonResourceExhausted),
			&errdetails.QuotaFailure{Violations: []*errdetails.QuotaFailure_Violation{{
				Subject: "resource pool", Description: "no free connection within the resource's timeout",
			}}},
			&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Second)})
	}

	var pnc *panicError
	if errors.As(err, &pnc) {
		log.ErrorContext(ctx, "handler panic", "method", method, "panic", fmt.Sprint(pnc.value), "stack", string(pnc.stack))
		return status.Error(codes.Internal, "internal error")
	}

	// Statuses made by gRPC itself (e.g. UNIMPLEMENTED from the embedded
	// Unimplemented*Server) pass through, given an ErrorInfo when they lack one.
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
		if len(st.Details()) > 0 || st.Code() == codes.Internal {
			return st.Err()
		}
		reason := ReasonInvalidRequest
		if st.Code() == codes.Unimplemented {
			reason = ReasonUnimplemented
		} else if st.Code() != codes.InvalidArgument {
			reason = codeReason(st.Code())
		}
		return withDetails(st.Code(), st.Message(), errorInfo(reason))
	}

	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}

	var code codes.Code
	var reason, msg string
	switch {
	case errors.Is(err, errNoBroker), errors.Is(err, errNoAccess):
		return withDetails(codes.Unimplemented, err.Error(), errorInfo(ReasonUnimplemented))
	case errors.Is(err, executor.ErrClosed), errors.Is(err, resources.ErrClosed):
		return withDetails(codes.Unavailable, "the gateway is shutting down; retry on another instance", errorInfo(ReasonShuttingDown))
	case errors.Is(err, executor.ErrNotLocal):
		code, reason = codes.FailedPrecondition, ReasonExecutionNotLocal
		msg = "the execution is not running in this gateway process (another replica runs it, or it awaits recovery)"
	case errors.Is(err, executor.ErrInvalidWorkflow):
		code, reason = codes.FailedPrecondition, ReasonWorkflowNotRunnable
		msg = "the stored workflow version cannot be run; register it again"
	case errors.Is(err, store.ErrNotFound):
		code, reason = codes.NotFound, ReasonNotFound
	case errors.Is(err, store.ErrAlreadyExists):
		code, reason = codes.AlreadyExists, ReasonAlreadyExists
	case errors.Is(err, store.ErrConflict):
		code, reason = codes.Aborted, ReasonConflict
	default:
		log.ErrorContext(ctx, "internal error", "method", method, "err", err.Error())
		return status.Error(codes.Internal, "internal error")
	}
	if msg == "" {
		msg = code.String()
	}
	var re *reasonError
	if errors.As(err, &re) {
		reason, msg = re.reason, re.msg
	}
	return withDetails(code, msg, errorInfo(reason))
}

func errorInfo(reason string) *errdetails.ErrorInfo {
	return &errdetails.ErrorInfo{Reason: reason, Domain: errorDomain}
}

// codeReason derives a reason from a code: NotFound → NOT_FOUND.
func codeReason(c codes.Code) string {
	switch c {
	case codes.NotFound:
		return ReasonNotFound
	case codes.AlreadyExists:
		return ReasonAlreadyExists
	case codes.Aborted:
		return ReasonConflict
	case codes.ResourceExhausted:
		return "RESOURCE_EXHAUSTED"
	case codes.PermissionDenied:
		return "PERMISSION_DENIED"
	case codes.Unauthenticated:
		return "UNAUTHENTICATED"
	case codes.FailedPrecondition:
		return "FAILED_PRECONDITION"
	case codes.Unavailable:
		return "UNAVAILABLE"
	case codes.Canceled:
		return "CANCELED"
	case codes.DeadlineExceeded:
		return "DEADLINE_EXCEEDED"
	default:
		return "UNKNOWN"
	}
}

func withDetails(c codes.Code, msg string, details ...protoadapt.MessageV1) error {
	st, err := status.New(c, msg).WithDetails(details...)
	if err != nil {
		// Only fails for unmarshalable details, which ours never are.
		return status.Error(c, msg)
	}
	return st.Err()
}
