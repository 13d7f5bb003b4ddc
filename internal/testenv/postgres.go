package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const pgInstallHint = "apt-get install -y postgresql"

// PostgresServer is a PostgreSQL server for tests: one that testenv started
// (StartPostgres, NewPostgres, Postgres) or an external one
// (KGW_TEST_POSTGRES_DSN). Its methods are safe for concurrent use.
type PostgresServer struct {
	// DSN connects as a superuser to the server's maintenance database,
	// e.g. "postgres://postgres@127.0.0.1:54321/postgres?sslmode=disable".
	DSN string
	// Port is the TCP port on 127.0.0.1 (0 for an external server).
	Port int

	external bool
	baseDir  string // temp dir holding data/ and postgres.log
	binDir   string // where initdb and postgres live
	cred     *syscall.Credential

	child child
}

var dbCounter atomic.Int64

// StartPostgres initialises a new cluster in a temporary directory and starts
// postgres on a free 127.0.0.1 port with durability off (fsync=off) for speed.
// The caller must Close it.
func StartPostgres() (*PostgresServer, error) {
	initdb, err := lookBinary("initdb", pgInstallHint, pgBinDirs()...)
	if err != nil {
		return nil, err
	}
	binDir := filepath.Dir(initdb)
	if _, err := os.Stat(filepath.Join(binDir, "postgres")); err != nil {
		return nil, fmt.Errorf("postgres not found next to %s: install it with `%s`", initdb, pgInstallHint)
	}
	s := &PostgresServer{binDir: binDir}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		cred, err := postgresCredential()
		if err != nil {
			return nil, err
		}
		s.cred = cred
	}
	s.baseDir, err = os.MkdirTemp("", "kgw-testenv-pg-")
	if err != nil {
		return nil, fmt.Errorf("postgres temp dir: %w", err)
	}
	if s.cred != nil {
		if err := os.Chown(s.baseDir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			_ = os.RemoveAll(s.baseDir)
			return nil, fmt.Errorf("postgres temp dir: %w", err)
		}
	}
	if err := s.initdb(); err != nil {
		_ = os.RemoveAll(s.baseDir)
		return nil, err
	}
	err = onFreePorts(1, func(ports []int) error {
		s.Port = ports[0]
		s.DSN = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.Port)
		return s.Start()
	})
	if err != nil {
		_ = os.RemoveAll(s.baseDir)
		return nil, err
	}
	return s, nil
}

// NewPostgres starts a private server for tb (for fault injection) and
// closes it when tb ends. It fails tb if the server cannot be started.
func NewPostgres(tb testing.TB) *PostgresServer {
	tb.Helper()
	return startForTest(tb, StartPostgres)
}

// ExternalPostgres uses an existing server; dsn must connect as a role that
// may create databases. Stop, Start, Restart and Kill return ErrExternal.
func ExternalPostgres(dsn string) (*PostgresServer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", EnvPostgresDSN, err)
	}
	defer conn.Close(context.Background())
	return &PostgresServer{DSN: dsn, external: true}, nil
}

func pgBinDirs() []string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Highest major version first.
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	return dirs
}

func postgresCredential() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL refuses to run as root and there is no 'postgres' user: create it with `useradd --system --user-group postgres` (%w)", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres gid %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

func (s *PostgresServer) dataDir() string { return filepath.Join(s.baseDir, "data") }
func (s *PostgresServer) logFile() string { return filepath.Join(s.baseDir, "postgres.log") }

func (s *PostgresServer) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.binDir, name), args...)
	cmd.Dir = s.baseDir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "LANG=C", "TZ=UTC", "HOME=" + s.baseDir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	return cmd
}

