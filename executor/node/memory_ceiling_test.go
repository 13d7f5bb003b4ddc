package node

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
)

func TestHeapCeiling(t *testing.T) {
	const limit = 100 << 20
	tests := []struct {
		gogc, want int64
	}{
		{100, 200 << 20},
		{50, 200 << 20}, // garbage stays under the live heap: still twice
		{-1, 200 << 20}, // GOGC=off: no bound from the collector
		{200, 300 << 20},
		{400, 500 << 20},
	}
	for _, tc := range tests {
		if got := heapCeiling(limit, tc.gogc); got != tc.want {
			t.Errorf("heapCeiling(%d, %d) = %d, want %d", limit, tc.gogc, got, tc.want)
		}
	}
}

// readHeap reports the collector's target as it is set, -1 when off.
func TestReadHeapGOGC(t *testing.T) {
	prev := debug.SetGCPercent(400)
	defer debug.SetGCPercent(prev)
	runtime.GC() // so that a live heap has been marked
	s := []metrics.Sample{{Name: heapMetric}, {Name: liveMetric}, {Name: gogcMetric}}
	heap, live, gogc := readHeap(s)
	if gogc != 400 || heap <= 0 || live <= 0 {
		t.Errorf("readHeap = heap %d, live %d, gogc %d; want positive sizes and gogc 400", heap, live, gogc)
	}
	debug.SetGCPercent(-1)
	if _, _, gogc := readHeap(s); gogc != -1 {
		t.Errorf("gogc with the collector off = %d, want -1", gogc)
	}
}
