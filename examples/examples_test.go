package examples_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	kgw "github.com/kailash-gateway/kgw/clients/go"
	"github.com/kailash-gateway/kgw/examples/internal/upstream"
	"github.com/kailash-gateway/kgw/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestExamples runs every example end to end through the gRPC API of one
// real gateway, against real PostgreSQL, Redis and HTTP upstreams, and
// checks what each one did to them.
func TestExamples(t *testing.T) {
	s := newSuite(t)
	tests := []struct {
		name string
		run  func(*testing.T, *example)
	}{
		{"hello_db", testHelloDB},
		{"user_etl", testUserETL},
		{"dashboard_data", testDashboardData},
		{"process_events", testProcessEvents},
		{"validate_order", testValidateOrder},
		{"read_replica", testReadReplica},
		{"rate_limited_calls", testRateLimitedCalls},
		{"smart_caching", testSmartCaching},
		{"graceful_degradation", testGracefulDegradation},
		{"retry_with_backoff", testRetryWithBackoff},
		{"batch_process", testBatchProcess},
		{"concurrent_processing", testConcurrentProcessing},
		{"tiered_caching", testTieredCaching},
		{"instrumented_step", testInstrumentedStep},
		{"debug_mode", testDebugMode},
		{"event_sourcing", testEventSourcing},
		{"order_saga", testOrderSaga},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, s.setup(t, tc.name))
		})
	}
	if t.Failed() {
		t.Logf("gateway log:\n%s", s.logs())
	}
}

func testHelloDB(t *testing.T, ex *example) {
	exec := ex.mustComplete(t, "hello_db", kgw.Param("user_id", 2), kgw.Resource("db", ex.dbSpec("", 0)))
	want := map[string]any{"message": "Hello, Grace! You are one of 3 users.", "user_count": 3.0}
	if diff := cmp.Diff(want, exec.Result["query"]); diff != "" {
		t.Errorf("result of query (-want +got):\n%s", diff)
	}
	ex.mustFail(t, "hello_db", "query", "user 99 not found", kgw.Param("user_id", 99), kgw.Resource("db", ex.dbSpec("", 0)))
}

func testUserETL(t *testing.T, ex *example) {
	exec := ex.mustComplete(t, "user_etl",
		kgw.Param("key_prefix", ex.prefix),
		kgw.Resource("db", ex.dbSpec("", 0)),
		kgw.Resource("cache", ex.cacheSpec(t)))
	if got := num(t, exec.Result["load"], "loaded"); got != 3 {
		t.Errorf("load.loaded = %v, want 3", got)
	}
	want := map[int]map[string]any{
		1: {"display_name": "Ada Lovelace", "email_domain": "example.com", "days_active": 1.0},
		2: {"display_name": "Grace Hopper", "email_domain": "navy.mil", "days_active": 3.0},
		3: {"display_name": "Alan Turing", "email_domain": "example.com", "days_active": 6.0},
	}
	for id, w := range want {
		key := fmt.Sprintf("user:profile:%d", id)
		p := ex.redisJSON(t, key)
		for k, v := range w {
			if p[k] != v {
				t.Errorf("%s: %s = %v, want %v (profile %v)", key, k, p[k], v, p)
			}
		}
		ex.checkTTL(t, key, 3500, 3600)
	}
	if _, ok := ex.redisGet(t, "user:profile:4"); ok {
		t.Error("user 4, created 30 days ago, was loaded")
	}
	summary := ex.redisJSON(t, "etl:summary")
	if got := num(t, summary, "users"); got != 3 {
		t.Errorf("summary users = %v, want 3", got)
	}
	if diff := cmp.Diff(map[string]any{"example.com": 2.0, "navy.mil": 1.0}, summary["domains"]); diff != "" {
		t.Errorf("summary domains (-want +got):\n%s", diff)
	}
	ex.checkTTL(t, "etl:summary", 3500, 3600)
}

