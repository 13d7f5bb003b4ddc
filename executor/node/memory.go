package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MemoryConfig configures a Watchdog.
type MemoryConfig struct {
	// Limit is the heap size in bytes (live and not yet collected objects,
	// runtime/metrics "/memory/classes/heap/objects:bytes") above which
	// the watchdog stops an attempt. 0 means DefaultMemoryLimit(); a
	// negative value disables the watchdog.
	Limit int64
	// Interval is the time between two heap samples; 0 means
	// DefaultMemoryInterval.
	Interval time.Duration
}

// DefaultMemoryInterval is the default sampling interval of the memory
// watchdog.
const DefaultMemoryInterval = 5 * time.Millisecond

// fallbackMemoryLimit is the default limit when neither GOMEMLIMIT nor the
// machine's memory is known.
const fallbackMemoryLimit = 2 << 30

// DefaultMemoryLimit returns the limit used when MemoryConfig.Limit is 0:
// three quarters of the Go memory limit when one is set (GOMEMLIMIT or
// debug.SetMemoryLimit); otherwise a quarter of the memory available to
// the process (the cgroup limit if there is one, else the machine's
// total memory); otherwise 2 GiB. A quarter leaves room for the overshoot
// of a runaway attempt: the operation in progress when the watchdog
// samples may still allocate up to twice the largest value the attempt
// holds before the attempt stops.
func DefaultMemoryLimit() int64 {
	if gl := debug.SetMemoryLimit(-1); gl > 0 && gl < math.MaxInt64 {
		return gl / 4 * 3
	}
	if total := AvailableMemory(); total > 0 {
		return total / 4
	}
	return fallbackMemoryLimit
}

// A Watchdog is the backstop of the attempts' memory budgets
// (Limits.MaxMemory): it samples the Go heap while attempts registered
// with it run (Attempt.Watchdog) and, when the heap passes its limit,
// stops the one attempt that has charged the most to its budget with code
// MEMORY_LIMIT. The budgets charge what node code builds before it is
// built; the watchdog catches what they do not see (values built by
// resource handles, the estimates' error, many attempts each within its
// budget).
//
// Its sampling goroutine starts with the first attempt and exits after an
// interval without any. A Watchdog is safe for concurrent use. Close must
// be called when no attempt uses it any more.
type Watchdog struct {
	mu      sync.Mutex
	cfg     MemoryConfig
	runs    map[*run]struct{}
	started uint64 // registrations so far, to detect idleness
	running bool
	closed  bool
	stop    chan struct{}
	done    chan struct{} // closed when the latest goroutine (and all earlier ones) exited
}

// NewWatchdog returns a watchdog configured by c.
func NewWatchdog(c MemoryConfig) *Watchdog {
	return &Watchdog{cfg: c, runs: map[*run]struct{}{}}
}

// Close stops the watchdog's goroutine and waits until it has exited.
// Attempts that start afterwards run unwatched. Close may be called more
// than once.
func (w *Watchdog) Close() {
	w.mu.Lock()
	done := w.done
	w.closed = true
	if w.running {
		close(w.stop)
		w.running = false
	}
	w.mu.Unlock()
	if done != nil {
		<-done
	}
}

// memTrip records why the watchdog stopped an attempt.
type memTrip struct {
	heap, limit int64
}

// errMemoryLimit is the cancellation cause of attempts the watchdog stops.
var errMemoryLimit = errors.New("memory limit exceeded")

// register adds r to the attempts the watchdog may stop, starting the
// watchdog if needed. It does nothing when w is nil, disabled or closed.
func (w *Watchdog) register(r *run) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cfg.Limit < 0 || w.closed {
		return
	}
	w.runs[r] = struct{}{}
	w.started++
	if !w.running {
		w.running = true
		w.stop = make(chan struct{})
		prev, done := w.done, make(chan struct{})
		w.done = done
		interval := w.cfg.Interval
		if interval <= 0 {
			interval = DefaultMemoryInterval
		}
		go w.loop(w.stop, prev, done, interval)
	}
}

// unregister removes r.
func (w *Watchdog) unregister(r *run) {
	if w == nil {
		return
	}
	w.mu.Lock()
	delete(w.runs, r)
	w.mu.Unlock()
}

// The runtime/metrics names of the samples: all heap objects (live or not
// yet freed), the live heap marked by the last collection, and GOGC.
const (
	heapMetric = "/memory/classes/heap/objects:bytes"
	liveMetric = "/gc/heap/live:bytes"
	gogcMetric = "/gc/gogc:percent"
)

