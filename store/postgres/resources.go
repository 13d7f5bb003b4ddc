package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/kailash-gateway/kgw/store"
	"github.com/kailash-gateway/kgw/store/internal/codec"
)

// PutResource implements store.Store.
func (s *Store) PutResource(ctx context.Context, r *store.Resource) (*store.Resource, error) {
	spec, err := codec.EncodeSpec(&r.Spec)
	if err != nil {
		return nil, fmt.Errorf("postgres: put resource %s: %w", r.Name, err)
	}
	now := time.Now().UnixNano()
	out := *r
	var create, update int64
	err = s.pool.QueryRow(ctx, `INSERT INTO resources (name, spec, create_time, update_time)
		VALUES ($1, $2, $3, $3)
		ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, update_time = excluded.update_time
		RETURNING create_time, update_time`, r.Name, spec, now).Scan(&create, &update)
	out.CreateTime, out.UpdateTime = codec.FromNanos(create), codec.FromNanos(update)
	if err != nil {
		return nil, fmt.Errorf("postgres: put resource %s: %w", r.Name, translate(err))
	}
	return &out, nil
}

// GetResource implements store.Store.
func (s *Store) GetResource(ctx context.Context, name string) (*store.Resource, error) {
	r, err := codec.ScanResource(s.pool.QueryRow(ctx, `SELECT `+codec.ResourceColumns+` FROM resources WHERE name = $1`, name))
	if err != nil {
		return nil, fmt.Errorf("postgres: get resource %s: %w", name, translate(err))
	}
	return r, nil
}

// ListResources implements store.Store.
func (s *Store) ListResources(ctx context.Context, page store.Page) ([]*store.Resource, string, error) {
	out, next, err := listPage(ctx, s, `SELECT `+codec.ResourceColumns+` FROM resources WHERE name > $1
		ORDER BY name LIMIT $2`,
		page, codec.ScanResource, func(v *store.Resource) string { return v.Name })
	if err != nil {
		return nil, "", fmt.Errorf("postgres: list resources: %w", err)
	}
	return out, next, nil
}

// DeleteResource implements store.Store.
func (s *Store) DeleteResource(ctx context.Context, name string) error {
	if err := s.deleteByName(ctx, `DELETE FROM resources WHERE name = $1`, name); err != nil {
		return fmt.Errorf("postgres: delete resource %s: %w", name, err)
	}
	return nil
}
