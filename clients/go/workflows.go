package kgw

import (
	"context"
	"fmt"
	"iter"
	"math"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
)

// Register validates and stores a workflow definition (from
// WorkflowBuilder.Build or LoadWorkflowFile) and returns the stored workflow
// with its version. Registering an existing name stores the next version.
// An invalid definition gives an *Error matching ErrInvalidWorkflow with
// one violation per problem.
func (c *Client) Register(ctx context.Context, wf *Workflow) (*Workflow, error) {
	resp, err := c.workflows.RegisterWorkflow(ctx, &kgwv1.RegisterWorkflowRequest{Workflow: wf})
	if err != nil {
		return nil, rpcError(ctx, "RegisterWorkflow", err)
	}
	return resp.GetWorkflow(), nil
}

// ValidateWorkflow asks the gateway to check wf exactly as Register would
// (including the caller's permission to register it) without storing it,
// and returns the definition as it would be stored, with version 0. An
// invalid definition gives an *Error matching ErrInvalidWorkflow. For a
// check without a gateway, see `kgw workflow validate`.
func (c *Client) ValidateWorkflow(ctx context.Context, wf *Workflow) (*Workflow, error) {
	resp, err := c.workflows.RegisterWorkflow(ctx, &kgwv1.RegisterWorkflowRequest{Workflow: wf, ValidateOnly: true})
	if err != nil {
		return nil, rpcError(ctx, "RegisterWorkflow", err)
	}
	return resp.GetWorkflow(), nil
}

// GetWorkflow returns version version of workflow name, or the latest when
// version is 0. An unknown name or version gives an error matching
// ErrWorkflowNotFound.
func (c *Client) GetWorkflow(ctx context.Context, name string, version int) (*Workflow, error) {
	if version < 0 || version > math.MaxInt32 {
		return nil, optionError("GetWorkflow", fmt.Errorf("version %d out of range", version))
	}
	resp, err := c.workflows.GetWorkflow(ctx, &kgwv1.GetWorkflowRequest{Name: name, Version: int32(version)})
	if err != nil {
		return nil, rpcError(ctx, "GetWorkflow", err)
	}
	return resp.GetWorkflow(), nil
}

// ListWorkflows yields a summary of every registered workflow, ordered by
// name, fetching pages as the loop advances. An error ends the sequence.
func (c *Client) ListWorkflows(ctx context.Context) iter.Seq2[*WorkflowSummary, error] {
	return pages(ctx, "ListWorkflows", func(token string) ([]*kgwv1.WorkflowSummary, string, error) {
		resp, err := c.workflows.ListWorkflows(ctx, &kgwv1.ListWorkflowsRequest{PageToken: token})
		return resp.GetWorkflows(), resp.GetNextPageToken(), err
	})
}

// DeleteWorkflow removes workflow name and all its versions; running
// executions finish.
func (c *Client) DeleteWorkflow(ctx context.Context, name string) error {
	_, err := c.workflows.DeleteWorkflow(ctx, &kgwv1.DeleteWorkflowRequest{Name: name})
	return rpcError(ctx, "DeleteWorkflow", err)
}
