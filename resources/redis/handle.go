package redis

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/redis/rueidis"
	"go.starlark.net/starlark"

	"github.com/kailash-gateway/kgw/internal/starval"
)

// Handle is the "cache" value a node attempt gets from get_resource. It is
// safe for concurrent use. It holds no connection between calls; Close
// makes later calls fail.
type Handle struct {
	pool   *Pool
	name   string
	attrs  map[string]*starlark.Builtin
	closed atomic.Bool
}

var _ starlark.HasAttrs = (*Handle)(nil)

// Close ends the handle. Commands already running finish; later calls fail.
func (h *Handle) Close() { h.closed.Store(true) }

func (h *Handle) String() string        { return fmt.Sprintf("<cache %q>", h.name) }
func (h *Handle) Type() string          { return "cache" }
func (h *Handle) Freeze()               {}
func (h *Handle) Truth() starlark.Bool  { return starlark.True }
func (h *Handle) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable type: cache") }

// Attr returns a command method.
func (h *Handle) Attr(name string) (starlark.Value, error) {
	if b, ok := h.attrs[name]; ok {
		return b, nil
	}
	return nil, starval.NoSuchAttr(h.Type(), name, h.AttrNames())
}

// AttrNames lists the command methods.
func (h *Handle) AttrNames() []string {
	names := make([]string, 0, len(h.attrs))
	for k := range h.attrs {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// allowed are the commands do() sends: commands on the data of the
// resource's database (strings, keys, lists, hashes, sets, sorted sets,
// streams, bitmaps, HyperLogLog, geo), publishing, and PING/ECHO/TIME/
// DBSIZE. Everything else is refused by name, as an allow-list: server
// administration (CONFIG, ACL, MODULE, DEBUG, SHUTDOWN, FLUSHALL/FLUSHDB,
// SWAPDB, REPLICAOF/SLAVEOF, SYNC/PSYNC, MIGRATE, FAILOVER, SAVE, …) would let
// workflow code read or change what every other user of the server relies
// on (CONFIG GET masterauth, ACL LIST); connection commands (AUTH, HELLO,
// SELECT, RESET, CLIENT …, MULTI/WATCH, SUBSCRIBE, MONITOR) would change
// the state of the connection every execution shares, or never return;
// scripts and functions (EVAL, EVALSHA, FCALL, SCRIPT, FUNCTION) can run
// FLUSHALL and other commands that are refused here; MOVE and COPY … DB
// reach other databases. A Redis ACL user with only the commands and keys
// a workflow needs remains the operator's job.
var allowed = func() map[string]bool {
	m := map[string]bool{}
	for _, group := range []string{
		// strings
		"GET SET SETNX SETEX PSETEX GETSET GETDEL GETEX MGET MSET MSETNX APPEND STRLEN INCR INCRBY INCRBYFLOAT DECR DECRBY GETRANGE SETRANGE SUBSTR LCS",
		// keys
		"DEL UNLINK EXISTS EXPIRE PEXPIRE EXPIREAT PEXPIREAT EXPIRETIME PEXPIRETIME TTL PTTL PERSIST TYPE RENAME RENAMENX KEYS SCAN RANDOMKEY TOUCH OBJECT SORT SORT_RO",
		// lists
		"LPUSH RPUSH LPUSHX RPUSHX LPOP RPOP LRANGE LTRIM LLEN LINDEX LSET LINSERT LREM LPOS LMOVE RPOPLPUSH LMPOP BLPOP BRPOP BRPOPLPUSH BLMOVE BLMPOP",
		// hashes
		"HGET HSET HSETNX HMSET HMGET HGETALL HDEL HEXISTS HINCRBY HINCRBYFLOAT HKEYS HVALS HLEN HSTRLEN HSCAN HRANDFIELD HEXPIRE HPEXPIRE HEXPIREAT HPEXPIREAT HTTL HPTTL HPERSIST HEXPIRETIME HPEXPIRETIME HGETDEL HGETEX HSETEX",
		// sets
		"SADD SREM SMEMBERS SISMEMBER SMISMEMBER SCARD SPOP SRANDMEMBER SMOVE SINTER SINTERCARD SINTERSTORE SUNION SUNIONSTORE SDIFF SDIFFSTORE SSCAN",
		// sorted sets
		"ZADD ZREM ZRANGE ZRANGESTORE ZREVRANGE ZRANGEBYSCORE ZREVRANGEBYSCORE ZRANGEBYLEX ZREVRANGEBYLEX ZCARD ZCOUNT ZLEXCOUNT ZSCORE ZMSCORE ZINCRBY ZRANK ZREVRANK ZREMRANGEBYRANK ZREMRANGEBYSCORE ZREMRANGEBYLEX ZPOPMIN ZPOPMAX ZMPOP BZPOPMIN BZPOPMAX BZMPOP ZRANDMEMBER ZSCAN ZUNION ZUNIONSTORE ZINTER ZINTERSTORE ZINTERCARD ZDIFF ZDIFFSTORE",
		// streams
		"XADD XLEN XRANGE XREVRANGE XDEL XTRIM XREAD XREADGROUP XGROUP XACK XPENDING XCLAIM XAUTOCLAIM XINFO XSETID",
		// bitmaps, HyperLogLog, geo
		"SETBIT GETBIT BITCOUNT BITPOS BITOP BITFIELD BITFIELD_RO PFADD PFCOUNT PFMERGE",
		"GEOADD GEODIST GEOHASH GEOPOS GEOSEARCH GEOSEARCHSTORE GEORADIUS GEORADIUSBYMEMBER GEORADIUS_RO GEORADIUSBYMEMBER_RO",
		// publishing, and harmless server queries
		"PUBLISH SPUBLISH PING ECHO TIME DBSIZE",
	} {
		for _, c := range strings.Fields(group) {
			m[c] = true
		}
	}
	return m
}()

// refusedWhy says why some well-known commands are refused (others get a
// generic message).
var refusedWhy = map[string]string{
	"SUBSCRIBE": "pub/sub", "PSUBSCRIBE": "pub/sub", "SSUBSCRIBE": "pub/sub",
	"UNSUBSCRIBE": "pub/sub", "PUNSUBSCRIBE": "pub/sub", "SUNSUBSCRIBE": "pub/sub",
	"MONITOR": "monitoring", "MULTI": "transactions", "EXEC": "transactions",
	"DISCARD": "transactions", "WATCH": "transactions", "UNWATCH": "transactions",
	"SELECT": "switching databases", "AUTH": "authentication", "HELLO": "authentication",
	"QUIT": "closing the connection", "RESET": "resetting the connection",
	"CLIENT": "client commands", "SHUTDOWN": "server administration",
	"CONFIG": "server administration", "ACL": "server administration", "MODULE": "server administration",
	"DEBUG": "server administration", "SWAPDB": "server administration", "FLUSHALL": "server administration",
	"FLUSHDB": "server administration", "MIGRATE": "server administration", "REPLICAOF": "server administration",
	"SLAVEOF": "server administration", "SYNC": "replication", "PSYNC": "replication",
	"SCRIPT": "scripts", "FUNCTION": "functions", "EVAL": "scripts", "EVALSHA": "scripts",
	"EVAL_RO": "scripts", "EVALSHA_RO": "scripts", "FCALL": "functions", "FCALL_RO": "functions",
	"MOVE": "other databases", "COPY": "other databases",
}

var blocking = map[string]bool{
	"BLPOP": true, "BRPOP": true, "BRPOPLPUSH": true, "BLMOVE": true, "BLMPOP": true,
	"BZPOPMIN": true, "BZPOPMAX": true, "BZMPOP": true, "WAIT": true, "WAITAOF": true,
	"XREAD": true, "XREADGROUP": true,
}

// send runs one command and returns its reply.
func (h *Handle) send(th *starlark.Thread, method string, args ...string) (rueidis.RedisMessage, error) {
	if h.closed.Load() {
		return rueidis.RedisMessage{}, starval.NewResourceError(h.name, method, fmt.Errorf("resource '%s' is no longer available: the node attempt that opened it has ended", h.name))
	}
	c := h.pool.client
	b := c.B().Arbitrary(args[0]).Args(args[1:]...)
	cmd := b.Build()
	if blocking[strings.ToUpper(args[0])] {
		cmd = b.Blocking()
	}
	h.pool.inFlight.Add(1)
	h.pool.commands.Add(1)
	ctx, span := h.startSpan(starval.Context(th), args[0])
	msg, err := c.Do(ctx, cmd).ToMessage()
	h.pool.inFlight.Add(-1)
	if err != nil && !rueidis.IsRedisNil(err) {
		endSpan(span, err)
	} else {
		endSpan(span, nil)
	}
	if err != nil && !rueidis.IsRedisNil(err) {
		h.pool.noteError(err)
		return msg, starval.NewResourceError(h.name, method, err)
	}
	return msg, nil
}

type method func(h *Handle, th *starlark.Thread, name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error)

func (h *Handle) methods() map[string]*starlark.Builtin {
	m := make(map[string]*starlark.Builtin, len(commandTable))
	for name, f := range commandTable {
		m[name] = starlark.NewBuiltin(name, func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			return f(h, th, b.Name(), args, kwargs)
		})
	}
	return m
}

// simple returns a method for a command that takes a fixed list of
// arguments (named for errors) and whose reply is converted by conv.
func simple(cmd string, params []string, conv func(rueidis.RedisMessage) (starlark.Value, error)) method {
	return func(h *Handle, th *starlark.Thread, name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		vals := make([]starlark.Value, len(params))
		pairs := make([]any, 0, 2*len(params))
		for i, p := range params {
			pairs = append(pairs, p, &vals[i])
		}
		if err := starlark.UnpackArgs(name, args, kwargs, pairs...); err != nil {
			return nil, err
		}
		cmdArgs := []string{cmd}
		for i, v := range vals {
			if v == nil { // optional and absent
				continue
			}
			s, err := arg(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", name, strings.TrimSuffix(params[i], "?"), err)
			}
			cmdArgs = append(cmdArgs, s)
		}
		msg, err := h.send(th, name, cmdArgs...)
		if err != nil {
			return nil, err
		}
		return conv(msg)
	}
}

// variadic returns a method for "CMD [fixed...] item..." commands (at least
// one item).
func variadic(cmd string, fixed int, conv func(rueidis.RedisMessage) (starlark.Value, error)) method {
	return func(h *Handle, th *starlark.Thread, name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if len(kwargs) > 0 {
			return nil, fmt.Errorf("%s: unexpected keyword arguments", name)
		}
		items, err := flatten(args)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if len(items) < fixed+1 {
			return nil, fmt.Errorf("%s: got %d arguments, want at least %d", name, len(items), fixed+1)
		}
		msg, err := h.send(th, name, append([]string{cmd}, items...)...)
		if err != nil {
			return nil, err
		}
		return conv(msg)
	}
}

// flatten turns arguments into command arguments; a single list or tuple
// argument after the fixed ones is spread (mget(["a", "b"]) = mget("a", "b")).
func flatten(args starlark.Tuple) ([]string, error) {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if seq, ok := a.(starlark.Indexable); ok && !isScalar(a) {
			for j := range seq.Len() {
				s, err := arg(seq.Index(j))
				if err != nil {
					return nil, fmt.Errorf("argument %d[%d]: %w", i+1, j, err)
				}
				out = append(out, s)
			}
			continue
		}
		s, err := arg(a)
		if err != nil {
			return nil, fmt.Errorf("argument %d: %w", i+1, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func isScalar(v starlark.Value) bool {
	switch v.(type) {
	case starlark.String, starlark.Bytes:
		return true
	}
	return false
}

// arg renders a value the way redis-py does: strings and bytes as they are,
// numbers in decimal. Other types are refused.
func arg(v starlark.Value) (string, error) {
	switch v := v.(type) {
	case starlark.String:
		return string(v), nil
	case starlark.Bytes:
		return string(v), nil
	case starlark.Int:
		return v.String(), nil
	case starlark.Float:
		return strconv.FormatFloat(float64(v), 'g', -1, 64), nil
	}
	return "", fmt.Errorf("cannot send a %s to redis (use str, bytes, int or float)", v.Type())
}

// Reply converters.

func toStr(m rueidis.RedisMessage) (starlark.Value, error) {
	if m.IsNil() {
		return starlark.None, nil
	}
	s, err := m.ToString()
	if err != nil {
		return toValue(m)
	}
	return starlark.String(s), nil
}

func toInt(m rueidis.RedisMessage) (starlark.Value, error) {
	if m.IsNil() {
		return starlark.None, nil
	}
	i, err := m.AsInt64()
	if err != nil {
		return nil, err
	}
	return starlark.MakeInt64(i), nil
}

func toBool(m rueidis.RedisMessage) (starlark.Value, error) {
	if m.IsNil() {
		return starlark.False, nil
	}
	if m.IsBool() {
		b, err := m.AsBool()
		return starlark.Bool(b), err
	}
	i, err := m.AsInt64()
	if err != nil {
		return nil, err
	}
	return starlark.Bool(i != 0), nil
}

// toOK is True for OK, None for a nil reply (SET NX that did not set).
func toOK(m rueidis.RedisMessage) (starlark.Value, error) {
	if m.IsNil() {
		return starlark.None, nil
	}
	return starlark.True, nil
}

func toStrList(m rueidis.RedisMessage) (starlark.Value, error) {
	if m.IsNil() {
		return starlark.None, nil
	}
	arr, err := m.ToArray()
	if err != nil {
		return toStr(m) // LPOP without count answers a single value
	}
	items := make([]starlark.Value, len(arr))
	for i, x := range arr {
		if items[i], err = toStr(x); err != nil {
			return nil, err
		}
	}
	return starlark.NewList(items), nil
}

func toSortedList(m rueidis.RedisMessage) (starlark.Value, error) {
	ss, err := m.AsStrSlice()
	if err != nil {
		return nil, err
	}
	slices.Sort(ss)
	items := make([]starlark.Value, len(ss))
	for i, s := range ss {
		items[i] = starlark.String(s)
	}
	return starlark.NewList(items), nil
}

func toStrDict(m rueidis.RedisMessage) (starlark.Value, error) {
	sm, err := m.AsStrMap()
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(sm))
	for k := range sm {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	d := starlark.NewDict(len(sm))
	for _, k := range keys {
		_ = d.SetKey(starlark.String(k), starlark.String(sm[k]))
	}
	return d, nil
}

// toValue converts any reply: nil → None, strings, integers, doubles,
// booleans, arrays/sets → lists, maps → dicts; error replies fail.
func toValue(m rueidis.RedisMessage) (starlark.Value, error) {
	if err := m.Error(); err != nil {
		if rueidis.IsRedisNil(err) {
			return starlark.None, nil
		}
		return nil, err
	}
	switch {
	case m.IsNil():
		return starlark.None, nil
	case m.IsInt64():
		i, err := m.AsInt64()
		return starlark.MakeInt64(i), err
	case m.IsFloat64():
		f, err := m.AsFloat64()
		return starlark.Float(f), err
	case m.IsBool():
		b, err := m.AsBool()
		return starlark.Bool(b), err
	case m.IsString():
		s, err := m.ToString()
		return starlark.String(s), err
	case m.IsMap():
		mm, err := m.ToMap()
		if err != nil {
			return nil, err
		}
		keys := make([]string, 0, len(mm))
		for k := range mm {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		d := starlark.NewDict(len(mm))
		for _, k := range keys {
			v, err := toValue(mm[k])
			if err != nil {
				return nil, err
			}
			_ = d.SetKey(starlark.String(k), v)
		}
		return d, nil
	case m.IsArray():
		arr, err := m.ToArray()
		if err != nil {
			return nil, err
		}
		items := make([]starlark.Value, len(arr))
		for i, x := range arr {
			if items[i], err = toValue(x); err != nil {
				return nil, err
			}
		}
		return starlark.NewList(items), nil
	}
	s, err := m.ToString()
	if err != nil {
		return nil, fmt.Errorf("unsupported reply %s", m.String())
	}
	return starlark.String(s), nil
}
