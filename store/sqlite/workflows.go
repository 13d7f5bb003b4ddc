package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/kailash-gateway/kgw/store"
	"github.com/kailash-gateway/kgw/store/internal/codec"
)

// CreateWorkflowVersion implements store.Store.
func (s *Store) CreateWorkflowVersion(ctx context.Context, w *store.Workflow) (*store.Workflow, error) {
	def, err := codec.EncodeWorkflowDef(w)
	if err != nil {
		return nil, fmt.Errorf("sqlite: create workflow %s: %w", w.Name, err)
	}
	out := *w
	out.CreateTime = time.Unix(0, time.Now().UnixNano()).UTC()
	err = s.writeTx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `INSERT INTO workflow_names (name, last_version) VALUES (?, 1)
			ON CONFLICT (name) DO UPDATE SET last_version = last_version + 1
			RETURNING last_version`, w.Name).Scan(&out.Version); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO workflows (name, version, description, definition, create_time)
			VALUES (?, ?, ?, ?, ?)`, out.Name, out.Version, out.Description, def, codec.Nanos(out.CreateTime))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: create workflow %s: %w", w.Name, translate(err))
	}
	w.Version, w.CreateTime = out.Version, out.CreateTime
	return &out, nil
}

// GetWorkflow implements store.Store.
func (s *Store) GetWorkflow(ctx context.Context, name string, version int32) (*store.Workflow, error) {
	var row *sql.Row
	if version == 0 {
		row = s.r.QueryRowContext(ctx, `SELECT `+codec.WorkflowColumns+` FROM workflows WHERE name = ?
			ORDER BY version DESC LIMIT 1`, name)
	} else {
		row = s.r.QueryRowContext(ctx, `SELECT `+codec.WorkflowColumns+` FROM workflows WHERE name = ? AND version = ?`,
			name, version)
	}
	w, err := codec.ScanWorkflow(row)
	if err != nil {
		return nil, fmt.Errorf("sqlite: get workflow %s version %d: %w", name, version, translate(err))
	}
	return w, nil
}

// ListWorkflows implements store.Store.
func (s *Store) ListWorkflows(ctx context.Context, page store.Page) ([]*store.WorkflowSummary, string, error) {
	out, next, err := listPage(ctx, s.r, `SELECT `+codec.WorkflowColumns+` FROM workflows w
		WHERE name > ? AND version = (SELECT max(version) FROM workflows WHERE name = w.name)
		ORDER BY name LIMIT ?`,
		page, codec.ScanWorkflowSummary, func(v *store.WorkflowSummary) string { return v.Name })
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list workflows: %w", err)
	}
	return out, next, nil
}

// DeleteWorkflow implements store.Store. The name's version counter is kept,
// so a later CreateWorkflowVersion continues after the deleted versions.
func (s *Store) DeleteWorkflow(ctx context.Context, name string) error {
	if err := s.deleteByName(ctx, `DELETE FROM workflows WHERE name = ?`, name); err != nil {
		return fmt.Errorf("sqlite: delete workflow %s: %w", name, err)
	}
	return nil
}
