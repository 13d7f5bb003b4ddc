package main

import (
	"strings"
	"testing"
	"time"

	kgw "github.com/kailash-gateway/kgw/clients/go"
	"github.com/kailash-gateway/kgw/internal/testenv"
)

// gatewayMemoryLimit is the process memory limit of the memory tests: a
// few times the default budget of one attempt (256 MiB), far below what
// each bomb would build.
const gatewayMemoryLimit = 1 << 30

// memoryBombs would each build several GiB in one attempt.
var memoryBombs = []struct{ name, code string }{
	{"list repeat", "x = [0] * (1 << 28)"},
	{"string repeat", `x = "x" * (1 << 31)`},
	{"join", "s = \"y\" * 100000\nx = \"\".join([s] * 100000)"},
	{"list of range", "x = list(range(1 << 30))"},
	{"extend", "l = [0] * 1000\nfor i in range(30):\n    l.extend(l)"},
	{"replace", "s = \"a\" * 1000000\nx = s.replace(\"a\", \"b\" * 10000)"},
	{"aliased join", "j = \"-\".join\nx = j([\"q\" * 1000000] * 10000)"},
	{"append in a loop", "parts = []\nfor i in range(10000):\n    parts.append(\"x\" * (1 << 20))"},
	{"parallel.map collecting items", "r = parallel.map(lambda i: \"z\" * (1 << 20), range(10000))"},
	{"string doubling", "s = \"x\"\nfor i in range(40):\n    s = s + s"},
}

// TestMemoryBombsE2E runs memory bombs through the gRPC API against a real
// gateway process under a kernel memory limit of 1 GiB: each execution
// fails with MEMORY_LIMIT naming the node and line, and the gateway stays
// up and serves the next execution. A control run without budget and
// watchdog shows that the limit is real: the first bomb kills that
// gateway.
func TestMemoryBombsE2E(t *testing.T) {
	ctx := t.Context()
	// GOMEMLIMIT below the kernel limit, as docs/operations.md advises:
	// without it, two attempts near their budgets plus the garbage GOGC=100
	// lets build up can pass 1 GiB on a loaded machine before the watchdog
	// looks again.
	gw := testenv.Gateway(t, testenv.WithGatewayMemoryLimit(gatewayMemoryLimit),
		testenv.WithGatewayEnv("GOMEMLIMIT=800MiB"),
		testenv.WithGatewayArgs("--node-memory-limit", "700"))
	t.Logf("gateway memory limited by %s", gw.MemoryLimit)
	client, err := kgw.Dial(ctx, gw.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	register(t, client, "ok_node", "result = {\"n\": len([1] * 1000)}")
	for i, b := range memoryBombs {
		name := strings.ReplaceAll(b.name, " ", "_")
		name = strings.ReplaceAll(name, ".", "_")
		register(t, client, name, b.code)
		start := time.Now()
		ex, err := client.Execute(ctx, name)
		if err != nil {
			t.Fatalf("%s: Execute: %v\n%s", b.name, err, lastLog(gw))
		}
		if ex.Status != kgw.StatusFailed || ex.Error == nil || ex.Error.Code != "MEMORY_LIMIT" ||
			ex.Error.NodeID != "bomb" || !strings.Contains(ex.Error.Message, "node 'bomb' failed at ") {
			t.Errorf("%s: status %s, error %+v; want FAILED with MEMORY_LIMIT naming node and line", b.name, ex.Status, ex.Error)
		}
		t.Logf("%s: %s in %v", b.name, ex.Error.Message[:min(len(ex.Error.Message), 140)], time.Since(start).Round(time.Millisecond))
		// The gateway lives on and serves the next execution.
		ok, err := client.Execute(ctx, "ok_node")
		if err != nil || ok.Status != kgw.StatusCompleted || ok.Result["bomb"]["n"] != float64(1000) {
			t.Fatalf("after bomb %d (%s): %+v, %v\n%s", i, b.name, ok, err, lastLog(gw))
		}
	}
	if !gw.Running() {
		t.Fatalf("the gateway exited\n%s", lastLog(gw))
	}

	// The budget is per attempt: an execution running next to a bomb
	// completes.
	register(t, client, "slow_node", "parts = []\nfor i in range(20):\n    parts.append(\"p\" * (1 << 20))\n    time.sleep(0.1)\nresult = {\"n\": len(parts)}")
	id, err := client.Start(ctx, "slow_node")
	if err != nil {
		t.Fatal(err)
	}
	ex, err := client.Execute(ctx, "append_in_a_loop")
	if err != nil || ex.Error == nil || ex.Error.Code != "MEMORY_LIMIT" {
		t.Fatalf("bomb next to another execution: %+v, %v", ex, err)
	}
	if slow := waitForEnd(t, client, id); slow.Status != kgw.StatusCompleted || slow.Result["bomb"]["n"] != float64(20) {
		t.Errorf("the execution next to the bomb: %s %+v %v; want it completed", slow.Status, slow.Error, slow.Result)
	}

	// Control: the same limit without budget and watchdog.
	bare := testenv.Gateway(t, testenv.WithGatewayMemoryLimit(gatewayMemoryLimit),
		testenv.WithGatewayArgs("--node-memory-budget", "-1", "--node-memory-limit", "-1"))
	bc, err := kgw.Dial(ctx, bare.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	register(t, bc, "list_repeat", memoryBombs[0].code)
	if ex, err := bc.Execute(ctx, "list_repeat"); err == nil {
		t.Errorf("without a budget, the bomb ended with %s (%+v); want the gateway killed by the memory limit", ex.Status, ex.Error)
	}
	deadline := time.Now().Add(30 * time.Second)
	for bare.Running() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if bare.Running() {
		t.Errorf("without a budget, the gateway survived the bomb under %s: the limit is not enforced", bare.MemoryLimit)
	}
}

// register registers a workflow of one node "bomb" with code.
func register(t *testing.T, c *kgw.Client, name, code string) {
	t.Helper()
	wf, err := kgw.NewWorkflow(name).AddCode("bomb", code, kgw.NodeTimeout(2*time.Minute)).Build()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Register(t.Context(), wf); err != nil {
		t.Fatal(err)
	}
}

func lastLog(gw *testenv.GatewayProcess) string {
	logs := gw.Logs()
	return logs[max(0, len(logs)-4000):]
}
