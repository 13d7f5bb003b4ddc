package server

import (
	"context"
	"errors"
	"go.opentelemetry.io/otel/trace"
	"io"
	"log/slog"
	"regexp"
	"strconv"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/kailash-gateway/kgw/access"
	"github.com/kailash-gateway/kgw/executor"
	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
	"github.com/kailash-gateway/kgw/server/pagetoken"
	"github.com/kailash-gateway/kgw/store"
)

// executionRunner is the part of *executor.Executor the execution service
// uses.
type executionRunner interface {
	Execute(ctx context.Context, req *executor.Request) (*store.Execution, error)
	Start(ctx context.Context, req *executor.Request) (string, error)
	Subscribe(ctx context.Context, id string, afterSeq int64) (*executor.Subscription, error)
	Get(ctx context.Context, id string) (*store.Execution, error)
	Cancel(ctx context.Context, id string) (*store.Execution, error)
}

// executionStore is the part of store.Store the execution service uses.
type executionStore interface {
	ListExecutions(ctx context.Context, q store.ExecutionQuery) ([]*store.Execution, string, error)
}

// executionService implements kgw.v1.ExecutionService over an executor.
type executionService struct {
	kgwv1.UnimplementedExecutionServiceServer

	store          executionStore
	workflows      *workflowCache
	exec           executionRunner
	pages          *pagetoken.Codec
	inlineDisabled bool
	log            *slog.Logger
	guard          *guard
	telemetry      *Telemetry
}

// seesAll reports whether p sees every execution; callers with only the
// executor role see their own.
func seesAll(p *access.Principal) bool {
	return p.HasAny(access.RoleAdmin, access.RoleOperator, access.RoleDeveloper, access.RoleViewer)
}

// own checks that the caller may see execution id: NOT_FOUND, with the
// message of an unknown id, when it is another caller's.
func (s *executionService) own(ctx context.Context, id string) error {
	p := callerOf(ctx)
	if seesAll(p) {
		return nil
	}
	x, err := s.exec.Get(ctx, id)
	if err != nil {
		return executionNotFound(err, id)
	}
	if x.Caller != p.Name {
		return executionNotFound(store.ErrNotFound, id)
	}
	return nil
}

const listExecutionsScope = "kgw.v1.ExecutionService/ListExecutions"

var executionIDRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,128}$`)

// runRequest is what ExecuteWorkflow, StartExecution and StreamExecution
// requests have in common.
type runRequest interface {
	GetWorkflow() string
	GetVersion() int32
	GetParameters() *structpb.Struct
	GetResources() map[string]*kgwv1.ResourceSpec
	GetContext() *structpb.Struct
	GetTimeout() *durationpb.Duration
	GetIdempotencyKey() string
}

// request validates r, loads the workflow version it names, checks the
// caller's grants on the workflow and on every secret and named resource
// the request references (PERMISSION_DENIED before anything runs), and
// builds the executor request. It also returns the secrets the execution
// will use, for the audit log.
func (s *executionService) request(ctx context.Context, r runRequest) (*executor.Request, []string, error) {
	var v validationErrors
	validateWorkflowName(&v, "workflow", r.GetWorkflow())
	if r.GetVersion() < 0 {
		v.add("version", "%d is negative: want 0 (latest) or a version number", r.GetVersion())
	}
	checkStructDepth(&v, "parameters", r.GetParameters())
	checkStructDepth(&v, "context", r.GetContext())
	validateRequestResources(&v, r.GetResources(), s.inlineDisabled)
	checkDuration(&v, "timeout", r.GetTimeout(), maxWorkflowTimeout)
	if len(r.GetIdempotencyKey()) > maxIdempotencyKey {
		v.add("idempotency_key", "longer than %d bytes", maxIdempotencyKey)
	}
	if len(v) > 0 {
		return nil, nil, &invalidError{reason: ReasonInvalidRequest, violations: v}
	}
	w, err := s.workflows.GetWorkflow(ctx, r.GetWorkflow(), r.GetVersion())
	if err != nil {
		if r.GetVersion() != 0 {
			return nil, nil, notFound(err, ReasonWorkflowNotFound, "workflow '%s' version %d not found", r.GetWorkflow(), r.GetVersion())
		}
		return nil, nil, notFound(err, ReasonWorkflowNotFound, "workflow '%s' not found", r.GetWorkflow())
	}
	p := callerOf(ctx)
	if s.guard.required {
		gr, err := s.guard.grant(ctx, store.GrantWorkflow, w.Name)
		if err != nil {
			return nil, nil, err
		}
		if !access.MayExecute(p, gr) {
			s.guard.auditDenied(ctx, p, "workflow", w.Name)
			return nil, nil, denied("workflow '%s' is not granted to %s", w.Name, p.Name)
		}
	}
	req := &executor.Request{
		Workflow:       w,
		Parameters:     structToMap(r.GetParameters()),
		Context:        structToMap(r.GetContext()),
		Timeout:        durationFromProto(r.GetTimeout()),
		IdempotencyKey: r.GetIdempotencyKey(),
		Caller:         p.Name,
		Trace:          trace.SpanContextFromContext(ctx),
	}
	if req.IdempotencyKey != "" {
		req.Fingerprint = requestFingerprint(r)
	}
	if len(r.GetResources()) > 0 {
		req.Resources = make(map[string]store.ResourceSpec, len(r.GetResources()))
		for name, spec := range r.GetResources() {
			req.Resources[name] = specFromProto(spec)
		}
	}
	used, err := s.guard.useSpecs(ctx, p, req.Resources)
	if err != nil {
		return nil, nil, err
	}
	return req, used, nil
}

func (s *executionService) ExecuteWorkflow(ctx context.Context, req *kgwv1.ExecuteWorkflowRequest) (*kgwv1.ExecuteWorkflowResponse, error) {
	xr, used, err := s.request(ctx, req)
	if err != nil {
		return nil, err
	}
	// Run on this goroutine, one of gRPC's stream workers (see
	// streamWorkers): a caller whose context ends has gone, so nobody
	// waits for the earlier return that a run on an executor worker allows.
	xr.OnCaller = true
	x, err := s.exec.Execute(ctx, xr)
	if err != nil {
		return nil, err
	}
	s.guard.auditSecretUse(ctx, callerOf(ctx), x.ID, used)
	px, err := executionToProto(x)
	if err != nil {
		return nil, err
	}
	return &kgwv1.ExecuteWorkflowResponse{Execution: px}, nil
}

func (s *executionService) StartExecution(ctx context.Context, req *kgwv1.StartExecutionRequest) (*kgwv1.StartExecutionResponse, error) {
	xr, used, err := s.request(ctx, req)
	if err != nil {
		return nil, err
	}
	xr.TraceLink = true // the run outlives this call
	id, err := s.exec.Start(ctx, xr)
	if err != nil {
		return nil, err
	}
	s.guard.auditSecretUse(ctx, callerOf(ctx), id, used)
	return &kgwv1.StartExecutionResponse{ExecutionId: id}, nil
}

// StreamExecution starts the execution, then subscribes from seq 0: the
// subscription replays what already happened, so no event is missed.
func (s *executionService) StreamExecution(req *kgwv1.StreamExecutionRequest, stream kgwv1.ExecutionService_StreamExecutionServer) error {
	ctx := stream.Context()
	xr, used, err := s.request(ctx, req)
	if err != nil {
		return err
	}
	id, err := s.exec.Start(ctx, xr)
	if err != nil {
		return err
	}
	s.guard.auditSecretUse(ctx, callerOf(ctx), id, used)
	return s.follow(ctx, id, 0, func(ev *kgwv1.ExecutionEvent) error {
		return stream.Send(&kgwv1.StreamExecutionResponse{Event: ev})
	})
}

func (s *executionService) WatchExecution(req *kgwv1.WatchExecutionRequest, stream kgwv1.ExecutionService_WatchExecutionServer) error {
	ctx := stream.Context()
	var v validationErrors
	validateExecutionID(&v, req.GetExecutionId())
	if req.GetAfterSeq() < 0 {
		v.add("after_seq", "%d is negative: want 0 (from the start) or the last seq received", req.GetAfterSeq())
	}
	if len(v) > 0 {
		return &invalidError{reason: ReasonInvalidRequest, violations: v}
	}
	if err := s.own(ctx, req.GetExecutionId()); err != nil {
		return err
	}
	return s.follow(ctx, req.GetExecutionId(), req.GetAfterSeq(), func(ev *kgwv1.ExecutionEvent) error {
		return stream.Send(&kgwv1.WatchExecutionResponse{Event: ev})
	})
}

// follow sends the events of execution id with seq > after until the
// terminal event. Only the calling (handler) goroutine sends. A subscriber
// that falls behind ends with the executor's *LaggingError, which becomes
// RESOURCE_EXHAUSTED / WATCH_LAGGING naming the seq to resume after.
func (s *executionService) follow(ctx context.Context, id string, after int64, send func(*kgwv1.ExecutionEvent) error) error {
	sub, err := s.exec.Subscribe(ctx, id, after)
	if err != nil {
		return executionNotFound(err, id)
	}
	defer sub.Close()
	defer s.telemetry.subscribed()()
	for {
		ev, err := sub.Next(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		pev, err := eventToProto(ev)
		if err != nil {
			return err
		}
		if err := send(pev); err != nil {
			return err
		}
	}
}

func (s *executionService) GetExecution(ctx context.Context, req *kgwv1.GetExecutionRequest) (*kgwv1.GetExecutionResponse, error) {
	var v validationErrors
	validateExecutionID(&v, req.GetExecutionId())
	view := checkView(&v, req.GetView(), kgwv1.ExecutionView_EXECUTION_VIEW_FULL)
	if len(v) > 0 {
		return nil, &invalidError{reason: ReasonInvalidRequest, violations: v}
	}
	x, err := s.exec.Get(ctx, req.GetExecutionId())
	if err != nil {
		return nil, executionNotFound(err, req.GetExecutionId())
	}
	if p := callerOf(ctx); !seesAll(p) && x.Caller != p.Name {
		return nil, executionNotFound(store.ErrNotFound, req.GetExecutionId())
	}
	px, err := executionViewToProto(x, view)
	if err != nil {
		return nil, err
	}
	return &kgwv1.GetExecutionResponse{Execution: px}, nil
}

// checkView validates an ExecutionView field and returns the view it
// selects (def for UNSPECIFIED).
func checkView(v *validationErrors, view, def kgwv1.ExecutionView) kgwv1.ExecutionView {
	switch view {
	case kgwv1.ExecutionView_EXECUTION_VIEW_UNSPECIFIED:
		return def
	case kgwv1.ExecutionView_EXECUTION_VIEW_BASIC, kgwv1.ExecutionView_EXECUTION_VIEW_FULL:
		return view
	}
	v.add("view", "%d is not an execution view: want BASIC or FULL", int32(view))
	return def
}

// maxListBytes bounds the encoded executions of one ListExecutions
// response, below the 64 MiB default send limit: a FULL page of large
// executions is cut short (with a next_page_token) instead of failing.
const maxListBytes = 48 << 20

func (s *executionService) ListExecutions(ctx context.Context, req *kgwv1.ListExecutionsRequest) (*kgwv1.ListExecutionsResponse, error) {
	var v validationErrors
	if req.GetWorkflow() != "" {
		validateWorkflowName(&v, "workflow", req.GetWorkflow())
	}
	caller := req.GetCaller()
	if len(caller) > 512 {
		v.add("caller", "longer than 512 bytes")
	}
	if p := callerOf(ctx); !seesAll(p) {
		if caller != "" && caller != p.Name {
			v.add("caller", "callers with the executor role list only their own executions (%s)", p.Name)
		}
		caller = p.Name
	}
	if st := req.GetStatus(); st < kgwv1.ExecutionStatus_EXECUTION_STATUS_UNSPECIFIED || st > kgwv1.ExecutionStatus_EXECUTION_STATUS_TIMED_OUT {
		v.add("status", "%d is not an execution status", int32(st))
	}
	view := checkView(&v, req.GetView(), kgwv1.ExecutionView_EXECUTION_VIEW_BASIC)
	if len(v) > 0 {
		return nil, &invalidError{reason: ReasonInvalidRequest, violations: v}
	}
	limit, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	bind := []string{listExecutionsScope, req.GetWorkflow(), strconv.Itoa(int(req.GetStatus())), view.String(), caller}
	cursor, err := decodePageToken(s.pages, req.GetPageToken(), bind...)
	if err != nil {
		return nil, err
	}
	q := store.ExecutionQuery{
		Workflow:    req.GetWorkflow(),
		Status:      store.ExecutionStatus(req.GetStatus()),
		Caller:      caller,
		OmitResults: view != kgwv1.ExecutionView_EXECUTION_VIEW_FULL,
	}
	resp := &kgwv1.ListExecutionsResponse{}
	if q.OmitResults {
		q.Page = store.Page{After: cursor, Limit: limit}
		items, next, err := s.store.ListExecutions(ctx, q)
		if err != nil {
			return nil, err
		}
		resp.Executions = make([]*kgwv1.Execution, 0, len(items))
		for _, it := range items {
			px, err := executionViewToProto(it, view)
			if err != nil {
				return nil, err
			}
			resp.Executions = append(resp.Executions, px)
		}
		cursor = next
	} else if cursor, err = s.listFull(ctx, q, cursor, limit, resp); err != nil {
		return nil, err
	}
	if resp.NextPageToken, err = s.pages.Encode(cursor, bind...); err != nil {
		return nil, err
	}
	return resp, nil
}

// fullChunk is how many executions with results listFull reads at a time:
// at most 16 MiB of results each by default, so a few at a time keep the
// memory a FULL page takes near its size limit.
const fullChunk = 3

// listFull adds to resp up to limit executions of q, with their results,
// after cursor, stopping before the response would pass maxListBytes (but
// with one execution at least), and returns the cursor after the last one
// added ("" at the end). It reads fullChunk executions at a time; a chunk
// that does not fit whole is read again with as many as fit, so that its
// cursor follows the last execution returned.
func (s *executionService) listFull(ctx context.Context, q store.ExecutionQuery, cursor string, limit int, resp *kgwv1.ListExecutionsResponse) (string, error) {
	size := 0
	for len(resp.Executions) < limit {
		q.Page = store.Page{After: cursor, Limit: min(fullChunk, limit-len(resp.Executions))}
		items, next, err := s.store.ListExecutions(ctx, q)
		if err != nil {
			return "", err
		}
		converted := make([]*kgwv1.Execution, 0, len(items))
		fit := 0
		for _, it := range items {
			px, err := executionViewToProto(it, kgwv1.ExecutionView_EXECUTION_VIEW_FULL)
			if err != nil {
				return "", err
			}
			n := proto.Size(px)
			if size+n > maxListBytes && (len(resp.Executions) > 0 || fit > 0) {
				break
			}
			size += n
			fit++
			converted = append(converted, px)
		}
		if fit == len(items) {
			resp.Executions = append(resp.Executions, converted...)
			if cursor = next; next == "" {
				return "", nil
			}
			continue
		}
		if fit == 0 {
			return cursor, nil // the next page starts with this chunk
		}
		// Part of the chunk fits: take that part again, with its cursor.
		q.Page.Limit = fit
		if items, next, err = s.store.ListExecutions(ctx, q); err != nil {
			return "", err
		}
		for _, it := range items {
			px, err := executionViewToProto(it, kgwv1.ExecutionView_EXECUTION_VIEW_FULL)
			if err != nil {
				return "", err
			}
			resp.Executions = append(resp.Executions, px)
		}
		return next, nil
	}
	return cursor, nil
}

func (s *executionService) CancelExecution(ctx context.Context, req *kgwv1.CancelExecutionRequest) (*kgwv1.CancelExecutionResponse, error) {
	if err := checkExecutionID(req.GetExecutionId()); err != nil {
		return nil, err
	}
	if err := s.own(ctx, req.GetExecutionId()); err != nil {
		return nil, err
	}
	x, err := s.exec.Cancel(ctx, req.GetExecutionId())
	if err != nil {
		return nil, executionNotFound(err, req.GetExecutionId())
	}
	px, err := executionToProto(x)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "execution cancelled", "execution_id", x.ID, "status", px.GetStatus().String())
	return &kgwv1.CancelExecutionResponse{Execution: px}, nil
}

func validateExecutionID(v *validationErrors, id string) {
	switch {
	case id == "":
		v.add("execution_id", "required")
	case !executionIDRE.MatchString(id):
		v.add("execution_id", "%q is not an execution id", clip(id))
	}
}

func checkExecutionID(id string) error {
	var v validationErrors
	validateExecutionID(&v, id)
	if len(v) > 0 {
		return &invalidError{reason: ReasonInvalidRequest, violations: v}
	}
	return nil
}

func executionNotFound(err error, id string) error {
	return notFound(err, ReasonExecutionNotFound, "execution '%s' not found", id)
}
