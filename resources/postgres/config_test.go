package postgres

import "testing"

// TestRequireAuthPolicy: the pool accepts only SCRAM (or no
// authentication) unless every attempt is TLS verified for the host name,
// or the config opts in; a require_auth in a dsn does not loosen it.
func TestRequireAuthPolicy(t *testing.T) {
	tests := []struct {
		name string
		cfg  map[string]any
		dsn  string
		want string
	}{
		{"default", map[string]any{"host": "db.internal"}, "", scramOnly},
		{"disable", map[string]any{"host": "db.internal", "sslmode": "disable"}, "", scramOnly},
		{"prefer", map[string]any{"host": "db.internal", "sslmode": "prefer"}, "", scramOnly},
		{"require", map[string]any{"host": "db.internal", "sslmode": "require"}, "", scramOnly},
		{"verify-ca", map[string]any{"host": "db.internal", "sslmode": "verify-ca"}, "", scramOnly},
		{"verify-full", map[string]any{"host": "db.internal", "sslmode": "verify-full"}, "", ""},
		{"opt in", map[string]any{"host": "db.internal", "insecure_password_auth": true}, "", ""},
		{"dsn asks for password", map[string]any{}, "postgres://u:p@db.internal/x?require_auth=password,md5", scramOnly},
		{"dsn verify-full", map[string]any{}, "postgres://u:p@db.internal/x?sslmode=verify-full", ""},
		{"dsn verify-full two hosts", map[string]any{}, "host=a.internal,b.internal sslmode=verify-full user=u password=p", ""},
		{"dsn require two hosts", map[string]any{}, "host=a.internal,b.internal sslmode=require user=u password=p", scramOnly},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if tt.dsn != "" {
				if err := c.MergeCredentials(map[string]any{"dsn": tt.dsn}); err != nil {
					t.Fatal(err)
				}
			}
			pc, err := c.poolConfig()
			if err != nil {
				t.Fatal(err)
			}
			if got := pc.ConnConfig.RequireAuth; got != tt.want {
				t.Errorf("RequireAuth = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestHostsEveryDialTarget: Hosts lists every host:port pgx would dial.
func TestHostsEveryDialTarget(t *testing.T) {
	tests := []struct {
		dsn  string
		want []string
	}{
		{"postgres://u:p@a.internal:5433,b.internal/x?sslmode=disable", []string{"a.internal:5433", "b.internal:5432"}},
		{"host=a.internal,b.internal port=1,2 user=u sslmode=prefer", []string{"a.internal:1", "b.internal:2"}},
		{"host=/var/run/postgresql,c.internal user=u sslmode=disable", []string{"/var/run/postgresql", "c.internal:5432"}},
		{"postgres://u@a.internal/x?host=c.internal&sslmode=disable", []string{"c.internal:5432"}},
		{"host=::1 port=6543 user=u sslmode=disable", []string{"[::1]:6543"}},
	}
	for _, tt := range tests {
		c, err := ParseConfig(map[string]any{})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.MergeCredentials(map[string]any{"dsn": tt.dsn}); err != nil {
			t.Fatalf("%s: %v", tt.dsn, err)
		}
		got := c.Hosts()
		if len(got) != len(tt.want) {
			t.Errorf("Hosts(%s) = %q, want %q", tt.dsn, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("Hosts(%s) = %q, want %q", tt.dsn, got, tt.want)
				break
			}
		}
	}
	c, _ := ParseConfig(map[string]any{"host": "db.internal", "port": 6000})
	if got := c.Hosts(); len(got) != 1 || got[0] != "db.internal:6000" {
		t.Errorf("Hosts() = %q", got)
	}
}
