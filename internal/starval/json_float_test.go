package starval

import (
	"math"
	"strconv"
	"testing"

	"go.starlark.net/starlark"
)

// TestEncodeJSONFloatsAsPython: floats read as Python's json.dumps writes
// them (expected texts are CPython's repr), so that cached JSON written by
// ported node code is the same.
func TestEncodeJSONFloatsAsPython(t *testing.T) {
	tests := []struct {
		f    float64
		want string
	}{
		{1796599287.229248, "1796599287.229248"},
		{3, "3.0"},
		{-3, "-3.0"},
		{0, "0.0"},
		{math.Copysign(0, -1), "-0.0"},
		{0.1, "0.1"},
		{1.5, "1.5"},
		{0.0001, "0.0001"},
		{0.00001, "1e-05"},
		{1.5e-7, "1.5e-07"},
		{123456789012345.6, "123456789012345.6"},
		{1e15, "1000000000000000.0"},
		{9999999999999998, "9999999999999998.0"},
		{1e16, "1e+16"},
		{1.2345e22, "1.2345e+22"},
		{1e100, "1e+100"},
		{-2.5e-300, "-2.5e-300"},
		{math.MaxFloat64, "1.7976931348623157e+308"},
		{5e-324, "5e-324"},
		{1.0 / 3, "0.3333333333333333"},
	}
	for _, tt := range tests {
		got, err := EncodeJSON(starlark.Float(tt.f), 0)
		if err != nil {
			t.Fatalf("EncodeJSON(%v) error = %v", tt.f, err)
		}
		if string(got) != tt.want {
			t.Errorf("EncodeJSON(%v) = %s, want %s", tt.f, got, tt.want)
		}
		back, err := strconv.ParseFloat(string(got), 64)
		if err != nil || back != tt.f || math.Signbit(back) != math.Signbit(tt.f) {
			t.Errorf("EncodeJSON(%v) = %s does not read back (%v, %v)", tt.f, got, back, err)
		}
	}
	got, err := EncodeJSON(starlark.NewList([]starlark.Value{starlark.Float(2), starlark.MakeInt(2)}), 0)
	if err != nil || string(got) != "[2.0,2]" {
		t.Errorf("EncodeJSON([2.0, 2]) = %s, %v, want [2.0,2] (ints stay ints)", got, err)
	}
}

func FuzzPythonFloat(f *testing.F) {
	for _, s := range []float64{0, 1, 1796599287.229248, 1e16, 1e-5, 0.0001, math.MaxFloat64, 5e-324} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, x float64) {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return
		}
		got := string(appendPythonFloat(nil, x))
		back, err := strconv.ParseFloat(got, 64)
		if err != nil || back != x {
			t.Fatalf("appendPythonFloat(%v) = %q, reads back as %v, %v", x, got, back, err)
		}
	})
}
