package postgres

import (
	"strings"
	"testing"

	"github.com/kailash-gateway/kgw/internal/testenv"
)

// TestBackgroundQueryPlans checks that the recovery and retention ticks
// read only unfinished executions (the partial index executions_unfinished)
// or executions created before the retention cutoff (executions_newest),
// never the whole executions table, in a store that retains many finished
// executions none of which has expired: their cost must follow the
// unfinished and expired work, not what the store retains.
func TestBackgroundQueryPlans(t *testing.T) {
	s, err := Open(t.Context(), testenv.Postgres(t).NewDatabase(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	const retained = 20000 // created at 1e12 ns and later, ended 1 ns after
	if _, err := s.pool.Exec(t.Context(), `INSERT INTO executions (id, workflow, version, status, request, create_time, start_time, end_time, idempotency_key, caller, owner)
		SELECT 'e' || i, 'wf', 1, 3, '{}', 1e12 + i, 1e12 + i, 1e12 + i + 1, '', '', 'gw' FROM generate_series(1, $1) i`, retained); err != nil {
		t.Fatalf("insert finished executions: %v", err)
	}
	if _, err := s.pool.Exec(t.Context(), `ANALYZE executions`); err != nil {
		t.Fatalf("ANALYZE: %v", err)
	}
	tests := []struct {
		name, query string
		args        []any
		index       string
	}{
		{"expired", deleteExpired, []any{int64(1e12), deleteBatch}, "executions_newest"},
		{"claim queued", claimQueuedQuery, []any{"gw-2", 10}, "executions_unfinished"},
		{"release stale", releaseStaleQuery, []any{int64(2e12)}, "executions_unfinished"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := s.pool.Query(t.Context(), `EXPLAIN `+tt.query, tt.args...)
			if err != nil {
				t.Fatalf("EXPLAIN: %v", err)
			}
			var plan []string
			for rows.Next() {
				var line string
				if err := rows.Scan(&line); err != nil {
					t.Fatalf("scan plan: %v", err)
				}
				plan = append(plan, line)
			}
			if err := rows.Err(); err != nil {
				t.Fatalf("plan: %v", err)
			}
			all := strings.Join(plan, "\n")
			if strings.Contains(all, "Seq Scan on executions") {
				t.Errorf("plan reads the whole executions table:\n%s", all)
			}
			if !strings.Contains(all, tt.index) {
				t.Errorf("plan does not use %s:\n%s", tt.index, all)
			}
		})
	}
}
