package server_test

import (
	"context"
	"runtime"
	"testing"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
)

// throughputCallers is how many clients call ExecuteWorkflow at once in
// BenchmarkNoopThroughput, as the services of a mesh would.
const throughputCallers = 32

// BenchmarkNoopThroughput measures what a client sees: ExecuteWorkflow of a
// one-node no-op workflow through the gateway's gRPC API on a loopback
// connection, with throughputCallers concurrent callers, against one
// gateway with a SQLite store. The durable workflow is journalled; the
// ephemeral one is the same workflow with disable_journal, in the same
// run. `make bench` reports the ratio.
func BenchmarkNoopThroughput(b *testing.B) {
	s := startStack(b, stackOptions{})
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		durable bool
	}{{"durable", true}, {"ephemeral", false}} {
		wf := &kgwv1.Workflow{
			Name:           "noop_" + tc.name,
			Nodes:          []*kgwv1.Node{{Id: "n", Code: "result = {}"}},
			DisableJournal: !tc.durable,
		}
		if _, err := s.wf.RegisterWorkflow(ctx, &kgwv1.RegisterWorkflowRequest{Workflow: wf}); err != nil {
			b.Fatalf("RegisterWorkflow: %v", err)
		}
		req := &kgwv1.ExecuteWorkflowRequest{Workflow: wf.Name}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(max(1, throughputCallers/runtime.GOMAXPROCS(0)))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := s.ex.ExecuteWorkflow(ctx, req)
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