func testDashboardData(t *testing.T, ex *example) {
	// The barrier holds each request until all four are in flight: only a
	// concurrent caller gets MaxInFlight == 4.
	up, api := ex.upstream(t, upstream.Config{DashboardBarrier: 4})
	exec := ex.mustComplete(t, "dashboard_data",
		kgw.Param("key_prefix", ex.prefix),
		kgw.Resource("api", api),
		kgw.Resource("cache", ex.cacheSpec(t)))

	reqs := up.Requests("/dashboard/")
	var paths []string
	for _, r := range reqs {
		paths = append(paths, r.Path)
	}
	slices.Sort(paths)
	if diff := cmp.Diff([]string{"/dashboard/alerts", "/dashboard/orders", "/dashboard/revenue", "/dashboard/users"}, paths); diff != "" {
		t.Errorf("upstream requests (-want +got):\n%s", diff)
	}
	if got := up.MaxInFlight(); got != 4 {
		t.Errorf("at most %d dashboard requests were in flight together, want 4 (parallel.map)", got)
	}

	build := exec.Result["build"]
	if diff := cmp.Diff([]any{"alerts"}, build["degraded"]); diff != "" {
		t.Errorf("build.degraded (-want +got):\n%s", diff)
	}
	if e := str(t, build, "dashboard", "errors", "alerts"); !strings.Contains(e, "503") {
		t.Errorf("error of the alerts section = %q, want it to name HTTP 503", e)
	}
	cached := ex.redisJSON(t, "dashboard:main")
	if got := num(t, cached, "sections", "users", "total"); got != 1280 {
		t.Errorf("cached dashboard users.total = %v, want 1280", got)
	}
	if got := num(t, cached, "sections", "revenue", "today"); got != 18250.5 {
		t.Errorf("cached dashboard revenue.today = %v, want 18250.5", got)
	}
	if cached["complete"] != false {
		t.Errorf("cached dashboard complete = %v, want false", cached["complete"])
	}
	ex.checkTTL(t, "dashboard:main", 0, 60)
}

func testProcessEvents(t *testing.T, ex *example) {
	ex.redisSet(t, "prefs:1", `{"channel": "email"}`)
	ex.redisSet(t, "prefs:2", `{"channel": "sms"}`)
	events := []any{
		map[string]any{"id": "e1", "user_id": 1, "type": "click"},
		map[string]any{"id": "e2", "user_id": 2, "type": "view"},
		map[string]any{"id": "e3", "user_id": 3, "type": "click"},
		map[string]any{"id": "e4", "user_id": 1, "type": "purchase"},
		map[string]any{"id": "e5", "user_id": 42, "type": "click"},
	}
	exec := ex.mustComplete(t, "process_events",
		kgw.Param("key_prefix", ex.prefix),
		kgw.Param("events", events),
		kgw.Resource("db", ex.dbSpec("", 0)),
		kgw.Resource("cache", ex.cacheSpec(t)))
	want := map[string]any{
		"processed": 4.0, "unknown_user": 1.0, "with_preferences": 3.0,
		"by_priority": map[string]any{"high": 2.0, "normal": 1.0, "low": 1.0},
	}
	if diff := cmp.Diff(want, exec.Result["enrich"]); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
	ex.checkTTL(t, "event:e1", 86000, 86400) // premium
	ex.checkTTL(t, "event:e2", 3500, 3600)   // standard
	ex.checkTTL(t, "event:e3", 500, 600)     // free
	if _, ok := ex.redisGet(t, "event:e5"); ok {
		t.Error("event of an unknown user was stored")
	}
	e1 := ex.redisJSON(t, "event:e1")
	if got := str(t, e1, "preferences", "channel"); got != "email" {
		t.Errorf("event:e1 preferences.channel = %q, want email", got)
	}
	if got := str(t, e1, "user", "tier"); got != "premium" {
		t.Errorf("event:e1 user.tier = %q, want premium", got)
	}
	if got := str(t, e1, "enriched_by"); got != exec.ID {
		t.Errorf("event:e1 enriched_by = %q, want the execution id %q", got, exec.ID)
	}
	for queue, want := range map[string][]string{"queue:high": {"e1", "e4"}, "queue:normal": {"e2"}, "queue:low": {"e3"}} {
		if diff := cmp.Diff(want, ex.redisList(t, queue)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", queue, diff)
		}
	}
}

