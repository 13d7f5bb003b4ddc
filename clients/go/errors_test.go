package kgw_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	kgw "github.com/kailash-gateway/kgw/clients/go"
)

// statusWith builds a status as the gateway's server/errors.go does.
func statusWith(t *testing.T, c codes.Code, msg, reason string, violations ...*errdetails.BadRequest_FieldViolation) *status.Status {
	t.Helper()
	st := status.New(c, msg)
	var err error
	if reason != "" {
		if st, err = st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: "kgw", Metadata: map[string]string{"k": "v"}}); err != nil {
			t.Fatal(err)
		}
	}
	if len(violations) > 0 {
		if st, err = st.WithDetails(&errdetails.BadRequest{FieldViolations: violations}); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func TestDecodeError(t *testing.T) {
	st := statusWith(t, codes.InvalidArgument, "invalid workflow: 2 problems (see BadRequest details)", kgw.ReasonInvalidWorkflow,
		&errdetails.BadRequest_FieldViolation{Field: "workflow.nodes[0].id", Description: "required"},
		&errdetails.BadRequest_FieldViolation{Field: "workflow.nodes[1].code", Description: "node 'b' line 1:5: undefined: x"},
	)
	err := kgw.DecodeError("RegisterWorkflow", st.Err())
	var e *kgw.Error
	if !errors.As(err, &e) {
		t.Fatalf("DecodeError() = %T, want *kgw.Error", err)
	}
	want := []kgw.FieldViolation{
		{Field: "workflow.nodes[0].id", Description: "required"},
		{Field: "workflow.nodes[1].code", Description: "node 'b' line 1:5: undefined: x"},
	}
	if diff := cmp.Diff(want, e.Violations); diff != "" {
		t.Errorf("Violations mismatch (-want +got):\n%s", diff)
	}
	if e.Code != codes.InvalidArgument || e.Reason != "INVALID_WORKFLOW" || e.Domain != "kgw" || e.Metadata["k"] != "v" || e.Op != "RegisterWorkflow" {
		t.Errorf("decoded %+v", e)
	}
	if !errors.Is(err, kgw.ErrInvalidWorkflow) || !errors.Is(err, kgw.ErrInvalidArgument) || kgw.IsNotFound(err) {
		t.Errorf("errors.Is mismatch for %v", err)
	}
	if got := status.Code(err); got != codes.InvalidArgument {
		t.Errorf("status.Code(err) = %v, want InvalidArgument", got)
	}
	msg := err.Error()
	for _, s := range []string{"RegisterWorkflow", "INVALID_WORKFLOW", "workflow.nodes[1].code", "undefined: x"} {
		if !strings.Contains(msg, s) {
			t.Errorf("Error() = %q, want it to contain %q", msg, s)
		}
	}
}

func TestErrorSentinels(t *testing.T) {
	tests := []struct {
		name   string
		op     string
		code   codes.Code
		reason string
		is     []error
		isNot  []error
	}{
		{"workflow not found", "GetWorkflow", codes.NotFound, "WORKFLOW_NOT_FOUND",
			[]error{kgw.ErrWorkflowNotFound, kgw.ErrNotFound}, []error{kgw.ErrExecutionNotFound, kgw.ErrInvalidArgument}},
		{"execution not found, generic reason", "GetExecution", codes.NotFound, "NOT_FOUND",
			[]error{kgw.ErrExecutionNotFound, kgw.ErrNotFound}, []error{kgw.ErrWorkflowNotFound, kgw.ErrSecretNotFound}},
		{"execution not found, specific reason", "ExecuteWorkflow", codes.NotFound, "EXECUTION_NOT_FOUND",
			[]error{kgw.ErrExecutionNotFound, kgw.ErrNotFound}, []error{kgw.ErrWorkflowNotFound}},
		{"secret not found", "GetSecret", codes.NotFound, "NOT_FOUND",
			[]error{kgw.ErrSecretNotFound, kgw.ErrNotFound}, []error{kgw.ErrResourceNotFound}},
		{"resource not found", "DeleteResource", codes.NotFound, "",
			[]error{kgw.ErrResourceNotFound, kgw.ErrNotFound}, []error{kgw.ErrSecretNotFound}},
		{"generic not found elsewhere", "ExecuteWorkflow", codes.NotFound, "NOT_FOUND",
			[]error{kgw.ErrNotFound}, []error{kgw.ErrExecutionNotFound, kgw.ErrWorkflowNotFound}},
		{"page token", "ListWorkflows", codes.InvalidArgument, "INVALID_PAGE_TOKEN",
			[]error{kgw.ErrInvalidPageToken, kgw.ErrInvalidArgument}, []error{kgw.ErrInvalidRequest}},
		{"conflict", "PutResource", codes.Aborted, "CONFLICT", []error{kgw.ErrConflict}, []error{kgw.ErrAlreadyExists}},
		{"exists", "PutResource", codes.AlreadyExists, "ALREADY_EXISTS", []error{kgw.ErrAlreadyExists}, []error{kgw.ErrConflict}},
		{"unavailable", "GetWorkflow", codes.Unavailable, "", []error{kgw.ErrUnavailable}, []error{kgw.ErrNotFound}},
		{"internal", "GetWorkflow", codes.Internal, "", nil, []error{kgw.ErrNotFound, kgw.ErrUnavailable, kgw.ErrInvalidArgument}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := kgw.DecodeError(tt.op, statusWith(t, tt.code, "msg", tt.reason).Err())
			for _, s := range tt.is {
				if !errors.Is(err, s) {
					t.Errorf("errors.Is(%v, %v) = false, want true", err, s)
				}
			}
			for _, s := range tt.isNot {
				if errors.Is(err, s) {
					t.Errorf("errors.Is(%v, %v) = true, want false", err, s)
				}
			}
			if got, want := kgw.IsNotFound(err), tt.code == codes.NotFound; got != want {
				t.Errorf("IsNotFound(%v) = %v, want %v", err, got, want)
			}
		})
	}
}

func TestDecodeErrorPassesOtherErrors(t *testing.T) {
	if err := kgw.DecodeError("X", nil); err != nil {
		t.Errorf("DecodeError(nil) = %v, want nil", err)
	}
	plain := errors.New("boom")
	err := kgw.DecodeError("X", plain)
	var e *kgw.Error
	if errors.As(err, &e) || !errors.Is(err, plain) {
		t.Errorf("DecodeError(plain) = %#v, want it wrapped, not an *Error", err)
	}
}

// A call whose context was cancelled unwraps to context.Canceled.
func TestErrorUnwrapsContext(t *testing.T) {
	c, err := kgw.Dial(context.Background(), "127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = c.GetWorkflow(ctx, "x", 0)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("GetWorkflow(cancelled ctx) error = %v, want context.Canceled", err)
	}
	var e *kgw.Error
	if !errors.As(err, &e) || e.Code != codes.Canceled {
		t.Errorf("GetWorkflow(cancelled ctx) error = %#v, want *kgw.Error with code Canceled", err)
	}
}
