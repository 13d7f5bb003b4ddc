package kgw

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
)

// An ExecOption configures Execute, Start and Stream.
type ExecOption func(*execConfig)

type execConfig struct {
	version   int32
	params    map[string]any
	resources map[string]*kgwv1.ResourceSpec
	context   map[string]any
	timeout   time.Duration
	idemKey   string
	errs      []error
}

// Params sets request parameters; each key becomes a variable of every node
// and the dict `parameters`. Values must be JSON-like: nil, bool, numbers,
// string, []any, map[string]any (see structpb.NewValue). Several Params
// options merge, later keys winning.
func Params(params map[string]any) ExecOption {
	return func(c *execConfig) {
		if c.params == nil {
			c.params = map[string]any{}
		}
		for k, v := range params {
			c.params[k] = v
		}
	}
}

// Param sets one request parameter; see Params.
func Param(key string, value any) ExecOption {
	return Params(map[string]any{key: value})
}

// Resource provides the resource a node reaches with get_resource(name):
//
//	kgw.Resource("db", kgw.DatabaseSpec{Host: "127.0.0.1", Database: "app", CredentialsRef: "db_creds"})
//	kgw.Resource("orders", kgw.Ref("orders_db"))
func Resource(name string, spec Spec) ExecOption {
	return func(c *execConfig) {
		p, err := spec.ResourceSpec()
		if err != nil {
			c.errs = append(c.errs, fmt.Errorf("resource %q: %w", name, err))
			return
		}
		c.setResource(name, p)
	}
}

// Resources provides resources given as messages, by name.
func Resources(specs map[string]*ResourceSpec) ExecOption {
	return func(c *execConfig) {
		for name, p := range specs {
			c.setResource(name, p)
		}
	}
}

func (c *execConfig) setResource(name string, p *kgwv1.ResourceSpec) {
	if c.resources == nil {
		c.resources = map[string]*kgwv1.ResourceSpec{}
	}
	c.resources[name] = p
}

// Context sets the free-form request context, visible to nodes as
// `context` (JSON-like values, as for Params).
func Context(ctx map[string]any) ExecOption {
	return func(c *execConfig) { c.context = ctx }
}

// Timeout overrides the workflow's timeout for this execution.
func Timeout(d time.Duration) ExecOption {
	return func(c *execConfig) {
		if d <= 0 {
			c.errs = append(c.errs, fmt.Errorf("timeout must be positive, got %v", d))
		}
		c.timeout = d
	}
}

// Version runs the given workflow version instead of the latest.
func Version(v int) ExecOption {
	return func(c *execConfig) {
		if v < 0 || v > math.MaxInt32 {
			c.errs = append(c.errs, fmt.Errorf("version %d out of range", v))
			return
		}
		c.version = int32(v)
	}
}

// IdempotencyKey makes a repeated request with the same key (per caller)
// attach to the first execution instead of running the workflow again.
func IdempotencyKey(key string) ExecOption {
	return func(c *execConfig) { c.idemKey = key }
}

// execRequest holds the fields shared by the three request messages.
type execRequest struct {
	params, context *structpb.Struct
	resources       map[string]*kgwv1.ResourceSpec
	timeout         *durationpb.Duration
	cfg             execConfig
}

func newExecRequest(opts []ExecOption) (*execRequest, error) {
	r := &execRequest{}
	for _, o := range opts {
		o(&r.cfg)
	}
	if err := errors.Join(r.cfg.errs...); err != nil {
		return nil, err
	}
	var err error
	if r.cfg.params != nil {
		if r.params, err = structpb.NewStruct(r.cfg.params); err != nil {
			return nil, fmt.Errorf("params: %w", err)
		}
	}
	if r.cfg.context != nil {
		if r.context, err = structpb.NewStruct(r.cfg.context); err != nil {
			return nil, fmt.Errorf("context: %w", err)
		}
	}
	if r.cfg.timeout > 0 {
		r.timeout = durationpb.New(r.cfg.timeout)
	}
	r.resources = r.cfg.resources
	return r, nil
}

func optionError(op string, err error) error {
	return fmt.Errorf("kgw %s: %w", op, err)
}

// Execute runs workflow name and waits for it to end. A workflow that fails
// is not a Go error: the Execution has Status "failed" and Error set (see
// Execution.Err). Errors are for bad requests, unknown workflows
// (ErrWorkflowNotFound), permission and overload. Bound the wait with ctx.
func (c *Client) Execute(ctx context.Context, name string, opts ...ExecOption) (*Execution, error) {
	r, err := newExecRequest(opts)
	if err != nil {
		return nil, optionError("ExecuteWorkflow", err)
	}
	resp, err := c.execs.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{
		Workflow: name, Version: r.cfg.version, Parameters: r.params, Resources: r.resources,
		Context: r.context, Timeout: r.timeout, IdempotencyKey: r.cfg.idemKey,
	})
	if err != nil {
		return nil, rpcError(ctx, "ExecuteWorkflow", err)
	}
	return executionFromProto(resp.GetExecution()), nil
}

// Start starts workflow name and returns the execution id at once. Follow it
// with Watch, GetExecution or CancelExecution.
func (c *Client) Start(ctx context.Context, name string, opts ...ExecOption) (string, error) {
	r, err := newExecRequest(opts)
	if err != nil {
		return "", optionError("StartExecution", err)
	}
	resp, err := c.execs.StartExecution(ctx, &kgwv1.StartExecutionRequest{
		Workflow: name, Version: r.cfg.version, Parameters: r.params, Resources: r.resources,
		Context: r.context, Timeout: r.timeout, IdempotencyKey: r.cfg.idemKey,
	})
	if err != nil {
		return "", rpcError(ctx, "StartExecution", err)
	}
	return resp.GetExecutionId(), nil
}

