package main

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/kailash-gateway/kgw/access"
	"github.com/kailash-gateway/kgw/executor"
	"github.com/kailash-gateway/kgw/executor/node"
	"github.com/kailash-gateway/kgw/resources"
	"github.com/kailash-gateway/kgw/resources/netguard"
	"github.com/kailash-gateway/kgw/secrets"
	"github.com/kailash-gateway/kgw/server"
	"github.com/kailash-gateway/kgw/store"
	"github.com/kailash-gateway/kgw/store/postgres"
	"github.com/kailash-gateway/kgw/store/sqlite"
)

func runServe(ctx context.Context, c *cli, args []string) error {
	cfg, err := parseServeConfig(args, c.getenv, c.stderr)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, newLogger(cfg, c.stderr))
}

// serve builds the gateway's components in dependency order (store, master
// key, secrets manager, resource broker, executor, gRPC server), serves until
// ctx is done, then shuts down in the order of STYLE.md §4: report
// NOT_SERVING, drain gRPC (falling back to a hard stop after the shutdown
// timeout), stop the admin server, stop the executor, close the pools, close
// the store.
func serve(ctx context.Context, cfg *serveConfig, log *slog.Logger) (err error) {
	// Fail closed (DESIGN.md §9): parseServeConfig applied these rules
	// already; a cfg built otherwise gets them here.
	sec := cfg.Security
	if sec.Auth == "" {
		sec.Auth = "none"
	}
	sec.GRPCAddr = cfg.GRPCAddr
	if err := checkSecurity(sec); err != nil {
		return err
	}
	if cfg.Tracing {
		shutdown, err := setupTracing(ctx, os.Getenv)
		if err != nil {
			return err
		}
		defer flushTracing(shutdown, log)
	}

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	st, kind, err := openStore(ctx, cfg.Store)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := st.Close(); cerr != nil {
			log.Error("close store", "err", cerr)
		}
		if err == nil {
			log.Info("kgw stopped")
		}
	}()
	gw := &gateway{cfg: cfg, sec: sec, log: log, st: st, kind: kind}
	if err := gw.openSecrets(ctx); err != nil {
		return err
	}
	// Listen before anything can dial (the broker's pools, resumed
	// executions): the guard must know the gateway's own addresses, and a
	// port given as 0 is only known once bound. Connections wait in the
	// backlog until Serve; Serve and Shutdown close the listeners, and so
	// do these defers on an earlier return (closing twice is harmless).
	if err := gw.listen(ctx); err != nil {
		return err
	}
	defer gw.closeListeners()
	guard, err := selfGuard(gw.grpcLis, gw.adminLis)
	if err != nil {
		return err
	}
	if err := gw.newTelemetry(); err != nil {
		return err
	}
	gw.newBroker(guard)
	// Deferred calls run in reverse: the executor stops (its runs give
	// their connections back) before the broker closes the pools, and both
	// before the store closes.
	defer gw.broker.Close()
	// The heap watchdog outlives the executor: it closes after the
	// executor (deferred below, so run earlier) has waited for every attempt.
	nodeLimit := cfg.NodeMemoryLimit
	if nodeLimit == 0 { // resolved before tuneGC sets a Go memory limit
		nodeLimit = node.DefaultMemoryLimit()
	}
	tuneGC(log)
	watchdog := node.NewWatchdog(node.MemoryConfig{Limit: nodeLimit})
	defer watchdog.Close()
	gw.newExecutor(watchdog)
	defer gw.closeExecutor()
	// Resume the executions a crashed or stopped gateway left unfinished
	// (and start the recovery and retention loop that Close stops).
	if err := gw.resumeUnfinished(ctx); err != nil {
		return err
	}
	if err := gw.newServer(); err != nil {
		return err
	}
	return gw.run(ctx)
}

// gateway is what serve builds, step by step; serve's defers close it in
// reverse.
type gateway struct {
	cfg  *serveConfig
	sec  securityFlags // cfg.Security with its defaults
	log  *slog.Logger
	st   store.Store
	kind string // "sqlite" or "postgres"

	key       secrets.MasterKey
	mgr       *secrets.Manager
	authn     *access.Authenticator
	tlsConfig *tls.Config

	grpcLis, adminLis net.Listener

	reg    *prometheus.Registry
	tel    *server.Telemetry
	broker *resources.Broker
	exec   *executor.Executor
	srv    *server.Server
}

