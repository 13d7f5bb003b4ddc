package server

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// rpcMetrics are the gRPC request metrics of a Server.
type rpcMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newRPCMetrics(reg prometheus.Registerer) (*rpcMetrics, error) {
	m := &rpcMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kgw",
			Name:      "grpc_requests_total",
			Help:      "gRPC requests handled, by full method and status code.",
		}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "kgw",
			Name:      "grpc_request_duration_seconds",
			Help:      "Time to handle a gRPC request (a whole stream for streaming RPCs), by full method.",
			Buckets:   []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"method"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.duration} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register gRPC metrics: %w", err)
			}
		}
	}
	return m, nil
}
