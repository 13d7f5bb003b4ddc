package resources_test

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/rueidis"

	"github.com/kailash-gateway/kgw/internal/testenv"
	"github.com/kailash-gateway/kgw/resources"
	"github.com/kailash-gateway/kgw/store"
)

// TestCacheRefusesAdminCommands: do() sends data commands only. Each
// administrative, connection, script or cross-database command fails with
// a clear error and reaches nothing: the server's settings, its other
// databases and the keys of this one are unchanged afterwards. The server
// is private to this test, so a regression cannot harm other tests.
func TestCacheRefusesAdminCommands(t *testing.T) {
	r := testenv.NewRedis(t)
	direct, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{r.Addr}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	ctx := context.Background()
	if err := direct.Do(ctx, direct.B().Set().Key("sentinel").Value("alive").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	maxmem, err := direct.Do(ctx, direct.B().ConfigGet().Parameter("maxmemory").Build()).AsStrMap()
	if err != nil {
		t.Fatal(err)
	}

	b := resources.NewBroker(resources.Config{Logger: quiet})
	defer b.Close()
	specs := map[string]store.ResourceSpec{"cache": cacheSpec(r.Addr)}
	refused := [][]string{
		{"CONFIG", "SET", "maxmemory", "1"}, {"config", "get", "*"}, {"Config", "rewrite"},
		{"ACL", "LIST"}, {"ACL", "SETUSER", "evil", "on", ">pw", "+@all"}, {"acl", "whoami"},
		{"AUTH", "default", "x"}, {"HELLO", "3"}, {"MODULE", "LOAD", "/tmp/x.so"}, {"DEBUG", "SLEEP", "0"},
		{"SWAPDB", "0", "1"}, {"FLUSHALL"}, {"FLUSHDB", "ASYNC"}, {"flushall", "sync"},
		{"MIGRATE", "127.0.0.1", "1", "sentinel", "0", "100"}, {"REPLICAOF", "127.0.0.1", "1"},
		{"SLAVEOF", "NO", "ONE"}, {"SHUTDOWN", "NOSAVE"}, {"SCRIPT", "FLUSH"}, {"FUNCTION", "FLUSH"},
		{"EVAL", "return redis.call('FLUSHALL')", "0"}, {"EVALSHA", "0000", "0"}, {"EVAL_RO", "return 1", "0"},
		{"FCALL", "f", "0"}, {"MONITOR"}, {"CLIENT", "KILL", "TYPE", "normal"}, {"CLIENT", "LIST"},
		{"CLIENT", "SETNAME", "x"}, {"CLIENT", "PAUSE", "10000"}, {"SELECT", "1"}, {"RESET"},
		{"SYNC"}, {"PSYNC", "?", "-1"}, {"SUBSCRIBE", "c"}, {"MULTI"}, {"WATCH", "sentinel"},
		{"MOVE", "sentinel", "1"}, {"COPY", "sentinel", "x", "DB", "1"}, {"SAVE"}, {"BGSAVE"},
		{"BGREWRITEAOF"}, {"FAILOVER"}, {"LATENCY", "RESET"}, {"SLOWLOG", "GET"}, {"INFO"},
		{"COMMAND"}, {"QUIT"}, {"WAIT", "0", "0"}, {"OBJECTX"}, {"NOSUCHCOMMAND"},
	}
	sess := b.Session(specs, nil)
	defer sess.Close()
	for _, cmd := range refused {
		args := make([]string, len(cmd))
		for i, a := range cmd {
			args[i] = `"` + a + `"`
		}
		code := `get_resource("cache").do(` + strings.Join(args, ", ") + `)`
		_, err := exec(t.Context(), sess, code)
		if err == nil || !strings.Contains(err.Error(), "is not available to workflow code") {
			t.Errorf("%s = %v, want a refusal", code, err)
			continue
		}
		if !strings.Contains(err.Error(), strings.ToUpper(cmd[0])) {
			t.Errorf("%s: error %q does not name the command", code, err)
		}
	}
	if v, err := direct.Do(ctx, direct.B().Get().Key("sentinel").Build()).ToString(); err != nil || v != "alive" {
		t.Errorf("sentinel after the refused commands = %q, %v", v, err)
	}
	after, err := direct.Do(ctx, direct.B().ConfigGet().Parameter("maxmemory").Build()).AsStrMap()
	if err != nil || after["maxmemory"] != maxmem["maxmemory"] {
		t.Errorf("maxmemory = %v (%v), want %v", after, err, maxmem)
	}
	// Data commands still go through do(), in any case.
	g := mustExec(t, b, specs, `
c = get_resource("cache")
pong = c.do("PING")
echo = c.do("echo", "hi")
c.do("HSET", "h", "f", "v")
hget = c.do("hget", "h", "f")
strlen = c.do("StrLen", "sentinel")
`)
	expect(t, g["pong"], `"PONG"`)
	expect(t, g["echo"], `"hi"`)
	expect(t, g["hget"], `"v"`)
	expect(t, g["strlen"], "5")
}