// flushTracing sends the trace spans still buffered, waiting at most 5s.
func flushTracing(shutdown func(context.Context) error, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		log.Warn("flushing trace spans failed", "err", err)
	}
}

// openSecrets loads the master key and opens the secrets, the
// authenticator and the TLS files.
func (gw *gateway) openSecrets(ctx context.Context) error {
	cfg, sec := gw.cfg, gw.sec
	key, err := loadMasterKey(cfg, gw.log)
	if err != nil {
		return err
	}
	gw.key = key
	gw.mgr, err = secrets.NewManager(ctx, gw.st, key, secrets.Options{})
	if err != nil {
		if errors.Is(err, secrets.ErrWrongMasterKey) {
			return fmt.Errorf("%w: the store's secrets were encrypted under another master key; start with the key they were stored with (KGW_MASTER_KEY or --master-key-file %s)", err, cfg.MasterKeyFile)
		}
		return fmt.Errorf("open secrets: %w", err)
	}
	if gw.authn, err = newAuthenticator(ctx, gw.mgr, gw.st, sec); err != nil {
		return err
	}
	if sec.TLSCertFile != "" {
		if _, gw.tlsConfig, err = access.NewTLSFiles(sec.TLSCertFile, sec.TLSKeyFile, sec.TLSClientCAFile); err != nil {
			return err
		}
	}
	return nil
}

// listen binds the gRPC listener and, unless disabled, the admin one.
func (gw *gateway) listen(ctx context.Context) error {
	var lc net.ListenConfig
	var err error
	if gw.grpcLis, err = lc.Listen(ctx, "tcp", gw.cfg.GRPCAddr); err != nil {
		return fmt.Errorf("listen for gRPC: %w", err)
	}
	if gw.cfg.AdminAddr != "" {
		if gw.adminLis, err = lc.Listen(ctx, "tcp", gw.cfg.AdminAddr); err != nil {
			gw.grpcLis.Close()
			return fmt.Errorf("listen for admin HTTP: %w", err)
		}
	}
	return nil
}

func (gw *gateway) closeListeners() {
	gw.grpcLis.Close()
	if gw.adminLis != nil {
		gw.adminLis.Close()
	}
}

// newTelemetry creates the metrics registry (with the Go runtime's and
// the process's collectors) and the gateway's telemetry.
func (gw *gateway) newTelemetry() error {
	gw.reg = prometheus.NewRegistry()
	gw.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var err error
	gw.tel, err = server.NewTelemetry(server.TelemetryConfig{
		Registry:     gw.reg,
		MaxWorkflows: gw.cfg.MetricsMaxWorkflows,
		MaxNodes:     gw.cfg.MetricsMaxNodes,
		MaxPools:     gw.cfg.MetricsMaxPools,
	})
	return err
}

// newBroker creates the resource broker, whose pools dial through guard.
func (gw *gateway) newBroker(guard netguard.Policy) {
	gw.broker = resources.NewBroker(resources.Config{
		Observer:      gw.tel,
		Resources:     gw.st,
		Secrets:       gw.mgr,
		DisableInline: gw.cfg.DisableInlineResources,
		Guard:         guard,
		Logger:        gw.log,
	})
	gw.tel.WatchPools(gw.broker)
}

// resumeUnfinished resumes the executions a crashed or stopped gateway left
// unfinished and starts the executor's recovery and retention loop.
func (gw *gateway) resumeUnfinished(ctx context.Context) error {
	resumed, err := gw.exec.Recover(ctx)
	if err != nil {
		return fmt.Errorf("recover executions: %w", err)
	}
	if resumed > 0 {
		gw.log.Info("resumed unfinished executions", "count", resumed)
	}
	return nil
}

