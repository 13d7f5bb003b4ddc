package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kailash-gateway/kgw/executor"
	"github.com/kailash-gateway/kgw/secrets"
)

// serveConfig is the parsed configuration of `kgw serve`.
type serveConfig struct {
	GRPCAddr      string
	AdminAddr     string // "" disables the admin HTTP server
	DataDir       string
	Store         string // sqlite://<path> or postgres://…
	MasterKeyFile string
	// MasterKey is KGW_MASTER_KEY, parsed; nil means use MasterKeyFile.
	MasterKey *secrets.MasterKey
	// DisableInlineResources refuses inline resource specs: requests may
	// only name server-side resources ({"ref": name}).
	DisableInlineResources bool
	LogLevel               slog.Level
	LogFormat              string // text or json
	ShutdownDelay          time.Duration
	ShutdownTimeout        time.Duration
	// Retention is how long finished executions and their events are
	// kept; negative keeps them forever.
	Retention time.Duration
	// RecoveryInterval is how often the executor looks for unfinished
	// executions no live process runs.
	RecoveryInterval time.Duration
	// AccessLog logs every RPC; without it only failed RPCs are logged.
	AccessLog bool
	// Pprof serves the Go runtime profiles under /debug/pprof/ on the
	// admin address.
	Pprof bool
	// NodeMemoryLimit is the heap size in bytes above which running node
	// attempts are stopped; 0 means the runtime's default, negative
	// disables the watchdog.
	NodeMemoryLimit int64
	// Security holds --auth, TLS, JWT and the forwarded-certificate flags.
	Security securityFlags
	// MaxExecutionsPerCaller bounds one caller's running executions on
	// this process; 0 means no limit.
	MaxExecutionsPerCaller int
	// MaxConcurrentExecutions bounds the journalled executions this
	// replica runs at once; StartExecution past it queues the execution
	// in the store's shared backlog.
	MaxConcurrentExecutions int
	// MaxNodeRestarts is how many crashes of the gateway an execution
	// survives (resumed each time) before recovery fails it with
	// RESTART_LIMIT; negative means no limit.
	MaxNodeRestarts int
	// MaxResultBytes bounds the node results of one execution together.
	MaxResultBytes int
	// NodeMemoryBudget is the memory budget of one node attempt in bytes
	// (node.Limits.MaxMemory): 0 means the runtime's default, negative
	// means unlimited.
	NodeMemoryBudget int64
	// ReplicaName names this process in the store (Execution owner,
	// heartbeats); a process restarted under the same name takes its
	// unfinished executions back at once.
	ReplicaName string
	// LeaseTimeout is how long a replica may fail to renew its lease
	// before others take its executions over (it fences itself first).
	LeaseTimeout time.Duration
	// MaxConnectionAge closes client connections once that old (with
	// MaxConnectionAgeGrace for their RPCs), so that load balancers
	// rebalance; 0 = never.
	MaxConnectionAge      time.Duration
	MaxConnectionAgeGrace time.Duration
	// MetricsMaxWorkflows, MetricsMaxNodes and MetricsMaxPools bound the
	// distinct workflow, node and pool label values of the metrics.
	MetricsMaxWorkflows, MetricsMaxNodes, MetricsMaxPools int
	// NoNodeLogs keeps node `logger` lines out of the server log (they are
	// still events).
	NoNodeLogs bool
	// Tracing: the OTEL_* environment configures OpenTelemetry traces
	// (tracingWanted).
	Tracing bool
}

// maxResultBytesLimit is the highest --max-result-bytes: an execution with
// its results must fit in one gRPC message (64 MiB) with room for the rest.
const maxResultBytesLimit = 48 << 20

