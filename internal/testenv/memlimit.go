package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
)

// WithGatewayMemoryLimit runs the gateway under a process memory limit of
// n bytes, enforced by the kernel: a cgroup of its own (cgroup v2
// memory.max, or v1 memory.limit_in_bytes) when the machine lets the test
// create one, else the address-space limit of prlimit. A gateway that
// goes past it is killed (cgroup) or fails to allocate and exits (prlimit).
// GatewayProcess.MemoryLimit says which was used. GOMEMLIMIT is not such
// a limit: it only makes the collector work harder.
func WithGatewayMemoryLimit(n int64) GatewayOption {
	return func(c *gatewayConfig) { c.memLimit = n }
}

var cgroupSeq atomic.Int64

// memoryLimiter is how a gateway's memory is limited.
type memoryLimiter struct {
	// what describes the mechanism, e.g. "cgroup v1 memory.limit_in_bytes".
	what string
	// wrap is the command prefix that starts the gateway under the limit.
	wrap []string
	// dir is the cgroup directory to remove when the gateway is closed.
	dir string
}

// newMemoryLimiter prepares a limit of n bytes.
func newMemoryLimiter(n int64) (*memoryLimiter, error) {
	name := fmt.Sprintf("kgw-test-%d-%d", os.Getpid(), cgroupSeq.Add(1))
	if dir, file, what, ok := makeCgroup(name); ok {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(strconv.FormatInt(n, 10)), 0o644); err == nil {
			// The shell moves itself into the cgroup, then becomes the
			// gateway.
			script := `echo $$ > "$KGW_TEST_CGROUP/cgroup.procs" && exec "$0" "$@"`
			return &memoryLimiter{what: what, dir: dir,
				wrap: []string{"/bin/sh", "-c", strings.Replace(script, "$KGW_TEST_CGROUP", dir, 1)}}, nil
		}
		_ = os.Remove(dir)
	}
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		return nil, errors.New("no way to limit the gateway's memory: cgroups are not writable and prlimit is missing (install util-linux)")
	}
	return &memoryLimiter{what: "prlimit --as", wrap: []string{prlimit, "--as=" + strconv.FormatInt(n, 10), "--"}}, nil
}

// makeCgroup creates a child cgroup of the test process's own memory
// cgroup and returns its directory and limit file.
func makeCgroup(name string) (dir, file, what string, ok bool) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return "", "", "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var v1, v2 string
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			v2 = parts[2]
		case slices.Contains(strings.Split(parts[1], ","), "memory"):
			v1 = parts[2]
		}
	}
	candidates := []struct{ dir, file, what string }{}
	if v2 != "" {
		if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
			candidates = append(candidates, struct{ dir, file, what string }{filepath.Join("/sys/fs/cgroup", v2, name), "memory.max", "cgroup v2 memory.max"})
		}
	}
	if v1 != "" {
		candidates = append(candidates, struct{ dir, file, what string }{filepath.Join("/sys/fs/cgroup/memory", v1, name), "memory.limit_in_bytes", "cgroup v1 memory.limit_in_bytes"})
	}
	for _, c := range candidates {
		if err := os.Mkdir(c.dir, 0o755); err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(c.dir, c.file)); err != nil {
			_ = os.Remove(c.dir)
			continue
		}
		return c.dir, c.file, c.what, true
	}
	return "", "", "", false
}

// close removes the cgroup, once the gateway has exited.
func (m *memoryLimiter) close() error {
	if m == nil || m.dir == "" {
		return nil
	}
	if err := os.Remove(m.dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove cgroup %s: %w", m.dir, err)
	}
	return nil
}
