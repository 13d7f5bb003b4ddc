package server

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
	"github.com/kailash-gateway/kgw/resources"
	"github.com/kailash-gateway/kgw/server/pagetoken"
	"github.com/kailash-gateway/kgw/store"
)

// errNoBroker answers ListPools and CheckResource on a Server without a
// broker (UNIMPLEMENTED).
var errNoBroker = errors.New("this gateway has no resource broker")

// resourceStore is the part of store.Store the resource service uses.
type resourceStore interface {
	PutResource(ctx context.Context, r *store.Resource) (*store.Resource, error)
	GetResource(ctx context.Context, name string) (*store.Resource, error)
	ListResources(ctx context.Context, page store.Page) ([]*store.Resource, string, error)
	DeleteResource(ctx context.Context, name string) error
}

// poolBroker is the part of *resources.Broker the resource service uses.
type poolBroker interface {
	Pools() []resources.PoolStats
	Check(ctx context.Context, spec store.ResourceSpec) error
}

// resourceService implements kgw.v1.ResourceService: named resources in
// the store, live pools and health checks through the broker (nil broker:
// ListPools and CheckResource answer UNIMPLEMENTED).
type resourceService struct {
	kgwv1.UnimplementedResourceServiceServer

	store          resourceStore
	broker         poolBroker
	pages          *pagetoken.Codec
	inlineDisabled bool
	log            *slog.Logger
	guard          *guard
}

// withGrant fills a resource's creator and allowed callers from its grant.
func (s *resourceService) withGrant(ctx context.Context, pr *kgwv1.Resource) (*kgwv1.Resource, error) {
	gr, err := s.guard.grant(ctx, store.GrantResource, pr.GetName())
	if err != nil {
		return nil, err
	}
	if gr != nil {
		pr.Creator, pr.AllowedCallers = gr.Creator, gr.AllowedCallers
	}
	return pr, nil
}

const (
	listResourcesScope = "kgw.v1.ResourceService/ListResources"
	listPoolsScope     = "kgw.v1.ResourceService/ListPools"
	// defaultCheckTimeout bounds CheckResource when the caller sets no
	// deadline.
	defaultCheckTimeout = 30 * time.Second
)

func (s *resourceService) PutResource(ctx context.Context, req *kgwv1.PutResourceRequest) (*kgwv1.PutResourceResponse, error) {
	var v validationErrors
	validateNamedResourceName(&v, "name", req.GetName())
	validateSpec(&v, "spec", req.GetSpec(), true, false)
	checkCallers(&v, "allowed_callers", req.GetAllowedCallers())
	if len(v) > 0 {
		return nil, &invalidError{reason: ReasonInvalidRequest, violations: v}
	}
	p := callerOf(ctx)
	gr, err := s.guard.grant(ctx, store.GrantResource, req.GetName())
	if err != nil {
		return nil, err
	}
	if _, err := s.store.GetResource(ctx, req.GetName()); err == nil {
		if err := s.guard.mayChange(ctx, p, store.GrantResource, req.GetName(), gr); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	// No leak through indirection: a named resource lends its secret to
	// everyone granted the resource, so storing one needs a grant on the
	// secret.
	if ref := req.GetSpec().GetCredentialsRef(); ref != "" {
		if err := s.guard.useSecret(ctx, p, ref); err != nil {
			return nil, err
		}
	}
	r, err := s.store.PutResource(ctx, &store.Resource{Name: req.GetName(), Spec: specFromProto(req.GetSpec())})
	if err != nil {
		return nil, err
	}
	if gr, err = s.guard.recordGrant(ctx, store.GrantResource, r.Name, p.Name, req.GetAllowedCallers()); err != nil {
		return nil, err
	}
	pr, err := resourceToProto(r)
	if err != nil {
		return nil, err
	}
	pr.Creator, pr.AllowedCallers = gr.Creator, gr.AllowedCallers
	s.log.InfoContext(ctx, "resource stored", "resource", r.Name, "type", r.Spec.Type, "principal", p.Name)
	return &kgwv1.PutResourceResponse{Resource: pr}, nil
}

func (s *resourceService) GetResource(ctx context.Context, req *kgwv1.GetResourceRequest) (*kgwv1.GetResourceResponse, error) {
	if err := checkNamedResource(req.GetName()); err != nil {
		return nil, err
	}
	r, err := s.store.GetResource(ctx, req.GetName())
	if err != nil {
		return nil, resourceNotFound(err, req.GetName())
	}
	pr, err := resourceToProto(r)
	if err != nil {
		return nil, err
	}
	if pr, err = s.withGrant(ctx, pr); err != nil {
		return nil, err
	}
	return &kgwv1.GetResourceResponse{Resource: pr}, nil
}

func (s *resourceService) ListResources(ctx context.Context, req *kgwv1.ListResourcesRequest) (*kgwv1.ListResourcesResponse, error) {
	limit, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	cursor, err := decodePageToken(s.pages, req.GetPageToken(), listResourcesScope)
	if err != nil {
		return nil, err
	}
	items, next, err := s.store.ListResources(ctx, store.Page{After: cursor, Limit: limit})
	if err != nil {
		return nil, err
	}
	resp := &kgwv1.ListResourcesResponse{Resources: make([]*kgwv1.Resource, 0, len(items))}
	for _, r := range items {
		pr, err := resourceToProto(r)
		if err != nil {
			return nil, err
		}
		if pr, err = s.withGrant(ctx, pr); err != nil {
			return nil, err
		}
		resp.Resources = append(resp.Resources, pr)
	}
	if resp.NextPageToken, err = s.pages.Encode(next, listResourcesScope); err != nil {
		return nil, err
	}
	return resp, nil
}

func (s *resourceService) DeleteResource(ctx context.Context, req *kgwv1.DeleteResourceRequest) (*kgwv1.DeleteResourceResponse, error) {
	if err := checkNamedResource(req.GetName()); err != nil {
		return nil, err
	}
	gr, err := s.guard.grant(ctx, store.GrantResource, req.GetName())
	if err != nil {
		return nil, err
	}
	if err := s.guard.mayChange(ctx, callerOf(ctx), store.GrantResource, req.GetName(), gr); err != nil {
		return nil, err
	}
	if err := s.store.DeleteResource(ctx, req.GetName()); err != nil {
		return nil, resourceNotFound(err, req.GetName())
	}
	if err := s.guard.deleteGrant(ctx, store.GrantResource, req.GetName()); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "resource deleted", "resource", req.GetName())
	return &kgwv1.DeleteResourceResponse{}, nil
}

