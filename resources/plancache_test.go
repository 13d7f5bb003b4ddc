package resources

import (
	"fmt"
	"testing"
	"time"

	"github.com/kailash-gateway/kgw/secrets"
	"github.com/kailash-gateway/kgw/store"
)

// TestFingerprintDistinct checks that specs that differ in anything a plan
// depends on have different fingerprints, and that equal specs (whatever
// their map order) have the same one.
func TestFingerprintDistinct(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	type input struct {
		spec     store.ResourceSpec
		resolved *secrets.Resolved
	}
	db := func(cfg map[string]any) store.ResourceSpec { return store.ResourceSpec{Type: "database", Config: cfg} }
	many := map[string]any{}
	for i := range 40 {
		many[fmt.Sprintf("k%02d", i)] = int64(i)
	}
	manyOther := map[string]any{}
	for i := range 40 {
		manyOther[fmt.Sprintf("k%02d", i)] = int64(i)
	}
	manyOther["k39"] = int64(0)
	inputs := []input{
		{spec: db(nil)}, // the same as an empty config
		{spec: store.ResourceSpec{Type: "cache"}},
		{spec: store.ResourceSpec{Type: "database", CredentialsKey: "x"}},
		{spec: db(map[string]any{"host": "a", "port": int64(1)})},
		{spec: db(map[string]any{"host": "a", "port": int64(2)})},
		{spec: db(map[string]any{"host": "a", "port": 1.0})},
		{spec: db(map[string]any{"host": "a", "port": "1"})},
		{spec: db(map[string]any{"host": "ab"})},
		{spec: db(map[string]any{"hos": "tab"})},
		{spec: db(map[string]any{"host": "a", "ssl": true})},
		{spec: db(map[string]any{"host": "a", "ssl": false})},
		{spec: db(map[string]any{"host": "a", "ssl": nil})},
		{spec: db(map[string]any{"hosts": []any{"a", "b"}})},
		{spec: db(map[string]any{"hosts": []any{"ab"}})},
		{spec: db(map[string]any{"hosts": []any{"b", "a"}})},
		{spec: db(map[string]any{"o": map[string]any{"a": "b"}})},
		{spec: db(map[string]any{"o": map[string]any{"ab": ""}})},
		{spec: db(many)},
		{spec: db(manyOther)},
		{spec: db(nil), resolved: &secrets.Resolved{Name: "s", Version: 1, CreateTime: created}},
		{spec: db(nil), resolved: &secrets.Resolved{Name: "s", Version: 2, CreateTime: created}},
		{spec: db(nil), resolved: &secrets.Resolved{Name: "s", Version: 1, CreateTime: created.Add(1)}},
		{spec: db(nil), resolved: &secrets.Resolved{Name: "t", Version: 1, CreateTime: created}},
	}
	seen := map[string]int{}
	for i, in := range inputs {
		fp, ok := fingerprint(nil, in.spec, in.resolved)
		if !ok {
			t.Fatalf("input %d: not cacheable", i)
		}
		if j, dup := seen[string(fp)]; dup {
			t.Errorf("inputs %d and %d have the same fingerprint", j, i)
		}
		seen[string(fp)] = i
		for range 5 { // map iteration order varies
			again, _ := fingerprint(nil, in.spec, in.resolved)
			if string(again) != string(fp) {
				t.Errorf("input %d: fingerprint changes between calls", i)
				break
			}
		}
	}
	if _, ok := fingerprint(nil, db(map[string]any{"x": struct{}{}}), nil); ok {
		t.Error("a config with an unknown value type is cacheable")
	}
}