// parseServeConfig parses the flags of `kgw serve`. Every flag has a KGW_*
// environment equivalent (DESIGN.md §10); a flag on the command line wins
// over the environment, which wins over the default.
func parseServeConfig(args []string, getenv func(string) string, stderr io.Writer) (*serveConfig, error) {
	fs := flag.NewFlagSet("kgw serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg serveConfig
	v := &serveFlagValues{env: environment(getenv)}
	v.declareServer(fs, &cfg)
	v.declareSecurity(fs, &cfg.Security)
	v.declareLimits(fs, &cfg)
	v.declareObservability(fs, &cfg)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kgw serve: unexpected arguments %q\n", fs.Args())
		return nil, errUsage
	}
	v.checkServer(&cfg)
	v.checkLimits(&cfg)
	v.checkStorage(&cfg)
	if len(v.problems) > 0 {
		return nil, fmt.Errorf("invalid configuration: %s", strings.Join(v.problems, "; "))
	}
	return &cfg, nil
}

// serveFlagValues holds the flags of `kgw serve` that are parsed after
// the flag set (durations, sizes, counts) and the problems found so far,
// all reported together.
type serveFlagValues struct {
	env                            environment
	problems                       []string
	level                          string
	shutdownDelay, shutdownTimeout string
	retention, memLimit, memBudget string
	maxRestarts, maxResult         string
	maxPerCaller, recoveryInterval string
	leaseTimeout, connAge          string
	connAgeGrace, maxConcurrent    string
	maxWf, maxNodes, maxPools      string
}

func (v *serveFlagValues) problem(format string, args ...any) {
	v.problems = append(v.problems, fmt.Sprintf(format, args...))
}

// envBool reads the boolean variable name (false when unset), noting a
// value that is not one.
func (v *serveFlagValues) envBool(name string) bool {
	s := v.env(name)
	if s == "" {
		return false
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		v.problem("%s %q: want true or false", name, s)
	}
	return b
}

// declareServer declares the listeners, storage, logging, shutdown and
// retention flags.
func (v *serveFlagValues) declareServer(fs *flag.FlagSet, cfg *serveConfig) {
	env := v.env.or
	fs.StringVar(&cfg.GRPCAddr, "grpc-addr", env("KGW_GRPC_ADDR", "127.0.0.1:50051"), "gRPC listen address (env KGW_GRPC_ADDR); loopback only until authentication is configured")
	fs.StringVar(&cfg.AdminAddr, "admin-addr", env("KGW_ADMIN_ADDR", "127.0.0.1:9464"), "admin HTTP address serving /metrics, /healthz, /readyz (env KGW_ADMIN_ADDR); empty disables it")
	fs.StringVar(&cfg.DataDir, "data-dir", env("KGW_DATA_DIR", "./kgw-data"), "directory for the embedded state: SQLite database and master key file (env KGW_DATA_DIR)")
	fs.StringVar(&cfg.Store, "store", env("KGW_STORE", ""), "store DSN: sqlite://<path> or postgres://… (env KGW_STORE; default sqlite://<data-dir>/kgw.db)")
	fs.StringVar(&cfg.MasterKeyFile, "master-key-file", env("KGW_MASTER_KEY_FILE", ""), "master key file (env KGW_MASTER_KEY_FILE; default <data-dir>/master.key; KGW_MASTER_KEY wins if set)")
	fs.BoolVar(&cfg.DisableInlineResources, "disable-inline-resources", v.envBool("KGW_DISABLE_INLINE_RESOURCES"), "refuse inline resource specs in requests; only named resources ({\"ref\": name}) are usable (env KGW_DISABLE_INLINE_RESOURCES)")
	fs.StringVar(&v.level, "log-level", env("KGW_LOG_LEVEL", "info"), "log level: debug, info, warn, error (env KGW_LOG_LEVEL)")
	fs.StringVar(&cfg.LogFormat, "log-format", env("KGW_LOG_FORMAT", "text"), "log format: text or json (env KGW_LOG_FORMAT)")
	fs.StringVar(&v.shutdownDelay, "shutdown-delay", env("KGW_SHUTDOWN_DELAY", "0s"), "on shutdown, how long to report NOT_SERVING before draining (env KGW_SHUTDOWN_DELAY)")
	fs.StringVar(&v.shutdownTimeout, "shutdown-timeout", env("KGW_SHUTDOWN_TIMEOUT", "30s"), "on shutdown, how long running RPCs may take before connections are closed (env KGW_SHUTDOWN_TIMEOUT)")
	fs.StringVar(&v.retention, "retention", env("KGW_RETENTION", "168h"), "how long finished executions and their events are kept; 0 or negative keeps them forever (env KGW_RETENTION)")
}

