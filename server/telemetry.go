package server

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kailash-gateway/kgw/executor"
	"github.com/kailash-gateway/kgw/resources"
)

// Default label cardinality bounds of Telemetry (TelemetryConfig).
const (
	DefaultMaxWorkflowLabels = 200
	DefaultMaxNodeLabels     = 1000
	DefaultMaxPoolLabels     = 200
)

// otherLabel replaces label values beyond a bound.
const otherLabel = "other"

// TelemetryConfig configures NewTelemetry.
type TelemetryConfig struct {
	// Registry receives the metrics (required).
	Registry prometheus.Registerer
	// MaxWorkflows, MaxNodes and MaxPools bound the distinct values of the
	// workflow, node (workflow and node pairs) and pool labels; later
	// values are reported as "other". Zero means the defaults above.
	MaxWorkflows, MaxNodes, MaxPools int
}

// Telemetry holds the gateway's execution, node, pool, journal, stream and
// secret metrics (docs/observability.md). It implements executor.Observer
// and resources.Observer; a nil *Telemetry is not usable, pass none
// instead.
type Telemetry struct {
	executions    *prometheus.CounterVec
	execDuration  *prometheus.HistogramVec
	nodeAttempts  *prometheus.CounterVec
	nodeDuration  *prometheus.HistogramVec
	running       prometheus.Gauge
	poolExhausted *prometheus.CounterVec
	commit        prometheus.Histogram
	batch         prometheus.Histogram
	subscribers   prometheus.Gauge
	secrets       *prometheus.CounterVec

	workflows, nodes, pools *labelBound
	pollPools               func() []resources.PoolStats // set by WatchPools
	poolMu                  sync.Mutex
}

var (
	_ executor.Observer  = (*Telemetry)(nil)
	_ resources.Observer = (*Telemetry)(nil)
)

var durationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800}

// NewTelemetry creates the metrics and registers them with cfg.Registry.
func NewTelemetry(cfg TelemetryConfig) (*Telemetry, error) {
	if cfg.MaxWorkflows <= 0 {
		cfg.MaxWorkflows = DefaultMaxWorkflowLabels
	}
	if cfg.MaxNodes <= 0 {
		cfg.MaxNodes = DefaultMaxNodeLabels
	}
	if cfg.MaxPools <= 0 {
		cfg.MaxPools = DefaultMaxPoolLabels
	}
	t := &Telemetry{
		executions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kgw", Name: "executions_total",
			Help: "Executions that finished in this process, by workflow and final status (completed, failed, cancelled, timed_out).",
		}, []string{"workflow", "status"}),
		execDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "kgw", Name: "execution_duration_seconds",
			Help:    "Time from an execution's start to its end, by workflow and final status.",
			Buckets: durationBuckets,
		}, []string{"workflow", "status"}),
		nodeAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kgw", Name: "node_attempts_total",
			Help: "Node attempts that ended, by workflow, node and outcome (completed, failed, timed_out, interrupted).",
		}, []string{"workflow", "node", "outcome"}),
		nodeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "kgw", Name: "node_duration_seconds",
			Help:    "Duration of node attempts, by workflow and node.",
			Buckets: durationBuckets,
		}, []string{"workflow", "node"}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "kgw", Name: "executions_running",
			Help: "Executions running in this process.",
		}),
		poolExhausted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kgw", Name: "pool_exhausted_total",
			Help: "Acquires that found no free connection within the resource's timeout, by resource type and pool.",
		}, []string{"type", "pool"}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "kgw", Name: "journal_commit_seconds",
			Help:    "Time of one journal transaction.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5},
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "kgw", Name: "journal_batch_size",
			Help:    "Journal items (events and state changes) written in one transaction.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
		subscribers: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "kgw", Name: "stream_subscribers",
			Help: "Open StreamExecution and WatchExecution event streams.",
		}),
		secrets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kgw", Name: "secret_resolutions_total",
			Help: "Resolutions of a resource's credentials_ref, by outcome (ok, not_found, error).",
		}, []string{"outcome"}),
		workflows: newLabelBound(cfg.MaxWorkflows),
		nodes:     newLabelBound(cfg.MaxNodes),
		pools:     newLabelBound(cfg.MaxPools),
	}
	for _, c := range []prometheus.Collector{
		t.executions, t.execDuration, t.nodeAttempts, t.nodeDuration, t.running,
		t.poolExhausted, t.commit, t.batch, t.subscribers, t.secrets, poolCollector{t},
	} {
		if err := cfg.Registry.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return t, nil
}