func (s *PostgresServer) initdb() error {
	cmd := s.command("initdb", "-D", s.dataDir(), "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	// Members of the role ScramRole must authenticate with a SCRAM-SHA-256
	// password over TCP; everyone else is trusted. The first matching line
	// wins, so the rule goes first.
	hba := filepath.Join(s.dataDir(), "pg_hba.conf")
	old, err := os.ReadFile(hba)
	if err != nil {
		return fmt.Errorf("read pg_hba.conf: %w", err)
	}
	rule := "host all +" + ScramRole + " 127.0.0.1/32 scram-sha-256\n"
	if err := os.WriteFile(hba, append([]byte(rule), old...), 0o600); err != nil {
		return fmt.Errorf("write pg_hba.conf: %w", err)
	}
	return nil
}

// ScramRole is the group role whose members a test server started by
// StartPostgres makes authenticate with a SCRAM-SHA-256 password (every
// other role is trusted). Tests that need password authentication create
// it (CREATE ROLE kgw_scram NOLOGIN, if it does not exist) and a login role
// IN ROLE kgw_scram with a password. An external server
// (KGW_TEST_POSTGRES_DSN) may not have this rule.
const ScramRole = "kgw_scram"

// Start starts a stopped server on its port and waits until it accepts
// connections. Starting a running server is a no-op.
func (s *PostgresServer) Start() error {
	if s.external {
		return ErrExternal
	}
	return s.child.start(func() (*process, error) {
		logf, err := openLog(s.logFile())
		if err != nil {
			return nil, fmt.Errorf("postgres log: %w", err)
		}
		defer logf.Close() // the child has its own descriptor
		cmd := s.command("postgres", "-D", s.dataDir(),
			"-p", strconv.Itoa(s.Port),
			"-c", "listen_addresses=127.0.0.1",
			"-c", "unix_socket_directories=",
			"-F", // fsync off
			"-c", "synchronous_commit=off",
			"-c", "full_page_writes=off",
			"-c", "max_connections=300",
			"-c", "shared_buffers=32MB",
		)
		cmd.Stdout = logf
		cmd.Stderr = logf
		// If the test binary dies, take the server down with it (immediate shutdown).
		cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
		ready := func(p *process) error { return p.poll(60*time.Second, 50*time.Millisecond, s.ping) }
		failed := func(err error) error {
			return fmt.Errorf("postgres on port %d: %w\n%s", s.Port, err, tail(s.logFile(), 2048))
		}
		return launch(cmd, ready, failed, syscall.SIGQUIT, syscall.SIGKILL)
	})
}

// ping connects to the server and pings it.
func (s *PostgresServer) ping() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.Ping(ctx)
}

// Stop shuts the server down (fast shutdown: sessions are disconnected,
// data is kept). Clients get "connection refused" until Start.
func (s *PostgresServer) Stop() error {
	return s.stop(syscall.SIGINT)
}

// Kill stops the server as a crash would (immediate shutdown: no
// checkpoint, crash recovery runs at the next Start).
func (s *PostgresServer) Kill() error {
	return s.stop(syscall.SIGQUIT)
}

func (s *PostgresServer) stop(sig syscall.Signal) error {
	if s.external {
		return ErrExternal
	}
	return s.child.stop(20*time.Second, sig, syscall.SIGQUIT, syscall.SIGKILL)
}

// Restart stops and starts the server on the same port.
func (s *PostgresServer) Restart() error {
	return restart(s.Stop, s.Start)
}

// Close stops the server and removes its directory. It does nothing for an
// external server.
func (s *PostgresServer) Close() error {
	if s.external {
		return nil
	}
	err := s.Stop()
	return errors.Join(err, os.RemoveAll(s.baseDir))
}

// NewDatabase creates a fresh, empty database for tb, drops it when tb ends,
// and returns a DSN that connects to it as the superuser.
func (s *PostgresServer) NewDatabase(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("kgw_test_%d_%d", os.Getpid(), dbCounter.Add(1))
	dsn, err := s.CreateDatabase(context.Background(), name)
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.DropDatabase(context.Background(), name); err != nil {
			tb.Errorf("testenv: %v", err)
		}
	})
	return dsn
}

// CreateDatabase creates the database name (a plain SQL identifier) and
// returns a DSN for it.
func (s *PostgresServer) CreateDatabase(ctx context.Context, name string) (string, error) {
	if err := s.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return s.DatabaseDSN(name)
}

// DropDatabase drops the database name, disconnecting its sessions.
func (s *PostgresServer) DropDatabase(ctx context.Context, name string) error {
	if err := s.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// DatabaseDSN returns s.DSN with its database replaced by name.
func (s *PostgresServer) DatabaseDSN(name string) (string, error) {
	if strings.HasPrefix(s.DSN, "postgres://") || strings.HasPrefix(s.DSN, "postgresql://") {
		u, err := url.Parse(s.DSN)
		if err != nil {
			return "", fmt.Errorf("parse DSN: %w", err)
		}
		u.Path = "/" + name
		return u.String(), nil
	}
	// keyword=value form: a later keyword wins.
	return s.DSN + " dbname=" + name, nil
}

func (s *PostgresServer) exec(ctx context.Context, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}
