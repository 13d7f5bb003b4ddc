package resources_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/kailash-gateway/kgw/internal/testenv"
	"github.com/kailash-gateway/kgw/resources"
	"github.com/kailash-gateway/kgw/store"
)

// TestDatabaseTypes sends each value as a bound parameter cast to a
// PostgreSQL type and checks what comes back, then reads literals of each
// type.
func TestDatabaseTypes(t *testing.T) {
	dsn := testenv.Postgres(t).NewDatabase(t)
	b := resources.NewBroker(resources.Config{Logger: quiet})
	defer b.Close()
	specs := map[string]store.ResourceSpec{"db": dbSpec(t, dsn, nil)}

	roundTrip := []struct {
		pgType string
		in     string // Starlark expression bound as $1
		want   string // Starlark expression for the result
	}{
		{"int2", "7", "7"},
		{"int4", "-2147483648", "-2147483648"},
		{"int8", "9007199254740993", "9007199254740993"},
		{"float4", "1.5", "1.5"},
		{"float8", "3.25", "3.25"},
		{"numeric", "12.5", "12.5"},
		{"numeric", "123456789012345678901234567890", "1.2345678901234568e+29"},
		{"text", `"héllo ☃"`, `"héllo ☃"`},
		{"varchar", `"v"`, `"v"`},
		{"bool", "True", "True"},
		{"int8", "None", "None"},
		{"text", "None", "None"},
		{"json", `{"a": 1, "b": [1.5, "x", None, True]}`, `{"a": 1, "b": [1.5, "x", None, True]}`},
		{"jsonb", `{"n": {"deep": [1, 2]}}`, `{"n": {"deep": [1, 2]}}`},
		{"jsonb", `[1, "two"]`, `[1, "two"]`},
		{"int8[]", "[1, 2, 3]", "[1, 2, 3]"},
		{"int4[]", "[]", "[]"},
		{"text[]", `["a", "b"]`, `["a", "b"]`},
		{"float8[]", "[1, 2.5]", "[1.0, 2.5]"},
		{"bool[]", "[True, False]", "[True, False]"},
		{"timestamptz", "time.time(year=2024, month=3, day=5, hour=13, minute=14, second=15, location='UTC')",
			"time.time(year=2024, month=3, day=5, hour=13, minute=14, second=15, location='UTC')"},
		{"timestamp", "time.time(year=2024, month=3, day=5, hour=1, location='UTC')",
			"time.time(year=2024, month=3, day=5, hour=1, location='UTC')"},
		{"date", "time.time(year=2024, month=2, day=29, location='UTC')", "time.time(year=2024, month=2, day=29, location='UTC')"},
		{"interval", "time.parse_duration('1h30m')", "time.parse_duration('1h30m')"},
		{"uuid", `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`, `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`},
		{"bytea", `b"\x00\x01binary"`, `b"\x00\x01binary"`},
	}
	var code strings.Builder
	code.WriteString("db = get_resource(\"db\")\n")
	for i, tc := range roundTrip {
		fmt.Fprintf(&code, "rt%d = db.fetchval(\"SELECT $1::%s\", %s)\n", i, tc.pgType, tc.in)
	}
	literals := []struct{ sql, want string }{
		{"SELECT 42::int2", "42"},
		{"SELECT 1.5::numeric(10,2)", "1.5"},
		{"SELECT 'x'::char(3)", `"x  "`},
		{"SELECT NULL", "None"},
		{`SELECT '{"k": [1, 2.0, "s"]}'::jsonb`, `{"k": [1, 2.0, "s"]}`},
		{"SELECT ARRAY['a', NULL]::text[]", `["a", None]`},
		{"SELECT '2024-01-02'::date", "time.time(year=2024, month=1, day=2, location='UTC')"},
		{"SELECT '2024-01-02 03:04:05+00'::timestamptz", "time.time(year=2024, month=1, day=2, hour=3, minute=4, second=5, location='UTC')"},
		{"SELECT '00000000-0000-0000-0000-000000000001'::uuid", `"00000000-0000-0000-0000-000000000001"`},
		{`SELECT '\xdeadbeef'::bytea`, `b"\xde\xad\xbe\xef"`},
		{"SELECT '12:34:56'::time", `"12:34:56"`},
		{"SELECT '10.0.0.1'::inet", `"10.0.0.1"`},
		{"SELECT 1::oid", "1"},
	}
	for i, tc := range literals {
		fmt.Fprintf(&code, "lit%d = db.fetchval(%q)\n", i, tc.sql)
	}
	code.WriteString(`
db.execute("CREATE TABLE t (id int8, tags text[])")
db.execute("INSERT INTO t VALUES (1, '{a}'), (2, '{b}'), (3, '{c}')")
any_ids = [r["id"] for r in db.fetch("SELECT id FROM t WHERE id = ANY($1) ORDER BY id", [1, 3])]
any_tags = db.fetchval("SELECT count(*) FROM t WHERE tags && $1", ["b", "c"])
`)
	g := mustExec(t, b, specs, code.String())
	for i, tc := range roundTrip {
		t.Run(fmt.Sprintf("in/%s/%s", tc.pgType, tc.in), func(t *testing.T) { expect(t, g[fmt.Sprintf("rt%d", i)], tc.want) })
	}
	for i, tc := range literals {
		t.Run("out/"+tc.sql, func(t *testing.T) { expect(t, g[fmt.Sprintf("lit%d", i)], tc.want) })
	}
	expect(t, g["any_ids"], "[1, 3]")
	expect(t, g["any_tags"], "2")
}
