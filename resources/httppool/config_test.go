package httppool

import (
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	c, err := ParseConfig(map[string]any{"base_url": "https://api.example.com/v1?k=1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ in, want string }{
		{"users", "https://api.example.com/v1/users?k=1"},
		{"/users", "https://api.example.com/v1/users?k=1"},
		{"users/?a=b", "https://api.example.com/v1/users/?k=1&a=b"},
		{"", "https://api.example.com/v1?k=1"},
		{"http://other.example.com/x", "http://other.example.com/x"},
		{"//other.example.com/x", "https://other.example.com/x"},
	} {
		u, err := c.resolve(tc.in)
		if err != nil || u.String() != tc.want {
			t.Errorf("resolve(%q) = %v, %v, want %s", tc.in, u, err, tc.want)
		}
	}
	if _, err := c.resolve("file:///etc/passwd"); err == nil {
		t.Error("resolve(file URL) succeeded")
	}
}

func TestMergeCredentials(t *testing.T) {
	for _, tc := range []struct {
		name   string
		base   string
		values map[string]any
		key    string
		want   string // Authorization, or "error: <substring>"
	}{
		{"token", "https://a.example.com", map[string]any{"token": "t"}, "", "Bearer t"},
		{"api_key", "https://a.example.com", map[string]any{"api_key": "k"}, "", "Bearer k"},
		{"basic", "https://a.example.com", map[string]any{"basic": map[string]any{"user": "u", "password": "p"}}, "", "Basic dTpw"},
		{"host match", "https://api.stripe.com", map[string]any{"stripe": "s", "github": "g"}, "", "Bearer s"},
		{"key", "https://api.stripe.com", map[string]any{"stripe": "s", "github": "g"}, "github", "Bearer g"},
		{"single", "https://x.example.com", map[string]any{"only": "o"}, "", "Bearer o"},
		{"ambiguous", "https://x.example.com", map[string]any{"a1": "1", "b1": "2"}, "", "error: set credentials_key"},
		{"missing key", "https://x.example.com", map[string]any{"a": "1"}, "zz", "error: no key"},
		{"nothing usable", "https://x.example.com", map[string]any{"user": "u", "password": "p"}, "", "error: credentials_key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig(map[string]any{"base_url": tc.base})
			if err != nil {
				t.Fatal(err)
			}
			err = c.MergeCredentials(tc.values, tc.key)
			if want, ok := strings.CutPrefix(tc.want, "error: "); ok {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("MergeCredentials = %v, want error containing %q", err, want)
				}
				for _, v := range tc.values {
					if s, ok := v.(string); ok && strings.Contains(err.Error(), "\""+s+"\"") {
						t.Errorf("error %q contains a value", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.creds.Get("Authorization"); got != tc.want {
				t.Errorf("Authorization = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, m := range []map[string]any{
		{"base_url": "ftp://x"},
		{"base_url": "https://user:pw@x"},
		{"timeout": "soon"},
		{"connection_limit": int64(0)},
		{"bse_url": "https://x"},
	} {
		if _, err := ParseConfig(m); err == nil {
			t.Errorf("ParseConfig(%v) succeeded", m)
		}
	}
	c, err := ParseConfig(nil)
	if err != nil || c.Timeout != DefaultTimeout || c.ConnectionLimit != 100 || c.MaxResponseBytes != 10<<20 {
		t.Errorf("defaults = %+v, %v", c, err)
	}
}
