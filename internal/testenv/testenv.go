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
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

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
	pg    sharedServer[*PostgresServer]
	redis sharedServer[*RedisServer]
}

// Postgres returns the PostgreSQL server shared by the tests of this package,
// starting it on first use (or connecting to KGW_TEST_POSTGRES_DSN). It fails
// tb if the server cannot be started. Main stops it.
func Postgres(tb testing.TB) *PostgresServer {
	tb.Helper()
	return shared.pg.get(tb, EnvPostgresDSN, ExternalPostgres, StartPostgres)
}

// Redis returns the Redis server shared by the tests of this package,
// starting it on first use (or using KGW_TEST_REDIS_ADDR). It fails tb if
// the server cannot be started. Main stops it.
func Redis(tb testing.TB) *RedisServer {
	tb.Helper()
	return shared.redis.get(tb, EnvRedisAddr, ExternalRedis, StartRedis)
}

// sharedServer is a server shared by the tests of a package: started on
// first use, or the external one its environment variable names.
type sharedServer[S interface{ Close() error }] struct {
	once sync.Once
	srv  S
	err  error
	up   bool // srv is set and must be closed
}

// get returns the server, starting it (or connecting to the one named by
// the environment variable env) on first use. It fails tb if that failed.
func (sh *sharedServer[S]) get(tb testing.TB, env string, external func(string) (S, error), start func() (S, error)) S {
	tb.Helper()
	sh.once.Do(func() {
		if v := os.Getenv(env); v != "" {
			sh.srv, sh.err = external(v)
		} else {
			sh.srv, sh.err = start()
		}
		sh.up = sh.err == nil
	})
	if sh.err != nil {
		tb.Fatalf("testenv: %v", sh.err)
	}
	return sh.srv
}

// close closes the server if get started (or connected to) it.
func (sh *sharedServer[S]) close() error {
	if !sh.up {
		return nil
	}
	return sh.srv.Close()
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
	return errors.Join(shared.pg.close(), shared.redis.close())
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

// openLog opens a server's log file for appending, creating it if needed.
func openLog(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
}
