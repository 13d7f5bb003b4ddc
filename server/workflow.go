package server

import (
	"context"
	"errors"
	"log/slog"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
	"github.com/kailash-gateway/kgw/server/pagetoken"
	"github.com/kailash-gateway/kgw/store"
)

// workflowStore is the part of store.Store the workflow service uses.
type workflowStore interface {
	CreateWorkflowVersion(ctx context.Context, w *store.Workflow) (*store.Workflow, error)
	GetWorkflow(ctx context.Context, name string, version int32) (*store.Workflow, error)
	ListWorkflows(ctx context.Context, page store.Page) ([]*store.WorkflowSummary, string, error)
	DeleteWorkflow(ctx context.Context, name string) error
}

// workflowService implements kgw.v1.WorkflowService.
type workflowService struct {
	kgwv1.UnimplementedWorkflowServiceServer

	store   workflowStore
	cache   *workflowCache // forgets what this service changes
	compile CompileFunc
	pages   *pagetoken.Codec
	log     *slog.Logger
	guard   *guard
}

const listWorkflowsScope = "kgw.v1.WorkflowService/ListWorkflows"

func (s *workflowService) RegisterWorkflow(ctx context.Context, req *kgwv1.RegisterWorkflowRequest) (*kgwv1.RegisterWorkflowResponse, error) {
	var v validationErrors
	checkCallers(&v, "workflow.allowed_callers", req.GetWorkflow().GetAllowedCallers())
	if len(v) > 0 {
		return nil, &invalidError{reason: ReasonInvalidWorkflow, violations: v}
	}
	if err := validateWorkflow(req.GetWorkflow(), s.compile); err != nil {
		return nil, err
	}
	p := callerOf(ctx)
	name := req.GetWorkflow().GetName()
	gr, err := s.guard.grant(ctx, store.GrantWorkflow, name)
	if err != nil {
		return nil, err
	}
	if _, err := s.store.GetWorkflow(ctx, name, 0); err == nil {
		if err := s.guard.mayChange(ctx, p, store.GrantWorkflow, name, gr); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if req.GetValidateOnly() {
		// Everything was checked; answer with the definition as it would be
		// stored, without storing it.
		pw := workflowToProto(workflowFromProto(req.GetWorkflow()))
		pw.Version, pw.CreateTime = 0, nil
		pw.Creator, pw.AllowedCallers = p.Name, req.GetWorkflow().GetAllowedCallers()
		if gr != nil && gr.Creator != "" {
			pw.Creator = gr.Creator
		}
		return &kgwv1.RegisterWorkflowResponse{Workflow: pw}, nil
	}
	stored, err := s.store.CreateWorkflowVersion(ctx, workflowFromProto(req.GetWorkflow()))
	if err != nil {
		return nil, err
	}
	s.cache.forget(stored.Name)
	if gr, err = s.guard.recordGrant(ctx, store.GrantWorkflow, stored.Name, p.Name, req.GetWorkflow().GetAllowedCallers()); err != nil {
		return nil, err
	}
	pw := workflowToProto(stored)
	pw.Creator, pw.AllowedCallers = gr.Creator, gr.AllowedCallers
	s.log.InfoContext(ctx, "workflow registered", "workflow", stored.Name, "version", stored.Version, "nodes", len(stored.Nodes), "principal", p.Name)
	return &kgwv1.RegisterWorkflowResponse{Workflow: pw}, nil
}

func (s *workflowService) GetWorkflow(ctx context.Context, req *kgwv1.GetWorkflowRequest) (*kgwv1.GetWorkflowResponse, error) {
	var v validationErrors
	validateWorkflowName(&v, "name", req.GetName())
	if req.GetVersion() < 0 {
		v.add("version", "%d is negative: want 0 (latest) or a version number", req.GetVersion())
	}
	if len(v) > 0 {
		return nil, &invalidError{reason: ReasonInvalidRequest, violations: v}
	}
	w, err := s.store.GetWorkflow(ctx, req.GetName(), req.GetVersion())
	if err != nil {
		if req.GetVersion() != 0 {
			return nil, notFound(err, ReasonWorkflowNotFound, "workflow '%s' version %d not found", req.GetName(), req.GetVersion())
		}
		return nil, notFound(err, ReasonWorkflowNotFound, "workflow '%s' not found", req.GetName())
	}
	pw := workflowToProto(w)
	gr, err := s.guard.grant(ctx, store.GrantWorkflow, w.Name)
	if err != nil {
		return nil, err
	}
	if gr != nil {
		pw.Creator, pw.AllowedCallers = gr.Creator, gr.AllowedCallers
	}
	return &kgwv1.GetWorkflowResponse{Workflow: pw}, nil
}

func (s *workflowService) ListWorkflows(ctx context.Context, req *kgwv1.ListWorkflowsRequest) (*kgwv1.ListWorkflowsResponse, error) {
	limit, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	cursor, err := decodePageToken(s.pages, req.GetPageToken(), listWorkflowsScope)
	if err != nil {
		return nil, err
	}
	items, next, err := s.store.ListWorkflows(ctx, store.Page{After: cursor, Limit: limit})
	if err != nil {
		return nil, err
	}
	resp := &kgwv1.ListWorkflowsResponse{Workflows: make([]*kgwv1.WorkflowSummary, 0, len(items))}
	for _, it := range items {
		ps := workflowSummaryToProto(it)
		gr, err := s.guard.grant(ctx, store.GrantWorkflow, it.Name)
		if err != nil {
			return nil, err
		}
		if gr != nil {
			ps.Creator = gr.Creator
		}
		resp.Workflows = append(resp.Workflows, ps)
	}
	if resp.NextPageToken, err = s.pages.Encode(next, listWorkflowsScope); err != nil {
		return nil, err
	}
	return resp, nil
}

func (s *workflowService) DeleteWorkflow(ctx context.Context, req *kgwv1.DeleteWorkflowRequest) (*kgwv1.DeleteWorkflowResponse, error) {
	var v validationErrors
	validateWorkflowName(&v, "name", req.GetName())
	if len(v) > 0 {
		return nil, &invalidError{reason: ReasonInvalidRequest, violations: v}
	}
	gr, err := s.guard.grant(ctx, store.GrantWorkflow, req.GetName())
	if err != nil {
		return nil, err
	}
	if err := s.guard.mayChange(ctx, callerOf(ctx), store.GrantWorkflow, req.GetName(), gr); err != nil {
		return nil, err
	}
	err = s.store.DeleteWorkflow(ctx, req.GetName())
	s.cache.forget(req.GetName())
	if err != nil {
		return nil, notFound(err, ReasonWorkflowNotFound, "workflow '%s' not found", req.GetName())
	}
	if err := s.guard.deleteGrant(ctx, store.GrantWorkflow, req.GetName()); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "workflow deleted", "workflow", req.GetName())
	return &kgwv1.DeleteWorkflowResponse{}, nil
}
