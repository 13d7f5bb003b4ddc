package main

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kailash-gateway/kgw/secrets"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// defaultServeConfig is the configuration of kgw serve without flags or
// environment (but the security defaults, which parseServeConfig fills).
func defaultServeConfig() serveConfig {
	return serveConfig{
		GRPCAddr: "127.0.0.1:50051", AdminAddr: "127.0.0.1:9464", DataDir: "./kgw-data",
		Store: "sqlite://kgw-data/kgw.db", MasterKeyFile: "kgw-data/master.key",
		LogLevel: slog.LevelInfo, LogFormat: "text", ShutdownTimeout: 30 * time.Second,
		Retention: 168 * time.Hour, MaxNodeRestarts: 3, MaxResultBytes: 16 << 20, NodeMemoryBudget: 256 << 20,
		RecoveryInterval: 15 * time.Second, MaxConcurrentExecutions: 256,
		ReplicaName: defaultReplicaName(), LeaseTimeout: 15 * time.Second,
		MaxConnectionAge: 5 * time.Minute, MaxConnectionAgeGrace: time.Minute,
		MetricsMaxWorkflows: 200, MetricsMaxNodes: 1000, MetricsMaxPools: 200,
	}
}

func TestParseServeConfig(t *testing.T) {
	defaults := defaultServeConfig()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(c *serveConfig)
	}{
		{"defaults", nil, nil, func(*serveConfig) {}},
		{"env", nil, map[string]string{
			"KGW_GRPC_ADDR": "[::1]:7000", "KGW_ADMIN_ADDR": "", "KGW_DATA_DIR": "/var/lib/kgw",
			"KGW_LOG_LEVEL": "debug", "KGW_LOG_FORMAT": "JSON", "KGW_SHUTDOWN_TIMEOUT": "5s",
		}, func(c *serveConfig) {
			c.GRPCAddr, c.DataDir, c.LogLevel, c.LogFormat = "[::1]:7000", "/var/lib/kgw", slog.LevelDebug, "json"
			c.Store, c.MasterKeyFile, c.ShutdownTimeout = "sqlite:///var/lib/kgw/kgw.db", "/var/lib/kgw/master.key", 5*time.Second
		}},
		{"flags win over env", []string{"--grpc-addr", "127.0.0.1:1", "--store", "postgres://u@127.0.0.1/kgw", "--master-key-file", "/k", "--admin-addr="},
			map[string]string{"KGW_GRPC_ADDR": "127.0.0.1:2", "KGW_STORE": "sqlite://x.db"},
			func(c *serveConfig) {
				c.GRPCAddr, c.Store, c.MasterKeyFile, c.AdminAddr = "127.0.0.1:1", "postgres://u@127.0.0.1/kgw", "/k", ""
			}},
		{"env store", nil, map[string]string{"KGW_STORE": "sqlite:///tmp/x.db", "KGW_MASTER_KEY_FILE": "/etc/kgw.key"},
			func(c *serveConfig) { c.Store, c.MasterKeyFile = "sqlite:///tmp/x.db", "/etc/kgw.key" }},
		{"retention and memory limit", []string{"--retention", "24h"}, map[string]string{"KGW_NODE_MEMORY_LIMIT": "512"},
			func(c *serveConfig) { c.Retention, c.NodeMemoryLimit = 24*time.Hour, 512<<20 }},
		{"recovery interval and profiles", []string{"--recovery-interval", "1s"}, map[string]string{"KGW_PPROF": "true"},
			func(c *serveConfig) { c.RecoveryInterval, c.Pprof = time.Second, true }},
		{"access log", nil, map[string]string{"KGW_ACCESS_LOG": "1"}, func(c *serveConfig) { c.AccessLog = true }},
		{"access log flag", []string{"--access-log"}, nil, func(c *serveConfig) { c.AccessLog = true }},
		{"keep forever, no watchdog", []string{"--retention", "0s", "--node-memory-limit", "-1"}, nil,
			func(c *serveConfig) { c.Retention, c.NodeMemoryLimit = -1, -1<<20 }},
		{"restart limit", []string{"--max-node-restarts", "5"}, map[string]string{"KGW_MAX_NODE_RESTARTS": "1"},
			func(c *serveConfig) { c.MaxNodeRestarts = 5 }},
		{"result limit", nil, map[string]string{"KGW_MAX_RESULT_BYTES": "1048576"},
			func(c *serveConfig) { c.MaxResultBytes = 1 << 20 }},
		{"restart limit from env, none", nil, map[string]string{"KGW_MAX_NODE_RESTARTS": "-1"},
			func(c *serveConfig) { c.MaxNodeRestarts = -1 }},
		{"metrics label bounds, node logs off", []string{"--metrics-max-nodes", "50", "--no-node-logs"},
			map[string]string{"KGW_METRICS_MAX_WORKFLOWS": "10", "KGW_METRICS_MAX_POOLS": "5"},
			func(c *serveConfig) {
				c.MetricsMaxWorkflows, c.MetricsMaxNodes, c.MetricsMaxPools, c.NoNodeLogs = 10, 50, 5, true
			}},
		{"node logs off from env", nil, map[string]string{"KGW_NO_NODE_LOGS": "true"}, func(c *serveConfig) { c.NoNodeLogs = true }},
		{"memory budget from env", nil, map[string]string{"KGW_NODE_MEMORY_BUDGET": "64"},
			func(c *serveConfig) { c.NodeMemoryBudget = 64 << 20 }},
		{"cluster from env", nil, map[string]string{"KGW_REPLICA_NAME": "gw-b", "KGW_LEASE_TIMEOUT": "2s", "KGW_MAX_CONNECTION_AGE": "0s"},
			func(c *serveConfig) { c.ReplicaName, c.LeaseTimeout, c.MaxConnectionAge = "gw-b", 2*time.Second, 0 }},
		{"cluster flags win", []string{"--replica-name", "gw-c", "--lease-timeout", "30s", "--max-connection-age", "1m", "--max-connection-age-grace", "5s"},
			map[string]string{"KGW_REPLICA_NAME": "gw-b", "KGW_LEASE_TIMEOUT": "2s"},
			func(c *serveConfig) {
				c.ReplicaName, c.LeaseTimeout, c.MaxConnectionAge, c.MaxConnectionAgeGrace = "gw-c", 30*time.Second, time.Minute, 5*time.Second
			}},
		{"backlog limit from env", nil, map[string]string{"KGW_MAX_CONCURRENT_EXECUTIONS": "2"},
			func(c *serveConfig) { c.MaxConcurrentExecutions = 2 }},
		{"backlog limit flag wins", []string{"--max-concurrent-executions", "40"}, map[string]string{"KGW_MAX_CONCURRENT_EXECUTIONS": "2"},
			func(c *serveConfig) { c.MaxConcurrentExecutions = 40 }},
		{"memory budget flag wins, unlimited", []string{"--node-memory-budget", "-1"}, map[string]string{"KGW_NODE_MEMORY_BUDGET": "64"},
			func(c *serveConfig) { c.NodeMemoryBudget = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseServeConfig(tt.args, envOf(tt.env), io.Discard)
			if err != nil {
				t.Fatalf("parseServeConfig: %v", err)
			}
			want := defaults
			tt.want(&want)
			if want.Security.Auth == "" {
				want.Security.Auth = "none"
			}
			want.Security.GRPCAddr = want.GRPCAddr
			if diff := cmp.Diff(&want, got); diff != "" {
				t.Fatalf("parseServeConfig (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseServeConfigErrors(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		substr string // "" = usage error
	}{
		{"unknown flag", []string{"--nope"}, nil, ""},
		{"extra argument", []string{"now"}, nil, ""},
		{"bad level", []string{"--log-level", "loud"}, nil, "log level"},
		{"bad format", nil, map[string]string{"KGW_LOG_FORMAT": "xml"}, "log format"},
		{"bad store", []string{"--store", "mysql://root:hunter2@db/kgw"}, nil, `unsupported scheme "mysql"`},
		{"empty sqlite path", []string{"--store", "sqlite://"}, nil, "needs a file path"},
		{"bad timeout", nil, map[string]string{"KGW_SHUTDOWN_TIMEOUT": "soon"}, "shutdown timeout"},
		{"bad retention", []string{"--retention", "a week"}, nil, "retention"},
		{"bad recovery interval", []string{"--recovery-interval", "0s"}, nil, "recovery interval"},
		{"bad pprof", nil, map[string]string{"KGW_PPROF": "sometimes"}, "KGW_PPROF"},
		{"bad access log", nil, map[string]string{"KGW_ACCESS_LOG": "loud"}, "KGW_ACCESS_LOG"},
		{"bad metrics bound", []string{"--metrics-max-workflows", "0"}, nil, "metrics max workflows"},
		{"bad node logs", nil, map[string]string{"KGW_NO_NODE_LOGS": "maybe"}, "KGW_NO_NODE_LOGS"},
		{"bad memory limit", nil, map[string]string{"KGW_NODE_MEMORY_LIMIT": "2GiB"}, "node memory limit"},
		{"bad restart limit", []string{"--max-node-restarts", "three"}, nil, "max node restarts"},
		{"result limit above the message size", []string{"--max-result-bytes", "67108864"}, nil, "max result bytes"},
		{"bad result limit", nil, map[string]string{"KGW_MAX_RESULT_BYTES": "16MiB"}, "max result bytes"},
		{"zero restart limit", nil, map[string]string{"KGW_MAX_NODE_RESTARTS": "0"}, "max node restarts"},
		{"bad memory budget", nil, map[string]string{"KGW_NODE_MEMORY_BUDGET": "256MiB"}, "node memory budget"},
		{"zero memory budget", []string{"--node-memory-budget", "0"}, nil, "node memory budget"},
		{"lease too short", []string{"--lease-timeout", "100ms"}, nil, "lease timeout"},
		{"bad lease", nil, map[string]string{"KGW_LEASE_TIMEOUT": "15"}, "lease timeout"},
		{"empty replica name", []string{"--replica-name", " "}, nil, "replica name"},
		{"zero concurrent executions", []string{"--max-concurrent-executions", "0"}, nil, "max concurrent executions"},
		{"bad concurrent executions", nil, map[string]string{"KGW_MAX_CONCURRENT_EXECUTIONS": "many"}, "max concurrent executions"},
		{"negative connection age", []string{"--max-connection-age", "-1s"}, nil, "max connection age"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			_, err := parseServeConfig(tt.args, envOf(tt.env), &out)
			if tt.substr == "" {
				if !errors.Is(err, errUsage) {
					t.Fatalf("parseServeConfig = %v, want a usage error", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.substr) {
				t.Fatalf("parseServeConfig = %v, want an error containing %q", err, tt.substr)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error %q echoes a password", err)
			}
		})
	}
}

func TestCheckListenAddr(t *testing.T) {
	tests := []struct {
		addr string
		auth bool
		ok   bool
	}{
		{"127.0.0.1:50051", false, true},
		{"127.1.2.3:0", false, true},
		{"[::1]:50051", false, true},
		{"localhost:50051", false, true},
		{"[::ffff:127.0.0.1]:1", false, true},
		{"0.0.0.0:50051", false, false},
		{":50051", false, false},
		{"[::]:50051", false, false},
		{"10.0.0.5:50051", false, false},
		{"example.com:50051", false, false},
		{"0.0.0.0:50051", true, true},
		{"no-port", false, false},
	}
	for _, tt := range tests {
		err := checkListenAddr(tt.addr, tt.auth)
		if (err == nil) != tt.ok {
			t.Errorf("checkListenAddr(%q, %v) = %v, want ok=%v", tt.addr, tt.auth, err, tt.ok)
		}
		if !tt.ok && tt.addr != "no-port" && !errors.Is(err, errNotLoopback) {
			t.Errorf("checkListenAddr(%q) = %v, want errNotLoopback", tt.addr, err)
		}
	}
}

func TestDispatch(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"version"}, 0, "kgw ", ""},
		{[]string{"--version"}, 0, "kgw ", ""},
		{[]string{"help"}, 0, "serve", ""},
		{nil, 2, "", "Usage: kgw"},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{[]string{"serve", "--bogus"}, 2, "", "flag provided but not defined"},
		{[]string{"serve", "--grpc-addr", "0.0.0.0:0"}, 1, "", "refusing to start: --grpc-addr 0.0.0.0:0 is not loopback: it needs --auth required"},
	}
	for _, tt := range tests {
		var out, errOut strings.Builder
		c := &cli{stdout: &out, stderr: &errOut, getenv: envOf(map[string]string{"KGW_DATA_DIR": t.TempDir()})}
		code := dispatch(t.Context(), c, tt.args)
		if code != tt.code || !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errOut.String(), tt.stderr) {
			t.Errorf("dispatch(%q) = %d, stdout %q, stderr %q; want %d, %q, %q",
				tt.args, code, out.String(), errOut.String(), tt.code, tt.stdout, tt.stderr)
		}
	}
}

