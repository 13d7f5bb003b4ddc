package kgw

import (
	"context"
	"iter"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
)

// Aliases for the messages of the AccessService.
type (
	// APIKey is the metadata of an API key; it never carries the key
	// (kgw.v1.ApiKey).
	APIKey = kgwv1.ApiKey
	// RoleBinding gives roles to a principal or a principal pattern
	// (kgw.v1.RoleBinding).
	RoleBinding = kgwv1.RoleBinding
)

// An Identity is who the gateway thinks the caller is (WhoAmI).
type Identity struct {
	// Principal is "key:<id>", "jwt:<sub>", a SPIFFE id, "cert:<CN>", or
	// "local" on a gateway without authentication.
	Principal string
	// Roles are the caller's roles, sorted.
	Roles []string
	// Method is how the caller authenticated: "none", "api_key", "jwt",
	// "mtls" or "forwarded_client_cert".
	Method string
}

// CreateAPIKey creates an API key named name that grants roles ("admin",
// "developer", "operator", "executor", "viewer", "secrets-admin"), expiring
// at expire (the zero time: never). It returns the key's metadata and the
// key itself ("kgw_<id>_<secret>"), which the gateway never shows again:
// hand it to its user and forget it. Needs the admin role.
func (c *Client) CreateAPIKey(ctx context.Context, name string, roles []string, expire time.Time) (*APIKey, string, error) {
	req := &kgwv1.CreateApiKeyRequest{Name: name, Roles: roles}
	if !expire.IsZero() {
		req.ExpireTime = timestamppb.New(expire)
	}
	resp, err := c.access.CreateApiKey(ctx, req)
	if err != nil {
		return nil, "", rpcError(ctx, "CreateApiKey", err)
	}
	return resp.GetApiKey(), resp.GetKey(), nil
}

// ListAPIKeys yields the metadata of every API key that is not revoked,
// ordered by id. Needs the admin role.
func (c *Client) ListAPIKeys(ctx context.Context) iter.Seq2[*APIKey, error] {
	return pages(ctx, "ListApiKeys", func(token string) ([]*kgwv1.ApiKey, string, error) {
		resp, err := c.access.ListApiKeys(ctx, &kgwv1.ListApiKeysRequest{PageToken: token})
		return resp.GetApiKeys(), resp.GetNextPageToken(), err
	})
}

// RevokeAPIKey revokes the API key with id id (the <id> of
// "kgw_<id>_<secret>"); every replica refuses it within seconds.
func (c *Client) RevokeAPIKey(ctx context.Context, id string) error {
	_, err := c.access.RevokeApiKey(ctx, &kgwv1.RevokeApiKeyRequest{Id: id})
	return rpcError(ctx, "RevokeApiKey", err)
}

// CreateRoleBinding gives roles to principal, a principal name ("jwt:<sub>",
// "spiffe://…", "cert:<CN>", "key:<id>") or a pattern ending in "*" that
// matches any suffix ("spiffe://mesh.example/ns/payments/*"). Needs the
// admin role.
func (c *Client) CreateRoleBinding(ctx context.Context, principal string, roles ...string) (*RoleBinding, error) {
	resp, err := c.access.CreateRoleBinding(ctx, &kgwv1.CreateRoleBindingRequest{Principal: principal, Roles: roles})
	if err != nil {
		return nil, rpcError(ctx, "CreateRoleBinding", err)
	}
	return resp.GetRoleBinding(), nil
}

// DeleteRoleBinding removes the role binding with id id.
func (c *Client) DeleteRoleBinding(ctx context.Context, id string) error {
	_, err := c.access.DeleteRoleBinding(ctx, &kgwv1.DeleteRoleBindingRequest{Id: id})
	return rpcError(ctx, "DeleteRoleBinding", err)
}

// ListRoleBindings yields every role binding, ordered by id.
func (c *Client) ListRoleBindings(ctx context.Context) iter.Seq2[*RoleBinding, error] {
	return pages(ctx, "ListRoleBindings", func(token string) ([]*kgwv1.RoleBinding, string, error) {
		resp, err := c.access.ListRoleBindings(ctx, &kgwv1.ListRoleBindingsRequest{PageToken: token})
		return resp.GetRoleBindings(), resp.GetNextPageToken(), err
	})
}

// WhoAmI returns the caller's principal, roles and how it authenticated.
func (c *Client) WhoAmI(ctx context.Context) (*Identity, error) {
	resp, err := c.access.WhoAmI(ctx, &kgwv1.WhoAmIRequest{})
	if err != nil {
		return nil, rpcError(ctx, "WhoAmI", err)
	}
	return &Identity{Principal: resp.GetPrincipal(), Roles: resp.GetRoles(), Method: resp.GetMethod()}, nil
}
