package redis

import (
	"fmt"
	"strings"

	"go.starlark.net/starlark"

	"github.com/kailash-gateway/kgw/internal/starval"
)

// commandTable maps each cache method to its implementation.
var commandTable map[string]method

func init() {
	commandTable = map[string]method{
		"get":       simple("GET", []string{"key"}, toStr),
		"set":       set,
		"setex":     simple("SETEX", []string{"key", "seconds", "value"}, toOK),
		"delete":    variadic("DEL", 0, toInt),
		"exists":    variadic("EXISTS", 0, toInt),
		"expire":    simple("EXPIRE", []string{"key", "seconds"}, toBool),
		"ttl":       simple("TTL", []string{"key"}, toInt),
		"incr":      byAmount("INCRBY"),
		"incrby":    simple("INCRBY", []string{"key", "amount"}, toInt),
		"decr":      byAmount("DECRBY"),
		"mget":      variadic("MGET", 0, toStrList),
		"mset":      mset,
		"lpush":     variadic("LPUSH", 1, toInt),
		"rpush":     variadic("RPUSH", 1, toInt),
		"lpop":      simple("LPOP", []string{"key", "count?"}, toStrList),
		"rpop":      simple("RPOP", []string{"key", "count?"}, toStrList),
		"lrange":    simple("LRANGE", []string{"key", "start", "end"}, toStrList),
		"ltrim":     simple("LTRIM", []string{"key", "start", "end"}, toOK),
		"llen":      simple("LLEN", []string{"key"}, toInt),
		"hget":      simple("HGET", []string{"key", "field"}, toStr),
		"hset":      hset,
		"hgetall":   simple("HGETALL", []string{"key"}, toStrDict),
		"hdel":      variadic("HDEL", 1, toInt),
		"sadd":      variadic("SADD", 1, toInt),
		"srem":      variadic("SREM", 1, toInt),
		"smembers":  simple("SMEMBERS", []string{"key"}, toSortedList),
		"sismember": simple("SISMEMBER", []string{"key", "member"}, toBool),
		"zadd":      zadd,
		"zrange":    zrange,
		"publish":   simple("PUBLISH", []string{"channel", "message"}, toInt),
		"do":        do,
	}
}

// set(key, value, ex=None, px=None, nx=False, xx=False) → True, or None
// when nx/xx prevented the write.
func set(h *Handle, th *starlark.Thread, name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var key, value, ex, px starlark.Value
	var nx, xx bool
	if err := starlark.UnpackArgs(name, args, kwargs, "key", &key, "value", &value,
		"ex?", &ex, "px?", &px, "nx?", &nx, "xx?", &xx); err != nil {
		return nil, err
	}
	cmd, err := strArgs(name, "SET", key, value)
	if err != nil {
		return nil, err
	}
	if ex != nil && ex != starlark.None {
		s, err := arg(ex)
		if err != nil {
			return nil, fmt.Errorf("%s: ex: %w", name, err)
		}
		cmd = append(cmd, "EX", s)
	}
	if px != nil && px != starlark.None {
		s, err := arg(px)
		if err != nil {
			return nil, fmt.Errorf("%s: px: %w", name, err)
		}
		cmd = append(cmd, "PX", s)
	}
	if nx {
		cmd = append(cmd, "NX")
	}
	if xx {
		cmd = append(cmd, "XX")
	}
	msg, err := h.send(th, name, cmd...)
	if err != nil {
		return nil, err
	}
	return toOK(msg)
}

// byAmount is incr/decr(key, amount=1).
func byAmount(cmd string) method {
	return func(h *Handle, th *starlark.Thread, name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var key starlark.Value
		var amount starlark.Value = starlark.MakeInt(1)
		if err := starlark.UnpackArgs(name, args, kwargs, "key", &key, "amount?", &amount); err != nil {
			return nil, err
		}
		c, err := strArgs(name, cmd, key, amount)
		if err != nil {
			return nil, err
		}
		msg, err := h.send(th, name, c...)
		if err != nil {
			return nil, err
		}
		return toInt(msg)
	}
}

// mset(mapping) → True.
func mset(h *Handle, th *starlark.Thread, name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var mapping *starlark.Dict
	if err := starlark.UnpackArgs(name, args, kwargs, "mapping", &mapping); err != nil {
		return nil, err
	}
	if mapping.Len() == 0 {
		return nil, fmt.Errorf("%s: mapping is empty", name)
	}
	cmd, err := pairs(name, "MSET", mapping)
	if err != nil {
		return nil, err
	}
	msg, err := h.send(th, name, cmd...)
	if err != nil {
		return nil, err
	}
	return toOK(msg)
}

