package executor_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/kailash-gateway/kgw/store"
	"github.com/kailash-gateway/kgw/store/sqlite"
)

// openStore opens a fresh SQLite store in a temporary directory.
func openStore(tb testing.TB) store.Store {
	tb.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "kgw.db"))
	if err != nil {
		tb.Fatalf("sqlite.Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := st.Close(); err != nil {
			tb.Errorf("close store: %v", err)
		}
	})
	return st
}