func testValidateOrder(t *testing.T, ex *example) {
	up, api := ex.upstream(t, upstream.Config{})
	run := func(orderID string, items ...[2]any) map[string]any {
		var list []any
		for _, it := range items {
			list = append(list, map[string]any{"sku": it[0], "qty": it[1]})
		}
		exec := ex.mustComplete(t, "validate_order",
			kgw.Param("key_prefix", ex.prefix),
			kgw.Param("order_id", orderID),
			kgw.Param("customer_id", "cust-7"),
			kgw.Param("items", list),
			kgw.Resource("db", ex.dbSpec("", 0)),
			kgw.Resource("credit_api", api),
			kgw.Resource("cache", ex.cacheSpec(t)))
		return exec.Result["validate"]
	}

	// Valid: in stock and within the credit limit.
	v := run("ord-1", [2]any{"KB-01", 2}, [2]any{"MS-02", 1})
	if v["valid"] != true || num(t, v, "order_total") != 119.3 {
		t.Errorf("ord-1 validation = %v, want valid with total 119.3", v)
	}
	calls := up.Requests("/credit-check")
	if len(calls) != 1 {
		t.Fatalf("credit-check called %d times after ord-1, want 1", len(calls))
	}
	if body := calls[0].JSON(); body["amount"] != 119.3 || body["customer_id"] != "cust-7" {
		t.Errorf("credit-check request body = %v, want amount 119.3 for cust-7", body)
	}
	if cached := ex.redisJSON(t, "order_validation:ord-1"); cached["valid"] != true {
		t.Errorf("cached validation of ord-1 = %v, want valid", cached)
	}
	ex.checkTTL(t, "order_validation:ord-1", 290, 300)

	// Not enough stock: the credit check is skipped.
	v = run("ord-2", [2]any{"MON-27", 5})
	if v["valid"] != false || v["credit_checked"] != false {
		t.Errorf("ord-2 validation = %v, want invalid without credit check", v)
	}
	if diff := cmp.Diff([]any{"only 2 of MON-27 in stock, 5 requested"}, v["reasons"]); diff != "" {
		t.Errorf("ord-2 reasons (-want +got):\n%s", diff)
	}
	if n := len(up.Requests("/credit-check")); n != 1 {
		t.Errorf("credit-check called %d times after ord-2, want still 1", n)
	}
	ex.checkTTL(t, "order_validation:ord-2", 290, 300)

	// In stock but over the credit limit (1000).
	v = run("ord-3", [2]any{"MON-27", 2}, [2]any{"KB-01", 10})
	if v["valid"] != false || v["credit_checked"] != true {
		t.Errorf("ord-3 validation = %v, want invalid after a credit check", v)
	}
	if r := fmt.Sprint(v["reasons"]); !strings.Contains(r, "credit limit") {
		t.Errorf("ord-3 reasons = %s, want the credit limit", r)
	}
	if n := len(up.Requests("/credit-check")); n != 2 {
		t.Errorf("credit-check called %d times after ord-3, want 2", n)
	}
}

func testReadReplica(t *testing.T, ex *example) {
	ex.storeSecret(t, "read_replica_reporting", map[string]any{"user": "kgw_reporting", "password": "reporting-password"})
	ex.storeSecret(t, "read_replica_writer", map[string]any{"user": "kgw_writer", "password": "writer-password"})
	exec := ex.mustComplete(t, "read_replica",
		kgw.Param("period_days", 7),
		kgw.Param("report_name", "weekly-by-region"),
		kgw.Resource("read_db", ex.dbSpec("read_replica_reporting", 0)),
		kgw.Resource("write_db", ex.dbSpec("read_replica_writer", 0)))
	r := exec.Result["report"]
	wantRegions := []any{
		map[string]any{"region": "apac", "orders": 1.0, "revenue": 42.0},
		map[string]any{"region": "eu", "orders": 2.0, "revenue": 350.5},
		map[string]any{"region": "us", "orders": 1.0, "revenue": 80.25},
	}
	if diff := cmp.Diff(wantRegions, r["regions"]); diff != "" {
		t.Errorf("regions (-want +got):\n%s", diff)
	}
	if r["read_only_enforced"] != true {
		t.Errorf("read_only_enforced = %v: the reporting credentials could write", r["read_only_enforced"])
	}
	var name, createdBy string
	var payload map[string]any
	ex.queryRow(t, "SELECT name, created_by, payload FROM reports WHERE id = $1", []any{int64(num(t, r, "report_id"))}, &name, &createdBy, &payload)
	if name != "weekly-by-region" || createdBy != "kgw_writer" {
		t.Errorf("stored report: name %q by %q, want weekly-by-region by kgw_writer", name, createdBy)
	}
	if diff := cmp.Diff(wantRegions, payload["regions"]); diff != "" {
		t.Errorf("stored payload regions (-want +got):\n%s", diff)
	}
	var sales int
	ex.queryRow(t, "SELECT count(*) FROM sales", nil, &sales)
	if sales != 5 {
		t.Errorf("sales has %d rows after the run, want 5 (the reporting role must not delete)", sales)
	}
}

