package server_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
	"github.com/kailash-gateway/kgw/internal/testenv"
)

// scrape fetches /metrics from a loopback HTTP server serving reg and
// parses the text exposition.
func scrape(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	hs := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer hs.Close()
	resp, err := http.Get(hs.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// sample finds the sample of family name whose labels are exactly labels
// ("k=v" pairs); nil when there is none.
func sample(fams map[string]*dto.MetricFamily, name string, labels ...string) *dto.Metric {
	f := fams[name]
	if f == nil {
		return nil
	}
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		ok := true
		for _, lp := range m.GetLabel() {
			found := false
			for _, l := range labels {
				if l == lp.GetName()+"="+lp.GetValue() {
					found = true
				}
			}
			ok = ok && found
		}
		if ok {
			return m
		}
	}
	return nil
}

// value is the value of a counter or gauge sample, or the observation
// count of a histogram or summary; -1 when the sample is missing.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	m := sample(fams, name, labels...)
	switch {
	case m == nil:
		return -1
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Histogram != nil:
		return float64(m.GetHistogram().GetSampleCount())
	case m.Summary != nil:
		return float64(m.GetSummary().GetSampleCount())
	}
	return -1
}

// syncBuffer is a bytes.Buffer safe for a slog handler and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) lines() []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for line := range strings.SplitSeq(b.b.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// TestMetricsAfterKnownWork runs 3 executions that complete, 1 that fails,
// one that finds its pool exhausted while another holds the only
// connection and is watched, and one whose credentials_ref is missing,
// then scrapes /metrics and checks every gateway metric's value and labels.
func TestMetricsAfterKnownWork(t *testing.T) {
	db := newPGDB(t, testenv.Postgres(t))
	reg := prometheus.NewRegistry()
	s := startStack(t, stackOptions{registry: reg})
	s.register(t, &kgwv1.Workflow{Name: "ok", Nodes: []*kgwv1.Node{{Id: "a", Code: `result = {"x": 1}`}}})
	s.register(t, &kgwv1.Workflow{Name: "bad", Nodes: []*kgwv1.Node{{Id: "boom", Code: `result = {"x": 1 // 0}`}}})
	s.register(t, gatedWorkflow("exhaust", []string{"db"}, `
db = get_resource("db")
if parameters.get("hold"):
    held = db.acquire()
    held.fetchval("SELECT 1")
    logger.info("holding")
    wait_for("release")
    result = {"held": True}
else:
    result = {"v": db.fetchval("SELECT 1")}
`))
	for range 3 {
		mustComplete(t, s.run(t, &kgwv1.ExecuteWorkflowRequest{Workflow: "ok"}))
	}
	failed(t, s.run(t, &kgwv1.ExecuteWorkflowRequest{Workflow: "bad"}))

	res := map[string]*kgwv1.ResourceSpec{"db": db.spec(t, map[string]any{"max_size": 1, "timeout": 0.3})}
	holder := s.startUntilLog(t, &kgwv1.StartExecutionRequest{Workflow: "exhaust", Resources: res,
		Parameters: params(t, map[string]any{"hold": true})}, "holding")
	mustFail(t, s.run(t, &kgwv1.ExecuteWorkflowRequest{Workflow: "exhaust", Resources: res}), "RESOURCE_ERROR", "connection pool exhausted")
	missing := map[string]*kgwv1.ResourceSpec{"db": {Type: "database", CredentialsRef: "no-such-secret",
		Config: params(t, map[string]any{"host": "127.0.0.1", "port": db.srv.Port, "database": db.name})}}
	failed(t, s.run(t, &kgwv1.ExecuteWorkflowRequest{Workflow: "exhaust", Resources: missing}))

	watch, err := s.ex.WatchExecution(t.Context(), &kgwv1.WatchExecutionRequest{ExecutionId: holder})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); err != nil { // the stream is open
		t.Fatal(err)
	}

	pool := "pool=" + db.target()
	fams := scrape(t, reg)
	checkKnownWorkMetrics(t, fams, pool)

	s.open(t, "exhaust", "release")
	mustComplete(t, s.wait(t, holder))
	watch.CloseSend()
	eventually(t, "subscribers and running back to 0", func() string {
		fams := scrape(t, reg)
		if r, w := value(fams, "kgw_executions_running"), value(fams, "kgw_stream_subscribers"); r != 0 || w != 0 {
			return "running " + fmtF(r) + ", subscribers " + fmtF(w)
		}
		return ""
	})
}

