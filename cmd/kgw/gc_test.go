package main

import (
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/kailash-gateway/kgw/executor/node"
	"github.com/kailash-gateway/kgw/internal/testenv"
)

// TestServeTunesGC: with neither GOGC nor GOMEMLIMIT set, kgw serve runs
// with GOGC=800 under a memory limit of three quarters of the memory
// available to it; an operator's GOGC is left alone (and no limit set); an
// operator's GOMEMLIMIT is kept, with GOGC raised under it. Read from the
// Go runtime's own gauges on the admin /metrics.
func TestServeTunesGC(t *testing.T) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		t.Skip("GOGC or GOMEMLIMIT is set here, and the gateway would inherit it")
	}
	avail := node.AvailableMemory()
	if avail <= 0 {
		t.Skip("the memory available to this process is unknown")
	}
	for _, tc := range []struct {
		env         []string
		gogc, limit float64
	}{
		{nil, 800, float64(avail / 4 * 3)},
		{[]string{"GOGC=150"}, 150, math.MaxInt64},
		{[]string{"GOMEMLIMIT=512MiB"}, 800, 512 << 20},
	} {
		gw := testenv.Gateway(t, testenv.WithGatewayEnv(tc.env...))
		got := gaugeValues(t, gw.AdminAddr, "go_gc_gogc_percent", "go_gc_gomemlimit_bytes")
		if got[0] != tc.gogc || got[1] != tc.limit {
			t.Errorf("env %q: GOGC %v, memory limit %v; want %v, %v", tc.env, got[0], got[1], tc.gogc, tc.limit)
		}
		gw.Close()
	}
}

// gaugeValues returns the values of the named unlabelled metrics on the
// admin server's /metrics, failing the test if one is missing.
func gaugeValues(t *testing.T, admin string, names ...string) []float64 {
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
	out := make([]float64, len(names))
	for i, name := range names {
		found := false
		for line := range strings.SplitSeq(string(body), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == name {
				if out[i], err = strconv.ParseFloat(f[1], 64); err != nil {
					t.Fatalf("%s: %v", line, err)
				}
				found = true
			}
		}
		if !found {
			t.Fatalf("/metrics has no %s", name)
		}
	}
	return out
}
