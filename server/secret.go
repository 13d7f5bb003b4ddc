package server

import (
	"context"
	"log/slog"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
	"github.com/kailash-gateway/kgw/secrets"
	"github.com/kailash-gateway/kgw/server/pagetoken"
	"github.com/kailash-gateway/kgw/store"
)

// secretManager is the part of *secrets.Manager the secret service uses.
// None of its methods returns a value.
type secretManager interface {
	Store(ctx context.Context, req secrets.StoreRequest) (*secrets.Metadata, error)
	Get(ctx context.Context, name string) (*secrets.Metadata, error)
	List(ctx context.Context, page store.Page) ([]*secrets.Metadata, string, error)
	Delete(ctx context.Context, name string) error
}

// secretService implements kgw.v1.SecretService. Responses carry metadata
// only; values go in (StoreSecret) and never come out.
type secretService struct {
	kgwv1.UnimplementedSecretServiceServer

	secrets secretManager
	pages   *pagetoken.Codec
	log     *slog.Logger
	guard   *guard
}

// withGrant fills a secret's creator and allowed callers from its grant.
func (s *secretService) withGrant(ctx context.Context, ps *kgwv1.Secret) (*kgwv1.Secret, error) {
	gr, err := s.guard.grant(ctx, store.GrantSecret, ps.GetName())
	if err != nil {
		return nil, err
	}
	if gr != nil {
		ps.Creator, ps.AllowedCallers = gr.Creator, gr.AllowedCallers
	}
	return ps, nil
}

const listSecretsScope = "kgw.v1.SecretService/ListSecrets"

func (s *secretService) StoreSecret(ctx context.Context, req *kgwv1.StoreSecretRequest) (*kgwv1.StoreSecretResponse, error) {
	var v validationErrors
	if t := req.GetExpireTime(); t != nil && t.CheckValid() != nil {
		v.add("expire_time", "malformed timestamp")
	}
	if d := req.GetTtl(); d != nil && d.CheckValid() != nil {
		v.add("ttl", "malformed duration")
	}
	checkCallers(&v, "allowed_callers", req.GetAllowedCallers())
	checkStructDepth(&v, "value", req.GetValue())
	if len(v) > 0 {
		return nil, &invalidError{reason: ReasonInvalidRequest, violations: v}
	}
	// Validation of name, value, expiry and hosts is the Manager's; its
	// *secrets.ValidationError becomes INVALID_ARGUMENT in toStatus, and
	// its descriptions never repeat any part of the value.
	md, err := s.secrets.Store(ctx, secrets.StoreRequest{
		Name:         req.GetName(),
		Value:        structToMap(req.GetValue()),
		ExpireTime:   timestampOrZero(req.GetExpireTime()),
		TTL:          durationFromProto(req.GetTtl()),
		Description:  req.GetDescription(),
		AllowedHosts: req.GetAllowedHosts(),
	})
	if err != nil {
		return nil, err
	}
	p := callerOf(ctx)
	gr, err := s.guard.recordGrant(ctx, store.GrantSecret, md.Name, p.Name, req.GetAllowedCallers())
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "audit: secret stored", "principal", p.Name, "secret", md.Name, "version", md.Version)
	ps := secretToProto(md)
	ps.Creator, ps.AllowedCallers = gr.Creator, gr.AllowedCallers
	return &kgwv1.StoreSecretResponse{Secret: ps}, nil
}

func (s *secretService) GetSecret(ctx context.Context, req *kgwv1.GetSecretRequest) (*kgwv1.GetSecretResponse, error) {
	if err := checkSecretName(req.GetName()); err != nil {
		return nil, err
	}
	md, err := s.secrets.Get(ctx, req.GetName())
	if err != nil {
		return nil, notFound(err, ReasonSecretNotFound, "secret '%s' not found", req.GetName())
	}
	ps, err := s.withGrant(ctx, secretToProto(md))
	if err != nil {
		return nil, err
	}
	return &kgwv1.GetSecretResponse{Secret: ps}, nil
}

func (s *secretService) ListSecrets(ctx context.Context, req *kgwv1.ListSecretsRequest) (*kgwv1.ListSecretsResponse, error) {
	limit, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	cursor, err := decodePageToken(s.pages, req.GetPageToken(), listSecretsScope)
	if err != nil {
		return nil, err
	}
	items, next, err := s.secrets.List(ctx, store.Page{After: cursor, Limit: limit})
	if err != nil {
		return nil, err
	}
	resp := &kgwv1.ListSecretsResponse{Secrets: make([]*kgwv1.Secret, 0, len(items))}
	for _, md := range items {
		ps, err := s.withGrant(ctx, secretToProto(md))
		if err != nil {
			return nil, err
		}
		resp.Secrets = append(resp.Secrets, ps)
	}
	if resp.NextPageToken, err = s.pages.Encode(next, listSecretsScope); err != nil {
		return nil, err
	}
	return resp, nil
}

func (s *secretService) DeleteSecret(ctx context.Context, req *kgwv1.DeleteSecretRequest) (*kgwv1.DeleteSecretResponse, error) {
	if err := checkSecretName(req.GetName()); err != nil {
		return nil, err
	}
	if err := s.secrets.Delete(ctx, req.GetName()); err != nil {
		return nil, notFound(err, ReasonSecretNotFound, "secret '%s' not found", req.GetName())
	}
	if err := s.guard.deleteGrant(ctx, store.GrantSecret, req.GetName()); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "audit: secret deleted", "principal", callerOf(ctx).Name, "secret", req.GetName())
	return &kgwv1.DeleteSecretResponse{}, nil
}

// UpdateSecretAccess replaces a secret's allowed callers. A secret without a
// recorded creator keeps none (it stays usable by admins and
// secrets-admins, and now by the callers given).
func (s *secretService) UpdateSecretAccess(ctx context.Context, req *kgwv1.UpdateSecretAccessRequest) (*kgwv1.UpdateSecretAccessResponse, error) {
	if err := checkSecretName(req.GetName()); err != nil {
		return nil, err
	}
	var v validationErrors
	checkCallers(&v, "allowed_callers", req.GetAllowedCallers())
	if len(v) > 0 {
		return nil, &invalidError{reason: ReasonInvalidRequest, violations: v}
	}
	md, err := s.secrets.Get(ctx, req.GetName())
	if err != nil {
		return nil, notFound(err, ReasonSecretNotFound, "secret '%s' not found", req.GetName())
	}
	gr, err := s.guard.putGrant(ctx, &store.Grant{Kind: store.GrantSecret, Name: md.Name, AllowedCallers: req.GetAllowedCallers()})
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "audit: secret access changed", "principal", callerOf(ctx).Name, "secret", md.Name, "allowed_callers", gr.AllowedCallers)
	ps := secretToProto(md)
	ps.Creator, ps.AllowedCallers = gr.Creator, gr.AllowedCallers
	return &kgwv1.UpdateSecretAccessResponse{Secret: ps}, nil
}

func checkSecretName(name string) error {
	var v validationErrors
	switch {
	case name == "":
		v.add("name", "required")
	case !secrets.ValidName(name):
		v.add("name", "%q is not a valid secret name: want a letter or digit, then up to 127 letters, digits, '_', '.' or '-'", clip(name))
	}
	if len(v) > 0 {
		return &invalidError{reason: ReasonInvalidRequest, violations: v}
	}
	return nil
}