// declareSecurity declares the authentication and TLS flags.
func (v *serveFlagValues) declareSecurity(fs *flag.FlagSet, sec *securityFlags) {
	env := v.env.or
	fs.StringVar(&sec.Auth, "auth", env("KGW_AUTH", "none"), "authentication: none (loopback only; every caller is the local admin) or required (env KGW_AUTH)")
	fs.StringVar(&sec.TLSCertFile, "tls-cert-file", env("KGW_TLS_CERT_FILE", ""), "PEM certificate (chain) of the gRPC listener; re-read when it changes (env KGW_TLS_CERT_FILE)")
	fs.StringVar(&sec.TLSKeyFile, "tls-key-file", env("KGW_TLS_KEY_FILE", ""), "PEM private key of the gRPC listener; re-read when it changes (env KGW_TLS_KEY_FILE)")
	fs.StringVar(&sec.TLSClientCAFile, "tls-client-ca-file", env("KGW_TLS_CLIENT_CA_FILE", ""), "PEM CA bundle: require client certificates signed by it (mTLS; env KGW_TLS_CLIENT_CA_FILE)")
	fs.BoolVar(&sec.InsecurePlaintext, "insecure-plaintext", v.envBool("KGW_INSECURE_PLAINTEXT"), "allow a non-loopback listener without TLS, for a gateway behind a mesh sidecar that terminates TLS (env KGW_INSECURE_PLAINTEXT)")
	fs.BoolVar(&sec.TrustForwarded, "trust-forwarded-client-cert", v.envBool("KGW_TRUST_FORWARDED_CLIENT_CERT"), "take the caller from the x-forwarded-client-cert header of a sidecar on a loopback listener (env KGW_TRUST_FORWARDED_CLIENT_CERT)")
	fs.StringVar(&sec.JWKSURL, "jwt-jwks-url", env("KGW_JWT_JWKS_URL", ""), "JWKS URL of the JWT issuer, https (env KGW_JWT_JWKS_URL)")
	fs.StringVar(&sec.JWTKeysFile, "jwt-keys-file", env("KGW_JWT_KEYS_FILE", ""), "JWKS file of the JWT issuer, instead of --jwt-jwks-url (env KGW_JWT_KEYS_FILE)")
	fs.StringVar(&sec.JWTIssuer, "jwt-issuer", env("KGW_JWT_ISSUER", ""), "required iss of JWTs (env KGW_JWT_ISSUER)")
	fs.StringVar(&sec.JWTAudience, "jwt-audience", env("KGW_JWT_AUDIENCE", ""), "required aud of JWTs (env KGW_JWT_AUDIENCE)")
	fs.StringVar(&sec.JWTRolesClaim, "jwt-roles-claim", env("KGW_JWT_ROLES_CLAIM", ""), "JWT claim holding roles, a list or a space-separated string (env KGW_JWT_ROLES_CLAIM)")
}

