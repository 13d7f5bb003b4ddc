package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/kailash-gateway/kgw/store"
	"github.com/kailash-gateway/kgw/store/internal/codec"
	"github.com/kailash-gateway/kgw/store/internal/paging"
)

// CreateAPIKey implements store.Store.
func (s *Store) CreateAPIKey(ctx context.Context, k *store.APIKey) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO api_keys (`+codec.APIKeyColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		k.ID, k.Name, codec.EncodeStrings(k.Roles), k.Hash, codec.Nanos(k.CreateTime), codec.Nanos(k.ExpireTime),
		codec.Nanos(k.LastUsedTime), k.Creator)
	if err != nil {
		return fmt.Errorf("postgres: create api key %s: %w", k.ID, translate(err))
	}
	return nil
}

// GetAPIKey implements store.Store.
func (s *Store) GetAPIKey(ctx context.Context, id string) (*store.APIKey, error) {
	k, err := codec.ScanAPIKey(s.pool.QueryRow(ctx, `SELECT `+codec.APIKeyColumns+` FROM api_keys WHERE id = $1`, id))
	if err != nil {
		return nil, fmt.Errorf("postgres: get api key %s: %w", id, translate(err))
	}
	return k, nil
}

// ListAPIKeys implements store.Store.
func (s *Store) ListAPIKeys(ctx context.Context, page store.Page) ([]*store.APIKey, string, error) {
	out, next, err := listPage(ctx, s, `SELECT `+codec.APIKeyColumns+` FROM api_keys WHERE id > $1 ORDER BY id LIMIT $2`,
		page, codec.ScanAPIKey, func(k *store.APIKey) string { return k.ID })
	if err != nil {
		return nil, "", fmt.Errorf("postgres: list api keys: %w", err)
	}
	return out, next, nil
}

// DeleteAPIKey implements store.Store.
func (s *Store) DeleteAPIKey(ctx context.Context, id string) error {
	if err := s.deleteByName(ctx, `DELETE FROM api_keys WHERE id = $1`, id); err != nil {
		return fmt.Errorf("postgres: delete api key %s: %w", id, err)
	}
	return nil
}

// TouchAPIKey implements store.Store.
func (s *Store) TouchAPIKey(ctx context.Context, id string, t time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE api_keys SET last_used_time = $1 WHERE id = $2`, codec.Nanos(t), id)
	if err != nil {
		return fmt.Errorf("postgres: touch api key %s: %w", id, translate(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: touch api key %s: %w", id, store.ErrNotFound)
	}
	return nil
}

// CreateRoleBinding implements store.Store.
func (s *Store) CreateRoleBinding(ctx context.Context, b *store.RoleBinding) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO role_bindings (`+codec.RoleBindingColumns+`) VALUES ($1, $2, $3, $4, $5)`,
		b.ID, b.Principal, codec.EncodeStrings(b.Roles), codec.Nanos(b.CreateTime), b.Creator)
	if err != nil {
		return fmt.Errorf("postgres: create role binding %s: %w", b.ID, translate(err))
	}
	return nil
}

// DeleteRoleBinding implements store.Store.
func (s *Store) DeleteRoleBinding(ctx context.Context, id string) error {
	if err := s.deleteByName(ctx, `DELETE FROM role_bindings WHERE id = $1`, id); err != nil {
		return fmt.Errorf("postgres: delete role binding %s: %w", id, err)
	}
	return nil
}

// ListRoleBindings implements store.Store.
func (s *Store) ListRoleBindings(ctx context.Context, page store.Page) ([]*store.RoleBinding, string, error) {
	out, next, err := listPage(ctx, s, `SELECT `+codec.RoleBindingColumns+` FROM role_bindings WHERE id > $1 ORDER BY id LIMIT $2`,
		page, codec.ScanRoleBinding, func(b *store.RoleBinding) string { return b.ID })
	if err != nil {
		return nil, "", fmt.Errorf("postgres: list role bindings: %w", err)
	}
	return out, next, nil
}

// PutGrant implements store.Store.
func (s *Store) PutGrant(ctx context.Context, g *store.Grant) (*store.Grant, error) {
	out, err := codec.ScanGrant(s.pool.QueryRow(ctx, `INSERT INTO grants (`+codec.GrantColumns+`) VALUES ($1, $2, $3, $4)
		ON CONFLICT (kind, name) DO UPDATE SET allowed_callers = excluded.allowed_callers
		RETURNING `+codec.GrantColumns, string(g.Kind), g.Name, g.Creator, codec.EncodeStrings(g.AllowedCallers)))
	if err != nil {
		return nil, fmt.Errorf("postgres: put grant %s %s: %w", g.Kind, g.Name, translate(err))
	}
	return out, nil
}

// GetGrant implements store.Store.
func (s *Store) GetGrant(ctx context.Context, kind store.GrantKind, name string) (*store.Grant, error) {
	g, err := codec.ScanGrant(s.pool.QueryRow(ctx, `SELECT `+codec.GrantColumns+` FROM grants WHERE kind = $1 AND name = $2`, string(kind), name))
	if err != nil {
		return nil, fmt.Errorf("postgres: get grant %s %s: %w", kind, name, translate(err))
	}
	return g, nil
}

// DeleteGrant implements store.Store.
func (s *Store) DeleteGrant(ctx context.Context, kind store.GrantKind, name string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM grants WHERE kind = $1 AND name = $2`, string(kind), name); err != nil {
		return fmt.Errorf("postgres: delete grant %s %s: %w", kind, name, translate(err))
	}
	return nil
}

// listPage runs query (with the page's cursor and n of paging.Limit as
// arguments) and returns one page of rows ordered by the name or id that
// key gives.
func listPage[T any](ctx context.Context, s *Store, query string, page store.Page, scan func(codec.Row) (T, error), key func(T) string) ([]T, string, error) {
	limit, n := paging.Limit(page.Limit)
	rows, err := s.pool.Query(ctx, query, page.After, n)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	return paging.Read(rows, limit, scan, key)
}
