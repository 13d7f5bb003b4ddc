package resources_test

import (
	"strings"
	"testing"

	"github.com/kailash-gateway/kgw/internal/testenv"
	"github.com/kailash-gateway/kgw/resources"
	"github.com/kailash-gateway/kgw/store"
)

func TestDatabaseMethods(t *testing.T) {
	dsn := testenv.Postgres(t).NewDatabase(t)
	b := resources.NewBroker(resources.Config{Logger: quiet})
	defer b.Close()
	specs := map[string]store.ResourceSpec{"db": dbSpec(t, dsn, map[string]any{"max_size": int64(4)})}
	g := mustExec(t, b, specs, `
db = get_resource("db")
created = db.execute("CREATE TABLE items (id int PRIMARY KEY, name text, price numeric, tags text[])")
inserted = db.execute("INSERT INTO items VALUES ($1, $2, $3, $4)", 1, "apple", 1.25, ["red", "fruit"])
db.executemany("INSERT INTO items VALUES ($1, $2, $3, $4)", [(2, "pear", 2.5, []), [3, "plum", 0.75, ["blue"]]])
rows = db.fetch("SELECT id, name FROM items WHERE id = ANY($1) ORDER BY id", [1, 3])
row = db.fetchrow("SELECT name, price, tags FROM items WHERE id = $1", 1)
missing = db.fetchrow("SELECT name FROM items WHERE id = $1", 99)
count = db.fetchval("SELECT count(*) FROM items")
noval = db.fetchval("SELECT id FROM items WHERE false")

def add(tx):
    tx.execute("INSERT INTO items (id, name) VALUES ($1, $2)", 4, "fig")
    return tx.fetchval("SELECT count(*) FROM items")
in_tx = db.transaction(add)

def nested(tx):
    tx.execute("INSERT INTO items (id, name) VALUES (5, 'kiwi')")
    tx.transaction(lambda sp: sp.execute("INSERT INTO items (id, name) VALUES (6, 'lime')"))
db.transaction(nested)

def bad(tx):
    tx.execute("INSERT INTO items (id, name) VALUES (7, 'date')")
    fail("boom")

conn = db.acquire()
conn.execute("SET application_name = 'held'")
held_name = conn.fetchval("SHOW application_name")
conn_tx = conn.transaction(lambda tx: tx.fetchval("SELECT 1"))
size = db.size
freesize = db.freesize
after = db.fetchval("SELECT count(*) FROM items")
`)
	expect(t, g["created"], `"CREATE TABLE"`)
	expect(t, g["inserted"], `"INSERT 0 1"`)
	expect(t, g["rows"], `[{"id": 1, "name": "apple"}, {"id": 3, "name": "plum"}]`)
	expect(t, g["row"], `{"name": "apple", "price": 1.25, "tags": ["red", "fruit"]}`)
	expect(t, g["missing"], `None`)
	expect(t, g["count"], `3`)
	expect(t, g["noval"], `None`)
	expect(t, g["in_tx"], `4`)
	expect(t, g["held_name"], `"held"`)
	expect(t, g["conn_tx"], `1`)
	expect(t, g["after"], `6`)
	if s, _ := g["size"].(interface{ String() string }); s == nil || s.String() == "0" {
		t.Errorf("size = %v, want > 0", g["size"])
	}

	// A failing transaction rolls back and re-raises the function's error.
	sess := b.Session(specs, nil)
	defer sess.Close()
	_, err := exec(t.Context(), sess, `
db = get_resource("db")
def bad(tx):
    tx.execute("INSERT INTO items (id, name) VALUES (7, 'date')")
    fail("boom")
db.transaction(bad)
`)
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("transaction(bad) error = %v, want the function's error", err)
	}
	g = mustExec(t, b, specs, `n = get_resource("db").fetchval("SELECT count(*) FROM items WHERE id = 7")`)
	expect(t, g["n"], `0`)

	// SQL errors name the resource and method and carry PostgreSQL's message.
	_, err = exec(t.Context(), sess, `get_resource("db").fetch("SELECT * FROM nowhere")`)
	if err == nil || !strings.Contains(err.Error(), "db.fetch") || !strings.Contains(err.Error(), `"nowhere" does not exist`) {
		t.Errorf("bad query error = %v", err)
	}
}
