package postgres

import (
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// cleanSQLCases are SQL strings and whether cleanSQL must find them clean
// (true: running them cannot change the session state of the connection).
var cleanSQLCases = []struct {
	sql   string
	clean bool
}{
	{"SELECT 1", true},
	{"  select 1;  ", true},
	{"SELECT 1;;\n", true},
	{"", true},
	{"-- nothing", true},
	{"/* c */ SELECT * FROM t WHERE id = $1", true},
	{"-- note\nSELECT 1", true},
	{"((SELECT 1) UNION (SELECT 2))", true},
	{"INSERT INTO t VALUES ($1, $2) RETURNING id", true},
	{"UPDATE t SET a = 1 WHERE id = $1", true},
	{"DELETE FROM t", true},
	{"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", true},
	{"VALUES (1), (2)", true},
	{"TABLE t", true},
	{"WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM x", true},
	{"SHOW search_path", true},
	{"NOTIFY jobs", true},
	{"BEGIN", true},
	{"START TRANSACTION ISOLATION LEVEL SERIALIZABLE", true},
	{"COMMIT", true},
	{"ROLLBACK", true},
	{"SAVEPOINT a", true},
	{"RELEASE SAVEPOINT a", true},
	{"SET LOCAL search_path = tenant_7", true},
	{"set local role reader", true},
	{"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", true},
	{"SET CONSTRAINTS ALL DEFERRED", true},
	{"SELECT pg_advisory_xact_lock(1)", true},
	{"SELECT set_config('app.tenant', $1, true)", true},
	{"SELECT pg_catalog.set_config ( $1 , $2 , TRUE )", true},
	{"SELECT set_config('search_path', 'tenant_7', true), set_config('a.b', 'c', true)", true},
	{"SELECT set_config('a.b', 'c', true), set_config('a.b', 'c', false)", false},
	{"SELECT set_config('a.b', 'c', $1)", false},
	{"SELECT set_config('a.b', 'c', 'true')", false},
	{"SELECT set_config('a.b', 'c', true OR false)", false},
	{`SELECT set_config('a\\', 'c', true)`, false},
	{"SELECT set_config('a''', 'c', true)", false},
	{"SELECT set_config(E'a', 'c', true)", false},
	{"SELECT set_config($1::text, 'c', true)", false},
	{`SELECT "set_config"('a.b', 'c', true)`, false},
	{"SELECT set_config", false},
	{"SELECT pg_try_advisory_xact_lock(1)", true},
	{"INSERT INTO a VALUES (1); UPDATE b SET c = 2", true},
	{"SELECT count(*) FROM t WHERE id = ANY($1)", true},

	{"SET search_path = tenant_7", false},
	{"set search_path to tenant_7", false},
	{"SET SESSION search_path = x", false},
	{"SET ROLE reader", false},
	{"SET SESSION AUTHORIZATION reader", false},
	{"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", false},
	{"SET transaction_read_only = on", false},
	{"SET \"local\" = 1", false},
	{"RESET ALL", false},
	{"CREATE TEMP TABLE secret_scratch (v text)", false},
	{"CREATE TABLE t (a int)", false},
	{"LISTEN jobs", false},
	{"PREPARE p AS SELECT 1", false},
	{"EXECUTE p", false},
	{"DECLARE c CURSOR WITH HOLD FOR SELECT 1", false},
	{"DO $$ BEGIN PERFORM 1; END $$", false},
	{"CALL p()", false},
	{"EXPLAIN ANALYZE SELECT 1", false},
	{"COPY t TO STDOUT", false},
	{"DISCARD ALL", false},
	{"LOAD 'x'", false},
	{"SELECT set_config('search_path', 'tenant_7', false)", false},
	{"SELECT pg_catalog.SET_CONFIG('a.b', 'c', false)", false},
	{`SELECT "set_config"('a.b', 'c', false)`, false},
	{"SELECT pg_advisory_lock(1)", false},
	{"SELECT pg_advisory_lock_shared(1)", false},
	{"SELECT pg_try_advisory_lock(1)", false},
	{"SELECT setseed(0.5)", false},
	{"SELECT dblink_connect('x', 'dbname=y')", false},
	{"SELECT lo_open(1, 262144)", false},
	{"UPDATE pg_settings SET setting = 'x' WHERE name = 'search_path'", false},
	{"SELECT pg_create_logical_replication_slot('s', 'p', true)", false},
	{"SELECT query_to_xml('select 1', true, true, '')", false},
	{`SELECT U&"\0073et_config"('a.b', 'c', false)`, false},
	{"SELECT * INTO TEMP secret_scratch FROM t", false},
	{"SELECT 1 AS v INTO pg_temp.x", false},
	{"WITH a AS (SELECT 1) SELECT * INTO t2 FROM a", false},
	{"INSERT INTO a VALUES (1); SET search_path = x", false},
	{"SELECT 1; SET search_path = x", false},
	{"SELECT ';'; SELECT 2", false},
	{"SELECT 1; -- SET", false},
	{"SELECT 1 /* ; */", false}, // a ; in a comment: not split, dirty
	{"/* /* nested */ SET x = 1 */ SELECT 1", true},
	{"/* /* nested */ */ SET x = 1", false},
	{"/* unterminated SELECT 1", true},
	{"'x'", false},
	{"\"select\" 1", false},
	{"SELECT2 1", false},
	{"ünïcode", false},
}

func TestCleanSQL(t *testing.T) {
	for _, tt := range cleanSQLCases {
		if got := cleanSQL(tt.sql); got != tt.clean {
			t.Errorf("cleanSQL(%q) = %v, want %v", tt.sql, got, tt.clean)
		}
	}
}

func TestCleanTag(t *testing.T) {
	tests := []struct {
		tag   string
		clean bool
	}{
		{"", true},
		{"SELECT 1", true},
		{"INSERT 0 1", true},
		{"UPDATE 3", true},
		{"DELETE 0", true},
		{"MERGE 1", true},
		{"SHOW", true},
		{"BEGIN", true},
		{"START TRANSACTION", true},
		{"COMMIT", true},
		{"ROLLBACK", true},
		{"SET", true},
		{"SET CONSTRAINTS", true},
		{"CREATE TABLE", false},
		{"LISTEN", false},
		{"PREPARE", false},
		{"DECLARE CURSOR", false},
		{"DO", false},
		{"CALL", false},
		{"RESET", false},
		{"DISCARD ALL", false},
	}
	for _, tt := range tests {
		if got := cleanTag(pgconn.NewCommandTag(tt.tag)); got != tt.clean {
			t.Errorf("cleanTag(%q) = %v, want %v", tt.tag, got, tt.clean)
		}
	}
}

func BenchmarkCleanSQL(b *testing.B) {
	for _, sql := range []string{
		"SELECT 1",
		"SELECT id, name, price FROM items WHERE id = ANY($1) AND name <> $2 ORDER BY id LIMIT 100",
	} {
		b.Run(sql[:8], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !cleanSQL(sql) {
					b.Fatal("not clean")
				}
			}
		})
	}
}
