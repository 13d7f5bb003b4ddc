package server_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/kailash-gateway/kgw/access"
	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
)

// BenchmarkAuthThroughput compares no-op ExecuteWorkflow throughput through
// the gRPC API under --auth none with --auth required and an API key (the
// executor role), in the same run, at the concurrencies of
// BenchmarkNoopThroughput. The workflow skips the journal so that the cost
// of authentication is as large a share of a call as it gets. `make bench`
// reports the peak ratio (target ≥ 0.90×).
func BenchmarkAuthThroughput(b *testing.B) {
	ctx := context.Background()
	none := startStack(b, stackOptions{})
	required := startStack(b, stackOptions{authRequired: true})
	wf := &kgwv1.Workflow{Name: "noop", Nodes: []*kgwv1.Node{{Id: "n", Code: "result = {}"}}, DisableJournal: true}
	for _, s := range []*stack{none, required} {
		if _, err := s.wf.RegisterWorkflow(ctx, &kgwv1.RegisterWorkflowRequest{Workflow: wf}); err != nil {
			b.Fatalf("RegisterWorkflow: %v", err)
		}
	}
	apiKey := kgwv1.NewExecutionServiceClient(required.dialAs(b, required.key(b, access.RoleExecutor)))
	req := &kgwv1.ExecuteWorkflowRequest{Workflow: wf.Name}
	for _, callers := range throughputCallers {
		for _, tc := range []struct {
			name string
			ex   kgwv1.ExecutionServiceClient
		}{{"none", none.ex}, {"apikey", apiKey}} {
			b.Run(fmt.Sprintf("%s/callers=%d", tc.name, callers), func(b *testing.B) {
				b.ReportAllocs()
				b.SetParallelism(max(1, callers/runtime.GOMAXPROCS(0)))
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						resp, err := tc.ex.ExecuteWorkflow(ctx, req)
						if err != nil {
							b.Error(err)
							return
						}
						if s := resp.GetExecution().GetStatus(); s != kgwv1.ExecutionStatus_EXECUTION_STATUS_COMPLETED {
							b.Errorf("status %v", s)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "execs/s")
			})
		}
	}
}