// declareLimits declares the flags of executions, nodes, recovery and
// the cluster (replica, lease, connection age).
func (v *serveFlagValues) declareLimits(fs *flag.FlagSet, cfg *serveConfig) {
	env := v.env.or
	fs.StringVar(&v.maxPerCaller, "max-executions-per-caller", env("KGW_MAX_EXECUTIONS_PER_CALLER", "0"), "running executions one caller may have on this replica; 0 = unlimited (env KGW_MAX_EXECUTIONS_PER_CALLER)")
	fs.StringVar(&v.maxConcurrent, "max-concurrent-executions", env("KGW_MAX_CONCURRENT_EXECUTIONS", strconv.Itoa(executor.DefaultMaxConcurrentExecutions)), "journalled executions this replica runs at once; StartExecution past it queues the execution in the store's shared backlog, run by the first replica with a free slot (ExecuteWorkflow always runs where it is received, and counts) (env KGW_MAX_CONCURRENT_EXECUTIONS)")
	fs.StringVar(&v.maxRestarts, "max-node-restarts", env("KGW_MAX_NODE_RESTARTS", "3"), "how many times an execution may be interrupted by a crash or kill of the gateway and still be resumed; past that, recovery fails it with RESTART_LIMIT; a graceful shutdown does not count; at least 1; negative = no limit (env KGW_MAX_NODE_RESTARTS)")
	fs.StringVar(&v.maxResult, "max-result-bytes", env("KGW_MAX_RESULT_BYTES", strconv.Itoa(16<<20)), "bytes that the node results of one execution may take together (about their JSON size); a node whose result would pass it fails with RESULT_TOO_LARGE (env KGW_MAX_RESULT_BYTES; at most 48 MiB)")
	fs.StringVar(&v.memLimit, "node-memory-limit", env("KGW_NODE_MEMORY_LIMIT", "0"), "heap size in MiB above which the running node that has built the most is stopped with MEMORY_LIMIT (the backstop of --node-memory-budget); 0 = a quarter of the machine's memory (three quarters of GOMEMLIMIT if set), negative disables (env KGW_NODE_MEMORY_LIMIT)")
	fs.StringVar(&v.memBudget, "node-memory-budget", env("KGW_NODE_MEMORY_BUDGET", "256"), "memory budget in MiB of one node attempt: what its code builds is charged before it is built, and the attempt fails with MEMORY_LIMIT past it; negative means unlimited (env KGW_NODE_MEMORY_BUDGET)")
	fs.StringVar(&v.recoveryInterval, "recovery-interval", env("KGW_RECOVERY_INTERVAL", "15s"), "how often to look for unfinished executions that no live gateway runs, and resume them (env KGW_RECOVERY_INTERVAL)")
	fs.StringVar(&cfg.ReplicaName, "replica-name", env("KGW_REPLICA_NAME", defaultReplicaName()), "name of this replica in the store, unique among live replicas; a replica restarted under the same name takes its unfinished executions back at once (env KGW_REPLICA_NAME; default host name and pid)")
	fs.StringVar(&v.leaseTimeout, "lease-timeout", env("KGW_LEASE_TIMEOUT", "15s"), "how long a replica may fail to renew its lease (renewed every fifth of it) before other replicas take its executions over; it stops them itself first (env KGW_LEASE_TIMEOUT)")
	fs.StringVar(&v.connAge, "max-connection-age", env("KGW_MAX_CONNECTION_AGE", "5m"), "close client connections once they are this old so that clients reconnect and spread over replicas; 0 = never (env KGW_MAX_CONNECTION_AGE)")
	fs.StringVar(&v.connAgeGrace, "max-connection-age-grace", env("KGW_MAX_CONNECTION_AGE_GRACE", "1m"), "how long RPCs of an aged-out connection may still run before it is closed (env KGW_MAX_CONNECTION_AGE_GRACE)")
}

// declareObservability declares the metrics, logging and profiling flags.
func (v *serveFlagValues) declareObservability(fs *flag.FlagSet, cfg *serveConfig) {
	env := v.env.or
	fs.StringVar(&v.maxWf, "metrics-max-workflows", env("KGW_METRICS_MAX_WORKFLOWS", "200"), "distinct workflow label values in metrics; later workflows are counted as \"other\" (env KGW_METRICS_MAX_WORKFLOWS)")
	fs.StringVar(&v.maxNodes, "metrics-max-nodes", env("KGW_METRICS_MAX_NODES", "1000"), "distinct workflow and node label pairs in metrics; later nodes are counted as \"other\" (env KGW_METRICS_MAX_NODES)")
	fs.StringVar(&v.maxPools, "metrics-max-pools", env("KGW_METRICS_MAX_POOLS", "200"), "distinct pool label values in metrics; later pools are counted as \"other\" (env KGW_METRICS_MAX_POOLS)")
	fs.BoolVar(&cfg.NoNodeLogs, "no-node-logs", v.envBool("KGW_NO_NODE_LOGS"), "keep the lines nodes write with `logger` out of the server log; they remain execution events (env KGW_NO_NODE_LOGS)")
	pprofOn := v.envBool("KGW_PPROF")
	fs.BoolVar(&cfg.AccessLog, "access-log", v.envBool("KGW_ACCESS_LOG"), "log every RPC (method, code, duration); failed RPCs are always logged (env KGW_ACCESS_LOG)")
	fs.BoolVar(&cfg.Pprof, "pprof", pprofOn, "serve Go runtime profiles under /debug/pprof/ on the admin address (env KGW_PPROF)")
}

