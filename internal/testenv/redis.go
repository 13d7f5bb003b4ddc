package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const redisInstallHint = "apt-get install -y redis-server"

// RedisServer is a Redis server for tests: one that testenv started
// (StartRedis, NewRedis, Redis) or an external one (KGW_TEST_REDIS_ADDR).
// Its methods are safe for concurrent use.
type RedisServer struct {
	// Addr is the server's "host:port", e.g. "127.0.0.1:40123".
	Addr string
	// Port is the TCP port on 127.0.0.1 (0 for an external server).
	Port int

	external bool
	bin      string
	dir      string

	child child
}

var prefixCounter atomic.Int64

// StartRedis starts redis-server on a free 127.0.0.1 port without
// persistence, in a temporary directory. The caller must Close it.
func StartRedis() (*RedisServer, error) {
	bin, err := lookBinary("redis-server", redisInstallHint)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "kgw-testenv-redis-")
	if err != nil {
		return nil, fmt.Errorf("redis temp dir: %w", err)
	}
	s := &RedisServer{bin: bin, dir: dir}
	err = onFreePorts(1, func(ports []int) error {
		s.Port = ports[0]
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
		return s.Start()
	})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// NewRedis starts a private server for tb (for fault injection) and closes
// it when tb ends. It fails tb if the server cannot be started.
func NewRedis(tb testing.TB) *RedisServer {
	tb.Helper()
	return startForTest(tb, StartRedis)
}

// ExternalRedis uses an existing server at addr. Stop, Start, Restart and
// Kill return ErrExternal.
func ExternalRedis(addr string) (*RedisServer, error) {
	if err := redisPing(addr, 5*time.Second); err != nil {
		return nil, fmt.Errorf("%s=%s: %w", EnvRedisAddr, addr, err)
	}
	return &RedisServer{Addr: addr, external: true}, nil
}

func (s *RedisServer) logFile() string { return filepath.Join(s.dir, "redis.log") }

// Start starts a stopped server on its port and waits until it answers
// PING. Starting a running server is a no-op.
func (s *RedisServer) Start() error {
	if s.external {
		return ErrExternal
	}
	return s.child.start(func() (*process, error) {
		logf, err := openLog(s.logFile())
		if err != nil {
			return nil, fmt.Errorf("redis log: %w", err)
		}
		defer logf.Close() // the child has its own descriptor
		cmd := exec.Command(s.bin,
			"--port", strconv.Itoa(s.Port),
			"--bind", "127.0.0.1",
			"--save", "",
			"--appendonly", "no",
			"--dir", s.dir,
			"--daemonize", "no",
		)
		cmd.Dir = s.dir
		cmd.Stdout = logf
		cmd.Stderr = logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		ready := func(p *process) error {
			return p.poll(30*time.Second, 20*time.Millisecond, func() error { return redisPing(s.Addr, time.Second) })
		}
		failed := func(err error) error {
			return fmt.Errorf("redis-server on port %d: %w\n%s", s.Port, err, tail(s.logFile(), 2048))
		}
		return launch(cmd, ready, failed, syscall.SIGKILL)
	})
}

// Stop shuts the server down; its data is lost (no persistence). Clients
// get "connection refused" until Start.
func (s *RedisServer) Stop() error {
	return s.stop(syscall.SIGTERM)
}

// Kill stops the server with SIGKILL, as a crash would.
func (s *RedisServer) Kill() error {
	return s.stop(syscall.SIGKILL)
}

func (s *RedisServer) stop(sig syscall.Signal) error {
	if s.external {
		return ErrExternal
	}
	return s.child.stop(10*time.Second, sig, syscall.SIGKILL)
}

// Restart stops and starts the server on the same port.
func (s *RedisServer) Restart() error {
	return restart(s.Stop, s.Start)
}

// Close stops the server and removes its directory. It does nothing for an
// external server.
func (s *RedisServer) Close() error {
	if s.external {
		return nil
	}
	err := s.Stop()
	return errors.Join(err, os.RemoveAll(s.dir))
}

// KeyPrefix returns a key prefix unique to this call within the process
// and across processes, e.g. "kgwtest:1234:7:". Tests that share a server
// put all their keys under their own prefix.
func (s *RedisServer) KeyPrefix(tb testing.TB) string {
	tb.Helper()
	return fmt.Sprintf("kgwtest:%d:%d:", os.Getpid(), prefixCounter.Add(1))
}

// Ping sends PING to the server over a fresh connection and checks the reply.
func (s *RedisServer) Ping() error { return redisPing(s.Addr, 5*time.Second) }

func redisPing(addr string, timeout time.Duration) error {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}
