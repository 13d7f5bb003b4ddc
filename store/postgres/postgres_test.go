package postgres_test

import (
	"sync"
	"testing"

	"github.com/kailash-gateway/kgw/internal/testenv"
	"github.com/kailash-gateway/kgw/store"
	"github.com/kailash-gateway/kgw/store/postgres"
	"github.com/kailash-gateway/kgw/store/storetest"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func openFresh(tb testing.TB) *postgres.Store {
	tb.Helper()
	dsn := testenv.Postgres(tb).NewDatabase(tb)
	s, err := postgres.Open(tb.Context(), dsn)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openFresh(t) })
}

// The PostgreSQL store is shared by replicas: leases, fencing and claims.
func TestConformanceReplicas(t *testing.T) {
	storetest.RunReplicas(t, func(t *testing.T) store.Store { return openFresh(t) })
}

// Replicas starting together migrate the database once and all succeed.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	dsn := testenv.Postgres(t).NewDatabase(t)
	const replicas = 4
	var (
		wg     sync.WaitGroup
		stores [replicas]*postgres.Store
		errs   [replicas]error
	)
	for i := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = postgres.Open(t.Context(), dsn)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: Open: %v", i, err)
		}
		defer stores[i].Close()
	}
	// All replicas see one schema: what one writes, another reads.
	w, err := stores[0].CreateWorkflowVersion(t.Context(), &store.Workflow{Name: "shared", Nodes: []store.Node{{ID: "a"}}})
	if err != nil {
		t.Fatalf("CreateWorkflowVersion: %v", err)
	}
	got, err := stores[replicas-1].GetWorkflow(t.Context(), "shared", 0)
	if err != nil || got.Version != w.Version {
		t.Fatalf("GetWorkflow from another replica = %v, %v; want version %d", got, err, w.Version)
	}
}

// A store survives a database restart: the pool reconnects.
func TestSurvivesServerRestart(t *testing.T) {
	pg := testenv.NewPostgres(t)
	s, err := postgres.Open(t.Context(), pg.NewDatabase(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if _, err := s.CreateWorkflowVersion(t.Context(), &store.Workflow{Name: "before"}); err != nil {
		t.Fatalf("CreateWorkflowVersion: %v", err)
	}
	if err := pg.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := s.GetWorkflow(t.Context(), "before", 0); err == nil {
		t.Fatalf("GetWorkflow with the server stopped succeeded")
	}
	if err := pg.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if _, err := s.GetWorkflow(t.Context(), "before", 0); err != nil {
		t.Fatalf("GetWorkflow after restart: %v", err)
	}
}

func BenchmarkJournal(b *testing.B) {
	s := openFresh(b)
	defer s.Close()
	storetest.BenchmarkJournal(b, s)
}

func BenchmarkJournalParallel(b *testing.B) {
	s := openFresh(b)
	defer s.Close()
	storetest.BenchmarkJournalParallel(b, s, 8)
}