func testRateLimitedCalls(t *testing.T, ex *example) {
	up, api := ex.upstream(t, upstream.Config{})
	items := []any{"n1", "n2", "n3", "n4", "n5", "n6"}
	exec := ex.mustComplete(t, "rate_limited_calls",
		kgw.Param("items", items), kgw.Param("rate", 5), kgw.Resource("api", api))
	if got := num(t, exec.Result["notify"], "accepted"); got != 6 {
		t.Errorf("accepted = %v, want 6", got)
	}
	reqs := up.Requests("/notify")
	var ids []any
	for _, r := range reqs {
		ids = append(ids, r.JSON()["id"])
	}
	if diff := cmp.Diff(items, ids); diff != "" {
		t.Fatalf("notified ids (-want +got):\n%s", diff)
	}
	// 5 per second: each call starts at least 200 ms after the previous one
	// (the node's own clock; float seconds, so allow a microsecond).
	calls, _ := exec.Result["notify"]["calls"].([]any)
	if len(calls) != len(items) {
		t.Fatalf("calls = %v, want %d", exec.Result["notify"]["calls"], len(items))
	}
	for i := 1; i < len(calls); i++ {
		prev, cur := num(t, calls[i-1], "started"), num(t, calls[i], "started")
		if g := cur - prev; g < 0.2-1e-6 {
			t.Errorf("calls %d and %d started %.3fs apart, want at least 0.2s at 5/s", i, i+1, g)
		}
	}
	// At the upstream, one request's network delay can shorten the next
	// gap (on a loaded machine by tens of milliseconds), so only the whole
	// span is held: the last request left at least 1 s after the first,
	// which arrived at most 200 ms after it left.
	if span := reqs[len(reqs)-1].Time.Sub(reqs[0].Time); span < 800*time.Millisecond {
		t.Errorf("the six requests arrived within %v, want at least 800ms at 5/s", span)
	}
}

func testSmartCaching(t *testing.T, ex *example) {
	run := func(reportType string) map[string]any {
		return ex.mustComplete(t, "smart_caching",
			kgw.Param("key_prefix", ex.prefix),
			kgw.Param("report_type", reportType),
			kgw.Param("region", "eu"),
			kgw.Resource("db", ex.dbSpec("", 0)),
			kgw.Resource("cache", ex.cacheSpec(t))).Result["report"]
	}
	first := run("daily")
	if first["source"] != "database" || num(t, first, "report", "orders") != 2 || num(t, first, "report", "revenue") != 350.5 {
		t.Errorf("first daily run = %v, want 2 orders / 350.5 from the database", first)
	}
	ex.checkTTL(t, "report:daily:eu", 3500, 3600)

	// A new sale: a run served from the cache does not see it.
	ex.exec(t, "INSERT INTO sales (region, amount) VALUES ('eu', 10)")
	second := run("daily")
	if second["source"] != "cache" || num(t, second, "report", "orders") != 2 {
		t.Errorf("second daily run = %v, want the cached report (2 orders)", second)
	}
	if diff := cmp.Diff(first["report"], second["report"]); diff != "" {
		t.Errorf("cached report differs from the computed one (-first +second):\n%s", diff)
	}

	realtime := run("realtime")
	if realtime["source"] != "database" || num(t, realtime, "report", "orders") != 3 {
		t.Errorf("realtime run = %v, want 3 orders from the database", realtime)
	}
	ex.checkTTL(t, "report:realtime:eu", 0, 30)
}

