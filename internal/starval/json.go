package starval

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	stime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// EncodeJSON writes the JSON text of v, as the `json.encode` builtin of node
// code does. Dicts keep their insertion order (as Python's json.dumps).
// Unlike FromStarlark, integers of any size are written exactly (the text
// is not a google.protobuf.Struct). Other rules follow FromStarlark: bytes
// become standard base64 strings, time values RFC 3339 strings, sets
// arrays, structs objects; NaN and ±Inf, non-string dict keys, values
// nested deeper than maxDepth (0 means DefaultMaxDepth) and values without
// a JSON form are errors.
func EncodeJSON(v starlark.Value, maxDepth int) ([]byte, error) {
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	e := jsonEncoder{maxDepth: maxDepth}
	if err := e.encode(v, 0); err != nil {
		return nil, err
	}
	return e.buf.Bytes(), nil
}

// appendPythonFloat appends f as Python's float repr (and so its json.dumps)
// writes it, so that JSON produced by ported node code reads the same as
// before: the shortest digits that round-trip, in fixed notation with at
// least one decimal ("3.0", "1796599287.229248") when the decimal exponent
// is in [-4, 16), else in scientific notation with a signed exponent of at
// least two digits ("1e+16", "1.5e-07"). f must be finite.
func appendPythonFloat(b []byte, f float64) []byte {
	sci := strconv.AppendFloat(nil, f, 'e', -1, 64) // "-1.5e-07": mantissa, 'e', sign, 2+ digits
	i := bytes.IndexByte(sci, 'e')
	exp, _ := strconv.Atoi(string(sci[i+1:]))
	if exp < -4 || exp >= 16 {
		return append(b, sci...)
	}
	start := len(b)
	b = strconv.AppendFloat(b, f, 'f', -1, 64)
	if bytes.IndexByte(b[start:], '.') < 0 {
		b = append(b, ".0"...)
	}
	return b
}

type jsonEncoder struct {
	buf      bytes.Buffer
	maxDepth int
}

func (e *jsonEncoder) encode(v starlark.Value, depth int) error {
	switch v := v.(type) {
	case starlark.NoneType:
		e.buf.WriteString("null")
	case starlark.Bool:
		e.buf.WriteString(strconv.FormatBool(bool(v)))
	case starlark.Int:
		e.buf.WriteString(v.String())
	case starlark.Float:
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("json: cannot encode float %s: %w", v, ErrNotFinite)
		}
		e.buf.Write(appendPythonFloat(e.buf.AvailableBuffer(), f))
	case starlark.String:
		e.str(string(v))
	case starlark.Bytes:
		e.str(base64.StdEncoding.EncodeToString([]byte(v)))
	case stime.Time:
		e.str(time.Time(v).Format(time.RFC3339Nano))
	case stime.Duration:
		e.str(time.Duration(v).String())
	case *starlark.Dict:
		if depth >= e.maxDepth {
			return e.tooDeep()
		}
		e.buf.WriteByte('{')
		for i, kv := range v.Items() {
			k, ok := kv[0].(starlark.String)
			if !ok {
				return fmt.Errorf("json: dict key %s (%s) is not a string, use str(key): %w", kv[0], kv[0].Type(), ErrKeyType)
			}
			if i > 0 {
				e.buf.WriteByte(',')
			}
			e.str(string(k))
			e.buf.WriteByte(':')
			if err := e.encode(kv[1], depth+1); err != nil {
				return err
			}
		}
		e.buf.WriteByte('}')
	case *starlarkstruct.Struct:
		if depth >= e.maxDepth {
			return e.tooDeep()
		}
		e.buf.WriteByte('{')
		for i, name := range v.AttrNames() {
			f, err := v.Attr(name)
			if err != nil {
				return fmt.Errorf("json: struct field %s: %w", name, err)
			}
			if i > 0 {
				e.buf.WriteByte(',')
			}
			e.str(name)
			e.buf.WriteByte(':')
			if err := e.encode(f, depth+1); err != nil {
				return err
			}
		}
		e.buf.WriteByte('}')
	case starlark.Iterable: // list, tuple, set, range
		if _, ok := v.(starlark.Indexable); !ok {
			if _, ok := v.(*starlark.Set); !ok {
				return fmt.Errorf("json: cannot encode %s: %w", v.Type(), ErrUnsupported)
			}
		}
		if depth >= e.maxDepth {
			return e.tooDeep()
		}
		e.buf.WriteByte('[')
		iter := v.Iterate()
		defer iter.Done()
		var x starlark.Value
		for i := 0; iter.Next(&x); i++ {
			if i > 0 {
				e.buf.WriteByte(',')
			}
			if err := e.encode(x, depth+1); err != nil {
				return err
			}
		}
		e.buf.WriteByte(']')
	default:
		return fmt.Errorf("json: cannot encode %s: %w", v.Type(), ErrUnsupported)
	}
	return nil
}

func (e *jsonEncoder) str(s string) {
	b, _ := json.Marshal(s) // strings always marshal
	e.buf.Write(b)
}

func (e *jsonEncoder) tooDeep() error {
	return fmt.Errorf("json: lists and dicts are nested more than %d levels deep: %w", e.maxDepth, ErrTooDeep)
}

// DecodeJSON parses one JSON value into a Starlark value, as the
// `json.decode` builtin does: objects become dicts in document order,
// arrays lists, integers ints of any size, other numbers floats. Nesting
// deeper than maxDepth (0 means DefaultMaxDepth) and trailing data are
// errors. The result is not frozen.
func DecodeJSON(data []byte, maxDepth int) (starlark.Value, error) {
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	v, err := decodeValue(d, 0, maxDepth)
	if err != nil {
		return nil, fmt.Errorf("json: %w", err)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("json: unexpected data after the value")
	}
	return v, nil
}

func decodeValue(d *json.Decoder, depth, maxDepth int) (starlark.Value, error) {
	tok, err := d.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	switch tok := tok.(type) {
	case nil:
		return starlark.None, nil
	case bool:
		return starlark.Bool(tok), nil
	case json.Number:
		return numberValue(tok)
	case string:
		return starlark.String(tok), nil
	case json.Delim:
		if depth >= maxDepth {
			return nil, fmt.Errorf("arrays and objects are nested more than %d levels deep: %w", maxDepth, ErrTooDeep)
		}
		switch tok {
		case '[':
			var elems []starlark.Value
			for d.More() {
				x, err := decodeValue(d, depth+1, maxDepth)
				if err != nil {
					return nil, err
				}
				elems = append(elems, x)
			}
			if _, err := d.Token(); err != nil { // ']'
				return nil, err
			}
			return starlark.NewList(elems), nil
		case '{':
			dict := starlark.NewDict(0)
			for d.More() {
				k, err := d.Token()
				if err != nil {
					return nil, err
				}
				ks, ok := k.(string)
				if !ok {
					return nil, fmt.Errorf("object key %v is not a string", k)
				}
				x, err := decodeValue(d, depth+1, maxDepth)
				if err != nil {
					return nil, err
				}
				if err := dict.SetKey(starlark.String(ks), x); err != nil {
					return nil, err
				}
			}
			if _, err := d.Token(); err != nil { // '}'
				return nil, err
			}
			return dict, nil
		}
	}
	return nil, fmt.Errorf("unexpected JSON token %v", tok)
}