// newExecutor creates the executor over the store and the broker.
func (gw *gateway) newExecutor(watchdog *node.Watchdog) {
	cfg, st, log, kind, tel, broker := gw.cfg, gw.st, gw.log, gw.kind, gw.tel, gw.broker
	var authorizeResume func(context.Context, string, map[string]store.ResourceSpec) error
	if gw.sec.Auth == "required" {
		authorizeResume = server.AuthorizeResume(st, gw.authn, log)
	}
	gw.exec = executor.New(executor.Config{
		Limits:      node.Limits{MaxMemory: cfg.NodeMemoryBudget},
		Watchdog:    watchdog,
		Store:       st,
		Resources:   server.ExecutorResources(broker),
		NewRedactor: server.NewRedactor,
		Logger:      log,
		Observer:    tel,
		NoNodeLogs:  cfg.NoNodeLogs,
		// An SQLite file has one gateway process, so whatever the previous
		// process left running is resumed at once; replicas sharing a
		// PostgreSQL store wait until the owner's heartbeat is stale.
		RecoverAllOnStart:       kind == "sqlite",
		Retention:               cfg.Retention,
		MaxRunsPerCaller:        cfg.MaxExecutionsPerCaller,
		MaxConcurrentExecutions: cfg.MaxConcurrentExecutions,
		AuthorizeResume:         authorizeResume,
		MaxNodeRestarts:         cfg.MaxNodeRestarts,
		MaxResultBytes:          cfg.MaxResultBytes,
		RecoveryInterval:        cfg.RecoveryInterval,
		Owner:                   cfg.ReplicaName,
		StaleAfter:              cfg.LeaseTimeout,
		HeartbeatInterval:       cfg.LeaseTimeout / 5,
	})
	exec := gw.exec
	gw.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kgw_housekeeping_leader",
		Help: "1 while this replica runs the lease scan and retention for every replica (elected by a lease row on PostgreSQL; always 1 on SQLite).",
	}, func() float64 {
		if exec.Leader() {
			return 1
		}
		return 0
	}))
}

// closeExecutor stops the executor, interrupting the executions still
// running after the shutdown timeout.
func (gw *gateway) closeExecutor() {
	ctx, cancel := context.WithTimeout(context.Background(), gw.cfg.ShutdownTimeout)
	defer cancel()
	if err := gw.exec.Close(ctx); err != nil {
		gw.log.Warn("executor shutdown timeout: interrupted running executions", "timeout", gw.cfg.ShutdownTimeout, "err", err)
	}
}

// newServer creates the gRPC server.
func (gw *gateway) newServer() error {
	cfg, st, log, sec, tel, broker := gw.cfg, gw.st, gw.log, gw.sec, gw.tel, gw.broker
	exec, mgr, key, reg, authn, tlsConfig := gw.exec, gw.mgr, gw.key, gw.reg, gw.authn, gw.tlsConfig
	required := sec.Auth == "required"
	srv, err := server.New(server.Config{
		Store:                    st,
		Executor:                 exec,
		Secrets:                  mgr,
		Broker:                   broker,
		DisableInlineResources:   cfg.DisableInlineResources,
		Logger:                   log,
		AccessLog:                cfg.AccessLog,
		Compile:                  server.CompileNode,
		PageTokenKey:             pageTokenKey(key),
		Metrics:                  reg,
		AuthRequired:             required,
		Access:                   authn,
		TrustForwardedClientCert: sec.TrustForwarded,
		TLS:                      tlsConfig,
		MaxConnectionAge:         cfg.MaxConnectionAge,
		MaxConnectionAgeGrace:    cfg.MaxConnectionAgeGrace,
		Telemetry:                tel,
		Tracing:                  cfg.Tracing,
	})
	gw.srv = srv
	return err
}

