package resources_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/kailash-gateway/kgw/resources"
	"github.com/kailash-gateway/kgw/resources/httppool"
	"github.com/kailash-gateway/kgw/resources/postgres"
	"github.com/kailash-gateway/kgw/resources/redis"
	"github.com/kailash-gateway/kgw/store"
)

// ParseConfig returns each type's own config, the backend's error for a
// bad config, and ErrUnknownType for a missing or unknown type.
func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		typ    string
		config map[string]any
		want   any
	}{
		{resources.TypeDatabase, map[string]any{"host": "127.0.0.1", "database": "app"}, postgres.Config{}},
		{resources.TypeCache, map[string]any{"host": "127.0.0.1"}, redis.Config{}},
		{resources.TypeHTTPClient, map[string]any{"base_url": "http://127.0.0.1:1"}, httppool.Config{}},
	} {
		c, err := resources.ParseConfig(tc.typ, tc.config)
		if err != nil {
			t.Errorf("%s: %v", tc.typ, err)
			continue
		}
		if got, want := typeName(c), typeName(tc.want); got != want {
			t.Errorf("%s: config of type %s, want %s", tc.typ, got, want)
		}
		_, err = resources.ParseConfig(tc.typ, map[string]any{"no_such_key": 1})
		if err == nil || errors.Is(err, resources.ErrUnknownType) || !strings.Contains(err.Error(), "no_such_key") {
			t.Errorf("%s with an unknown key: error %v, want the backend's, naming the key", tc.typ, err)
		}
	}
	for _, typ := range []string{"", "queue"} {
		if _, err := resources.ParseConfig(typ, nil); !errors.Is(err, resources.ErrUnknownType) || !errors.Is(err, resources.ErrInvalidSpec) {
			t.Errorf("type %q: error %v, want ErrUnknownType", typ, err)
		}
	}
}

func typeName(v any) string {
	switch v.(type) {
	case postgres.Config:
		return "postgres.Config"
	case redis.Config:
		return "redis.Config"
	case httppool.Config:
		return "httppool.Config"
	}
	return "other"
}

// The broker's planner parses with ParseConfig: a spec it refuses gives
// ParseConfig's error (its message, ErrUnknownType for the type), under
// the resource's name.
func TestPlannerUsesParseConfig(t *testing.T) {
	b := resources.NewBroker(resources.Config{})
	defer b.Close()
	for _, spec := range []store.ResourceSpec{
		{Type: ""},
		{Type: "queue"},
		{Type: resources.TypeDatabase, Config: map[string]any{"no_such_key": 1}},
		{Type: resources.TypeCache, Config: map[string]any{"port": "x"}},
		{Type: resources.TypeHTTPClient, Config: map[string]any{"base_url": 7}},
	} {
		_, parseErr := resources.ParseConfig(spec.Type, spec.Config)
		if parseErr == nil {
			t.Fatalf("ParseConfig(%+v) accepted it", spec)
		}
		err := b.Check(t.Context(), spec)
		if err == nil || !strings.HasPrefix(err.Error(), "resource 'check': "+parseErr.Error()) {
			t.Errorf("Check(%+v) = %v, want %q first", spec, err, "resource 'check': "+parseErr.Error())
		}
		if !errors.Is(err, resources.ErrInvalidSpec) || errors.Is(err, resources.ErrUnknownType) != errors.Is(parseErr, resources.ErrUnknownType) {
			t.Errorf("Check(%+v) = %v: wraps ErrInvalidSpec %v, ErrUnknownType %v", spec, err,
				errors.Is(err, resources.ErrInvalidSpec), errors.Is(err, resources.ErrUnknownType))
		}
	}
}