// WatchPools makes kgw_pool_connections and kgw_pool_acquire_wait_seconds
// report b's pools (read at each scrape).
func (t *Telemetry) WatchPools(b *resources.Broker) {
	t.poolMu.Lock()
	defer t.poolMu.Unlock()
	t.pollPools = b.Pools
}

// ExecutionStarted implements executor.Observer.
func (t *Telemetry) ExecutionStarted(string) { t.running.Inc() }

// ExecutionStopped implements executor.Observer.
func (t *Telemetry) ExecutionStopped(workflow, status string, d time.Duration) {
	t.running.Dec()
	if status == "" {
		return // left for recovery: it finishes later, here or elsewhere
	}
	w := t.workflows.get(workflow)
	t.executions.WithLabelValues(w, status).Inc()
	t.execDuration.WithLabelValues(w, status).Observe(d.Seconds())
}

// NodeAttempt implements executor.Observer.
func (t *Telemetry) NodeAttempt(workflow, node, outcome string, d time.Duration) {
	w := t.workflows.get(workflow)
	n := node
	if w == otherLabel || t.nodes.get(workflow+"\x00"+node) == otherLabel {
		n = otherLabel
	}
	t.nodeAttempts.WithLabelValues(w, n, outcome).Inc()
	t.nodeDuration.WithLabelValues(w, n).Observe(d.Seconds())
}

// JournalCommit implements executor.Observer.
func (t *Telemetry) JournalCommit(items int, d time.Duration) {
	t.commit.Observe(d.Seconds())
	t.batch.Observe(float64(items))
}

// PoolExhausted implements resources.Observer.
func (t *Telemetry) PoolExhausted(typ, pool string) {
	t.poolExhausted.WithLabelValues(typ, t.pools.get(pool)).Inc()
}

// SecretResolved implements resources.Observer.
func (t *Telemetry) SecretResolved(outcome string) { t.secrets.WithLabelValues(outcome).Inc() }

// subscribed counts an event stream until the returned func is called.
func (t *Telemetry) subscribed() func() {
	if t == nil {
		return func() {}
	}
	t.subscribers.Inc()
	return t.subscribers.Dec
}

// poolCollector reports the broker's pools at scrape time.
type poolCollector struct{ t *Telemetry }

var (
	poolConnsDesc = prometheus.NewDesc("kgw_pool_connections",
		"Connections of a resource pool, by resource type, pool and state (in_use, idle).",
		[]string{"type", "pool", "state"}, nil)
	poolWaitDesc = prometheus.NewDesc("kgw_pool_acquire_wait_seconds",
		"Time spent waiting to acquire a connection from a resource pool (count: acquires), by resource type and pool.",
		[]string{"type", "pool"}, nil)
)

func (c poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- poolConnsDesc
	ch <- poolWaitDesc
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	c.t.poolMu.Lock()
	poll := c.t.pollPools
	c.t.poolMu.Unlock()
	if poll == nil {
		return
	}
	// Several pools may share a label (secret versions, folded labels):
	// their figures add up.
	type key struct{ typ, pool string }
	type sums struct {
		inUse, idle int
		acquires    int64
		wait        time.Duration
	}
	agg := map[key]*sums{}
	var order []key
	for _, p := range poll() {
		k := key{p.Type, c.t.pools.get(p.Label)}
		s := agg[k]
		if s == nil {
			s = &sums{}
			agg[k] = s
			order = append(order, k)
		}
		s.inUse += p.InUse
		s.idle += p.Idle
		s.acquires += p.Acquires
		s.wait += p.AcquireWait
	}
	for _, k := range order {
		s := agg[k]
		ch <- prometheus.MustNewConstMetric(poolConnsDesc, prometheus.GaugeValue, float64(s.inUse), k.typ, k.pool, "in_use")
		ch <- prometheus.MustNewConstMetric(poolConnsDesc, prometheus.GaugeValue, float64(s.idle), k.typ, k.pool, "idle")
		ch <- prometheus.MustNewConstSummary(poolWaitDesc, uint64(max(s.acquires, 0)), s.wait.Seconds(), nil, k.typ, k.pool)
	}
}

// labelBound admits the first max distinct values of a label; later ones
// become "other", so that a caller registering many workflows (or a
// resource per request) cannot grow the metrics without bound.
type labelBound struct {
	mu   sync.Mutex
	max  int
	seen map[string]struct{}
}

func newLabelBound(max int) *labelBound {
	return &labelBound{max: max, seen: make(map[string]struct{})}
}

func (b *labelBound) get(v string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.seen[v]; ok {
		return v
	}
	if len(b.seen) >= b.max {
		return otherLabel
	}
	b.seen[v] = struct{}{}
	return v
}
