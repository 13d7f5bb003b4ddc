package postgres

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"net"
	"net/netip"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
	startime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
)

// toGo converts a Starlark argument into a value pgx binds as a parameter.
// Lists become typed slices when their elements agree (so "= ANY($1)" takes
// a list), dicts become maps (bound to json/jsonb parameters).
func toGo(v starlark.Value) (any, error) {
	switch v := v.(type) {
	case starlark.NoneType:
		return nil, nil
	case starlark.Bool:
		return bool(v), nil
	case starlark.Int:
		if i, ok := v.Int64(); ok {
			return i, nil
		}
		return pgtype.Numeric{Int: v.BigInt(), Valid: true}, nil
	case starlark.Float:
		return float64(v), nil
	case starlark.String:
		return string(v), nil
	case starlark.Bytes:
		return []byte(v), nil
	case startime.Time:
		return time.Time(v), nil
	case startime.Duration:
		return time.Duration(v), nil
	case *starlark.List:
		return seqToGo(v)
	case starlark.Tuple:
		return seqToGo(v)
	case *starlark.Dict:
		return jsonToGo(v, 0)
	}
	return nil, fmt.Errorf("cannot bind a value of type %s", v.Type())
}

// seqToGo converts a list or tuple. Homogeneous lists become typed slices
// ([]int64, []float64, []string, []bool, []time.Time, [][]byte), which pgx
// encodes as arrays of the parameter's element type; anything else becomes
// []any.
func seqToGo(seq starlark.Indexable) (any, error) {
	n := seq.Len()
	items := make([]any, n)
	kinds := map[string]bool{}
	for i := range n {
		x, err := toGo(seq.Index(i))
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", i, err)
		}
		items[i] = x
		kinds[fmt.Sprintf("%T", x)] = true
	}
	if len(kinds) == 2 && kinds["int64"] && kinds["float64"] {
		out := make([]float64, n)
		for i, x := range items {
			switch x := x.(type) {
			case int64:
				out[i] = float64(x)
			case float64:
				out[i] = x
			}
		}
		return out, nil
	}
	if len(kinds) != 1 {
		return items, nil
	}
	switch items[0].(type) {
	case int64:
		return typed[int64](items), nil
	case float64:
		return typed[float64](items), nil
	case string:
		return typed[string](items), nil
	case bool:
		return typed[bool](items), nil
	case time.Time:
		return typed[time.Time](items), nil
	case []byte:
		return typed[[]byte](items), nil
	}
	return items, nil
}

func typed[T any](items []any) []T {
	out := make([]T, len(items))
	for i, x := range items {
		out[i] = x.(T)
	}
	return out
}