// run serves gRPC and admin HTTP until ctx ends or one of them fails, then
// drains and stops them within the shutdown delay and timeout.
func (gw *gateway) run(ctx context.Context) error {
	cfg, log, sec, srv, exec, reg := gw.cfg, gw.log, gw.sec, gw.srv, gw.exec, gw.reg
	grpcLis, adminLis, tlsConfig, authn, kind := gw.grpcLis, gw.adminLis, gw.tlsConfig, gw.authn, gw.kind
	var ready atomic.Bool
	var admin *http.Server
	if adminLis != nil {
		admin = &http.Server{Handler: adminHandler(reg, func() bool { return ready.Load() && exec.Ready() }, cfg.Pprof), ReadHeaderTimeout: 10 * time.Second}
		if adminExposed(cfg.AdminAddr) {
			log.Warn("the admin address is not loopback: /metrics, /healthz and /readyz are served without authentication to every host that can reach it; bind it to 127.0.0.1 or protect it with a firewall",
				"admin_addr", adminLis.Addr().String())
		}
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(grpcLis) })
	if admin != nil {
		g.Go(func() error {
			if err := admin.Serve(adminLis); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve admin HTTP: %w", err)
			}
			return nil
		})
	}

	ready.Store(true)
	attrs := []any{"grpc_addr", grpcLis.Addr().String(), "store", kind, "version", buildVersion(),
		"inline_resources", !cfg.DisableInlineResources, "auth", sec.Auth, "tls", tlsConfig != nil,
		"mtls", sec.TLSClientCAFile != "", "jwt", authn.JWT != nil}
	if adminLis != nil {
		attrs = append(attrs, "admin_addr", adminLis.Addr().String())
	}
	log.Info("kgw ready", attrs...)

	<-gctx.Done()
	ready.Store(false)
	log.Info("kgw shutting down", "cause", context.Cause(gctx).Error())
	srv.Drain()
	if cfg.ShutdownDelay > 0 {
		time.Sleep(cfg.ShutdownDelay)
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if !srv.Stop(stopCtx) {
		log.Warn("shutdown timeout: closed connections with RPCs still running", "timeout", cfg.ShutdownTimeout)
	}
	if admin != nil {
		if err := admin.Shutdown(stopCtx); err != nil {
			admin.Close()
		}
	}
	return g.Wait()
}

// newAuthenticator builds the API keys (hashed under the gateway's own key,
// kept like a secret), role bindings and, when configured, the JWT
// verifier. Keys and bindings exist under --auth none too, so keys can be
// made before a gateway switches to --auth required.
func newAuthenticator(ctx context.Context, mgr *secrets.Manager, st store.Store, sec securityFlags) (*access.Authenticator, error) {
	mac, err := mgr.SystemKey(ctx, apiKeyHMACPurpose)
	if err != nil {
		return nil, fmt.Errorf("API key hashing key: %w", err)
	}
	a := &access.Authenticator{Keys: access.NewKeys(st, mac, nil), Bindings: access.NewBindings(st, nil)}
	if sec.JWKSURL != "" || sec.JWTKeysFile != "" {
		a.JWT, err = access.NewJWTVerifier(ctx, access.JWTConfig{
			JWKSURL: sec.JWKSURL, KeysFile: sec.JWTKeysFile, Issuer: sec.JWTIssuer, Audience: sec.JWTAudience, RolesClaim: sec.JWTRolesClaim,
		})
		if err != nil {
			return nil, err
		}
	}
	return a, nil
}

// apiKeyHMACPurpose names the gateway key that hashes API keys.
const apiKeyHMACPurpose = "api-key-hmac"

// openStore opens the backend named by dsn and returns it with its kind.
func openStore(ctx context.Context, dsn string) (store.Store, string, error) {
	kind, target, err := storeKind(dsn)
	if err != nil {
		return nil, "", err
	}
	switch kind {
	case "sqlite":
		s, err := sqlite.Open(ctx, target)
		if err != nil {
			return nil, "", fmt.Errorf("open sqlite store %s: %w", target, err)
		}
		return s, kind, nil
	default:
		s, err := postgres.Open(ctx, target)
		if err != nil {
			// The DSN is not echoed: it may hold a password.
			return nil, "", fmt.Errorf("open postgres store: %w", err)
		}
		return s, kind, nil
	}
}

