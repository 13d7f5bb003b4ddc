package resources_test

import (
	"errors"
	"testing"

	"github.com/kailash-gateway/kgw/internal/testenv"
	"github.com/kailash-gateway/kgw/resources"
	"github.com/kailash-gateway/kgw/store"
)

func TestNotProvidedAndInline(t *testing.T) {
	dsn := testenv.Postgres(t).NewDatabase(t)
	e := newEnv(t, func(c *resources.Config) { c.DisableInline = true })
	ctx := t.Context()
	sess := e.broker.Session(map[string]store.ResourceSpec{
		"inline": dbSpec(t, dsn, nil),
		"named":  {Ref: "orders_db"},
		"absent": {Ref: "nope"},
	}, nil)
	defer sess.Close()
	if _, err := sess.Open(ctx, "other"); !errors.Is(err, resources.ErrNotProvided) ||
		err.Error() != "resource 'other' was not provided in the request: resource not provided" {
		t.Errorf("Open(other) = %v, want ErrNotProvided", err)
	}
	if _, err := sess.Open(ctx, "inline"); !errors.Is(err, resources.ErrInlineDisabled) {
		t.Errorf("Open(inline) = %v, want ErrInlineDisabled", err)
	}
	if _, err := sess.Open(ctx, "absent"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Open(absent) = %v, want ErrNotFound", err)
	}
	if _, err := e.store.PutResource(ctx, &store.Resource{Name: "orders_db", Spec: dbSpec(t, dsn, nil)}); err != nil {
		t.Fatal(err)
	}
	g, err := exec(ctx, sess, `v = get_resource("named").fetchval("SELECT 40 + $1", 2)`)
	if err != nil {
		t.Fatalf("named resource: %v", err)
	}
	expect(t, g["v"], `42`)
}
