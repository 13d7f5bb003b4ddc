package testenv

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Environment variables that change which kgw binary Gateway runs.
const (
	// EnvKGWBinary names an already built kgw binary that Gateway runs
	// instead of building ./cmd/kgw (e.g. a release build).
	EnvKGWBinary = "KGW_TEST_KGW_BINARY"
	// EnvKGWRace, when non-empty, builds ./cmd/kgw with -race, so that the
	// gateway's own data races fail end-to-end tests (its race reports go
	// to the gateway's log, and it exits with status 66).
	EnvKGWRace = "KGW_TEST_KGW_RACE"
)

// gatewayReadyLine is what `kgw serve` logs once it serves (DESIGN.md §10).
const gatewayReadyLine = "kgw ready"

// Timeouts of the gateway's life cycle.
const (
	gatewayStartTimeout = 60 * time.Second
	gatewayStopTimeout  = 30 * time.Second
)

var kgwBuild struct {
	once sync.Once
	path string
	err  error
}

// KGWBinary returns the path of the kgw binary, building ./cmd/kgw of the
// module that contains the working directory on first use (once per test
// binary; with -race when KGW_TEST_KGW_RACE is set), or the binary named by
// KGW_TEST_KGW_BINARY. It fails tb if the build fails.
func KGWBinary(tb testing.TB) string {
	tb.Helper()
	p, err := kgwBinary()
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	return p
}

func kgwBinary() (string, error) {
	kgwBuild.once.Do(func() {
		if p := os.Getenv(EnvKGWBinary); p != "" {
			kgwBuild.path = p
			if _, err := os.Stat(p); err != nil {
				kgwBuild.err = fmt.Errorf("%s=%s: %w", EnvKGWBinary, p, err)
			}
			return
		}
		kgwBuild.path, kgwBuild.err = buildKGW()
	})
	return kgwBuild.path, kgwBuild.err
}

// buildKGW runs `go build -o <dir>/kgw ./cmd/kgw` in the module root. The
// binary lives in the user cache directory, one per module root, and is
// replaced atomically: gateways already running (from this or another test
// binary) keep their executable.
func buildKGW() (string, error) {
	goBin, err := lookBinary("go", "install Go from https://go.dev/dl/")
	if err != nil {
		return "", err
	}
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("build kgw: the working directory is not inside the kgw module")
	}
	root := filepath.Dir(gomod)
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	sum := sha256.Sum256([]byte(root))
	dir := filepath.Join(base, "kgw-testenv", hex.EncodeToString(sum[:8]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("build kgw: %w", err)
	}
	name := "kgw"
	args := []string{"build"}
	if os.Getenv(EnvKGWRace) != "" {
		name = "kgw-race"
		args = append(args, "-race")
	}
	tmp := filepath.Join(dir, fmt.Sprintf("%s.%d.tmp", name, os.Getpid()))
	cmd := exec.Command(goBin, append(args, "-o", tmp, "./cmd/kgw")...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("go build ./cmd/kgw in %s: %w\n%s", root, err, strings.TrimSpace(stderr.String()))
	}
	dst := filepath.Join(dir, name)
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("build kgw: %w", err)
	}
	return dst, nil
}

// A GatewayOption configures a gateway started by Gateway or StartGateway.
type GatewayOption func(*gatewayConfig)

type gatewayConfig struct {
	env      []string
	args     []string
	store    string
	memLimit int64
	bin      string
}

// WithGatewayBinary runs the kgw binary at path instead of KGWBinary's,
// e.g. to measure an older build next to the current one.
func WithGatewayBinary(path string) GatewayOption {
	return func(c *gatewayConfig) { c.bin = path }
}

// WithGatewayEnv adds environment variables ("NAME=value") to the
// gateway's environment.
func WithGatewayEnv(kv ...string) GatewayOption {
	return func(c *gatewayConfig) { c.env = append(c.env, kv...) }
}

// WithGatewayArgs appends flags to `kgw serve`, e.g. "--log-level", "debug".
func WithGatewayArgs(args ...string) GatewayOption {
	return func(c *gatewayConfig) { c.args = append(c.args, args...) }
}

