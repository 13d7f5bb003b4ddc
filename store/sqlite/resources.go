package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/kailash-gateway/kgw/store"
	"github.com/kailash-gateway/kgw/store/internal/codec"
)

// PutResource implements store.Store.
func (s *Store) PutResource(ctx context.Context, r *store.Resource) (*store.Resource, error) {
	spec, err := codec.EncodeSpec(&r.Spec)
	if err != nil {
		return nil, fmt.Errorf("sqlite: put resource %s: %w", r.Name, err)
	}
	now := time.Now().UnixNano()
	out := *r
	err = s.writeTx(ctx, func(tx *sql.Tx) error {
		var create, update int64
		if err := tx.QueryRowContext(ctx, `INSERT INTO resources (name, spec, create_time, update_time)
			VALUES (?, ?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, update_time = excluded.update_time
			RETURNING create_time, update_time`, r.Name, spec, now, now).Scan(&create, &update); err != nil {
			return err
		}
		out.CreateTime, out.UpdateTime = codec.FromNanos(create), codec.FromNanos(update)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: put resource %s: %w", r.Name, translate(err))
	}
	return &out, nil
}

// GetResource implements store.Store.
func (s *Store) GetResource(ctx context.Context, name string) (*store.Resource, error) {
	r, err := codec.ScanResource(s.r.QueryRowContext(ctx, `SELECT `+codec.ResourceColumns+` FROM resources WHERE name = ?`, name))
	if err != nil {
		return nil, fmt.Errorf("sqlite: get resource %s: %w", name, translate(err))
	}
	return r, nil
}

// ListResources implements store.Store.
func (s *Store) ListResources(ctx context.Context, page store.Page) ([]*store.Resource, string, error) {
	out, next, err := listPage(ctx, s.r, `SELECT `+codec.ResourceColumns+` FROM resources WHERE name > ?
		ORDER BY name LIMIT ?`,
		page, codec.ScanResource, func(v *store.Resource) string { return v.Name })
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list resources: %w", err)
	}
	return out, next, nil
}

// DeleteResource implements store.Store.
func (s *Store) DeleteResource(ctx context.Context, name string) error {
	if err := s.deleteByName(ctx, `DELETE FROM resources WHERE name = ?`, name); err != nil {
		return fmt.Errorf("sqlite: delete resource %s: %w", name, err)
	}
	return nil
}
