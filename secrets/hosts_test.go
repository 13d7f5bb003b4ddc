package secrets_test

import (
	"testing"

	"github.com/kailash-gateway/kgw/secrets"
)

func TestHostAllowed(t *testing.T) {
	tests := []struct {
		name     string
		patterns []string
		host     string
		want     bool
	}{
		{"empty list allows any", nil, "anything.example", true},
		{"empty list allows IP", []string{}, "10.1.2.3", true},
		{"exact", []string{"db.example.com"}, "db.example.com", true},
		{"exact other host", []string{"db.example.com"}, "db2.example.com", false},
		{"exact no subdomain", []string{"example.com"}, "db.example.com", false},
		{"exact suffix trick", []string{"example.com"}, "evilexample.com", false},
		{"case insensitive host", []string{"db.example.com"}, "DB.Example.COM", true},
		{"case insensitive pattern", []string{"DB.EXAMPLE.com"}, "db.example.com", true},
		{"trailing dot host", []string{"db.example.com"}, "db.example.com.", true},
		{"trailing dot pattern", []string{"db.example.com."}, "db.example.com", true},
		{"host with port", []string{"db.example.com"}, "db.example.com:5432", true},
		{"wildcard one label", []string{"*.example.com"}, "db.example.com", true},
		{"wildcard two labels", []string{"*.example.com"}, "a.b.example.com", true},
		{"wildcard not apex", []string{"*.example.com"}, "example.com", false},
		{"wildcard suffix trick", []string{"*.example.com"}, "evilexample.com", false},
		{"wildcard other domain", []string{"*.example.com"}, "example.com.evil.org", false},
		{"wildcard empty label", []string{"*.example.com"}, ".example.com", false},
		{"ipv4", []string{"10.0.0.5"}, "10.0.0.5", true},
		{"ipv4 other", []string{"10.0.0.5"}, "10.0.0.6", false},
		{"ipv4 with port", []string{"127.0.0.1"}, "127.0.0.1:6379", true},
		{"ipv6", []string{"::1"}, "::1", true},
		{"ipv6 long form", []string{"::1"}, "0:0:0:0:0:0:0:1", true},
		{"ipv6 brackets and port", []string{"::1"}, "[::1]:5432", true},
		{"ipv6 bracketed pattern", []string{"[2001:db8::1]"}, "2001:DB8::1", true},
		{"ipv4-mapped ipv6", []string{"10.0.0.5"}, "::ffff:10.0.0.5", true},
		{"wildcard never matches IP", []string{"*.0.0.1"}, "127.0.0.1", false},
		{"name does not match IP", []string{"localhost"}, "127.0.0.1", false},
		{"IP does not match name", []string{"127.0.0.1"}, "localhost", false},
		{"empty host", []string{"db.example.com"}, "", false},
		{"second pattern", []string{"a.example.com", "*.corp.example"}, "x.corp.example", true},
		{"empty pattern ignored", []string{""}, "db.example.com", false},
		// Ports: a pattern with a port allows only that port.
		{"port pattern same port", []string{"db.internal:5432"}, "db.internal:5432", true},
		{"port pattern other port", []string{"db.internal:5432"}, "db.internal:5433", false},
		{"port pattern host without port", []string{"db.internal:5432"}, "db.internal", false},
		{"port pattern leading zero", []string{"db.internal:5432"}, "db.internal:05432", false},
		{"wildcard with port", []string{"*.internal:6379"}, "a.internal:6379", true},
		{"wildcard with other port", []string{"*.internal:6379"}, "a.internal:6380", false},
		{"ipv6 port pattern", []string{"[::1]:5432"}, "[::1]:5432", true},
		{"ipv6 port pattern long form", []string{"[::1]:5432"}, "[0:0:0:0:0:0:0:1]:5432", true},
		{"ipv6 port pattern other port", []string{"[::1]:5432"}, "[::1]:5433", false},
		{"ipv6 port pattern bare host", []string{"[::1]:5432"}, "::1", false},
		{"ipv4 port pattern", []string{"127.0.0.1:6379"}, "127.0.0.1:6379", true},
		{"ipv4 port pattern mapped", []string{"127.0.0.1:6379"}, "[::ffff:127.0.0.1]:6379", true},
		{"ipv4 port pattern other", []string{"127.0.0.1:6379"}, "127.0.0.1:6380", false},
		{"one of two port patterns", []string{"db:5432", "db:5433"}, "db:5433", true},
		{"bad port in host", []string{"db.internal"}, "db.internal:99999", false},
		// Hosts that are not a name or an address never match.
		{"host list", []string{"*.example.com"}, "127.0.0.1,/x/a.example.com", false},
		{"unix socket dir", []string{"*.example.com"}, "/x/a.example.com", false},
		{"unix socket dir exact", []string{"a.example.com"}, "/a.example.com", false},
		{"list of names", []string{"*.example.com"}, "a.example.com,b.example.com", false},
		{"space in host", []string{"*.example.com"}, "a b.example.com", false},
		{"slash in host", []string{"*.example.com"}, "evil.org/a.example.com", false},
		{"at in host", []string{"*.example.com"}, "evil.org@a.example.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := secrets.HostAllowed(tt.patterns, tt.host); got != tt.want {
				t.Errorf("HostAllowed(%q, %q) = %v, want %v", tt.patterns, tt.host, got, tt.want)
			}
		})
	}
}

func FuzzHostAllowed(f *testing.F) {
	f.Add("*.example.com", "a.example.com")
	f.Add("::1", "[::1]:80")
	f.Add("10.0.0.1", "::ffff:10.0.0.1")
	f.Fuzz(func(t *testing.T, pattern, host string) {
		got := secrets.HostAllowed([]string{pattern}, host)
		if got && host == "" {
			t.Fatalf("HostAllowed(%q, \"\") = true", pattern)
		}
		if !secrets.HostAllowed(nil, host) {
			t.Fatalf("HostAllowed(nil, %q) = false", host)
		}
	})
}
