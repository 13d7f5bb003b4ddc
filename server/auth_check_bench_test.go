package server

import (
	"context"
	"log/slog"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/kailash-gateway/kgw/access"
	"github.com/kailash-gateway/kgw/store/sqlite"
)

// BenchmarkAuthCheck is the CPU cost of authenticating and authorizing one
// call with an API key (the interceptor's work, without the RPC).
func BenchmarkAuthCheck(b *testing.B) {
	st, err := sqlite.Open(context.Background(), b.TempDir()+"/kgw.db")
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	keys := access.NewKeys(st, make([]byte, 32), nil)
	_, key, err := keys.Create(context.Background(), access.CreateRequest{Name: "b", Roles: []string{"executor"}})
	if err != nil {
		b.Fatal(err)
	}
	failures, _ := newAuthFailures(nil)
	a := &authorizer{required: true, auth: &access.Authenticator{Keys: keys, Bindings: access.NewBindings(st, nil)},
		log: slog.New(slog.DiscardHandler), failures: failures, rules: rules}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+key))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.check(ctx, "/kgw.v1.ExecutionService/ExecuteWorkflow"); err != nil {
			b.Fatal(err)
		}
	}
}
