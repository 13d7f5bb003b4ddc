package sqlite

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kailash-gateway/kgw/store/internal/codec"
)

// TestBackgroundQueryPlans checks that the recovery and retention ticks
// read only unfinished executions (the partial index executions_unfinished)
// or executions created before the retention cutoff (executions_newest),
// never the whole executions table: their cost must follow the unfinished
// and expired work, not what the store retains.
func TestBackgroundQueryPlans(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "kgw.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	// Finished executions, as a store that retains many would hold, and
	// statistics, so that the planner chooses as it would in production.
	if _, err := s.wc.ExecContext(t.Context(), `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
		INSERT INTO executions (id, workflow, version, status, request, create_time, start_time, end_time, idempotency_key, caller, owner)
		SELECT printf('e%06d', i), 'wf', 1, 3, '{}', i, i, i + 1, '', '', 'gw' FROM n`); err != nil {
		t.Fatalf("insert finished executions: %v", err)
	}
	if _, err := s.wc.ExecContext(t.Context(), `ANALYZE`); err != nil {
		t.Fatalf("ANALYZE: %v", err)
	}
	cutoff := codec.Nanos(time.Now())
	tests := []struct {
		name, query string
		args        []any
		index       string
	}{
		{"stale", `SELECT EXISTS (SELECT 1 FROM executions WHERE ` + staleWhere + `)`, []any{cutoff}, "executions_unfinished"},
		{"release stale", releaseStaleQuery, []any{cutoff}, "executions_unfinished"},
		{"expired events", `DELETE FROM execution_events WHERE execution_id IN (` + expiredBatch + `)`, []any{cutoff, deleteBatch}, "executions_newest"},
		{"expired nodes", `DELETE FROM execution_nodes WHERE execution_id IN (` + expiredBatch + `)`, []any{cutoff, deleteBatch}, "executions_newest"},
		{"expired executions", `DELETE FROM executions WHERE id IN (` + expiredBatch + `)`, []any{cutoff, deleteBatch}, "executions_newest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := s.wc.QueryContext(t.Context(), `EXPLAIN QUERY PLAN `+tt.query, tt.args...)
			if err != nil {
				t.Fatalf("EXPLAIN QUERY PLAN: %v", err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, notused int
				var detail string
				if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
					t.Fatalf("scan plan: %v", err)
				}
				plan = append(plan, detail)
			}
			if err := rows.Err(); err != nil {
				t.Fatalf("plan: %v", err)
			}
			all := strings.Join(plan, "\n")
			for _, step := range plan {
				// "SCAN executions" without an index reads every row.
				if strings.HasPrefix(step, "SCAN executions") && !strings.Contains(step, "INDEX") {
					t.Errorf("plan reads the whole executions table:\n%s", all)
				}
			}
			if !strings.Contains(all, "INDEX "+tt.index) {
				t.Errorf("plan does not use %s:\n%s", tt.index, all)
			}
		})
	}
}
