package testenv_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/kailash-gateway/kgw/internal/testenv"
)

// checkServing fails t unless the gateway at addr answers a gRPC health
// check with SERVING.
func checkServing(t *testing.T, addr string) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient(%s): %v", addr, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatalf("health check of %s: %v", addr, err)
	}
	if got := resp.GetStatus(); got != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health of %s = %v, want SERVING", addr, got)
	}
}

// checkDown fails t if something still accepts health checks at addr.
func checkDown(t *testing.T, addr string) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient(%s): %v", addr, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err == nil {
		t.Fatalf("health check of %s succeeded on a stopped gateway", addr)
	}
}

func TestGatewayLifecycle(t *testing.T) {
	g := testenv.Gateway(t)
	if !strings.HasPrefix(g.Addr, "127.0.0.1:") || !strings.HasPrefix(g.AdminAddr, "127.0.0.1:") {
		t.Fatalf("addresses %q, %q: want loopback", g.Addr, g.AdminAddr)
	}
	checkServing(t, g.Addr)
	if logs := g.Logs(); !strings.Contains(logs, "kgw ready") || !strings.Contains(logs, g.Addr) {
		t.Fatalf("logs do not announce readiness on %s:\n%s", g.Addr, logs)
	}
	resp, err := http.Get("http://" + g.AdminAddr + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /readyz = %d, want 200", resp.StatusCode)
	}

	// Graceful stop: the gateway logs its shutdown and stops answering.
	if err := g.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if g.Running() {
		t.Fatal("Running() = true after Stop")
	}
	if logs := g.Logs(); !strings.Contains(logs, "kgw shutting down") {
		t.Fatalf("logs after SIGTERM lack the shutdown line:\n%s", logs)
	}
	checkDown(t, g.Addr)

	// Start again on the same address and data directory.
	addr := g.Addr
	if err := g.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if g.Addr != addr {
		t.Fatalf("Addr after Start = %s, want %s", g.Addr, addr)
	}
	checkServing(t, g.Addr)
	if n := strings.Count(g.Logs(), "kgw ready"); n != 2 {
		t.Fatalf("logs have %d ready lines after a restart, want 2", n)
	}

	// A crash: SIGKILL leaves no shutdown line.
	before := strings.Count(g.Logs(), "kgw shutting down")
	if err := g.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if n := strings.Count(g.Logs(), "kgw shutting down"); n != before {
		t.Fatalf("killed gateway logged a graceful shutdown")
	}
	checkDown(t, g.Addr)
	if err := g.Restart(); err != nil {
		t.Fatalf("Restart after Kill: %v", err)
	}
	checkServing(t, g.Addr)
	if !g.WaitLog("kgw ready", time.Second) {
		t.Fatal("WaitLog did not find the ready line")
	}
}

func TestGatewayOptions(t *testing.T) {
	dsn := testenv.Postgres(t).NewDatabase(t)
	g := testenv.Gateway(t,
		testenv.WithGatewayStore(dsn),
		testenv.WithGatewayArgs("--log-format", "json"),
		testenv.WithGatewayEnv("KGW_LOG_LEVEL=debug"),
	)
	checkServing(t, g.Addr)
	logs := g.Logs()
	if !strings.Contains(logs, `"store":"postgres"`) {
		t.Errorf("gateway with --store postgres://… and JSON logs did not log store=postgres:\n%s", logs)
	}
	if strings.Contains(logs, dsn) {
		t.Errorf("gateway logged its store DSN")
	}
}

func TestGatewayStartFailureReportsLogs(t *testing.T) {
	_, err := testenv.StartGateway(testenv.WithGatewayArgs("--log-format", "yaml"))
	if err == nil {
		t.Fatal("StartGateway with an invalid flag value succeeded")
	}
	if !strings.Contains(err.Error(), "log format") {
		t.Errorf("StartGateway error %q does not include the gateway's own message", err)
	}
}