// checkKnownWorkMetrics checks the metrics fams scraped after the work of
// TestMetricsAfterKnownWork (a database pool named pool, one execution
// still running, holding its connection, and watched), and that no label
// carries a user or secret name.
func checkKnownWorkMetrics(t *testing.T, fams map[string]*dto.MetricFamily, pool string) {
	t.Helper()
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"kgw_executions_total", []string{"workflow=ok", "status=completed"}, 3},
		{"kgw_executions_total", []string{"workflow=bad", "status=failed"}, 1},
		{"kgw_executions_total", []string{"workflow=exhaust", "status=failed"}, 2},
		{"kgw_execution_duration_seconds", []string{"workflow=ok", "status=completed"}, 3},
		{"kgw_execution_duration_seconds", []string{"workflow=bad", "status=failed"}, 1},
		{"kgw_node_attempts_total", []string{"workflow=ok", "node=a", "outcome=completed"}, 3},
		{"kgw_node_attempts_total", []string{"workflow=bad", "node=boom", "outcome=failed"}, 1},
		{"kgw_node_duration_seconds", []string{"workflow=ok", "node=a"}, 3},
		{"kgw_executions_running", nil, 1},
		{"kgw_pool_connections", []string{"type=database", pool, "state=in_use"}, 1},
		{"kgw_pool_connections", []string{"type=database", pool, "state=idle"}, 0},
		{"kgw_pool_exhausted_total", []string{"type=database", pool}, 1},
		{"kgw_stream_subscribers", nil, 1},
		{"kgw_secret_resolutions_total", []string{"outcome=not_found"}, 1},
	} {
		if got := value(fams, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// The holder's acquire succeeded (the one that gave up is counted as
	// exhausted, not as an acquire).
	if m := sample(fams, "kgw_pool_acquire_wait_seconds", "type=database", pool); m == nil ||
		m.GetSummary().GetSampleCount() != 1 || m.GetSummary().GetSampleSum() <= 0 {
		t.Errorf("kgw_pool_acquire_wait_seconds = %v, want 1 acquire with its wait", m)
	}
	for _, name := range []string{"kgw_journal_commit_seconds", "kgw_journal_batch_size"} {
		if got := value(fams, name); got < 6 {
			t.Errorf("%s count = %v, want at least one commit per execution", name, got)
		}
	}
	// No label anywhere carries a user name or secret name.
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "postgres") && l.GetName() != "pool" || strings.Contains(l.GetValue(), "no-such-secret") {
					t.Errorf("%s label %s=%q", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
}

func fmtF(f float64) string { return strings.TrimRight(strings.TrimRight(jsonNum(f), "0"), ".") }

func jsonNum(f float64) string { b, _ := json.Marshal(f); return string(b) }

// TestMetricsLabelsFold: workflows beyond the bound are counted as
// "other".
func TestMetricsLabelsFold(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := startStack(t, stackOptions{registry: reg, maxWorkflows: 2})
	for _, name := range []string{"w1", "w2", "w3", "w4"} {
		s.register(t, &kgwv1.Workflow{Name: name, Nodes: []*kgwv1.Node{{Id: "n", Code: `result = {}`}}})
		mustComplete(t, s.run(t, &kgwv1.ExecuteWorkflowRequest{Workflow: name}))
	}
	fams := scrape(t, reg)
	for _, c := range []struct {
		wf   string
		want float64
	}{{"w1", 1}, {"w2", 1}, {"other", 2}, {"w3", -1}} {
		if got := value(fams, "kgw_executions_total", "workflow="+c.wf, "status=completed"); got != c.want {
			t.Errorf("kgw_executions_total{workflow=%s} = %v, want %v", c.wf, got, c.want)
		}
	}
	if got := value(fams, "kgw_node_attempts_total", "workflow=other", "node=other", "outcome=completed"); got != 2 {
		t.Errorf("kgw_node_attempts_total{workflow=other,node=other} = %v, want 2", got)
	}
}

// TestFailedExecutionLogLine: an execution that fails logs one warn line
// (JSON) with its execution_id, workflow, status, error code and node, and
// the node's logger output reaches the server log with its execution_id,
// with secrets redacted.
func TestFailedExecutionLogLine(t *testing.T) {
	var buf syncBuffer
	s := startStack(t, stackOptions{logger: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	s.register(t, &kgwv1.Workflow{Name: "bad", Nodes: []*kgwv1.Node{{Id: "boom", Code: `
logger.warning("about to fail", execution_id="spoofed", n=7)
result = {"x": 1 // 0}`}}})
	x := s.run(t, &kgwv1.ExecuteWorkflowRequest{Workflow: "bad"})
	failed(t, x)
	var warn, nodeLine map[string]any
	eventually(t, "the log lines", func() string {
		for _, l := range buf.lines() {
			switch l["msg"] {
			case "execution did not complete":
				warn = l
			case "about to fail":
				nodeLine = l
			}
		}
		if warn == nil || nodeLine == nil {
			return "missing"
		}
		return ""
	})
	want := map[string]any{"level": "WARN", "execution_id": x.GetId(), "workflow": "bad", "status": "failed",
		"error_code": x.GetError().GetCode(), "node": "boom"}
	for k, v := range want {
		if warn[k] != v {
			t.Errorf("warn line %s = %v, want %v (line %v)", k, warn[k], v, warn)
		}
	}
	if x.GetError().GetCode() == "" {
		t.Error("the execution has no error code")
	}
	nl, _ := nodeLine["node_log"].(map[string]any)
	if nodeLine["level"] != "WARN" || nodeLine["execution_id"] != x.GetId() || nodeLine["node"] != "boom" ||
		nodeLine["attempt"] != float64(1) || nl["n"] != float64(7) || nl["execution_id"] != "spoofed" {
		t.Errorf("node log line = %v, want WARN with execution_id, node, attempt, and the node's fields under node_log", nodeLine)
	}
}

// failed checks that x failed.
func failed(t *testing.T, x *kgwv1.Execution) {
	t.Helper()
	if x.GetStatus() != kgwv1.ExecutionStatus_EXECUTION_STATUS_FAILED {
		t.Fatalf("execution %s: status %v, error %v; want FAILED", x.GetId(), x.GetStatus(), x.GetError())
	}
}
