package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/kailash-gateway/kgw/store"
	"github.com/kailash-gateway/kgw/store/internal/codec"
	"github.com/kailash-gateway/kgw/store/internal/paging"
)

// CreateAPIKey implements store.Store.
func (s *Store) CreateAPIKey(ctx context.Context, k *store.APIKey) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO api_keys (`+codec.APIKeyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			k.ID, k.Name, codec.EncodeStrings(k.Roles), k.Hash, codec.Nanos(k.CreateTime), codec.Nanos(k.ExpireTime),
			codec.Nanos(k.LastUsedTime), k.Creator)
		return translate(err)
	})
	if err != nil {
		return fmt.Errorf("sqlite: create api key %s: %w", k.ID, err)
	}
	return nil
}

// GetAPIKey implements store.Store.
func (s *Store) GetAPIKey(ctx context.Context, id string) (*store.APIKey, error) {
	k, err := codec.ScanAPIKey(s.r.QueryRowContext(ctx, `SELECT `+codec.APIKeyColumns+` FROM api_keys WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("sqlite: get api key %s: %w", id, translate(err))
	}
	return k, nil
}

// ListAPIKeys implements store.Store.
func (s *Store) ListAPIKeys(ctx context.Context, page store.Page) ([]*store.APIKey, string, error) {
	out, next, err := listPage(ctx, s.r, `SELECT `+codec.APIKeyColumns+` FROM api_keys WHERE id > ? ORDER BY id LIMIT ?`,
		page, codec.ScanAPIKey, func(k *store.APIKey) string { return k.ID })
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list api keys: %w", err)
	}
	return out, next, nil
}

// DeleteAPIKey implements store.Store.
func (s *Store) DeleteAPIKey(ctx context.Context, id string) error {
	if err := s.deleteByName(ctx, `DELETE FROM api_keys WHERE id = ?`, id); err != nil {
		return fmt.Errorf("sqlite: delete api key %s: %w", id, err)
	}
	return nil
}

// TouchAPIKey implements store.Store.
func (s *Store) TouchAPIKey(ctx context.Context, id string, t time.Time) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE api_keys SET last_used_time = ? WHERE id = ?`, codec.Nanos(t), id)
		if err != nil {
			return translate(err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return store.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: touch api key %s: %w", id, err)
	}
	return nil
}

// CreateRoleBinding implements store.Store.
func (s *Store) CreateRoleBinding(ctx context.Context, b *store.RoleBinding) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO role_bindings (`+codec.RoleBindingColumns+`) VALUES (?, ?, ?, ?, ?)`,
			b.ID, b.Principal, codec.EncodeStrings(b.Roles), codec.Nanos(b.CreateTime), b.Creator)
		return translate(err)
	})
	if err != nil {
		return fmt.Errorf("sqlite: create role binding %s: %w", b.ID, err)
	}
	return nil
}

// DeleteRoleBinding implements store.Store.
func (s *Store) DeleteRoleBinding(ctx context.Context, id string) error {
	if err := s.deleteByName(ctx, `DELETE FROM role_bindings WHERE id = ?`, id); err != nil {
		return fmt.Errorf("sqlite: delete role binding %s: %w", id, err)
	}
	return nil
}

// ListRoleBindings implements store.Store.
func (s *Store) ListRoleBindings(ctx context.Context, page store.Page) ([]*store.RoleBinding, string, error) {
	out, next, err := listPage(ctx, s.r, `SELECT `+codec.RoleBindingColumns+` FROM role_bindings WHERE id > ? ORDER BY id LIMIT ?`,
		page, codec.ScanRoleBinding, func(b *store.RoleBinding) string { return b.ID })
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list role bindings: %w", err)
	}
	return out, next, nil
}

// PutGrant implements store.Store.
func (s *Store) PutGrant(ctx context.Context, g *store.Grant) (*store.Grant, error) {
	var out *store.Grant
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = codec.ScanGrant(tx.QueryRowContext(ctx, `INSERT INTO grants (`+codec.GrantColumns+`) VALUES (?, ?, ?, ?)
			ON CONFLICT (kind, name) DO UPDATE SET allowed_callers = excluded.allowed_callers
			RETURNING `+codec.GrantColumns, string(g.Kind), g.Name, g.Creator, codec.EncodeStrings(g.AllowedCallers)))
		return translate(err)
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: put grant %s %s: %w", g.Kind, g.Name, err)
	}
	return out, nil
}

// GetGrant implements store.Store.
func (s *Store) GetGrant(ctx context.Context, kind store.GrantKind, name string) (*store.Grant, error) {
	g, err := codec.ScanGrant(s.r.QueryRowContext(ctx, `SELECT `+codec.GrantColumns+` FROM grants WHERE kind = ? AND name = ?`, string(kind), name))
	if err != nil {
		return nil, fmt.Errorf("sqlite: get grant %s %s: %w", kind, name, translate(err))
	}
	return g, nil
}

// DeleteGrant implements store.Store.
func (s *Store) DeleteGrant(ctx context.Context, kind store.GrantKind, name string) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM grants WHERE kind = ? AND name = ?`, string(kind), name)
		return translate(err)
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete grant %s %s: %w", kind, name, err)
	}
	return nil
}

// listPage runs query (with the page's cursor and n of paging.Limit as
// arguments) and returns one page of rows ordered by the name or id that
// key gives.
func listPage[T any](ctx context.Context, db *sql.DB, query string, page store.Page, scan func(codec.Row) (T, error), key func(T) string) ([]T, string, error) {
	limit, n := paging.Limit(page.Limit)
	rows, err := db.QueryContext(ctx, query, page.After, n)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	return paging.Read(rows, limit, scan, key)
}