func TestParseServeConfigSecretsAndInline(t *testing.T) {
	key := secrets.NewMasterKey()
	cfg, err := parseServeConfig(nil, envOf(map[string]string{"KGW_MASTER_KEY": key.Base64(), "KGW_DISABLE_INLINE_RESOURCES": "true"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MasterKey == nil || *cfg.MasterKey != key || !cfg.DisableInlineResources {
		t.Fatalf("config = master key set %v, inline disabled %v; want the env key and inline disabled", cfg.MasterKey != nil, cfg.DisableInlineResources)
	}
	cfg, err = parseServeConfig([]string{"--disable-inline-resources=false"}, envOf(map[string]string{"KGW_DISABLE_INLINE_RESOURCES": "1"}), io.Discard)
	if err != nil || cfg.DisableInlineResources {
		t.Fatalf("flag false over env true = %v, %v, want false", cfg.DisableInlineResources, err)
	}
	for _, env := range []map[string]string{
		{"KGW_MASTER_KEY": "c2hvcnQ="},
		{"KGW_DISABLE_INLINE_RESOURCES": "maybe"},
	} {
		_, err := parseServeConfig(nil, envOf(env), io.Discard)
		if err == nil || strings.Contains(err.Error(), "c2hvcnQ=") {
			t.Fatalf("parseServeConfig(%v) = %v, want an error that does not repeat the key", env, err)
		}
	}
}

func TestAdminExposed(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:9464", false},
		{"127.0.0.2:9464", false},
		{"[::1]:9464", false},
		{"localhost:9464", false},
		{"[::ffff:127.0.0.1]:9464", false},
		{":9464", true},
		{"0.0.0.0:9464", true},
		{"[::]:9464", true},
		{"10.1.2.3:9464", true},
		{"[fe80::1%eth0]:9464", true},
		{"metrics.internal:9464", true},
		{"no-port", true},
	}
	for _, tt := range tests {
		if got := adminExposed(tt.addr); got != tt.want {
			t.Errorf("adminExposed(%q) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}

// Profiles are served on the admin address only when asked for.
func TestAdminHandlerProfiles(t *testing.T) {
	reg := prometheus.NewRegistry()
	var ready atomic.Bool
	for _, on := range []bool{false, true} {
		rec := httptest.NewRecorder()
		adminHandler(reg, ready.Load, on).ServeHTTP(rec, httptest.NewRequest("GET", "/debug/pprof/goroutine?debug=1", nil))
		if want := map[bool]int{false: http.StatusNotFound, true: http.StatusOK}[on]; rec.Code != want {
			t.Errorf("profiles %v: GET /debug/pprof/goroutine = %d, want %d", on, rec.Code, want)
		}
	}
}

// Tracing is on only when an OTEL_* variable configures it.
func TestTracingWanted(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want bool
	}{
		{nil, false},
		{map[string]string{"KGW_LOG_LEVEL": "debug"}, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, true},
		{map[string]string{"OTEL_SERVICE_NAME": "kgw-eu"}, true},
		{map[string]string{"OTEL_TRACES_SAMPLER": "always_on", "OTEL_SDK_DISABLED": "true"}, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"}, false},
	} {
		if got := tracingWanted(envOf(c.env)); got != c.want {
			t.Errorf("tracingWanted(%v) = %v, want %v", c.env, got, c.want)
		}
		cfg, err := parseServeConfig(nil, envOf(c.env), io.Discard)
		if err != nil || cfg.Tracing != c.want {
			t.Errorf("parseServeConfig with %v: Tracing %v (%v), want %v", c.env, cfg != nil && cfg.Tracing, err, c.want)
		}
	}
}