// ListPools pages through the live pools ordered by key; the cursor is the
// last key of the page. Pools come and go between pages; each page is a
// fresh snapshot after the cursor.
func (s *resourceService) ListPools(ctx context.Context, req *kgwv1.ListPoolsRequest) (*kgwv1.ListPoolsResponse, error) {
	if s.broker == nil {
		return nil, errNoBroker
	}
	limit, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	cursor, err := decodePageToken(s.pages, req.GetPageToken(), listPoolsScope)
	if err != nil {
		return nil, err
	}
	pools := s.broker.Pools()
	sort.Slice(pools, func(i, j int) bool { return pools[i].Key < pools[j].Key })
	start := sort.Search(len(pools), func(i int) bool { return pools[i].Key > cursor })
	pools = pools[start:]
	next := ""
	if len(pools) > limit {
		pools = pools[:limit]
		next = pools[limit-1].Key
	}
	resp := &kgwv1.ListPoolsResponse{Pools: make([]*kgwv1.Pool, 0, len(pools))}
	for _, p := range pools {
		resp.Pools = append(resp.Pools, poolToProto(p))
	}
	if resp.NextPageToken, err = s.pages.Encode(next, listPoolsScope); err != nil {
		return nil, err
	}
	return resp, nil
}

// CheckResource connects with a named resource or an inline spec and
// reports whether it answers. A failed connection is a normal response
// (healthy = false); the message comes from the broker, which removes
// secret values from it.
func (s *resourceService) CheckResource(ctx context.Context, req *kgwv1.CheckResourceRequest) (*kgwv1.CheckResourceResponse, error) {
	if s.broker == nil {
		return nil, errNoBroker
	}
	var spec store.ResourceSpec
	switch t := req.GetTarget().(type) {
	case *kgwv1.CheckResourceRequest_Name:
		if err := checkNamedResource(t.Name); err != nil {
			return nil, err
		}
		if _, err := s.guard.useResource(ctx, callerOf(ctx), t.Name); err != nil {
			return nil, resourceNotFound(err, t.Name)
		}
		spec = store.ResourceSpec{Ref: t.Name}
	case *kgwv1.CheckResourceRequest_Spec:
		var v validationErrors
		validateSpec(&v, "spec", t.Spec, false, s.inlineDisabled)
		if len(v) > 0 {
			return nil, &invalidError{reason: ReasonInvalidRequest, violations: v}
		}
		spec = specFromProto(t.Spec)
		if spec.CredentialsRef != "" {
			if err := s.guard.useSecret(ctx, callerOf(ctx), spec.CredentialsRef); err != nil {
				return nil, err
			}
		}
	default:
		return nil, invalid(ReasonInvalidRequest, "target", "give name or spec")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultCheckTimeout)
		defer cancel()
	}
	start := time.Now()
	err := s.broker.Check(ctx, spec)
	resp := &kgwv1.CheckResourceResponse{Healthy: err == nil, Latency: durationpb.New(time.Since(start)), Message: "ok"}
	if err != nil {
		resp.Message = err.Error()
	}
	return resp, nil
}

func poolToProto(p resources.PoolStats) *kgwv1.Pool {
	return &kgwv1.Pool{
		Key:           p.Key,
		Type:          p.Type,
		Target:        p.Target,
		SecretName:    p.Secret,
		SecretVersion: p.SecretVersion,
		Size:          int32(p.Size),
		Idle:          int32(p.Idle),
		InUse:         int32(p.InUse),
		MaxSize:       int32(p.Max),
		AcquireCount:  p.Acquires,
		AcquireWait:   durationpb.New(p.AcquireWait),
		ErrorCount:    p.Errors,
		LastError:     p.LastError,
		Draining:      p.Retired,
	}
}

func checkNamedResource(name string) error {
	var v validationErrors
	validateNamedResourceName(&v, "name", name)
	if len(v) > 0 {
		return &invalidError{reason: ReasonInvalidRequest, violations: v}
	}
	return nil
}

func resourceNotFound(err error, name string) error {
	return notFound(err, ReasonResourceNotFound, "resource '%s' not found", name)
}
