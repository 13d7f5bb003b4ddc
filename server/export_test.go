package server

import "google.golang.org/grpc/stats"

// SetTracingStatsHandler makes the servers built with Tracing use h as
// their gRPC stats handler instead of otelgrpc's, until restore is called.
func SetTracingStatsHandler(h stats.Handler) (restore func()) {
	old := tracingStatsHandler
	tracingStatsHandler = func() stats.Handler { return h }
	return func() { tracingStatsHandler = old }
}
