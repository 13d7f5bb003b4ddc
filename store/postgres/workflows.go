package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kailash-gateway/kgw/store"
	"github.com/kailash-gateway/kgw/store/internal/codec"
)

// CreateWorkflowVersion implements store.Store.
func (s *Store) CreateWorkflowVersion(ctx context.Context, w *store.Workflow) (*store.Workflow, error) {
	def, err := codec.EncodeWorkflowDef(w)
	if err != nil {
		return nil, fmt.Errorf("postgres: create workflow %s: %w", w.Name, err)
	}
	out := *w
	out.CreateTime = time.Unix(0, time.Now().UnixNano()).UTC()
	// The upsert locks the name's counter row until commit, so concurrent
	// creators get consecutive versions.
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO workflow_names (name, last_version) VALUES ($1, 1)
			ON CONFLICT (name) DO UPDATE SET last_version = workflow_names.last_version + 1
			RETURNING last_version`, w.Name).Scan(&out.Version); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO workflows (name, version, description, definition, create_time)
			VALUES ($1, $2, $3, $4, $5)`, out.Name, out.Version, out.Description, def, codec.Nanos(out.CreateTime)); err != nil {
			return err
		}
		// Delivered at commit to every replica's listener.
		_, err := tx.Exec(ctx, `SELECT pg_notify('`+workflowsChannel+`', $1)`, out.Name)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: create workflow %s: %w", w.Name, translate(err))
	}
	w.Version, w.CreateTime = out.Version, out.CreateTime
	return &out, nil
}

// GetWorkflow implements store.Store.
func (s *Store) GetWorkflow(ctx context.Context, name string, version int32) (*store.Workflow, error) {
	var row pgx.Row
	if version == 0 {
		row = s.pool.QueryRow(ctx, `SELECT `+codec.WorkflowColumns+` FROM workflows WHERE name = $1
			ORDER BY version DESC LIMIT 1`, name)
	} else {
		row = s.pool.QueryRow(ctx, `SELECT `+codec.WorkflowColumns+` FROM workflows WHERE name = $1 AND version = $2`,
			name, version)
	}
	w, err := codec.ScanWorkflow(row)
	if err != nil {
		return nil, fmt.Errorf("postgres: get workflow %s version %d: %w", name, version, translate(err))
	}
	return w, nil
}

// ListWorkflows implements store.Store.
func (s *Store) ListWorkflows(ctx context.Context, page store.Page) ([]*store.WorkflowSummary, string, error) {
	out, next, err := listPage(ctx, s, `SELECT `+codec.WorkflowColumns+` FROM workflows w
		WHERE name > $1 AND version = (SELECT max(version) FROM workflows WHERE name = w.name)
		ORDER BY name LIMIT $2`,
		page, codec.ScanWorkflowSummary, func(v *store.WorkflowSummary) string { return v.Name })
	if err != nil {
		return nil, "", fmt.Errorf("postgres: list workflows: %w", err)
	}
	return out, next, nil
}

// DeleteWorkflow implements store.Store. The name's version counter is kept,
// so a later CreateWorkflowVersion continues after the deleted versions.
func (s *Store) DeleteWorkflow(ctx context.Context, name string) error {
	if err := s.deleteByName(ctx, `WITH d AS (DELETE FROM workflows WHERE name = $1 RETURNING 1),
		n AS (SELECT pg_notify('`+workflowsChannel+`', $1) WHERE EXISTS (SELECT 1 FROM d))
		SELECT 1 FROM d, n`, name); err != nil {
		return fmt.Errorf("postgres: delete workflow %s: %w", name, err)
	}
	return nil
}

var _ store.WorkflowVersions = (*Store)(nil)

// WorkflowVersion implements store.WorkflowVersions with one index lookup.
func (s *Store) WorkflowVersion(ctx context.Context, name string, version int32) (int32, error) {
	var v *int32
	var err error
	if version == 0 {
		err = s.pool.QueryRow(ctx, `SELECT max(version) FROM workflows WHERE name = $1`, name).Scan(&v)
	} else {
		err = s.pool.QueryRow(ctx, `SELECT max(version) FROM workflows WHERE name = $1 AND version = $2`, name, version).Scan(&v)
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: workflow %s version %d: %w", name, version, translate(err))
	}
	if v == nil {
		return 0, fmt.Errorf("postgres: workflow %s version %d: %w", name, version, store.ErrNotFound)
	}
	return *v, nil
}