// jsonToGo converts a value bound for a json/jsonb parameter.
func jsonToGo(v starlark.Value, depth int) (any, error) {
	if depth > 64 {
		return nil, fmt.Errorf("value nested more than 64 levels deep")
	}
	switch v := v.(type) {
	case *starlark.Dict:
		m := make(map[string]any, v.Len())
		for _, kv := range v.Items() {
			k, ok := kv[0].(starlark.String)
			if !ok {
				return nil, fmt.Errorf("dict key %s is not a string", kv[0].Type())
			}
			x, err := jsonToGo(kv[1], depth+1)
			if err != nil {
				return nil, err
			}
			m[string(k)] = x
		}
		return m, nil
	case *starlark.List, starlark.Tuple:
		seq := v.(starlark.Indexable)
		out := make([]any, seq.Len())
		for i := range out {
			x, err := jsonToGo(seq.Index(i), depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	case starlark.Float:
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("NaN and Inf cannot be stored as JSON")
		}
	}
	return toGo(v)
}

// toStarlark converts a value pgx decoded from a column. See docs/resources.md
// for the mapping.
func toStarlark(v any) (starlark.Value, error) {
	switch v := v.(type) {
	case nil:
		return starlark.None, nil
	case bool:
		return starlark.Bool(v), nil
	case int16:
		return starlark.MakeInt64(int64(v)), nil
	case int32:
		return starlark.MakeInt64(int64(v)), nil
	case int64:
		return starlark.MakeInt64(v), nil
	case uint32:
		return starlark.MakeUint64(uint64(v)), nil
	case int:
		return starlark.MakeInt(v), nil
	case float32:
		return starlark.Float(v), nil
	case float64:
		return starlark.Float(v), nil
	case string:
		return starlark.String(v), nil
	case []byte:
		return starlark.Bytes(v), nil
	case time.Time:
		return startime.Time(v), nil
	case time.Duration:
		return startime.Duration(v), nil
	case [16]byte:
		return starlark.String(uuid.UUID(v).String()), nil
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return starlark.MakeInt64(i), nil
		}
		if i, ok := new(big.Int).SetString(v.String(), 10); ok {
			return starlark.MakeBigInt(i), nil
		}
		f, err := v.Float64()
		if err != nil {
			return nil, fmt.Errorf("json number %q: %w", v, err)
		}
		return starlark.Float(f), nil
	case pgtype.Numeric:
		f, err := v.Float64Value()
		if err != nil {
			return nil, fmt.Errorf("numeric: %w", err)
		}
		if !f.Valid {
			return starlark.None, nil
		}
		return starlark.Float(f.Float64), nil
	case pgtype.Interval:
		if !v.Valid {
			return starlark.None, nil
		}
		d := time.Duration(v.Microseconds)*time.Microsecond +
			time.Duration(v.Days)*24*time.Hour +
			time.Duration(v.Months)*30*24*time.Hour
		return startime.Duration(d), nil
	case pgtype.Time:
		if !v.Valid {
			return starlark.None, nil
		}
		t := time.UnixMicro(v.Microseconds).UTC()
		return starlark.String(t.Format("15:04:05.999999")), nil
	case netip.Prefix:
		if v.IsSingleIP() {
			return starlark.String(v.Addr().String()), nil
		}
		return starlark.String(v.String()), nil
	case netip.Addr:
		return starlark.String(v.String()), nil
	case net.HardwareAddr:
		return starlark.String(v.String()), nil
	case map[string]any:
		d := starlark.NewDict(len(v))
		for k, x := range v {
			sv, err := toStarlark(x)
			if err != nil {
				return nil, err
			}
			if err := d.SetKey(starlark.String(k), sv); err != nil {
				return nil, err
			}
		}
		return d, nil
	case []any:
		items := make([]starlark.Value, len(v))
		for i, x := range v {
			sv, err := toStarlark(x)
			if err != nil {
				return nil, err
			}
			items[i] = sv
		}
		return starlark.NewList(items), nil
	case fmt.Stringer:
		return starlark.String(v.String()), nil
	}
	return nil, fmt.Errorf("cannot convert a column value of Go type %T", v)
}

// unmarshalJSON decodes json and jsonb columns keeping integers exact
// (json.Number), so that 1 comes back as int and 1.5 as float.
func unmarshalJSON(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return fmt.Errorf("invalid json: trailing data")
	}
	return nil
}

// registerJSON makes json, jsonb and their arrays decode with unmarshalJSON.
func registerJSON(m *pgtype.Map) {
	jsonT := &pgtype.Type{Name: "json", OID: pgtype.JSONOID,
		Codec: &pgtype.JSONCodec{Marshal: json.Marshal, Unmarshal: unmarshalJSON}}
	jsonbT := &pgtype.Type{Name: "jsonb", OID: pgtype.JSONBOID,
		Codec: &pgtype.JSONBCodec{Marshal: json.Marshal, Unmarshal: unmarshalJSON}}
	m.RegisterType(jsonT)
	m.RegisterType(jsonbT)
	m.RegisterType(&pgtype.Type{Name: "_json", OID: pgtype.JSONArrayOID, Codec: &pgtype.ArrayCodec{ElementType: jsonT}})
	m.RegisterType(&pgtype.Type{Name: "_jsonb", OID: pgtype.JSONBArrayOID, Codec: &pgtype.ArrayCodec{ElementType: jsonbT}})
}