// checkServer checks the logging, master key and duration flags.
func (v *serveFlagValues) checkServer(cfg *serveConfig) {
	if err := cfg.LogLevel.UnmarshalText([]byte(v.level)); err != nil {
		v.problem("log level %q: want debug, info, warn or error", v.level)
	}
	cfg.LogFormat = strings.ToLower(cfg.LogFormat)
	if cfg.LogFormat != "text" && cfg.LogFormat != "json" {
		v.problem("log format %q: want text or json", cfg.LogFormat)
	}
	var err error
	if mk := v.env("KGW_MASTER_KEY"); mk != "" {
		// The error never repeats the key.
		key, err := secrets.ParseMasterKey(mk)
		if err != nil {
			v.problem("KGW_MASTER_KEY: %v", err)
		} else {
			cfg.MasterKey = &key
		}
	}
	if cfg.ShutdownDelay, err = time.ParseDuration(v.shutdownDelay); err != nil || cfg.ShutdownDelay < 0 {
		v.problem("shutdown delay %q: want a duration such as 5s", v.shutdownDelay)
	}
	if cfg.ShutdownTimeout, err = time.ParseDuration(v.shutdownTimeout); err != nil || cfg.ShutdownTimeout <= 0 {
		v.problem("shutdown timeout %q: want a positive duration such as 30s", v.shutdownTimeout)
	}
	if cfg.Retention, err = time.ParseDuration(v.retention); err != nil {
		v.problem("retention %q: want a duration such as 168h", v.retention)
	} else if cfg.Retention == 0 {
		cfg.Retention = -1 // keep forever; the executor reads 0 as its default
	}
	if cfg.RecoveryInterval, err = time.ParseDuration(v.recoveryInterval); err != nil || cfg.RecoveryInterval <= 0 {
		v.problem("recovery interval %q: want a positive duration such as 15s", v.recoveryInterval)
	}
	if cfg.LeaseTimeout, err = time.ParseDuration(v.leaseTimeout); err != nil || cfg.LeaseTimeout < time.Second {
		v.problem("lease timeout %q: want a duration of at least 1s such as 15s", v.leaseTimeout)
	}
	if cfg.MaxConnectionAge, err = time.ParseDuration(v.connAge); err != nil || cfg.MaxConnectionAge < 0 {
		v.problem("max connection age %q: want a duration such as 5m (0 = never)", v.connAge)
	}
	if cfg.MaxConnectionAgeGrace, err = time.ParseDuration(v.connAgeGrace); err != nil || cfg.MaxConnectionAgeGrace < 0 {
		v.problem("max connection age grace %q: want a duration such as 1m", v.connAgeGrace)
	}
	if strings.TrimSpace(cfg.ReplicaName) == "" || len(cfg.ReplicaName) > 200 {
		v.problem("replica name %q: want a non-empty name of at most 200 bytes", cfg.ReplicaName)
	}
}