// readHeap reads the three metrics of s. gogc is -1 when the collector's
// target is off (GOGC=off).
func readHeap(s []metrics.Sample) (heap, live, gogc int64) {
	metrics.Read(s)
	v := func(i int) int64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return int64(min(s[i].Value.Uint64(), math.MaxInt64))
	}
	gogc = v(2)
	if gogc == math.MaxInt64 {
		gogc = -1
	}
	return v(0), v(1), gogc
}

// heapCeiling is the heap size (garbage included) at which the watchdog
// trips whatever the live heap: the heap the collector lets grow on a live
// heap at the limit, limit × (1 + GOGC/100), and at least twice the limit
// (also when GOGC is off, where no such bound exists).
func heapCeiling(limit, gogc int64) int64 {
	if gogc <= 100 {
		return 2 * limit
	}
	return limit + limit/100*gogc
}

// loop samples the heap every interval until stop is closed or no attempt
// registered during a whole interval. It closes done after prev (the done
// channel of the previous goroutine) so that waiting for the latest done
// waits for all of them.
//
// The sampled heap includes garbage that the collector has not freed yet,
// which may reach about twice the live heap (GOGC=100), or more with a
// higher GOGC. So the watchdog trips when the live heap marked by the last
// collection exceeds the limit, or when the heap exceeds heapCeiling
// (growth faster than the collector runs). After a trip it waits until the stopped attempts have
// ended, then forces a collection (in the background, watching the growth
// beyond the garbage meanwhile) so that their garbage neither stays in
// memory nor trips the next attempts.
func (w *Watchdog) loop(stop <-chan struct{}, prev <-chan struct{}, done chan<- struct{}, interval time.Duration) {
	defer close(done)
	if prev != nil {
		defer func() { <-prev }()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	sample := []metrics.Sample{{Name: heapMetric}, {Name: liveMetric}, {Name: gogcMetric}}
	var st tripState
	defer st.wait()
	hurried := false // sampling at the fast rate
	w.mu.Lock()
	seen := w.started
	w.mu.Unlock()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		limit, busy := w.observe(stop, &seen, &st)
		if !busy {
			return
		}
		heap, live, gogc := readHeap(sample)
		w.check(&st, limit, heap, live, gogc)
		// Sample faster near the limit: a doubling value gets there quickly.
		if fast := heap > limit/2; fast != hurried {
			hurried = fast
			t.Reset(cond(fast, max(interval/5, time.Millisecond), interval))
		}
	}
}

// tripState is what loop remembers between samples about its last trip.
type tripState struct {
	tripped []*run        // stopped attempts not yet ended
	cleanup chan struct{} // closed when the collection after a trip is done
	base    int64         // heap size when that collection started
}

// wait waits for the collection after a trip, if one is running.
func (st *tripState) wait() {
	if st.cleanup != nil {
		<-st.cleanup
	}
}

// observe is loop's look at the registered attempts, under w.mu: it
// forgets the tripped attempts that have ended and returns the limit in
// force. It returns busy false, marking the watchdog stopped (when stop is
// still its channel), when no attempt was registered or started during
// the last interval and none it stopped is still running: loop then exits
// and the next attempt starts a new one. seen is the count of attempts
// started at the previous look.
func (w *Watchdog) observe(stop <-chan struct{}, seen *uint64, st *tripState) (limit int64, busy bool) {
	w.mu.Lock()
	limit = w.cfg.Limit
	if len(w.runs) == 0 && w.started == *seen && st.tripped == nil {
		if w.stop == stop {
			w.running = false
		}
		w.mu.Unlock()
		return 0, false
	}
	*seen = w.started
	st.tripped = slices.DeleteFunc(st.tripped, func(r *run) bool {
		_, ok := w.runs[r]
		return !ok
	})
	w.mu.Unlock()
	if limit == 0 {
		limit = DefaultMemoryLimit()
	}
	return limit, true
}

