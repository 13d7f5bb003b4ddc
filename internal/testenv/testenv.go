// Package testenv starts the real servers that kgw's tests talk to:
// PostgreSQL (initdb + postgres from the machine's binaries) and Redis
// (redis-server), each in a temporary directory on a free 127.0.0.1 port.
//
// A test package shares one server of each kind, started on first use by
// Postgres or Redis and stopped by Main, which every package that uses
// testenv calls from its TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// Tests isolate themselves inside the shared server: PostgresServer.NewDatabase
// gives each test a fresh database, RedisServer.KeyPrefix a unique key prefix.
// Tests that inject faults (Stop, Start, Restart, Kill) start a private server
// with NewPostgres or NewRedis so that they do not disturb other tests.
//
// KGW_TEST_POSTGRES_DSN and KGW_TEST_REDIS_ADDR, when set, name existing
// servers that Postgres and Redis use instead of starting their own (private
// servers are always started locally). A missing binary fails the test with
// an install hint; it never skips.
package testenv

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// ErrExternal is returned by Stop, Start, Restart and Kill on a server that
// testenv did not start (one named by KGW_TEST_POSTGRES_DSN or
// KGW_TEST_REDIS_ADDR).
var ErrExternal = errors.New("testenv: server was not started by testenv")

// Environment variables naming existing servers.
const (
	EnvPostgresDSN = "KGW_TEST_POSTGRES_DSN"
	EnvRedisAddr   = "KGW_TEST_REDIS_ADDR"
)

var shared struct {
	pgOnce    sync.Once
	pg        *PostgresServer
	pgErr     error
	redisOnce sync.Once
	redis     *RedisServer
	redisErr  error
}

// Postgres returns the PostgreSQL server shared by the tests of this package,
// starting it on first use (or connecting to KGW_TEST_POSTGRES_DSN). It fails
// tb if the server cannot be started. Main stops it.
func Postgres(tb testing.TB) *PostgresServer {
	tb.Helper()
	shared.pgOnce.Do(func() {
		if dsn := os.Getenv(EnvPostgresDSN); dsn != "" {
			shared.pg, shared.pgErr = ExternalPostgres(dsn)
			return
		}
		shared.pg, shared.pgErr = StartPostgres()
	})
	if shared.pgErr != nil {
		tb.Fatalf("testenv: %v", shared.pgErr)
	}
	return shared.pg
}

// Redis returns the Redis server shared by the tests of this package,
// starting it on first use (or using KGW_TEST_REDIS_ADDR). It fails tb if
// the server cannot be started. Main stops it.
func Redis(tb testing.TB) *RedisServer {
	tb.Helper()
	shared.redisOnce.Do(func() {
		if addr := os.Getenv(EnvRedisAddr); addr != "" {
			shared.redis, shared.redisErr = ExternalRedis(addr)
			return
		}
		shared.redis, shared.redisErr = StartRedis()
	})
	if shared.redisErr != nil {
		tb.Fatalf("testenv: %v", shared.redisErr)
	}
	return shared.redis
}

// Main runs the tests, stops the shared servers, checks for leaked
// goroutines with goleak.Find (when the tests passed) and exits. Call it
// from TestMain. opts are passed to goleak.Find.
func Main(m *testing.M, opts ...goleak.Option) {
	code := m.Run()
	if fuzzWorker() {
		// A fuzz worker is driven by the fuzzing coordinator and keeps its
		// own goroutines alive between inputs; a leak check would stall it.
		os.Exit(code)
	}
	if err := StopShared(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: stopping shared servers: %v\n", err)
		code = 1
	}
	if code == 0 {
		if err := goleak.Find(opts...); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: goroutine leak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// fuzzWorker reports whether this process is a worker of `go test -fuzz`.
func fuzzWorker() bool {
	f := flag.Lookup("test.fuzzworker")
	return f != nil && f.Value.String() == "true"
}

// StopShared stops and removes the shared servers started by Postgres and
// Redis. Main calls it; a custom TestMain that does not use Main must.
func StopShared() error {
	var errs []error
	if shared.pg != nil {
		errs = append(errs, shared.pg.Close())
	}
	if shared.redis != nil {
		errs = append(errs, shared.redis.Close())
	}
	return errors.Join(errs...)
}

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	return port, nil
}

// lookBinary finds name in PATH or in the extra directories, and otherwise
// returns an error carrying an install hint.
func lookBinary(name, hint string, extra ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range extra {
		p := dir + "/" + name
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH: install it with `%s`", name, hint)
}

// tail returns the last n bytes of the file at path, for error messages.
func tail(path string, n int64) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if int64(len(b)) > n {
		b = b[int64(len(b))-n:]
	}
	return strings.TrimSpace(string(b))
}

// process is a server child process whose exit is observed by one goroutine.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, valid after done is closed
}

func startProcess(cmd *exec.Cmd) (*process, error) {
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signalAndWait sends each signal in turn, waiting up to wait after each for
// the process to exit.
func (p *process) signalAndWait(wait time.Duration, sigs ...os.Signal) error {
	for _, sig := range sigs {
		if p.exited() {
			return nil
		}
		if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("signal %v: %w", sig, err)
		}
		select {
		case <-p.done:
			return nil
		case <-time.After(wait):
		}
	}
	<-p.done
	return nil
}
