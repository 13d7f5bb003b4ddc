package secrets_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/kailash-gateway/kgw/store"
	"github.com/kailash-gateway/kgw/store/sqlite"
)

// sqliteDirs maps each store opened by sqliteBackend to its directory.
var sqliteDirs sync.Map

// sqliteBackend keeps each store in its own temporary directory, so that its
// raw bytes are every file in that directory (the database, its WAL and
// shared-memory files).
var sqliteBackend = backend{
	name: "sqlite",
	open: func(t *testing.T) store.Store {
		t.Helper()
		dir := t.TempDir()
		st, err := sqlite.Open(t.Context(), filepath.Join(dir, "kgw.db"))
		if err != nil {
			t.Fatalf("sqlite.Open() error = %v", err)
		}
		t.Cleanup(func() {
			if err := st.Close(); err != nil {
				t.Errorf("Close() error = %v", err)
			}
		})
		sqliteDirs.Store(st, dir)
		return st
	},
	raw: func(t *testing.T, st store.Store) []byte {
		t.Helper()
		dir, ok := sqliteDirs.Load(st)
		if !ok {
			t.Fatal("store not opened by sqliteBackend")
		}
		entries, err := os.ReadDir(dir.(string))
		if err != nil {
			t.Fatal(err)
		}
		var all []byte
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir.(string), e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("raw scan: %s (%d bytes)", e.Name(), len(b))
			all = append(all, b...)
		}
		return all
	},
}

func TestSQLite(t *testing.T) { runManagerTests(t, sqliteBackend) }