// check compares one sample of the heap with limit and trips the
// watchdog when it is over (see loop); after a trip, once the stopped
// attempts have ended, it starts a collection in the background.
func (w *Watchdog) check(st *tripState, limit, heap, live, gogc int64) {
	if st.cleanup != nil {
		select {
		case <-st.cleanup:
			st.cleanup = nil
		default:
		}
	}
	switch {
	case st.tripped != nil:
		// Wait for the stopped attempts to end, then collect their
		// garbage in the background and keep watching meanwhile.
		if len(st.tripped) == 0 {
			st.tripped = nil
			st.cleanup, st.base = make(chan struct{}), heap
			go func(done chan<- struct{}) {
				defer close(done)
				debug.FreeOSMemory()
			}(st.cleanup)
		}
	case limit < 0:
	case st.cleanup != nil:
		// The heap still holds the garbage of the stopped attempts and
		// live is stale: watch the growth beyond it.
		if heap-st.base > limit {
			st.tripped = w.trip(heap, limit)
		}
	case live > limit || heap > heapCeiling(limit, gogc):
		st.tripped = w.trip(max(heap, live), limit)
	}
}

func cond[T any](c bool, a, b T) T {
	if c {
		return a
	}
	return b
}

// trip stops the running attempt that has charged the most to its
// memory budget: Go cannot attribute heap to goroutines, and the charges
// are the runtime's best account of who built what. It returns the
// attempts it stopped (never nil; empty when none runs).
func (w *Watchdog) trip(heap, limit int64) []*run {
	w.mu.Lock()
	var victim *run
	for r := range w.runs {
		if victim == nil || r.mem.used.Load() > victim.mem.used.Load() {
			victim = r
		}
	}
	w.mu.Unlock()
	if victim == nil {
		return []*run{}
	}
	victim.stopForMemory(&memTrip{heap: heap, limit: limit})
	return []*run{victim}
}

// stopForMemory cancels the attempt because the heap passed the limit:
// its main thread and, through their contexts, the threads of its running
// parallel.map calls. Builtins in progress (a sleep, a resource call)
// finish first.
func (r *run) stopForMemory(m *memTrip) {
	if !r.memTrip.CompareAndSwap(nil, m) {
		return
	}
	r.stopMu.Lock()
	defer r.stopMu.Unlock()
	if r.main != nil { // nil once the attempt has ended (recycleMain)
		r.main.Cancel(errMemoryLimit.Error())
	}
	for stop := range r.stoppers {
		(*stop)(errMemoryLimit)
	}
}

// addStopper registers the cancel function of a parallel.map call for
// stopForMemory and returns its unregistration. If the attempt was already
// stopped, it calls cancel at once.
func (r *run) addStopper(cancel *context.CancelCauseFunc) (remove func()) {
	r.stopMu.Lock()
	defer r.stopMu.Unlock()
	if r.memTrip.Load() != nil {
		(*cancel)(errMemoryLimit)
	}
	if r.stoppers == nil {
		r.stoppers = map[*context.CancelCauseFunc]struct{}{}
	}
	r.stoppers[cancel] = struct{}{}
	return func() {
		r.stopMu.Lock()
		delete(r.stoppers, cancel)
		r.stopMu.Unlock()
	}
}

// memoryMessage is the cause in the message of a MEMORY_LIMIT failure.
func memoryMessage(m *memTrip) string {
	return fmt.Sprintf("exceeded the memory limit (%d MiB): the gateway's heap reached %d MiB while the node ran, and this attempt had built the most, so it was stopped (does a list, dict or string grow without bound, e.g. l = l + l in a loop?)",
		m.limit>>20, m.heap>>20)
}

var memTotal struct {
	once sync.Once
	n    int64
}

// AvailableMemory returns the memory available to the process: the
// smaller of the cgroup limit and the machine's total memory, or 0 if
// neither is known.
func AvailableMemory() int64 {
	memTotal.once.Do(func() {
		n := meminfoTotal()
		for _, path := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
			if c := readLimitFile(path); c > 0 && (n == 0 || c < n) {
				n = c
			}
		}
		memTotal.n = n
	})
	return memTotal.n
}

// readLimitFile reads a cgroup memory limit; 0 when absent or unlimited.
func readLimitFile(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n <= 0 || n >= 1<<60 { // "max", or cgroup v1's "unlimited"
		return 0
	}
	return n
}

// meminfoTotal returns MemTotal of /proc/meminfo in bytes, or 0.
func meminfoTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			fields := strings.Fields(rest)
			if len(fields) == 2 && fields[1] == "kB" {
				if n, err := strconv.ParseInt(fields[0], 10, 64); err == nil {
					return n << 10
				}
			}
			return 0
		}
	}
	return 0
}
