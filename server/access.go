package server

import (
	"context"
	"errors"
	"log/slog"
	"regexp"
	"time"

	"github.com/kailash-gateway/kgw/access"
	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
	"github.com/kailash-gateway/kgw/server/pagetoken"
	"github.com/kailash-gateway/kgw/store"
)

// errNoAccess answers AccessService RPCs (but WhoAmI) on a Server without
// an authenticator (UNIMPLEMENTED).
var errNoAccess = errors.New("this gateway has no access control store")

// accessService implements kgw.v1.AccessService. Its RPCs but WhoAmI need
// admin (see rules); audit lines name the principal and the key or binding
// id, never a key.
type accessService struct {
	kgwv1.UnimplementedAccessServiceServer

	auth  *access.Authenticator // nil: UNIMPLEMENTED
	pages *pagetoken.Codec
	log   *slog.Logger
}

const (
	listAPIKeysScope      = "kgw.v1.AccessService/ListApiKeys"
	listRoleBindingsScope = "kgw.v1.AccessService/ListRoleBindings"
)

var (
	keyIDRE     = regexp.MustCompile(`^[0-9a-f]{16}$`)
	bindingIDRE = regexp.MustCompile(`^[0-9a-f]{16}$`)
)

func (s *accessService) CreateApiKey(ctx context.Context, req *kgwv1.CreateApiKeyRequest) (*kgwv1.CreateApiKeyResponse, error) {
	if s.auth == nil {
		return nil, errNoAccess
	}
	var v validationErrors
	if err := access.CheckKeyName(req.GetName()); err != nil {
		v.add("name", "%s", err.Error())
	}
	if err := access.CheckRoles(req.GetRoles()); err != nil {
		v.add("roles", "%s", err.Error())
	}
	if t := req.GetExpireTime(); t != nil && t.CheckValid() != nil {
		v.add("expire_time", "malformed timestamp")
	} else if t != nil && !t.AsTime().After(time.Now()) {
		v.add("expire_time", "not in the future")
	}
	if len(v) > 0 {
		return nil, &invalidError{reason: ReasonInvalidRequest, violations: v}
	}
	p := callerOf(ctx)
	k, key, err := s.auth.Keys.Create(ctx, access.CreateRequest{
		Name: req.GetName(), Roles: req.GetRoles(), ExpireTime: timestampOrZero(req.GetExpireTime()), Creator: p.Name,
	})
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "audit: api key created", "principal", p.Name, "key_id", k.ID, "name", k.Name, "roles", k.Roles)
	return &kgwv1.CreateApiKeyResponse{ApiKey: apiKeyToProto(k), Key: key}, nil
}

func (s *accessService) ListApiKeys(ctx context.Context, req *kgwv1.ListApiKeysRequest) (*kgwv1.ListApiKeysResponse, error) {
	if s.auth == nil {
		return nil, errNoAccess
	}
	limit, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	cursor, err := decodePageToken(s.pages, req.GetPageToken(), listAPIKeysScope)
	if err != nil {
		return nil, err
	}
	keys, next, err := s.auth.Keys.List(ctx, store.Page{After: cursor, Limit: limit})
	if err != nil {
		return nil, err
	}
	resp := &kgwv1.ListApiKeysResponse{ApiKeys: make([]*kgwv1.ApiKey, 0, len(keys))}
	for _, k := range keys {
		resp.ApiKeys = append(resp.ApiKeys, apiKeyToProto(k))
	}
	if resp.NextPageToken, err = s.pages.Encode(next, listAPIKeysScope); err != nil {
		return nil, err
	}
	return resp, nil
}

func (s *accessService) RevokeApiKey(ctx context.Context, req *kgwv1.RevokeApiKeyRequest) (*kgwv1.RevokeApiKeyResponse, error) {
	if s.auth == nil {
		return nil, errNoAccess
	}
	if !keyIDRE.MatchString(req.GetId()) {
		return nil, invalid(ReasonInvalidRequest, "id", "%q is not an API key id (16 hex digits)", clip(req.GetId()))
	}
	if err := s.auth.Keys.Revoke(ctx, req.GetId()); err != nil {
		return nil, notFound(err, ReasonNotFound, "API key '%s' not found", req.GetId())
	}
	s.log.InfoContext(ctx, "audit: api key revoked", "principal", callerOf(ctx).Name, "key_id", req.GetId())
	return &kgwv1.RevokeApiKeyResponse{}, nil
}

