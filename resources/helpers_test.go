package resources_test

import (
	"context"
	"log/slog"
	"net/url"
	"strconv"
	"testing"
	"time"

	startime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/kailash-gateway/kgw/internal/starval"
	"github.com/kailash-gateway/kgw/internal/testenv"
	"github.com/kailash-gateway/kgw/resources"
	"github.com/kailash-gateway/kgw/store"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// pgConfig turns a testenv DSN into a database resource config.
func pgConfig(t testing.TB, dsn string, extra map[string]any) map[string]any {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("parse dsn: %v", err)
	}
	port, _ := strconv.Atoi(u.Port())
	cfg := map[string]any{
		"host":     u.Hostname(),
		"port":     int64(port),
		"database": u.Path[1:],
		"user":     u.User.Username(),
	}
	for k, v := range extra {
		cfg[k] = v
	}
	return cfg
}

func dbSpec(t testing.TB, dsn string, extra map[string]any) store.ResourceSpec {
	return store.ResourceSpec{Type: resources.TypeDatabase, Config: pgConfig(t, dsn, extra)}
}

// exec runs Starlark code with get_resource bound to sess and returns its
// globals.
func exec(ctx context.Context, sess *resources.Session, code string) (starlark.StringDict, error) {
	th := &starlark.Thread{Name: "test"}
	starval.SetContext(th, ctx)
	stop := context.AfterFunc(ctx, func() { th.Cancel(context.Cause(ctx).Error()) })
	defer stop()
	predeclared := starlark.StringDict{
		"time": startime.Module,
		"get_resource": starlark.NewBuiltin("get_resource", func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var name string
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &name); err != nil {
				return nil, err
			}
			return sess.Open(starval.Context(th), name)
		}),
	}
	opts := &syntax.FileOptions{TopLevelControl: true, GlobalReassign: true, While: true, Recursion: true, Set: true}
	return starlark.ExecFileOptions(opts, th, "test.star", code, predeclared)
}

// mustExec runs code in a fresh session over specs and fails t on error.
func mustExec(t testing.TB, b *resources.Broker, specs map[string]store.ResourceSpec, code string) starlark.StringDict {
	t.Helper()
	sess := b.Session(specs, nil)
	defer sess.Close()
	g, err := exec(t.Context(), sess, code)
	if err != nil {
		if ee, ok := err.(*starlark.EvalError); ok {
			t.Fatalf("exec: %s", ee.Backtrace())
		}
		t.Fatalf("exec: %v", err)
	}
	return g
}

// expect evaluates want (a Starlark expression) and compares it with got.
func expect(t testing.TB, got starlark.Value, want string) {
	t.Helper()
	th := &starlark.Thread{}
	w, err := starlark.EvalOptions(&syntax.FileOptions{}, th, "want", want, starlark.StringDict{"time": startime.Module})
	if err != nil {
		t.Fatalf("eval %q: %v", want, err)
	}
	eq, err := starlark.Equal(got, w)
	if err != nil || !eq {
		t.Errorf("got %s (%s), want %s (%s)", got, got.Type(), w, w.Type())
	}
}

var quiet = slog.New(slog.DiscardHandler)

// waitPoolsIdle waits until no pool of b has a connection in use: a
// database connection goes back to its pool only once its session has been
// reset, just after the call that used it returned.
func waitPoolsIdle(t testing.TB, b *resources.Broker) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		busy := false
		for _, p := range b.Pools() {
			busy = busy || p.InUse > 0
		}
		if !busy {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pools still in use after 10s: %+v", b.Pools())
		}
		time.Sleep(2 * time.Millisecond)
	}
}