// selfGuard returns the address guard of the resource pools: link-local and
// metadata addresses refused, and the gateway's own listeners (in every form
// through which they can be reached) too, so that node code cannot call the
// gateway's API or admin endpoints from inside it.
func selfGuard(listeners ...net.Listener) (netguard.Policy, error) {
	var p netguard.Policy
	for _, l := range listeners {
		if l == nil {
			continue
		}
		targets, err := netguard.SelfTargets(l.Addr().String())
		if err != nil {
			return netguard.Policy{}, fmt.Errorf("guard the gateway's own address: %w", err)
		}
		p.Self = append(p.Self, targets...)
	}
	return p, nil
}

// adminHandler serves /healthz (the process is alive), /readyz (it accepts
// RPCs; 503 before ready, while shutting down and while the replica cannot
// renew its lease) and /metrics; with
// profiles, also the Go runtime profiles under /debug/pprof/.
func adminHandler(reg *prometheus.Registry, ready func() bool, profiles bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	if profiles {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// loadMasterKey returns KGW_MASTER_KEY when set, else the key in the key
// file, creating the file (mode 0600) with a new random key on first start
// and logging one line that it did. The key itself is never logged.
func loadMasterKey(cfg *serveConfig, log *slog.Logger) (secrets.MasterKey, error) {
	if cfg.MasterKey != nil {
		log.Info("using the master key from KGW_MASTER_KEY")
		return *cfg.MasterKey, nil
	}
	key, created, err := secrets.LoadOrCreateKeyFile(cfg.MasterKeyFile)
	if err != nil {
		return secrets.MasterKey{}, fmt.Errorf("master key: %w", err)
	}
	if created {
		log.Info("created a new master key file; back it up: secrets stored by this gateway cannot be decrypted without it",
			"path", cfg.MasterKeyFile)
	}
	return key, nil
}

// pageTokenLabel is the HKDF info that derives the page-token signing key
// from the master key. Changing it invalidates every outstanding token.
const pageTokenLabel = "kgw page-token signing key v1"

// pageTokenKey derives the page-token signing key from the master key, so
// tokens survive restarts and every replica sharing the key accepts them,
// while the master key itself never signs anything.
func pageTokenKey(key secrets.MasterKey) []byte {
	k, err := hkdf.Key(sha256.New, key[:], nil, pageTokenLabel, 32)
	if err != nil {
		panic(fmt.Sprintf("derive page token key: %v", err)) // only for lengths HKDF-SHA256 cannot produce
	}
	return k
}

// gatewayGOGC is the collector's target that tuneGC sets. A gateway's live
// heap is small and every execution leaves a few KB of garbage, so at the
// default (100) the collector runs every few hundred executions and its
// workers take CPU from the calls. make bench-external, GOGC=400 against
// the default, in turns in one run on the 2-core machine: no-op throughput
// at 64 callers 1.12× (1.37–1.40× in two earlier paired runs), p99 at one
// caller 1.65 → 1.31 ms (no-op) and 2.12 → 1.63 ms (three-node chain);
// peak RSS about 78 MB instead of 59 MB under that load. GOGC=800 against
// 400 (tools/loadgen at 64 callers, six runs in turns, issue 20's fourth
// round): gateway CPU per no-op call 0.90x (median; 0.78-1.02), no-op
// throughput 1.27x (median; 0.80-2.27 on a busy host), peak RSS 77 ->
// 108 MB.
const gatewayGOGC = 800

// tuneGC sets Go's collector for a gateway unless the operator chose:
// with GOGC unset it raises the target to gatewayGOGC, but only under a
// memory limit, so that the extra garbage cannot outgrow the machine:
// GOMEMLIMIT when set, else three quarters of the memory available to the
// process (cgroup limit or total memory), which kgw then sets itself. When
// neither GOGC nor the memory is known it leaves the defaults. The node
// memory watchdog's default limit is resolved before (serve), so the
// memory limit set here does not loosen it.
func tuneGC(log *slog.Logger) {
	if os.Getenv("GOGC") != "" {
		return
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		avail := node.AvailableMemory()
		if avail <= 0 {
			return
		}
		debug.SetMemoryLimit(avail / 4 * 3)
	}
	debug.SetGCPercent(gatewayGOGC)
	log.Debug("garbage collector tuned", "gogc", gatewayGOGC, "memory_limit_bytes", debug.SetMemoryLimit(-1))
}
