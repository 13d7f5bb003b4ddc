package node

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"strings"
	"time"

	"github.com/google/uuid"
	smath "go.starlark.net/lib/math"
	stime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/kailash-gateway/kgw/internal/starval"
)

// stringOrBytes unpacks a str or bytes argument.
type stringOrBytes []byte

func (s *stringOrBytes) Unpack(v starlark.Value) error {
	switch v := v.(type) {
	case starlark.String:
		*s = []byte(v)
	case starlark.Bytes:
		*s = []byte(v)
	default:
		return fmt.Errorf("got %s, want str or bytes", v.Type())
	}
	return nil
}

// jsonModule is the json module: encode, decode (also loads), indent and
// dumps, each charging its result to the node's memory budget first.
func jsonModule() *starlarkstruct.Module {
	return module("json", map[string]builtinFunc{
		"encode": jsonEncode, "decode": jsonDecode, "indent": jsonIndent,
		"dumps": jsonDumps, "loads": jsonDecode,
	})
}

// jsonEncode implements json.encode(x).
func jsonEncode(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var x starlark.Value
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &x); err != nil {
		return nil, err
	}
	if err := chargeText(th, b.Name(), 1, x); err != nil {
		return nil, err
	}
	out, err := starval.EncodeJSON(x, 0)
	if err != nil {
		return nil, err
	}
	return starlark.String(out), nil
}

// jsonDecode implements json.decode(s) and json.loads(s).
func jsonDecode(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var s stringOrBytes
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &s); err != nil {
		return nil, err
	}
	if err := charge(th, b.Name(), jsonDecodeSize(s)); err != nil {
		return nil, err
	}
	v, err := starval.DecodeJSON(s, 0)
	if err != nil {
		return nil, err
	}
	return v, nil
}

// jsonIndent implements json.indent(s, prefix="", indent="\t").
func jsonIndent(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var s stringOrBytes
	prefix, ind := "", "\t"
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "s", &s, "prefix?", &prefix, "indent?", &ind); err != nil {
		return nil, err
	}
	if err := charge(th, b.Name(), jsonIndentSize(s, len(prefix), len(ind))); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, s, prefix, ind); err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return starlark.String(buf.String()), nil
}

// jsonDumps implements json.dumps(obj, indent=None, sort_keys=False).
func jsonDumps(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var x, ind starlark.Value = nil, starlark.None
	sortKeys := false
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "obj", &x, "indent?", &ind, "sort_keys?", &sortKeys); err != nil {
		return nil, err
	}
	times := int64(1)
	if sortKeys {
		times = 4 // encoded, decoded into Go maps, encoded again
	}
	if err := chargeText(th, b.Name(), times, x); err != nil {
		return nil, err
	}
	out, err := starval.EncodeJSON(x, 0)
	if err != nil {
		return nil, err
	}
	if sortKeys { // decode into Go maps (sorted on output), keeping number text
		d := json.NewDecoder(bytes.NewReader(out))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name(), err)
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name(), err)
		}
		out = bytes.TrimRight(buf.Bytes(), "\n")
	}
	var indentStr string
	switch ind := ind.(type) {
	case starlark.NoneType:
	case starlark.Int:
		n, ok := ind.Int64()
		if !ok || n < 0 || n > 16 {
			return nil, fmt.Errorf("%s: indent must be between 0 and 16", b.Name())
		}
		indentStr = strings.Repeat(" ", int(n))
	case starlark.String:
		indentStr = string(ind)
	default:
		return nil, fmt.Errorf("%s: indent must be an int or a str, got %s", b.Name(), ind.Type())
	}
	if ind != starlark.None {
		if err := charge(th, b.Name(), jsonIndentSize(out, 0, len(indentStr))); err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		_ = json.Indent(&buf, out, "", indentStr) // out is valid JSON
		out = buf.Bytes()
	}
	return starlark.String(out), nil
}

// jsonIndentSize bounds the size of json.indent of s: every token that
// starts a line (after [, {, or , and before ], }) gets a newline, the
// prefix and the indent once per level of nesting.
func jsonIndentSize(s []byte, prefix, indent int) int64 {
	var lines, depth, maxDepth int64
	inString := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if inString {
			if c == '\\' {
				i++
			} else if c == '"' {
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			depth++
			maxDepth = max(maxDepth, depth)
			lines += 2
		case ']', '}':
			depth--
		case ',', ':':
			lines++
		}
	}
	return sat(int64(len(s))+valueHeader, mul(lines, 1+int64(prefix)+mul(maxDepth, int64(indent))))
}

