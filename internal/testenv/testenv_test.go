package testenv_test

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/rueidis"

	"github.com/kailash-gateway/kgw/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func connectPG(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("pgx.Connect(%q): %v", dsn, err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func TestPostgresDatabasesAreIsolated(t *testing.T) {
	pg := testenv.Postgres(t)
	if pg2 := testenv.Postgres(t); pg2 != pg {
		t.Fatalf("Postgres returned %p then %p, want one shared server", pg, pg2)
	}
	a := connectPG(t, pg.NewDatabase(t))
	b := connectPG(t, pg.NewDatabase(t))

	if _, err := a.Exec(t.Context(), "CREATE TABLE only_in_a (x int)"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	var n int
	if err := b.QueryRow(t.Context(), "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'").Scan(&n); err != nil {
		t.Fatalf("query b: %v", err)
	}
	if n != 0 {
		t.Errorf("table of database a visible in database b (%d rows)", n)
	}
	var super bool
	if err := a.QueryRow(t.Context(), "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super); err != nil {
		t.Fatalf("query role: %v", err)
	}
	if !super {
		t.Errorf("NewDatabase DSN does not connect as a superuser")
	}
}

func TestPostgresStopStartRestart(t *testing.T) {
	pg := testenv.NewPostgres(t)
	dsn := pg.NewDatabase(t)
	func() {
		conn := connectPG(t, dsn)
		if _, err := conn.Exec(t.Context(), "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)"); err != nil {
			t.Fatalf("write: %v", err)
		}
	}()

	if err := pg.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := pgx.Connect(ctx, dsn)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("Connect while stopped: err = %v, want connection refused", err)
	}

	if err := pg.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	var x int
	if err := connectPG(t, dsn).QueryRow(t.Context(), "SELECT x FROM kept").Scan(&x); err != nil || x != 42 {
		t.Fatalf("after Start: x = %d, err = %v; want 42, nil", x, err)
	}

	// A crash (immediate shutdown) keeps committed data too.
	if err := pg.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if err := pg.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if err := connectPG(t, dsn).QueryRow(t.Context(), "SELECT x FROM kept").Scan(&x); err != nil || x != 42 {
		t.Fatalf("after Kill+Restart: x = %d, err = %v; want 42, nil", x, err)
	}
}

func TestRedisPingAndRueidis(t *testing.T) {
	r := testenv.Redis(t)
	if err := r.Ping(); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	client, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{r.Addr}, DisableCache: true})
	if err != nil {
		t.Fatalf("rueidis.NewClient: %v", err)
	}
	defer client.Close()

	p1, p2 := r.KeyPrefix(t), r.KeyPrefix(t)
	if p1 == p2 {
		t.Fatalf("KeyPrefix returned %q twice", p1)
	}
	ctx := t.Context()
	if err := client.Do(ctx, client.B().Set().Key(p1+"k").Value("v").Build()).Error(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	got, err := client.Do(ctx, client.B().Get().Key(p1+"k").Build()).ToString()
	if err != nil || got != "v" {
		t.Fatalf("GET = %q, %v; want \"v\", nil", got, err)
	}
	if err := client.Do(ctx, client.B().Get().Key(p2+"k").Build()).Error(); !rueidis.IsRedisNil(err) {
		t.Fatalf("GET under other prefix: err = %v, want nil reply", err)
	}
}

func TestRedisStopStartRestart(t *testing.T) {
	r := testenv.NewRedis(t)
	if err := r.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := r.Ping(); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("Ping while stopped: err = %v, want connection refused", err)
	}
	if err := r.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := r.Ping(); err != nil {
		t.Fatalf("Ping after Start: %v", err)
	}
	if err := r.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if err := r.Ping(); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("Ping after Kill: err = %v, want connection refused", err)
	}
	if err := r.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if err := r.Ping(); err != nil {
		t.Fatalf("Ping after Restart: %v", err)
	}
}

func TestExternalServersRefuseFaultInjection(t *testing.T) {
	pg := testenv.Postgres(t)
	ext, err := testenv.ExternalPostgres(pg.DSN)
	if err != nil {
		t.Fatalf("ExternalPostgres: %v", err)
	}
	if err := ext.Stop(); !errors.Is(err, testenv.ErrExternal) {
		t.Errorf("external Stop: err = %v, want ErrExternal", err)
	}
	dsn := ext.NewDatabase(t)
	connectPG(t, dsn)

	r := testenv.Redis(t)
	extR, err := testenv.ExternalRedis(r.Addr)
	if err != nil {
		t.Fatalf("ExternalRedis: %v", err)
	}
	if err := extR.Restart(); !errors.Is(err, testenv.ErrExternal) {
		t.Errorf("external Restart: err = %v, want ErrExternal", err)
	}
}