// Stream starts workflow name and yields its events as they happen, ending
// after the terminal event (Event.Terminal), which carries the final
// Execution. An error ends the sequence: it is yielded once with a nil
// event. Stopping the loop early cancels the call (the execution itself
// keeps running; cancel it with CancelExecution).
//
//	for ev, err := range c.Stream(ctx, "hello_db", opts...) {
//		if err != nil { return err }
//		fmt.Println(ev.Seq, ev.Kind, ev.NodeID)
//	}
func (c *Client) Stream(ctx context.Context, name string, opts ...ExecOption) iter.Seq2[*Event, error] {
	return func(yield func(*Event, error) bool) {
		r, err := newExecRequest(opts)
		if err != nil {
			yield(nil, optionError("StreamExecution", err))
			return
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := c.execs.StreamExecution(ctx, &kgwv1.StreamExecutionRequest{
			Workflow: name, Version: r.cfg.version, Parameters: r.params, Resources: r.resources,
			Context: r.context, Timeout: r.timeout, IdempotencyKey: r.cfg.idemKey,
		})
		if err != nil {
			yield(nil, rpcError(ctx, "StreamExecution", err))
			return
		}
		recvEvents(ctx, "StreamExecution", func() (*kgwv1.ExecutionEvent, error) {
			m, err := stream.Recv()
			return m.GetEvent(), err
		}, yield)
	}
}

// Watch yields the events of an existing execution with Seq greater than
// afterSeq (0 = from the start), live until the execution ends. After a
// broken stream, call Watch again with the last Seq seen: nothing is missed
// and nothing repeats. Errors and early stops behave as in Stream.
func (c *Client) Watch(ctx context.Context, executionID string, afterSeq int64) iter.Seq2[*Event, error] {
	return func(yield func(*Event, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := c.execs.WatchExecution(ctx, &kgwv1.WatchExecutionRequest{ExecutionId: executionID, AfterSeq: afterSeq})
		if err != nil {
			yield(nil, rpcError(ctx, "WatchExecution", err))
			return
		}
		recvEvents(ctx, "WatchExecution", func() (*kgwv1.ExecutionEvent, error) {
			m, err := stream.Recv()
			return m.GetEvent(), err
		}, yield)
	}
}

// recvEvents yields events from recv until the stream ends, the terminal
// event was yielded, an error was yielded, or yield returns false.
func recvEvents(ctx context.Context, op string, recv func() (*kgwv1.ExecutionEvent, error), yield func(*Event, error) bool) {
	for {
		p, err := recv()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			yield(nil, rpcError(ctx, op, err))
			return
		}
		if p == nil {
			continue
		}
		ev := eventFromProto(p)
		if !yield(ev, nil) || ev.Terminal() {
			return
		}
	}
}

// GetExecution returns the state of an execution. An unknown id gives an
// error matching ErrExecutionNotFound.
func (c *Client) GetExecution(ctx context.Context, executionID string) (*Execution, error) {
	resp, err := c.execs.GetExecution(ctx, &kgwv1.GetExecutionRequest{ExecutionId: executionID})
	if err != nil {
		return nil, rpcError(ctx, "GetExecution", err)
	}
	return executionFromProto(resp.GetExecution()), nil
}

// CancelExecution cancels an execution and returns its state after the
// cancellation; running nodes see their context cancelled.
func (c *Client) CancelExecution(ctx context.Context, executionID string) (*Execution, error) {
	resp, err := c.execs.CancelExecution(ctx, &kgwv1.CancelExecutionRequest{ExecutionId: executionID})
	if err != nil {
		return nil, rpcError(ctx, "CancelExecution", err)
	}
	return executionFromProto(resp.GetExecution()), nil
}

// ExecutionFilter selects executions for ListExecutions. The zero value
// selects all.
type ExecutionFilter struct {
	// Workflow, when set, keeps only executions of that workflow.
	Workflow string
	// Status, when set, keeps only executions in that state.
	Status Status
	// Caller, when set, keeps only executions started by that principal.
	Caller string
	// PageSize is the number of executions fetched per call (0 = the
	// gateway's default, 50).
	PageSize int
}

// ListExecutions yields the executions selected by filter, newest first,
// fetching pages as the loop advances. An error ends the sequence. The
// executions come without node results (Execution.Result is empty, the
// server's BASIC view); GetExecution returns an execution with them.
func (c *Client) ListExecutions(ctx context.Context, filter ExecutionFilter) iter.Seq2[*Execution, error] {
	return func(yield func(*Execution, error) bool) {
		st, ok := filter.Status.proto()
		if !ok {
			yield(nil, optionError("ListExecutions", fmt.Errorf("unknown status %q", filter.Status)))
			return
		}
		size, err := pageSize(filter.PageSize)
		if err != nil {
			yield(nil, optionError("ListExecutions", err))
			return
		}
		for p, err := range pages(ctx, "ListExecutions", func(token string) ([]*kgwv1.Execution, string, error) {
			resp, err := c.execs.ListExecutions(ctx, &kgwv1.ListExecutionsRequest{
				Workflow: filter.Workflow, Status: st, Caller: filter.Caller, PageSize: size, PageToken: token,
			})
			return resp.GetExecutions(), resp.GetNextPageToken(), err
		}) {
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(executionFromProto(p), nil) {
				return
			}
		}
	}
}