// WithGatewayStore makes the gateway keep its state in the store named by
// dsn (`--store`), e.g. a database of PostgresServer.NewDatabase.
func WithGatewayStore(dsn string) GatewayOption {
	return func(c *gatewayConfig) { c.store = dsn }
}

// GatewayProcess is a `kgw serve` process for tests, listening on loopback
// addresses chosen at start and kept across Restart. Its methods are safe
// for concurrent use.
type GatewayProcess struct {
	// Addr is the gRPC address, "127.0.0.1:PORT".
	Addr string
	// AdminAddr is the admin HTTP address (/metrics, /healthz, /readyz).
	AdminAddr string
	// DataDir is the gateway's data directory (kept across restarts).
	DataDir string
	// MemoryLimit describes the process memory limit the gateway runs
	// under (see WithGatewayMemoryLimit); empty without one.
	MemoryLimit string

	bin     string
	args    []string
	env     []string
	logs    *logBuffer
	tmpDir  string
	limiter *memoryLimiter

	child child
}

// Gateway builds kgw (once per test binary) and starts `kgw serve` in a
// fresh data directory on free loopback ports, waiting until it logs that
// it is ready. The gateway is stopped and its directory removed when tb
// ends. It fails tb if the gateway cannot be started.
func Gateway(tb testing.TB, opts ...GatewayOption) *GatewayProcess {
	tb.Helper()
	return startForTest(tb, func() (*GatewayProcess, error) { return StartGateway(opts...) })
}

// StartGateway is Gateway without a testing.TB: the caller must Close the
// returned gateway.
func StartGateway(opts ...GatewayOption) (*GatewayProcess, error) {
	var cfg gatewayConfig
	for _, o := range opts {
		o(&cfg)
	}
	bin := cfg.bin
	if bin == "" {
		var err error
		if bin, err = kgwBinary(); err != nil {
			return nil, err
		}
	}
	tmp, err := os.MkdirTemp("", "kgw-testenv-gateway-")
	if err != nil {
		return nil, fmt.Errorf("gateway temp dir: %w", err)
	}
	g := &GatewayProcess{
		DataDir: filepath.Join(tmp, "data"),
		bin:     bin,
		env:     gatewayEnv(os.Environ(), cfg.env),
		logs:    &logBuffer{},
		tmpDir:  tmp,
	}
	if cfg.memLimit > 0 {
		if g.limiter, err = newMemoryLimiter(cfg.memLimit); err != nil {
			_ = os.RemoveAll(tmp)
			return nil, err
		}
		g.MemoryLimit = g.limiter.what
	}
	err = onFreePorts(2, func(ports []int) error {
		g.listenOn(cfg, ports[0], ports[1])
		return g.Start()
	})
	if err != nil {
		_ = g.limiter.close()
		_ = os.RemoveAll(tmp)
		return nil, err
	}
	return g, nil
}

// listenOn sets the addresses and builds the command line.
func (g *GatewayProcess) listenOn(cfg gatewayConfig, grpcPort, adminPort int) {
	g.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(grpcPort))
	g.AdminAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(adminPort))
	g.args = []string{"serve",
		"--grpc-addr", g.Addr,
		"--admin-addr", g.AdminAddr,
		"--data-dir", g.DataDir,
	}
	if cfg.store != "" {
		g.args = append(g.args, "--store", cfg.store)
	}
	g.args = append(g.args, cfg.args...)
}