// hset(key, field=None, value=None, mapping=None) → number of new fields.
func hset(h *Handle, th *starlark.Thread, name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var key, field, value starlark.Value
	var mapping *starlark.Dict
	if err := starlark.UnpackArgs(name, args, kwargs, "key", &key, "field?", &field,
		"value?", &value, "mapping?", &mapping); err != nil {
		return nil, err
	}
	cmd, err := strArgs(name, "HSET", key)
	if err != nil {
		return nil, err
	}
	if field != nil && field != starlark.None {
		if value == nil {
			return nil, fmt.Errorf("%s: field given without value", name)
		}
		fv, err := strArgs(name, "", field, value)
		if err != nil {
			return nil, err
		}
		cmd = append(cmd, fv[1:]...)
	}
	if mapping != nil {
		kv, err := pairs(name, "", mapping)
		if err != nil {
			return nil, err
		}
		cmd = append(cmd, kv[1:]...)
	}
	if len(cmd) == 2 {
		return nil, fmt.Errorf("%s: give field and value, or mapping", name)
	}
	msg, err := h.send(th, name, cmd...)
	if err != nil {
		return nil, err
	}
	return toInt(msg)
}

// zadd(key, mapping, nx=False, xx=False) → number of new members.
// mapping is {member: score}.
func zadd(h *Handle, th *starlark.Thread, name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var key starlark.Value
	var mapping *starlark.Dict
	var nx, xx bool
	if err := starlark.UnpackArgs(name, args, kwargs, "key", &key, "mapping", &mapping,
		"nx?", &nx, "xx?", &xx); err != nil {
		return nil, err
	}
	cmd, err := strArgs(name, "ZADD", key)
	if err != nil {
		return nil, err
	}
	if nx {
		cmd = append(cmd, "NX")
	}
	if xx {
		cmd = append(cmd, "XX")
	}
	if mapping.Len() == 0 {
		return nil, fmt.Errorf("%s: mapping is empty", name)
	}
	for _, kv := range mapping.Items() {
		sm, err := strArgs(name, "", kv[1], kv[0]) // score before member
		if err != nil {
			return nil, err
		}
		cmd = append(cmd, sm[1:]...)
	}
	msg, err := h.send(th, name, cmd...)
	if err != nil {
		return nil, err
	}
	return toInt(msg)
}

// zrange(key, start, end, withscores=False) → members, or (member, score)
// tuples.
func zrange(h *Handle, th *starlark.Thread, name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var key, start, end starlark.Value
	var withScores bool
	if err := starlark.UnpackArgs(name, args, kwargs, "key", &key, "start", &start,
		"end", &end, "withscores?", &withScores); err != nil {
		return nil, err
	}
	cmd, err := strArgs(name, "ZRANGE", key, start, end)
	if err != nil {
		return nil, err
	}
	if !withScores {
		msg, err := h.send(th, name, cmd...)
		if err != nil {
			return nil, err
		}
		return toStrList(msg)
	}
	msg, err := h.send(th, name, append(cmd, "WITHSCORES")...)
	if err != nil {
		return nil, err
	}
	scores, err := msg.AsZScores()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	items := make([]starlark.Value, len(scores))
	for i, z := range scores {
		items[i] = starlark.Tuple{starlark.String(z.Member), starlark.Float(z.Score)}
	}
	return starlark.NewList(items), nil
}

// do(*args) sends a command of the allow-list (allowed: data commands only)
// and converts the reply generically.
func do(h *Handle, th *starlark.Thread, name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(kwargs) > 0 {
		return nil, fmt.Errorf("%s: unexpected keyword arguments", name)
	}
	if len(args) == 0 {
		return nil, fmt.Errorf("%s: missing command", name)
	}
	cmd, err := strArgs(name, "", args...)
	if err != nil {
		return nil, err
	}
	cmd = cmd[1:]
	if c := strings.ToUpper(cmd[0]); !allowed[c] {
		why := refusedWhy[c]
		if why == "" {
			why = "not a data command"
		}
		return nil, fmt.Errorf("%s: %s is not available to workflow code (%s); do() sends data commands only", name, c, why)
	}
	msg, err := h.send(th, name, cmd...)
	if err != nil {
		return nil, err
	}
	v, err := toValue(msg)
	if err != nil {
		return nil, starval.NewResourceError(h.name, name, err)
	}
	return v, nil
}

// strArgs renders values as command arguments after cmd ("" included, for
// callers that drop it).
func strArgs(name, cmd string, vals ...starlark.Value) ([]string, error) {
	out := make([]string, 0, len(vals)+1)
	out = append(out, cmd)
	for i, v := range vals {
		s, err := arg(v)
		if err != nil {
			return nil, fmt.Errorf("%s: argument %d: %w", name, i+1, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// pairs renders a dict as key value key value … after cmd.
func pairs(name, cmd string, d *starlark.Dict) ([]string, error) {
	out := []string{cmd}
	for _, kv := range d.Items() {
		s, err := strArgs(name, "", kv[0], kv[1])
		if err != nil {
			return nil, err
		}
		out = append(out, s[1:]...)
	}
	return out, nil
}
