package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
	"github.com/kailash-gateway/kgw/internal/testenv"
	"github.com/kailash-gateway/kgw/secrets"
)

// metricRef matches a metric name in a PromQL expression.
var metricRef = regexp.MustCompile(`\bkgw_[a-z_]+\b`)

// dashboardMetrics returns the metric names the Grafana dashboard's
// queries (and template variables) reference.
func dashboardMetrics(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "grafana", "kgw.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Targets []struct{ Expr string } `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Query any `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("deploy/grafana/kgw.json: %v", err)
	}
	seen := map[string]bool{}
	var names []string
	add := func(expr string) {
		for _, n := range metricRef.FindAllString(expr, -1) {
			if !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
	}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			add(tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(string); ok {
			add(q)
		}
	}
	if len(names) < 10 {
		t.Fatalf("the dashboard references only %v", names)
	}
	return names
}

// TestDashboardMetricsExist runs a gateway with its admin server, does
// work that gives every gateway metric a sample (executions that complete
// and fail, an exhausted database pool, a missing secret, an open event
// stream), then checks that every metric the Grafana dashboard queries is
// on the live /metrics.
func TestDashboardMetricsExist(t *testing.T) {
	pg := testenv.Postgres(t)
	dbDSN := pg.NewDatabase(t)
	dbName := dbDSN[strings.LastIndex(dbDSN, "/")+1:]
	if i := strings.IndexByte(dbName, '?'); i >= 0 {
		dbName = dbName[:i]
	}
	cfg, err := parseServeConfig([]string{"--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--data-dir", t.TempDir()},
		envOf(map[string]string{"KGW_MASTER_KEY": secrets.NewMasterKey().Base64()}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	conn, _, h := runInProcess(t, cfg)
	h.mu.Lock()
	admin := *h.admin
	h.mu.Unlock()
	ctx := t.Context()
	wf := kgwv1.NewWorkflowServiceClient(conn)
	ex := kgwv1.NewExecutionServiceClient(conn)
	for _, w := range []*kgwv1.Workflow{
		{Name: "ok", Nodes: []*kgwv1.Node{{Id: "a", Code: `result = {}`}}},
		{Name: "bad", Nodes: []*kgwv1.Node{{Id: "a", Code: `result = {"x": 1 // 0}`}}},
		// Two parallel nodes on a pool of one connection: the second
		// gives up after 0.3 s while the first sleeps 1 s.
		{Name: "busy", Nodes: []*kgwv1.Node{
			{Id: "a", RequiredResources: []string{"db"}, Code: `result = {"v": get_resource("db").fetchval("SELECT pg_sleep(1)::text")}`},
			{Id: "b", RequiredResources: []string{"db"}, Code: `result = {"v": get_resource("db").fetchval("SELECT pg_sleep(1)::text")}`},
		}},
	} {
		if _, err := wf.RegisterWorkflow(ctx, &kgwv1.RegisterWorkflowRequest{Workflow: w}); err != nil {
			t.Fatalf("RegisterWorkflow %s: %v", w.GetName(), err)
		}
	}
	for _, name := range []string{"ok", "bad"} {
		if _, err := ex.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: name}); err != nil {
			t.Fatalf("ExecuteWorkflow %s: %v", name, err)
		}
	}
	dbConfig, _ := structpb.NewStruct(map[string]any{"host": "127.0.0.1", "port": pg.Port, "database": dbName, "user": "postgres",
		"max_size": 1, "timeout": 0.3})
	x, err := ex.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: "busy",
		Resources: map[string]*kgwv1.ResourceSpec{"db": {Type: "database", Config: dbConfig}}})
	if err != nil || !strings.Contains(x.GetExecution().GetError().GetMessage(), "connection pool exhausted") {
		t.Fatalf("busy = %v, %v; want a node failed with an exhausted pool", x.GetExecution(), err)
	}
	if _, err := ex.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: "busy",
		Resources: map[string]*kgwv1.ResourceSpec{"db": {Type: "database", Config: dbConfig, CredentialsRef: "missing"}}}); err != nil {
		t.Fatal(err)
	}
	st, err := ex.StartExecution(ctx, &kgwv1.StartExecutionRequest{Workflow: "ok"})
	if err != nil {
		t.Fatal(err)
	}
	watch, err := ex.WatchExecution(ctx, &kgwv1.WatchExecutionRequest{ExecutionId: st.GetExecutionId()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); err != nil {
		t.Fatal(err)
	}

	families := metricFamilies(t, admin)
	for _, name := range dashboardMetrics(t) {
		family := name
		if !families[family] {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(name, suffix); ok && families[base] {
					family = base
				}
			}
		}
		if !families[family] {
			t.Errorf("the dashboard queries %s, which the live /metrics does not have", name)
		}
	}
}

// metricFamilies returns the metric families (their # TYPE lines) that
// the admin server at admin serves on /metrics.
func metricFamilies(t *testing.T, admin string) (families map[string]bool) {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	families = map[string]bool{}
	for line := range strings.SplitSeq(string(body), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			families[f[2]] = true
		}
	}
	return families
}
