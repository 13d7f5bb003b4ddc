package server_test

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kailash-gateway/kgw/executor"
	"github.com/kailash-gateway/kgw/internal/testenv"
	"github.com/kailash-gateway/kgw/resources"
	"github.com/kailash-gateway/kgw/server"
	"github.com/kailash-gateway/kgw/store"
)

// benchPoolSize is the pool size of both sides of BenchmarkFetchval.
const benchPoolSize = 8

// BenchmarkFetchval compares a one-node workflow running
// db.fetchval("SELECT 1") through the executor and the resource broker, as
// the gateway wires them, with the same query on a bare pgxpool of the same
// size at the same parallelism. `make bench` reports the ratio.
func BenchmarkFetchval(b *testing.B) {
	dsn := testenv.Postgres(b).NewDatabase(b)
	ctx := context.Background()

	b.Run("bare-pgxpool", func(b *testing.B) {
		cfg, err := pgxpool.ParseConfig(dsn)
		if err != nil {
			b.Fatal(err)
		}
		cfg.MaxConns = benchPoolSize
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer pool.Close()
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				var v int
				if err := pool.QueryRow(ctx, "SELECT 1").Scan(&v); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})

	b.Run("workflow-node", func(b *testing.B) {
		u, err := url.Parse(dsn)
		if err != nil {
			b.Fatal(err)
		}
		port, err := strconv.Atoi(u.Port())
		if err != nil {
			b.Fatal(err)
		}
		quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
		broker := resources.NewBroker(resources.Config{Logger: quiet})
		defer broker.Close()
		exec := executor.New(executor.Config{
			Resources:   server.ExecutorResources(broker),
			NewRedactor: server.NewRedactor,
			Logger:      quiet,
		})
		defer exec.Close(ctx)
		req := &executor.Request{
			Workflow: &store.Workflow{
				Name: "fetchval", Version: 1, DisableJournal: true,
				Nodes: []store.Node{{
					ID:                "q",
					Code:              `result = {"v": get_resource("db").fetchval("SELECT 1")}`,
					RequiredResources: []string{"db"},
				}},
			},
			Resources: map[string]store.ResourceSpec{"db": {Type: "database", Config: map[string]any{
				"host": "127.0.0.1", "port": int64(port), "database": u.Path[1:], "user": "postgres",
				"max_size": int64(benchPoolSize),
			}}},
		}
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				ex, err := exec.Execute(ctx, req)
				if err != nil {
					b.Error(err)
					return
				}
				if ex.Status != store.ExecutionCompleted {
					b.Errorf("status %v, error %+v", ex.Status, ex.Error)
					return
				}
			}
		})
	})
}
