package resources_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/kailash-gateway/kgw/internal/testenv"
	"github.com/kailash-gateway/kgw/resources"
	"github.com/kailash-gateway/kgw/store"
)

func cacheSpec(addr string) store.ResourceSpec {
	host, port, _ := strings.Cut(addr, ":")
	return store.ResourceSpec{Type: resources.TypeCache, Config: map[string]any{"host": host, "port": port}}
}

func TestCacheMethods(t *testing.T) {
	r := testenv.Redis(t)
	b := resources.NewBroker(resources.Config{Logger: quiet})
	defer b.Close()
	specs := map[string]store.ResourceSpec{"cache": cacheSpec(r.Addr)}
	code := strings.ReplaceAll(cacheScript, "PFX", r.KeyPrefix(t))
	g := mustExec(t, b, specs, code)
	want := map[string]string{
		"set_ok": "True", "get_v": `"v1"`, "get_none": "None", "nx_blocked": "None", "xx_ok": "True",
		"num": `"42"`, "set_ex": "True", "ttl_ex": "100", "set_px": "True", "setex_ok": "True",
		"exists_n": "2", "expire_ok": "True", "ttl_k": "30", "incr1": "1", "incr5": "5",
		"incr_amount": "15", "decr1": "14", "mset_ok": "True", "mget_v": `["1", "2.5", None]`,
		"mget_list": `["1", "2.5"]`, "lpush_n": "2", "rpush_n": "3", "lrange_v": `["b", "a", "c"]`,
		"llen_v": "3", "lpop_v": `"b"`, "rpop_v": `"c"`, "ltrim_ok": "True", "lpop_empty": "None",
		"hset_n": "1", "hset_map": "2", "hget_v": `"y"`, "hgetall_v": `{"f1": "x", "f2": "y", "f3": "3"}`,
		"hdel_n": "1", "sadd_n": "3", "srem_n": "1", "smembers_v": `["a", "b"]`,
		"sismember_t": "True", "sismember_f": "False", "zadd_n": "2", "zrange_v": `["low", "high"]`,
		"zrange_s": `[("low", 1.0), ("high", 10.5)]`, "published": "0", "do_v": "1",
		"do_list": "[]", "delete_n": "3", "after_delete": "None",
	}
	for name, w := range want {
		t.Run(name, func(t *testing.T) { expect(t, g[name], w) })
	}

	checkCacheRefusals(t, b, specs)
}

// cacheScript calls every method of a cache handle, on keys prefixed PFX,
// keeping each result in a global that TestCacheMethods checks.
const cacheScript = `
c = get_resource("cache")
p = "PFX"
set_ok = c.set(p + "k", "v1")
get_v = c.get(p + "k")
get_none = c.get(p + "missing")
nx_blocked = c.set(p + "k", "v2", nx=True)
xx_ok = c.set(p + "k", 42, xx=True)
num = c.get(p + "k")
set_ex = c.set(p + "ex", "x", ex=100)
ttl_ex = c.ttl(p + "ex")
set_px = c.set(p + "px", "x", px=100000)
setex_ok = c.setex(p + "sx", 50, "y")
exists_n = c.exists(p + "k", p + "sx", p + "missing")
expire_ok = c.expire(p + "k", 30)
ttl_k = c.ttl(p + "k")
incr1 = c.incr(p + "n")
incr5 = c.incrby(p + "n", 4)
incr_amount = c.incr(p + "n", 10)
decr1 = c.decr(p + "n")
mset_ok = c.mset({p + "a": "1", p + "b": 2.5})
mget_v = c.mget(p + "a", p + "b", p + "none")
mget_list = c.mget([p + "a", p + "b"])
lpush_n = c.lpush(p + "l", "a", "b")
rpush_n = c.rpush(p + "l", "c")
lrange_v = c.lrange(p + "l", 0, -1)
llen_v = c.llen(p + "l")
lpop_v = c.lpop(p + "l")
rpop_v = c.rpop(p + "l")
ltrim_ok = c.ltrim(p + "l", 0, 0)
lpop_empty = c.lpop(p + "l") and c.lpop(p + "l")
hset_n = c.hset(p + "h", "f1", "x")
hset_map = c.hset(p + "h", mapping={"f2": "y", "f3": 3})
hget_v = c.hget(p + "h", "f2")
hgetall_v = c.hgetall(p + "h")
hdel_n = c.hdel(p + "h", "f1", "f9")
sadd_n = c.sadd(p + "s", "b", "a", "c")
srem_n = c.srem(p + "s", "c")
smembers_v = c.smembers(p + "s")
sismember_t = c.sismember(p + "s", "a")
sismember_f = c.sismember(p + "s", "z")
zadd_n = c.zadd(p + "z", {"low": 1, "high": 10.5})
zrange_v = c.zrange(p + "z", 0, -1)
zrange_s = c.zrange(p + "z", 0, -1, withscores=True)
published = c.publish(p + "chan", "hello")
do_v = c.do("STRLEN", p + "a")
do_list = c.do("LRANGE", p + "l", 0, -1)
delete_n = c.delete(p + "k", p + "a", p + "b")
after_delete = c.get(p + "k")
`

// checkCacheRefusals: commands a node must not send (subscriptions,
// SELECT, unknown commands) and values Redis cannot store fail.
func checkCacheRefusals(t *testing.T, b *resources.Broker, specs map[string]store.ResourceSpec) {
	t.Helper()
	sess := b.Session(specs, nil)
	defer sess.Close()
	for _, bad := range []string{
		`get_resource("cache").do("SUBSCRIBE", "x")`,
		`get_resource("cache").do("SELECT", "1")`,
		`get_resource("cache").set("k", None)`,
		`get_resource("cache").do("NOSUCHCOMMAND")`,
	} {
		if _, err := exec(t.Context(), sess, bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// TestCacheServerRestart kills Redis while a broker uses it: the command
// fails with a clear error, and after the server comes back the same broker
// serves new sessions.
func TestCacheServerRestart(t *testing.T) {
	r := testenv.NewRedis(t)
	b := resources.NewBroker(resources.Config{Logger: quiet})
	defer b.Close()
	specs := map[string]store.ResourceSpec{"cache": cacheSpec(r.Addr)}
	g := mustExec(t, b, specs, `v = get_resource("cache").set("k", "1")`)
	expect(t, g["v"], "True")

	if err := r.Kill(); err != nil {
		t.Fatal(err)
	}
	sess := b.Session(specs, nil)
	_, err := exec(t.Context(), sess, `get_resource("cache").get("k")`)
	sess.Close()
	if err == nil || !strings.Contains(err.Error(), "cache.get") {
		t.Fatalf("get with the server down = %v, want an error naming cache.get", err)
	}
	if errors.Is(err, resources.ErrExhausted) {
		t.Errorf("server down reported as exhaustion: %v", err)
	}

	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	// rueidis reconnects on its own; the first command after the restart
	// may still see the broken connection, so retry until one succeeds.
	var lastErr error
	for range 50 {
		sess := b.Session(specs, nil)
		g, lastErr = exec(t.Context(), sess, `v = get_resource("cache").set("k", "2")`)
		sess.Close()
		if lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("after restart: %v", lastErr)
	}
	expect(t, g["v"], "True")
}