// gatewayEnv is the parent's environment without its KGW_* variables (a
// developer's KGW_STORE must not leak into tests), plus extra.
func gatewayEnv(parent, extra []string) []string {
	env := make([]string, 0, len(parent)+len(extra))
	for _, kv := range parent {
		if !strings.HasPrefix(kv, "KGW_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// Start starts a stopped gateway with the same addresses and data
// directory and waits until it is ready. Starting a running gateway is a
// no-op.
func (g *GatewayProcess) Start() error {
	return g.child.start(func() (*process, error) {
		from := g.logs.Len()
		argv := []string{g.bin}
		if g.limiter != nil {
			argv = append(slices.Clone(g.limiter.wrap), argv...)
		}
		cmd := exec.Command(argv[0], append(argv[1:], g.args...)...)
		cmd.Dir = g.tmpDir
		cmd.Env = g.env
		cmd.Stdout = g.logs
		cmd.Stderr = g.logs
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		ready := func(p *process) error { return g.logs.waitFor(p.done, from, gatewayReadyLine, gatewayStartTimeout) }
		failed := func(err error) error {
			return fmt.Errorf("gateway on %s did not become ready: %w\n%s", g.Addr, err, lastLines(g.logs.From(from), 40))
		}
		return launch(cmd, ready, failed, syscall.SIGKILL)
	})
}

// Stop sends SIGTERM (graceful shutdown) and waits for the process to exit,
// killing it if it takes longer than 30 s. Stopping a stopped gateway is a
// no-op.
func (g *GatewayProcess) Stop() error {
	return g.stop(syscall.SIGTERM)
}

// Kill ends the gateway with SIGKILL, as a crash would, and waits for it to
// exit.
func (g *GatewayProcess) Kill() error {
	return g.stop(syscall.SIGKILL)
}

func (g *GatewayProcess) stop(sig syscall.Signal) error {
	if err := g.child.stop(gatewayStopTimeout, sig, syscall.SIGKILL); err != nil {
		return fmt.Errorf("stop gateway: %w", err)
	}
	return nil
}

// Signal sends sig to the running gateway without waiting, e.g. SIGSTOP
// and SIGCONT to pause it past its lease.
func (g *GatewayProcess) Signal(sig syscall.Signal) error {
	return g.child.signal(sig)
}

// Restart stops the gateway gracefully and starts it again with the same
// addresses and data directory.
func (g *GatewayProcess) Restart() error {
	return restart(g.Stop, g.Start)
}

// Running reports whether the gateway process is alive.
func (g *GatewayProcess) Running() bool {
	return g.child.running()
}

// Logs returns everything the gateway wrote to stdout and stderr since it
// was first started, across restarts.
func (g *GatewayProcess) Logs() string { return g.logs.String() }

// WaitLog waits until the gateway's output contains substr, at most
// timeout, and reports whether it did.
func (g *GatewayProcess) WaitLog(substr string, timeout time.Duration) bool {
	return g.logs.waitFor(nil, 0, substr, timeout) == nil
}

// Close stops the gateway and removes its directory. It also reports a
// data race that a -race build of the gateway (KGW_TEST_KGW_RACE) logged.
func (g *GatewayProcess) Close() error {
	err := g.Stop()
	if logs := g.Logs(); err == nil && strings.Contains(logs, "WARNING: DATA RACE") {
		i := strings.Index(logs, "WARNING: DATA RACE")
		err = fmt.Errorf("gateway on %s reported a data race:\n%s", g.Addr, firstLines(logs[i:], 80))
	}
	if lerr := g.limiter.close(); lerr != nil && err == nil {
		err = lerr
	}
	if rmErr := os.RemoveAll(g.tmpDir); rmErr != nil && err == nil {
		err = fmt.Errorf("remove gateway dir: %w", rmErr)
	}
	return err
}

// logBuffer collects a process's output and wakes waiters on each write.
type logBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on each write
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
	return n, err
}

// Len returns the number of bytes written so far.
func (b *logBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

func (b *logBuffer) String() string { return b.From(0) }

// From returns the output from byte offset off on.
func (b *logBuffer) From(off int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf.Bytes()[off:])
}

// waitFor waits until the output after offset from contains substr. It
// fails when exited is closed first (the process died), or after timeout.
func (b *logBuffer) waitFor(exited <-chan struct{}, from int, substr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		b.mu.Lock()
		found := bytes.Contains(b.buf.Bytes()[from:], []byte(substr))
		if b.changed == nil {
			b.changed = make(chan struct{})
		}
		changed := b.changed
		b.mu.Unlock()
		if found {
			return nil
		}
		select {
		case <-changed:
		case <-exited:
			// The last output may still be on its way through the pipe;
			// Wait has returned, so it has been copied by now.
			if strings.Contains(b.From(from), substr) {
				return nil
			}
			return fmt.Errorf("process exited before logging %q", substr)
		case <-ctx.Done():
			return fmt.Errorf("no %q after %v", substr, timeout)
		}
	}
}

// firstLines returns the first n lines of s.
func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
