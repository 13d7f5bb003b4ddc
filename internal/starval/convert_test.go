package starval_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	stime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"

	"github.com/kailash-gateway/kgw/internal/starval"
)

// eval evaluates a Starlark expression with set and struct available.
func eval(t testing.TB, expr string) starlark.Value {
	t.Helper()
	th := &starlark.Thread{}
	env := starlark.StringDict{"struct": starlark.NewBuiltin("struct", starlarkstruct.Make)}
	v, err := starlark.EvalOptions(&syntax.FileOptions{Set: true}, th, "expr", expr, env)
	if err != nil {
		t.Fatalf("eval %q: %v", expr, err)
	}
	return v
}

func TestFromStarlark(t *testing.T) {
	ts := time.Date(2024, 5, 6, 7, 8, 9, 10, time.UTC)
	tests := []struct {
		name string
		in   starlark.Value
		want any
	}{
		{"none", starlark.None, nil},
		{"bool", starlark.True, true},
		{"int", starlark.MakeInt(42), int64(42)},
		{"max safe int", starlark.MakeInt64(1 << 53), int64(1 << 53)},
		{"min safe int", starlark.MakeInt64(-(1 << 53)), int64(-(1 << 53))},
		{"float", starlark.Float(1.5), 1.5},
		{"string", starlark.String("héllo"), "héllo"},
		{"bytes as base64", starlark.Bytes("\x00\xff"), "AP8="},
		{"time", stime.Time(ts), "2024-05-06T07:08:09.00000001Z"},
		{"duration", stime.Duration(90 * time.Second), "1m30s"},
		{"list", eval(t, `[1, "a", None]`), []any{int64(1), "a", nil}},
		{"tuple", eval(t, `(1, 2)`), []any{int64(1), int64(2)}},
		{"set", eval(t, `set([3, 1])`), []any{int64(3), int64(1)}},
		{"range", eval(t, `range(3)`), []any{int64(0), int64(1), int64(2)}},
		{"dict", eval(t, `{"a": {"b": [1.5]}}`), map[string]any{"a": map[string]any{"b": []any{1.5}}}},
		{"struct", eval(t, `struct(ok=True, n=1)`), map[string]any{"ok": true, "n": int64(1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := starval.FromStarlark(tt.in)
			if err != nil {
				t.Fatalf("FromStarlark(%v) error: %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("FromStarlark(%v) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestFromStarlarkErrors(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		opts     starval.Options
		want     error
		wantText string
	}{
		{"big int", `{"a": [1, 9007199254740993]}`, starval.Options{Root: "result"}, starval.ErrIntRange, `result["a"][1]: integer 9007199254740993 is outside ±2^53 and would lose precision; convert it with str()`},
		{"negative big int", `-9007199254740993`, starval.Options{}, starval.ErrIntRange, "str()"},
		{"nan", `{"x": float("nan")}`, starval.Options{}, starval.ErrNotFinite, `value["x"]: float nan`},
		{"inf", `[float("inf")]`, starval.Options{}, starval.ErrNotFinite, "[0]"},
		{"int key", `{1: 2}`, starval.Options{}, starval.ErrKeyType, "use str(key)"},
		{"function", `{"f": len}`, starval.Options{}, starval.ErrUnsupported, `value["f"]: a value of type builtin_function_or_method has no JSON form`},
		{"too large", `{"s": "x" * 100}`, starval.Options{MaxBytes: 50}, starval.ErrTooLarge, "exceeds 50 bytes"},
		{"too deep", `[[[[1]]]]`, starval.Options{MaxDepth: 3}, starval.ErrTooDeep, "value[0][0][0]: lists and dicts are nested more than 3 levels deep"},
		{"struct path", `struct(a=struct(b=float("nan")))`, starval.Options{Root: "r"}, starval.ErrNotFinite, "r.a.b:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := starval.FromStarlarkOptions(eval(t, tt.in), tt.opts)
			if !errors.Is(err, tt.want) {
				t.Fatalf("FromStarlarkOptions(%s) error = %v, want %v", tt.in, err, tt.want)
			}
			var ce *starval.Error
			if !errors.As(err, &ce) {
				t.Fatalf("FromStarlarkOptions(%s) error %T is not *starval.Error", tt.in, err)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("FromStarlarkOptions(%s) error = %q, want it to contain %q", tt.in, err, tt.wantText)
			}
		})
	}
}

func TestFromStarlarkDepth(t *testing.T) {
	// 64 levels pass, 65 fail, and a self-containing list fails cleanly.
	ok := strings.Repeat("[", 64) + strings.Repeat("]", 64)
	if _, err := starval.FromStarlark(eval(t, ok)); err != nil {
		t.Errorf("64 levels: %v", err)
	}
	deep := strings.Repeat("[", 65) + strings.Repeat("]", 65)
	if _, err := starval.FromStarlark(eval(t, deep)); !errors.Is(err, starval.ErrTooDeep) {
		t.Errorf("65 levels: error = %v, want ErrTooDeep", err)
	}
	l := starlark.NewList(nil)
	_ = l.Append(l)
	if _, err := starval.FromStarlark(l); !errors.Is(err, starval.ErrTooDeep) {
		t.Errorf("cycle: error = %v, want ErrTooDeep", err)
	}
}

func TestFromStarlarkNative(t *testing.T) {
	ts := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	got, err := starval.FromStarlarkOptions(starlark.Tuple{starlark.Bytes("ab"), stime.Time(ts)}, starval.Options{Native: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []any{[]byte("ab"), ts}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("FromStarlarkOptions(Native) mismatch (-want +got):\n%s", diff)
	}
}

func TestToStarlark(t *testing.T) {
	ts := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	tests := []struct {
		name string
		in   any
		want string // Starlark repr
	}{
		{"nil", nil, "None"},
		{"bool", true, "True"},
		{"int", 3, "3"},
		{"int64", int64(-7), "-7"},
		{"uint8", uint8(7), "7"},
		{"whole float", 3.0, "3"},
		{"fraction", 2.5, "2.5"},
		{"huge whole float stays float", 1e300, "1e+300"},
		{"beyond 2^53 stays float", float64(1<<53) * 2, "1.8014398509481984e+16"},
		{"json int", json.Number("12345678901234567890"), "12345678901234567890"},
		{"json float", json.Number("1.0"), "1.0"},
		{"string", "s", `"s"`},
		{"bytes", []byte("b"), `b"b"`},
		{"time", ts, "2024-05-06 07:08:09 +0000 UTC"},
		{"list", []any{1.0, "x"}, `[1, "x"]`},
		{"map sorted", map[string]any{"b": 1.0, "a": []any{}}, `{"a": [], "b": 1}`},
		{"typed slice", []string{"x", "y"}, `["x", "y"]`},
		{"typed map", map[string]int{"k": 1}, `{"k": 1}`},
		{"starlark value", starlark.String("v"), `"v"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := starval.ToStarlark(tt.in)
			if err != nil {
				t.Fatalf("ToStarlark(%v) error: %v", tt.in, err)
			}
			if got.String() != tt.want {
				t.Errorf("ToStarlark(%v) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
	if _, err := starval.ToStarlark(make(chan int)); !errors.Is(err, starval.ErrUnsupported) {
		t.Errorf("ToStarlark(chan) error = %v, want ErrUnsupported", err)
	}
	var deep any = 1.0
	for range 70 {
		deep = []any{deep}
	}
	if _, err := starval.ToStarlark(deep); !errors.Is(err, starval.ErrTooDeep) {
		t.Errorf("ToStarlark(70 levels) error = %v, want ErrTooDeep", err)
	}
}

func TestJSON(t *testing.T) {
	tests := []struct {
		name string
		in   string // JSON
		want string // re-encoded JSON
	}{
		{"order kept", `{"b":1,"a":[true,null,"x"]}`, `{"b":1,"a":[true,null,"x"]}`},
		{"big int exact", `[12345678901234567890123]`, `[12345678901234567890123]`},
		{"floats", `[1.0,1.5e300,-0.25]`, `[1.0,1.5e+300,-0.25]`},
		{"escapes", `"a\"b\u00e9\n"`, `"a\"bé\n"`},
		{"empty", `{}`, `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := starval.DecodeJSON([]byte(tt.in), 0)
			if err != nil {
				t.Fatalf("DecodeJSON(%s): %v", tt.in, err)
			}
			got, err := starval.EncodeJSON(v, 0)
			if err != nil {
				t.Fatalf("EncodeJSON(%s): %v", v, err)
			}
			if string(got) != tt.want {
				t.Errorf("EncodeJSON(DecodeJSON(%s)) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
	for _, bad := range []string{``, `[1,`, `{"a":1} x`, `{1:2}`, `nope`} {
		if v, err := starval.DecodeJSON([]byte(bad), 0); err == nil {
			t.Errorf("DecodeJSON(%q) = %v, want an error", bad, v)
		}
	}
	deep := strings.Repeat("[", 65) + strings.Repeat("]", 65)
	if _, err := starval.DecodeJSON([]byte(deep), 0); !errors.Is(err, starval.ErrTooDeep) {
		t.Errorf("DecodeJSON(65 levels) error = %v, want ErrTooDeep", err)
	}
	if _, err := starval.EncodeJSON(eval(t, `[float("nan")]`), 0); !errors.Is(err, starval.ErrNotFinite) {
		t.Errorf("EncodeJSON(nan) error = %v, want ErrNotFinite", err)
	}
	if _, err := starval.EncodeJSON(eval(t, `{1: 1}`), 0); !errors.Is(err, starval.ErrKeyType) {
		t.Errorf("EncodeJSON({1: 1}) error = %v, want ErrKeyType", err)
	}
	if _, err := starval.EncodeJSON(eval(t, `len`), 0); !errors.Is(err, starval.ErrUnsupported) {
		t.Errorf("EncodeJSON(len) error = %v, want ErrUnsupported", err)
	}
}

// fuzzSeeds are the table inputs above, reused as fuzz seeds.
var fuzzSeeds = []string{
	`null`, `true`, `42`, `-9007199254740993`, `1.5`, `1e400`, `"héllo"`,
	`{"b":1,"a":[true,null,"x"]}`, `[12345678901234567890123]`, `[1.0,1.5e300,-0.25]`,
	`"a\"b\u00e9\n"`, `{}`, `{"a":{"a":{"a":{}}}}`,
	strings.Repeat("[", 64) + strings.Repeat("]", 64),
	strings.Repeat("[", 65) + strings.Repeat("]", 65),
	strings.Repeat(`{"k":`, 70) + "1" + strings.Repeat("}", 70),
}

// FuzzRoundTrip checks, for any JSON text, that decoding never panics, that
// the depth limit holds, and that JSON → Starlark → Go → Starlark → Go and
// Starlark → JSON → Starlark are lossless.
func FuzzRoundTrip(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var probe any
		valid := json.Unmarshal([]byte(s), &probe) == nil
		v, err := starval.DecodeJSON([]byte(s), 0)
		if err != nil {
			if valid && !errors.Is(err, starval.ErrTooDeep) && !strings.Contains(err.Error(), "invalid number") {
				t.Fatalf("DecodeJSON(%q) of valid JSON: %v", s, err)
			}
			return
		}
		if d := depth(probe); d > starval.DefaultMaxDepth {
			t.Fatalf("DecodeJSON(%q) accepted depth %d", s, d)
		}
		text, err := starval.EncodeJSON(v, 0)
		if err != nil {
			t.Fatalf("EncodeJSON(%s): %v", v, err)
		}
		v2, err := starval.DecodeJSON(text, 0)
		if err != nil {
			t.Fatalf("DecodeJSON(EncodeJSON(%q)) = %s: %v", s, text, err)
		}
		if eq, err := starlark.EqualDepth(v, v2, 1000); err != nil || !eq {
			t.Fatalf("JSON round trip of %q: %s != %s (%v)", s, v, v2, err)
		}
		g1, err := starval.FromStarlark(v)
		if err != nil {
			if errors.Is(err, starval.ErrIntRange) || errors.Is(err, starval.ErrNotFinite) {
				return
			}
			t.Fatalf("FromStarlark(%s): %v", v, err)
		}
		sv, err := starval.ToStarlark(g1)
		if err != nil {
			t.Fatalf("ToStarlark(%v): %v", g1, err)
		}
		g2, err := starval.FromStarlark(sv)
		if err != nil {
			t.Fatalf("FromStarlark(ToStarlark(%v)): %v", g1, err)
		}
		if n1, n2 := normalize(g1), normalize(g2); !reflect.DeepEqual(n1, n2) {
			t.Fatalf("Go round trip of %q: %v != %v", s, n1, n2)
		}
	})
}

// normalize maps int64 to float64 so that 3 and 3.0 compare equal:
// ToStarlark turns whole floats into ints by design.
func normalize(v any) any {
	switch v := v.(type) {
	case int64:
		return float64(v)
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = normalize(x)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = normalize(x)
		}
		return out
	}
	return v
}

func depth(v any) int {
	switch v := v.(type) {
	case []any:
		d := 0
		for _, x := range v {
			d = max(d, depth(x))
		}
		return d + 1
	case map[string]any:
		d := 0
		for _, x := range v {
			d = max(d, depth(x))
		}
		return d + 1
	}
	return 0
}