func testGracefulDegradation(t *testing.T, ex *example) {
	// Item 3 was cached by an earlier run; item 4 never was.
	ex.redisSet(t, "item:3", `{"id": 3, "name": "Blender", "price": 79.5}`)
	exec := ex.mustComplete(t, "graceful_degradation",
		kgw.Param("key_prefix", ex.prefix),
		kgw.Param("item_ids", []any{1, 2, 3, 4, 99}),
		kgw.Resource("db", ex.dbSpec("", 0)),
		kgw.Resource("cache", ex.cacheSpec(t)))
	r := exec.Result["load_items"]
	ids := func(list any) []float64 {
		var out []float64
		l, _ := list.([]any)
		for i := range l {
			out = append(out, num(t, l, i, "id"))
		}
		return out
	}
	if diff := cmp.Diff([]float64{1, 2}, ids(r["successes"])); diff != "" {
		t.Errorf("successes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]float64{3}, ids(r["fallbacks"])); diff != "" {
		t.Errorf("fallbacks (-want +got):\n%s", diff)
	}
	if path(t, r, "fallbacks", 0, "stale") != true || str(t, r, "fallbacks", 0, "name") != "Blender" {
		t.Errorf("fallback = %v, want the cached Blender marked stale", path(t, r, "fallbacks", 0))
	}
	if diff := cmp.Diff([]float64{4, 99}, ids(r["errors"])); diff != "" {
		t.Fatalf("errors (-want +got):\n%s", diff)
	}
	if e := str(t, r, "errors", 0, "error"); !strings.Contains(e, "item 4 is locked for maintenance") {
		t.Errorf("error of item 4 = %q, want the database's message", e)
	}
	if e := str(t, r, "errors", 1, "error"); !strings.Contains(e, "item 99 not found") {
		t.Errorf("error of item 99 = %q, want not found", e)
	}
	var views []int32
	rows, err := ex.db.Query(t.Context(), "SELECT views FROM items ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var v int32
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		views = append(views, v)
	}
	if diff := cmp.Diff([]int32{1, 1, 0, 0}, views); diff != "" {
		t.Errorf("views of items 1-4 (-want +got):\n%s", diff)
	}
	if got := ex.redisJSON(t, "item:1"); got["name"] != "Kettle" {
		t.Errorf("item:1 cached as %v, want the Kettle", got)
	}
	ex.checkTTL(t, "item:1", 3500, 3600)
}

func testRetryWithBackoff(t *testing.T, ex *example) {
	up, api := ex.upstream(t, upstream.Config{FlakyFailures: 2})

	t.Run("node_retry_policy", func(t *testing.T) {
		exec := ex.mustComplete(t, "retry_with_backoff", kgw.Param("job_id", "policy"), kgw.Resource("api", api))
		if len(exec.Nodes) != 1 || exec.Nodes[0].Attempts != 3 {
			t.Errorf("nodes = %+v, want node call with 3 attempts", exec.Nodes)
		}
		if got := num(t, exec.Result["call"], "attempt"); got != 3 {
			t.Errorf("execution.attempt of the successful attempt = %v, want 3", got)
		}
		checkBackoff(t, up.Requests("/flaky/policy"))
	})

	t.Run("in_code_loop", func(t *testing.T) {
		exec := ex.mustComplete(t, "retry_with_backoff_loop", kgw.Param("job_id", "loop"), kgw.Resource("api", api))
		if len(exec.Nodes) != 1 || exec.Nodes[0].Attempts != 1 {
			t.Errorf("nodes = %+v, want node call with 1 attempt (the loop retries)", exec.Nodes)
		}
		r := exec.Result["call"]
		if got := num(t, r, "attempts"); got != 3 {
			t.Errorf("attempts = %v, want 3", got)
		}
		errs, _ := r["errors"].([]any)
		if len(errs) != 2 {
			t.Fatalf("errors = %v, want 2", r["errors"])
		}
		for _, e := range errs {
			if s, _ := e.(string); !strings.Contains(s, "503") {
				t.Errorf("error %q does not name the 503", s)
			}
		}
		if got := str(t, r, "data", "value"); got != "ready" {
			t.Errorf("data.value = %q, want ready", got)
		}
		checkBackoff(t, up.Requests("/flaky/loop"))
	})
}

// checkBackoff checks three calls, 200 ms then 400 ms apart at least.
func checkBackoff(t *testing.T, reqs []upstream.Request) {
	t.Helper()
	if len(reqs) != 3 {
		t.Fatalf("flaky endpoint called %d times, want 3", len(reqs))
	}
	g := gaps(reqs)
	if g[0] < 190*time.Millisecond || g[1] < 390*time.Millisecond {
		t.Errorf("calls %v apart, want at least 200ms then 400ms (exponential backoff)", g)
	}
}

func testBatchProcess(t *testing.T, ex *example) {
	var records []any
	for i := 1; i <= 250; i++ {
		records = append(records, map[string]any{"id": i, "name": fmt.Sprintf("rec-%d", i), "value": float64(i) * 1.5})
	}
	exec := ex.mustComplete(t, "batch_process", kgw.Param("records", records), kgw.Resource("db", ex.dbSpec("", 0)))
	want := map[string]any{"received": 250.0, "batches": 3.0, "verified": 250.0, "total_value": 47062.5}
	if diff := cmp.Diff(want, exec.Result["import_records"]); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	var n int
	var total float64
	var name string
	ex.queryRow(t, "SELECT count(*), sum(value) FROM records", nil, &n, &total)
	ex.queryRow(t, "SELECT name FROM records WHERE id = 217", nil, &name)
	if n != 250 || total != 47062.5 || name != "rec-217" {
		t.Errorf("records table: %d rows, sum %v, row 217 %q; want 250, 47062.5, rec-217", n, total, name)
	}
}

func testConcurrentProcessing(t *testing.T, ex *example) {
	const maxPool = 10
	exec := ex.mustComplete(t, "concurrent_processing",
		kgw.Param("concurrency", 20), kgw.Param("batch_size", 200),
		kgw.Resource("db", ex.dbSpec("", maxPool)))
	r := exec.Result["process"]
	if num(t, r, "processed") != 190 || num(t, r, "failed") != 10 {
		t.Errorf("processed %v, failed %v; want 190 and 10", r["processed"], r["failed"])
	}
	var failedIDs []float64
	for i := range path(t, r, "errors").([]any) {
		failedIDs = append(failedIDs, num(t, r, "errors", i, "id"))
		if e := str(t, r, "errors", i, "error"); !strings.Contains(e, "check constraint") {
			t.Errorf("error %q does not name the check constraint", e)
		}
	}
	slices.Sort(failedIDs)
	if diff := cmp.Diff([]float64{20, 40, 60, 80, 100, 120, 140, 160, 180, 200}, failedIDs); diff != "" {
		t.Errorf("failed task ids (-want +got):\n%s", diff)
	}
	var done, failed, wrong, backends int
	ex.queryRow(t, `SELECT count(*) FILTER (WHERE status = 'done'),
		count(*) FILTER (WHERE status = 'failed' AND error LIKE '%check constraint%'),
		count(*) FILTER (WHERE status = 'done' AND output <> input * 2),
		count(DISTINCT processed_by)
		FROM tasks`, nil, &done, &failed, &wrong, &backends)
	if done != 190 || failed != 10 || wrong != 0 {
		t.Errorf("tasks: %d done, %d failed with the constraint error, %d wrong outputs; want 190, 10, 0", done, failed, wrong)
	}
	if backends < 1 || backends > maxPool {
		t.Errorf("tasks processed over %d connections, want 1..%d (max_size)", backends, maxPool)
	}
	if size := num(t, r, "pool_size"); size < 1 || size > maxPool {
		t.Errorf("pool_size = %v, want 1..%d", size, maxPool)
	}
}

func testTieredCaching(t *testing.T, ex *example) {
	run := func() map[string]any {
		return ex.mustComplete(t, "tiered_caching",
			kgw.Param("key_prefix", ex.prefix), kgw.Param("product_id", 1),
			kgw.Resource("db", ex.dbSpec("", 0)), kgw.Resource("cache", ex.cacheSpec(t))).Result["lookup"]
	}
	first := run()
	// Change the row: runs served by a cache still see the old price.
	ex.exec(t, "UPDATE products SET price = 1 WHERE id = 1")
	second := run()
	third := run()
	var tiers []string
	for _, r := range []map[string]any{first, second, third} {
		tiers = append(tiers, str(t, r, "tier"))
		if p := num(t, r, "product", "price"); p != 499 {
			t.Errorf("tier %s served price %v, want 499", r["tier"], p)
		}
	}
	if diff := cmp.Diff([]string{"database", "l2", "l1"}, tiers); diff != "" {
		t.Errorf("tiers of three runs (-want +got):\n%s", diff)
	}
	ex.checkTTL(t, "product:1", 290, 300)
}

func testInstrumentedStep(t *testing.T, ex *example) {
	const list = "metrics:instrumented_step"
	cmd := ex.redis.B().Rpush().Key(ex.key(list)).Element("old-0")
	for i := 1; i < 1005; i++ {
		cmd = cmd.Element(fmt.Sprintf("old-%d", i))
	}
	if err := ex.redis.Do(t.Context(), cmd.Build()).Error(); err != nil {
		t.Fatalf("RPUSH: %v", err)
	}
	opts := []kgw.ExecOption{
		kgw.Param("key_prefix", ex.prefix), kgw.Param("status", "paid"),
		kgw.Resource("db", ex.dbSpec("", 0)), kgw.Resource("cache", ex.cacheSpec(t)),
	}
	exec := ex.mustComplete(t, "instrumented_step", opts...)
	if got := num(t, exec.Result["count_orders"], "count"); got != 3 {
		t.Errorf("count = %v, want 3", got)
	}
	check := func(execID string, ok bool) {
		t.Helper()
		entries := ex.redisList(t, list)
		if len(entries) != 1000 {
			t.Errorf("metrics list has %d entries, want 1000", len(entries))
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(entries[0]), &m); err != nil {
			t.Fatalf("newest metric %q: %v", entries[0], err)
		}
		if m["execution_id"] != execID || m["ok"] != ok || m["node"] != "count_orders" || m["workflow"] != "instrumented_step" {
			t.Errorf("newest metric = %v, want execution %s, ok %v, node count_orders", m, execID, ok)
		}
		if d, isNum := m["duration_ms"].(float64); !isNum || d < 0 {
			t.Errorf("duration_ms = %v, want a non-negative number", m["duration_ms"])
		}
		if last := entries[len(entries)-1]; !strings.HasPrefix(last, "old-") {
			t.Errorf("oldest kept entry %q, want one of the pre-filled ones", last)
		}
	}
	check(exec.ID, true)
	if entries := ex.redisList(t, list); entries[len(entries)-1] != "old-998" {
		t.Errorf("oldest kept entry %q, want old-998 (trimmed to 1000)", entries[len(entries)-1])
	}

	failed := ex.mustFail(t, "instrumented_step", "count_orders", "simulated failure",
		append(opts, kgw.Param("simulate_failure", true))...)
	check(failed.ID, false)
}

func testDebugMode(t *testing.T, ex *example) {
	opts := []kgw.ExecOption{kgw.Param("customer", "acme"), kgw.Resource("db", ex.dbSpec("", 0))}
	plain := ex.mustComplete(t, "debug_mode", opts...).Result["orders"]
	if num(t, plain, "count") != 2 {
		t.Errorf("count = %v, want 2", plain["count"])
	}
	if _, ok := plain["debug"]; ok {
		t.Errorf("result without context debug has a debug section: %v", plain["debug"])
	}

	exec := ex.mustComplete(t, "debug_mode", append(opts, kgw.Context(map[string]any{"debug": true}))...)
	r := exec.Result["orders"]
	if num(t, r, "count") != 2 || num(t, r, "orders", 1, "total") != 35.5 {
		t.Errorf("debug run orders = %v, want the same 2 orders", r["orders"])
	}
	if got := str(t, r, "debug", "inputs", "customer"); got != "acme" {
		t.Errorf("debug.inputs.customer = %q, want acme", got)
	}
	size, free := num(t, r, "debug", "pool", "size"), num(t, r, "debug", "pool", "freesize")
	if size < 1 || free < 0 || free > size {
		t.Errorf("debug.pool = size %v, freesize %v; want size >= 1 and 0 <= freesize <= size", size, free)
	}
	if got := str(t, r, "debug", "execution", "id"); got != exec.ID {
		t.Errorf("debug.execution.id = %q, want %q", got, exec.ID)
	}
}

func testEventSourcing(t *testing.T, ex *example) {
	var execIDs []string
	for i, ev := range []struct {
		kind    string
		payload map[string]any
	}{
		{"opened", map[string]any{"owner": "ada"}},
		{"deposited", map[string]any{"amount": 100}},
		{"withdrawn", map[string]any{"amount": 30}},
	} {
		exec := ex.mustComplete(t, "event_sourcing",
			kgw.Param("aggregate_id", "acct-1"), kgw.Param("event_type", ev.kind), kgw.Param("payload", ev.payload),
			kgw.Resource("db", ex.dbSpec("", 0)))
		if got := num(t, exec.Result["append_event"], "version"); got != float64(i+1) {
			t.Errorf("event %s: version %v, want %d", ev.kind, got, i+1)
		}
		execIDs = append(execIDs, exec.ID)
	}
	ex.mustFail(t, "event_sourcing", "append_event", "insufficient funds",
		kgw.Param("aggregate_id", "acct-1"), kgw.Param("event_type", "withdrawn"),
		kgw.Param("payload", map[string]any{"amount": 500}), kgw.Resource("db", ex.dbSpec("", 0)))

	rows, err := ex.db.Query(t.Context(), "SELECT version, event_type, execution_id FROM events WHERE aggregate_id = 'acct-1' ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var v int
		var kind, id string
		if err := rows.Scan(&v, &kind, &id); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d %s %s", v, kind, id))
	}
	want := []string{"1 opened " + execIDs[0], "2 deposited " + execIDs[1], "3 withdrawn " + execIDs[2]}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("event stream (-want +got):\n%s", diff)
	}
	var version int
	var state map[string]any
	ex.queryRow(t, "SELECT version, state FROM aggregates WHERE id = 'acct-1'", nil, &version, &state)
	if diff := cmp.Diff(map[string]any{"owner": "ada", "balance": 70.0}, state); version != 3 || diff != "" {
		t.Errorf("aggregate version %d, state diff (-want +got):\n%s", version, diff)
	}
}

