package server_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
)

// throughputCallers are the numbers of clients that call ExecuteWorkflow at
// once in BenchmarkNoopThroughput. A server's throughput is the rate it
// sustains when enough callers keep it busy; how many that takes depends
// on the latency of a call (Little's law), which the journal raises. So
// each scenario runs at a few concurrencies, from one at which durable
// calls mostly wait on their commits to ones that saturate the gateway,
// and `make bench` compares the peaks.
var throughputCallers = []int{32, 128, 512}

// BenchmarkNoopThroughput measures what clients see: ExecuteWorkflow of a
// one-node no-op workflow through the gateway's gRPC API on a loopback
// connection, against one gateway with a SQLite store. The durable
// workflow is journalled; the ephemeral one is the same workflow with
// disable_journal, in the same run.
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
		for _, callers := range throughputCallers {
			b.Run(fmt.Sprintf("%s/callers=%d", tc.name, callers), func(b *testing.B) {
				b.ReportAllocs()
				b.SetParallelism(max(1, callers/runtime.GOMAXPROCS(0)))
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
}
