package resources_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/kailash-gateway/kgw/internal/starval"
	"github.com/kailash-gateway/kgw/internal/testenv"
	"github.com/kailash-gateway/kgw/resources"
	"github.com/kailash-gateway/kgw/store"
)

const benchPoolSize = 8

// BenchmarkFetchval compares db.fetchval("SELECT 1") run as node code (a
// session per attempt, a compiled program, a fresh thread) with the same
// query on a bare pgxpool of the same size, at the same parallelism.
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

	b.Run("node-handle", func(b *testing.B) {
		broker := resources.NewBroker(resources.Config{Logger: quiet})
		defer broker.Close()
		specs := map[string]store.ResourceSpec{"db": dbSpec(b, dsn, map[string]any{"max_size": int64(benchPoolSize)})}
		isPredeclared := func(name string) bool { return name == "get_resource" }
		_, prog, err := starlark.SourceProgramOptions(&syntax.FileOptions{}, "bench.star",
			`result = {"v": get_resource("db").fetchval("SELECT 1")}`, isPredeclared)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				sess := broker.Session(specs, nil)
				th := &starlark.Thread{Name: "bench"}
				starval.SetContext(th, ctx)
				pre := starlark.StringDict{"get_resource": starlark.NewBuiltin("get_resource",
					func(th *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
						name, _ := starlark.AsString(args[0])
						return sess.Open(starval.Context(th), name)
					})}
				_, err := prog.Init(th, pre)
				sess.Close()
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