func testOrderSaga(t *testing.T, ex *example) {
	up, api := ex.upstream(t, upstream.Config{DeclineAbove: 500})
	run := func(ref, sku string) *kgw.Execution {
		return ex.run(t, "order_saga",
			kgw.Param("order_ref", ref), kgw.Param("sku", sku), kgw.Param("quantity", 2),
			kgw.Resource("db", ex.dbSpec("", 0)), kgw.Resource("payments", api))
	}
	stock := func(sku string) int {
		var n int
		ex.queryRow(t, "SELECT stock FROM inventory WHERE sku = $1", []any{sku}, &n)
		return n
	}

	t.Run("success", func(t *testing.T) {
		exec := run("A-100", "WIDGET")
		if exec.Status != kgw.StatusCompleted {
			t.Fatalf("status %s (%v), want completed", exec.Status, exec.Error)
		}
		charges := up.Requests("/charges")
		if len(charges) != 1 {
			t.Fatalf("payment API called %d times, want 1", len(charges))
		}
		if got := charges[0].Header.Get("Idempotency-Key"); got != "charge-"+exec.ID {
			t.Errorf("Idempotency-Key = %q, want charge-%s", got, exec.ID)
		}
		if body := charges[0].JSON(); body["amount"] != 50.0 || body["reference"] != "A-100" {
			t.Errorf("charge request = %v, want 50 for A-100", body)
		}
		if s := stock("WIDGET"); s != 8 {
			t.Errorf("WIDGET stock = %d, want 8", s)
		}
		var resStatus, orderStatus, chargeID string
		ex.queryRow(t, `SELECT r.status, o.status, o.charge_id FROM orders o JOIN reservations r ON r.id = o.reservation_id
			WHERE o.id = $1`, []any{"ord-" + exec.ID}, &resStatus, &orderStatus, &chargeID)
		if resStatus != "committed" || orderStatus != "confirmed" || chargeID != str(t, exec.Result["charge"], "charge_id") {
			t.Errorf("order %s / reservation %s / charge %s; want confirmed, committed, the charge of the result", orderStatus, resStatus, chargeID)
		}
	})

	t.Run("payment_declined", func(t *testing.T) {
		before := len(up.Requests("/charges"))
		exec := run("B-200", "GADGET")
		if exec.Status != kgw.StatusFailed {
			t.Fatalf("status %s, want failed", exec.Status)
		}
		if exec.Error == nil || exec.Error.NodeID != "charge" || !strings.Contains(exec.Error.Message, "card_declined") {
			t.Errorf("error = %+v, want node charge failing with the payment error card_declined", exec.Error)
		}
		if n := len(up.Requests("/charges")) - before; n != 1 {
			t.Errorf("payment API called %d times, want 1", n)
		}
		if s := stock("GADGET"); s != 5 {
			t.Errorf("GADGET stock = %d after compensation, want 5", s)
		}
		var status string
		ex.queryRow(t, "SELECT status FROM reservations WHERE id = $1", []any{"res-" + exec.ID}, &status)
		if status != "released" {
			t.Errorf("reservation status %q, want released", status)
		}
		var orders int
		ex.queryRow(t, "SELECT count(*) FROM orders WHERE order_ref = 'B-200'", nil, &orders)
		if orders != 0 {
			t.Errorf("%d orders created for a declined payment", orders)
		}
		for _, n := range exec.Nodes {
			if n.NodeID == "create_order" && n.Status == kgw.NodeStatusCompleted {
				t.Errorf("create_order ran after the payment failed")
			}
		}
	})
}