func (s *accessService) CreateRoleBinding(ctx context.Context, req *kgwv1.CreateRoleBindingRequest) (*kgwv1.CreateRoleBindingResponse, error) {
	if s.auth == nil {
		return nil, errNoAccess
	}
	var v validationErrors
	if err := access.CheckPattern(req.GetPrincipal()); err != nil {
		v.add("principal", "%s", err.Error())
	}
	if err := access.CheckRoles(req.GetRoles()); err != nil {
		v.add("roles", "%s", err.Error())
	}
	if len(v) > 0 {
		return nil, &invalidError{reason: ReasonInvalidRequest, violations: v}
	}
	p := callerOf(ctx)
	b, err := s.auth.Bindings.Create(ctx, req.GetPrincipal(), req.GetRoles(), p.Name)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "audit: role binding created", "principal", p.Name, "binding_id", b.ID, "pattern", b.Principal, "roles", b.Roles)
	return &kgwv1.CreateRoleBindingResponse{RoleBinding: roleBindingToProto(b)}, nil
}

func (s *accessService) DeleteRoleBinding(ctx context.Context, req *kgwv1.DeleteRoleBindingRequest) (*kgwv1.DeleteRoleBindingResponse, error) {
	if s.auth == nil {
		return nil, errNoAccess
	}
	if !bindingIDRE.MatchString(req.GetId()) {
		return nil, invalid(ReasonInvalidRequest, "id", "%q is not a role binding id (16 hex digits)", clip(req.GetId()))
	}
	if err := s.auth.Bindings.Delete(ctx, req.GetId()); err != nil {
		return nil, notFound(err, ReasonNotFound, "role binding '%s' not found", req.GetId())
	}
	s.log.InfoContext(ctx, "audit: role binding deleted", "principal", callerOf(ctx).Name, "binding_id", req.GetId())
	return &kgwv1.DeleteRoleBindingResponse{}, nil
}

func (s *accessService) ListRoleBindings(ctx context.Context, req *kgwv1.ListRoleBindingsRequest) (*kgwv1.ListRoleBindingsResponse, error) {
	if s.auth == nil {
		return nil, errNoAccess
	}
	limit, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	cursor, err := decodePageToken(s.pages, req.GetPageToken(), listRoleBindingsScope)
	if err != nil {
		return nil, err
	}
	items, next, err := s.auth.Bindings.List(ctx, store.Page{After: cursor, Limit: limit})
	if err != nil {
		return nil, err
	}
	resp := &kgwv1.ListRoleBindingsResponse{RoleBindings: make([]*kgwv1.RoleBinding, 0, len(items))}
	for _, b := range items {
		resp.RoleBindings = append(resp.RoleBindings, roleBindingToProto(b))
	}
	if resp.NextPageToken, err = s.pages.Encode(next, listRoleBindingsScope); err != nil {
		return nil, err
	}
	return resp, nil
}

func (s *accessService) WhoAmI(ctx context.Context, _ *kgwv1.WhoAmIRequest) (*kgwv1.WhoAmIResponse, error) {
	p := callerOf(ctx)
	return &kgwv1.WhoAmIResponse{Principal: p.Name, Roles: p.Roles, Method: p.Method}, nil
}

func apiKeyToProto(k *store.APIKey) *kgwv1.ApiKey {
	return &kgwv1.ApiKey{
		Id:           k.ID,
		Name:         k.Name,
		Roles:        k.Roles,
		CreateTime:   timeToProto(k.CreateTime),
		ExpireTime:   timeToProto(k.ExpireTime),
		LastUsedTime: timeToProto(k.LastUsedTime),
		Creator:      k.Creator,
	}
}

func roleBindingToProto(b *store.RoleBinding) *kgwv1.RoleBinding {
	return &kgwv1.RoleBinding{
		Id:         b.ID,
		Principal:  b.Principal,
		Roles:      b.Roles,
		CreateTime: timeToProto(b.CreateTime),
		Creator:    b.Creator,
	}
}
