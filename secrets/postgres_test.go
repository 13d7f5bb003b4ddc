package secrets_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/kailash-gateway/kgw/internal/testenv"
	"github.com/kailash-gateway/kgw/store"
	"github.com/kailash-gateway/kgw/store/postgres"
)

// postgresDSNs maps each store opened by postgresBackend to its database.
var postgresDSNs sync.Map

// postgresBackend gives each store a fresh database on the shared test
// server; its raw bytes are every row of every table, as text, plus the raw
// contents of every bytea column.
var postgresBackend = backend{
	name: "postgres",
	open: func(t *testing.T) store.Store {
		t.Helper()
		dsn := testenv.Postgres(t).NewDatabase(t)
		st, err := postgres.Open(t.Context(), dsn)
		if err != nil {
			t.Fatalf("postgres.Open() error = %v", err)
		}
		t.Cleanup(func() {
			if err := st.Close(); err != nil {
				t.Errorf("Close() error = %v", err)
			}
		})
		postgresDSNs.Store(st, dsn)
		return st
	},
	raw: func(t *testing.T, st store.Store) []byte {
		t.Helper()
		dsn, ok := postgresDSNs.Load(st)
		if !ok {
			t.Fatal("store not opened by postgresBackend")
		}
		ctx := t.Context()
		conn, err := pgx.Connect(ctx, dsn.(string))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.WithoutCancel(ctx))
		var all []byte
		tables, err := queryStrings(ctx, conn, `SELECT quote_ident(table_name) FROM information_schema.tables
			WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`)
		if err != nil {
			t.Fatal(err)
		}
		for _, tbl := range tables {
			rows, err := queryStrings(ctx, conn, `SELECT row_to_json(t)::text FROM `+tbl+` t`)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("raw scan: table %s (%d rows)", tbl, len(rows))
			for _, r := range rows {
				all = append(all, r...)
			}
		}
		cols, err := conn.Query(ctx, `SELECT quote_ident(table_name), quote_ident(column_name) FROM information_schema.columns
			WHERE table_schema = current_schema() AND data_type = 'bytea'`)
		if err != nil {
			t.Fatal(err)
		}
		type col struct{ Table, Name string }
		byteaCols, err := pgx.CollectRows(cols, pgx.RowToStructByPos[col])
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range byteaCols {
			rows, err := conn.Query(ctx, `SELECT `+c.Name+` FROM `+c.Table)
			if err != nil {
				t.Fatal(err)
			}
			blobs, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("raw scan: bytea column %s.%s (%d values)", c.Table, c.Name, len(blobs))
			for _, b := range blobs {
				all = append(all, b...)
			}
		}
		return all
	},
}

func queryStrings(ctx context.Context, conn *pgx.Conn, sql string) ([]string, error) {
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func TestPostgres(t *testing.T) { runManagerTests(t, postgresBackend) }