// jsonDecodeSize bounds the size of the values json.decode builds from s:
// the strings' bytes, and an element, entry or container for every
// structural character.
func jsonDecodeSize(s []byte) int64 {
	var n int64
	inString := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if inString {
			if c == '\\' {
				i++
			} else if c == '"' {
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
			n += valueHeader
		case '[', '{', ',', ':':
			n += hashEntry
		}
	}
	return sat(n, int64(len(s))+hashEntry)
}

func timeModule() *starlarkstruct.Module {
	m := &starlarkstruct.Module{Name: "time", Members: starlark.StringDict{}}
	for k, v := range stime.Module.Members {
		m.Members[k] = v
	}
	// time.time() is Python's: float seconds since the epoch. With
	// arguments it is Starlark's constructor, time.time(year=…, month=…).
	construct := stime.Module.Members["time"].(*starlark.Builtin)
	m.Members["time"] = builtin("time.time", func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if len(args) > 0 || len(kwargs) > 0 {
			return starlark.Call(th, construct, args, kwargs)
		}
		return starlark.Float(float64(time.Now().UnixNano()) / 1e9), nil
	})
	m.Members["sleep"] = builtin("time.sleep", func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var secs starlark.Value
		if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &secs); err != nil {
			return nil, err
		}
		var d time.Duration
		switch s := secs.(type) {
		case stime.Duration:
			d = time.Duration(s)
		default:
			f, ok := starlark.AsFloat(secs)
			if !ok {
				return nil, fmt.Errorf("%s: seconds must be a number or a time.duration, got %s", b.Name(), secs.Type())
			}
			if f < 0 || f > 1e9 {
				return nil, fmt.Errorf("%s: seconds must be between 0 and 1e9, got %v", b.Name(), f)
			}
			d = time.Duration(f * float64(time.Second))
		}
		ctx := starval.Context(th)
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return starlark.None, nil
		case <-ctx.Done():
			return nil, fmt.Errorf("%s interrupted: %w", b.Name(), context.Cause(ctx))
		}
	})
	return m
}

func mathModule() *starlarkstruct.Module { return smath.Module }

func uuidModule() *starlarkstruct.Module {
	return module("uuid", map[string]builtinFunc{
		"uuid4": func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
				return nil, err
			}
			return starlark.String(uuid.NewString()), nil // random: version 4
		},
	})
}

func base64Module() *starlarkstruct.Module {
	enc := func(e *base64.Encoding) builtinFunc {
		return func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var s stringOrBytes
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &s); err != nil {
				return nil, err
			}
			if err := charge(th, b.Name(), int64(e.EncodedLen(len(s)))+valueHeader); err != nil {
				return nil, err
			}
			return starlark.String(e.EncodeToString(s)), nil
		}
	}
	dec := func(e *base64.Encoding) builtinFunc {
		return func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var s stringOrBytes
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &s); err != nil {
				return nil, err
			}
			if err := charge(th, b.Name(), int64(len(s))*3/4+valueHeader); err != nil {
				return nil, err
			}
			// Accept input with or without padding, as Python does for
			// well-formed input.
			in := strings.TrimRight(string(s), "=")
			out, err := e.WithPadding(base64.NoPadding).DecodeString(in)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", b.Name(), err)
			}
			return starlark.Bytes(out), nil
		}
	}
	return module("base64", map[string]builtinFunc{
		"b64encode":         enc(base64.StdEncoding),
		"b64decode":         dec(base64.StdEncoding),
		"urlsafe_b64encode": enc(base64.URLEncoding),
		"urlsafe_b64decode": dec(base64.URLEncoding),
	})
}

func hashlibModule() *starlarkstruct.Module {
	digest := func(newHash func() hash.Hash) builtinFunc {
		return func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var s stringOrBytes
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &s); err != nil {
				return nil, err
			}
			h := newHash()
			h.Write(s)
			return starlark.String(hex.EncodeToString(h.Sum(nil))), nil
		}
	}
	return module("hashlib", map[string]builtinFunc{
		"sha256": digest(sha256.New),
		"sha1":   digest(sha1.New),
		"sha512": digest(sha512.New),
		"md5":    digest(md5.New),
	})
}

func hmacModule() *starlarkstruct.Module {
	mac := func(newHash func() hash.Hash) builtinFunc {
		return func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var key, msg stringOrBytes
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 2, &key, &msg); err != nil {
				return nil, err
			}
			h := hmac.New(newHash, key)
			h.Write(msg)
			return starlark.String(hex.EncodeToString(h.Sum(nil))), nil
		}
	}
	return module("hmac", map[string]builtinFunc{
		"sha256": mac(sha256.New),
		"sha1":   mac(sha1.New),
		"sha512": mac(sha512.New),
		"compare_digest": func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var x, y stringOrBytes
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 2, &x, &y); err != nil {
				return nil, err
			}
			return starlark.Bool(hmac.Equal(x, y)), nil
		},
	})
}