// checkLimits checks the size and count flags and the security settings.
func (v *serveFlagValues) checkLimits(cfg *serveConfig) {
	sec := &cfg.Security
	if mib, err := strconv.ParseInt(v.memLimit, 10, 64); err != nil {
		v.problem("node memory limit %q: want a whole number of MiB", v.memLimit)
	} else {
		cfg.NodeMemoryLimit = mib << 20
	}
	if n, err := strconv.Atoi(v.maxPerCaller); err != nil || n < 0 {
		v.problem("max executions per caller %q: want 0 (unlimited) or a positive number", v.maxPerCaller)
	} else {
		cfg.MaxExecutionsPerCaller = n
	}
	if n, err := strconv.Atoi(v.maxConcurrent); err != nil || n < 1 {
		v.problem("max concurrent executions %q: want a positive number", v.maxConcurrent)
	} else {
		cfg.MaxConcurrentExecutions = n
	}
	sec.GRPCAddr = cfg.GRPCAddr
	if err := checkSecurity(*sec); err != nil {
		v.problems = append(v.problems, err.Error())
	}
	if n, err := strconv.Atoi(v.maxRestarts); err != nil || n == 0 {
		v.problem("max node restarts %q: want a whole number, 1 or more (negative = no limit)", v.maxRestarts)
	} else {
		cfg.MaxNodeRestarts = n
	}
	if n, err := strconv.Atoi(v.maxResult); err != nil || n < 1 || n > maxResultBytesLimit {
		v.problem("max result bytes %q: want a number of bytes from 1 to %d", v.maxResult, maxResultBytesLimit)
	} else {
		cfg.MaxResultBytes = n
	}
	if mib, err := strconv.ParseInt(v.memBudget, 10, 64); err != nil || mib == 0 || mib > 1<<40 {
		v.problem("node memory budget %q: want a whole number of MiB, at least 1 (negative for unlimited)", v.memBudget)
	} else {
		cfg.NodeMemoryBudget = mib << 20
		if mib < 0 {
			cfg.NodeMemoryBudget = -1
		}
	}
	for _, m := range []struct {
		name, v string
		dst     *int
	}{{"metrics max workflows", v.maxWf, &cfg.MetricsMaxWorkflows}, {"metrics max nodes", v.maxNodes, &cfg.MetricsMaxNodes}, {"metrics max pools", v.maxPools, &cfg.MetricsMaxPools}} {
		if n, err := strconv.Atoi(m.v); err != nil || n < 1 || n > 1_000_000 {
			v.problem("%s %q: want a whole number from 1 to 1000000", m.name, m.v)
		} else {
			*m.dst = n
		}
	}
}

// checkStorage checks the data directory and store and fills in their
// defaults.
func (v *serveFlagValues) checkStorage(cfg *serveConfig) {
	cfg.Tracing = tracingWanted(v.env)
	if cfg.DataDir == "" {
		v.problem("data dir is empty")
	}
	if cfg.Store == "" {
		cfg.Store = "sqlite://" + filepath.Join(cfg.DataDir, "kgw.db")
	}
	if _, _, err := storeKind(cfg.Store); err != nil {
		v.problems = append(v.problems, err.Error())
	}
	if cfg.MasterKeyFile == "" {
		cfg.MasterKeyFile = filepath.Join(cfg.DataDir, "master.key")
	}
}

// storeKind splits a store DSN into its backend ("sqlite" or "postgres") and
// what that backend opens (a file path or the DSN itself). Errors never echo
// a postgres DSN, which may hold a password.
func storeKind(dsn string) (kind, target string, err error) {
	switch {
	case strings.HasPrefix(dsn, "sqlite://"):
		path := strings.TrimPrefix(dsn, "sqlite://")
		if path == "" {
			return "", "", errors.New("store: sqlite:// needs a file path, e.g. sqlite://./kgw-data/kgw.db")
		}
		return "sqlite", path, nil
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return "postgres", dsn, nil
	default:
		scheme, _, _ := strings.Cut(dsn, ":")
		if len(scheme) > 20 {
			scheme = scheme[:20]
		}
		return "", "", fmt.Errorf("store: unsupported scheme %q: want sqlite://<path> or postgres://…", scheme)
	}
}

// newLogger returns the process logger described by cfg, writing to w.
func newLogger(cfg *serveConfig, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// defaultReplicaName is the host name and process id.
func defaultReplicaName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "kgw"
	}
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}
