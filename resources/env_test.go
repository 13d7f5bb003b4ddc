package resources_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/kailash-gateway/kgw/resources"
	"github.com/kailash-gateway/kgw/secrets"
	"github.com/kailash-gateway/kgw/store/sqlite"
)

// env is a broker over a real SQLite store and secret manager.
type env struct {
	broker  *resources.Broker
	store   *sqlite.Store
	secrets *secrets.Manager
}

func newEnv(t testing.TB, mutate func(*resources.Config)) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "kgw.db"))
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	mgr, err := secrets.NewManager(ctx, st, secrets.NewMasterKey(), secrets.Options{CacheTTL: -1})
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	cfg := resources.Config{Resources: st, Secrets: mgr}
	if mutate != nil {
		mutate(&cfg)
	}
	cfg.Logger = quiet
	b := resources.NewBroker(cfg)
	t.Cleanup(b.Close)
	return &env{broker: b, store: st, secrets: mgr}
}

func (e *env) putSecret(t testing.TB, name string, value map[string]any, allowedHosts ...string) {
	t.Helper()
	if _, err := e.secrets.Store(context.Background(), secrets.StoreRequest{Name: name, Value: value, AllowedHosts: allowedHosts}); err != nil {
		t.Fatalf("store secret %s: %v", name, err)
	}
}
