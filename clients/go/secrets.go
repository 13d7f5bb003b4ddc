package kgw

import (
	"context"
	"fmt"
	"iter"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
)

// A SecretOption configures StoreSecret.
type SecretOption func(*kgwv1.StoreSecretRequest)

// TTL makes the secret expire d after it is stored.
func TTL(d time.Duration) SecretOption {
	return func(r *kgwv1.StoreSecretRequest) {
		r.Expiration = &kgwv1.StoreSecretRequest_Ttl{Ttl: durationpb.New(d)}
	}
}

// ExpireTime makes the secret expire at t.
func ExpireTime(t time.Time) SecretOption {
	return func(r *kgwv1.StoreSecretRequest) {
		r.Expiration = &kgwv1.StoreSecretRequest_ExpireTime{ExpireTime: timestamppb.New(t)}
	}
}

// SecretDescription describes the secret.
func SecretDescription(description string) SecretOption {
	return func(r *kgwv1.StoreSecretRequest) { r.Description = description }
}

// AllowedHosts restricts the hosts the credentials may be sent to
// ("db.internal", "*.example.com", "10.0.0.5"); none means any host.
func AllowedHosts(patterns ...string) SecretOption {
	return func(r *kgwv1.StoreSecretRequest) { r.AllowedHosts = append(r.AllowedHosts, patterns...) }
}

// AllowedCallers lets these callers reference the secret besides its
// creator and admins: principal patterns ("spiffe://mesh/ns/payments/*",
// "key:abc") or "role:<name>". None means the creator and admins only.
func AllowedCallers(patterns ...string) SecretOption {
	return func(r *kgwv1.StoreSecretRequest) { r.AllowedCallers = append(r.AllowedCallers, patterns...) }
}

// StoreSecret encrypts value in the gateway as the next version of secret
// name (e.g. {"user": "app", "password": "…"}) and returns its metadata.
// The value is never returned by any call; resources name it with
// CredentialsRef.
func (c *Client) StoreSecret(ctx context.Context, name string, value map[string]any, opts ...SecretOption) (*Secret, error) {
	v, err := structpb.NewStruct(value)
	if err != nil {
		// structpb's message names the offending type, never the value.
		return nil, optionError("StoreSecret", fmt.Errorf("value: %w", err))
	}
	req := &kgwv1.StoreSecretRequest{Name: name, Value: v}
	for _, o := range opts {
		o(req)
	}
	resp, err := c.secrets.StoreSecret(ctx, req)
	if err != nil {
		return nil, rpcError(ctx, "StoreSecret", err)
	}
	return resp.GetSecret(), nil
}

// GetSecret returns the metadata of the latest version of secret name. An
// unknown name gives an error matching ErrSecretNotFound.
func (c *Client) GetSecret(ctx context.Context, name string) (*Secret, error) {
	resp, err := c.secrets.GetSecret(ctx, &kgwv1.GetSecretRequest{Name: name})
	if err != nil {
		return nil, rpcError(ctx, "GetSecret", err)
	}
	return resp.GetSecret(), nil
}

// ListSecrets yields the metadata of every secret, ordered by name.
func (c *Client) ListSecrets(ctx context.Context) iter.Seq2[*Secret, error] {
	return pages(ctx, "ListSecrets", func(token string) ([]*kgwv1.Secret, string, error) {
		resp, err := c.secrets.ListSecrets(ctx, &kgwv1.ListSecretsRequest{PageToken: token})
		return resp.GetSecrets(), resp.GetNextPageToken(), err
	})
}

// DeleteSecret removes every version of secret name.
func (c *Client) DeleteSecret(ctx context.Context, name string) error {
	_, err := c.secrets.DeleteSecret(ctx, &kgwv1.DeleteSecretRequest{Name: name})
	return rpcError(ctx, "DeleteSecret", err)
}

// UpdateSecretAccess replaces the callers allowed to use secret name (see
// AllowedCallers) without storing a new value or version, and returns the
// metadata of its latest version.
func (c *Client) UpdateSecretAccess(ctx context.Context, name string, allowedCallers ...string) (*Secret, error) {
	resp, err := c.secrets.UpdateSecretAccess(ctx, &kgwv1.UpdateSecretAccessRequest{Name: name, AllowedCallers: allowedCallers})
	if err != nil {
		return nil, rpcError(ctx, "UpdateSecretAccess", err)
	}
	return resp.GetSecret(), nil
}
