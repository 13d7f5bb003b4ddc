package secrets_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kailash-gateway/kgw/secrets"
)

func newTestRedactor() *secrets.Redactor {
	r := secrets.NewRedactor()
	r.Add(map[string]any{
		"user":     "postgres",    // identity field: never redacted
		"pin":      "app",         // short: whole-string matches only
		"password": "s3cr3t-pa55", // redacted everywhere
		"port":     int64(5432),   // numbers are not secrets
		"nested":   map[string]any{"token": "tok_live_abcdef", "list": []any{"list-secret", true, nil}},
		"quoted":   `he said "hi"\now`, // also redacted in its JSON/quoted form
	})
	return r
}

func TestRedactorString(t *testing.T) {
	r := newTestRedactor()
	tests := []struct {
		in, want string
	}{
		{"", ""},
		{"nothing to hide", "nothing to hide"},
		{"password=s3cr3t-pa55", "password=[REDACTED]"},
		{"s3cr3t-pa55s3cr3t-pa55", "[REDACTED][REDACTED]"},
		{"a s3cr3t-pa55 b s3cr3t-pa55 c", "a [REDACTED] b [REDACTED] c"},
		{"Bearer tok_live_abcdef", "Bearer [REDACTED]"},
		{"items: list-secret", "items: [REDACTED]"},
		{"app", "[REDACTED]"},                                 // whole string equal to a short secret
		{"happy apple app", "happy apple app"},                // but not inside other text
		{"port 5432", "port 5432"},                            // numbers are not registered
		{`{"q":"he said \"hi\"\\now"}`, `{"q":"[REDACTED]"}`}, // JSON-encoded form
		{`he said "hi"\now`, "[REDACTED]"},
	}
	for _, tt := range tests {
		if got := r.String(tt.in); got != tt.want {
			t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRedactorOverlapsLeaveNoFragment(t *testing.T) {
	r := secrets.NewRedactor()
	r.Add(map[string]any{"a": "abcdef", "b": "cdefgh"})
	got := r.String("xx abcdefgh yy")
	if got != "xx [REDACTED] yy" {
		t.Errorf("String() = %q, want %q", got, "xx [REDACTED] yy")
	}
	// Longest first: a secret containing another is redacted whole.
	r2 := secrets.NewRedactor()
	r2.Add(map[string]any{"short": "pass", "long": "password123"})
	if got := r2.String("password123 / pass"); got != "[REDACTED] / [REDACTED]" {
		t.Errorf("String() = %q", got)
	}
}

func TestRedactorValue(t *testing.T) {
	r := newTestRedactor()
	in := map[string]any{
		"dsn":     "postgres://app:s3cr3t-pa55@db/x",
		"user":    "app",
		"count":   int64(3),
		"ok":      true,
		"none":    nil,
		"ratio":   0.5,
		"list":    []any{"tok_live_abcdef", "fine", map[string]any{"deep": []any{"x list-secret y"}}},
		"headers": map[string]string{"Authorization": "Bearer tok_live_abcdef"},
		"names":   []string{"s3cr3t-pa55", "ok"},
		// A secret used as a map key is redacted too; colliding keys are kept.
		"s3cr3t-pa55":     "key was secret",
		"[REDACTED]":      "literal",
		"tok_live_abcdef": 1.0,
	}
	orig, _ := json.Marshal(in)
	got := r.Value(in)
	want := map[string]any{
		"dsn":     "postgres://app:[REDACTED]@db/x",
		"user":    "[REDACTED]",
		"count":   int64(3),
		"ok":      true,
		"none":    nil,
		"ratio":   0.5,
		"list":    []any{"[REDACTED]", "fine", map[string]any{"deep": []any{"x [REDACTED] y"}}},
		"headers": map[string]string{"Authorization": "Bearer [REDACTED]"},
		"names":   []string{"[REDACTED]", "ok"},
		// Sorted key order: "[REDACTED]" < "s3cr3t-pa55" < "tok_live_abcdef".
		"[REDACTED]":   "literal",
		"[REDACTED]#2": "key was secret",
		"[REDACTED]#3": 1.0,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Value() mismatch (-want +got):\n%s", diff)
	}
	after, _ := json.Marshal(in)
	if string(after) != string(orig) {
		t.Errorf("Value() modified its input")
	}
	for _, v := range []any{nil, int64(1), 2.5, false, struct{ X string }{"s3cr3t-pa55"}} {
		if diff := cmp.Diff(v, r.Value(v)); diff != "" {
			t.Errorf("Value(%T) changed a non-JSON-container value", v)
		}
	}
}

func TestRedactorNilAndEmpty(t *testing.T) {
	var nilR *secrets.Redactor
	if got := nilR.String("s3cr3t-pa55"); got != "s3cr3t-pa55" {
		t.Errorf("nil.String() = %q", got)
	}
	in := map[string]any{"a": "b"}
	if diff := cmp.Diff(in, nilR.Value(in)); diff != "" {
		t.Errorf("nil.Value() changed the value")
	}
	var zero secrets.Redactor
	zero.Add(map[string]any{"p": "zero-value-works"})
	if got := zero.String("x zero-value-works"); got != "x [REDACTED]" {
		t.Errorf("zero.String() = %q", got)
	}
	zero.Add(nil)
	zero.Add(map[string]any{"empty": ""})
	if got := zero.String("unchanged"); got != "unchanged" {
		t.Errorf("empty secret string changed text: %q", got)
	}
}

func TestRedactorAddString(t *testing.T) {
	r := secrets.NewRedactor()
	r.AddString("YXBwOnMzY3IzdA==")
	if got := r.String("Authorization: Basic YXBwOnMzY3IzdA=="); got != "Authorization: Basic [REDACTED]" {
		t.Errorf("String() = %q", got)
	}
}

func TestRedactorConcurrent(t *testing.T) {
	r := secrets.NewRedactor()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			secret := fmt.Sprintf("concurrent-secret-%d", i)
			r.Add(map[string]any{"v": secret})
			for range 50 {
				if got := r.String("x " + secret + " y"); strings.Contains(got, secret) {
					t.Errorf("String() = %q still contains the secret added by this goroutine", got)
					return
				}
				r.Value(map[string]any{"k": []any{secret}})
			}
		})
	}
	wg.Wait()
}

func FuzzRedactorString(f *testing.F) {
	f.Add("s3cr3t", "xx s3cr3t yy")
	f.Add("ab", "ab")
	f.Add(`q"\`, `{"a":"q\"\\"}`)
	f.Fuzz(func(t *testing.T, secret, text string) {
		r := secrets.NewRedactor()
		r.Add(map[string]any{"v": secret})
		got := r.String(text)
		// A secret made of marker characters can reappear across markers.
		markerLike := strings.ContainsAny(secret, "[]") || strings.Contains(secrets.Redacted, secret)
		if !markerLike && len(secret) >= secrets.MinRedactLen && strings.TrimSpace(secret) != "" && strings.Contains(got, secret) {
			t.Fatalf("String(%q) = %q still contains secret %q", text, got, secret)
		}
		if text == secret && secret != "" && got != secrets.Redacted {
			t.Fatalf("String(secret) = %q, want %q", got, secrets.Redacted)
		}
	})
}

func BenchmarkRedactorString(b *testing.B) {
	r := newTestRedactor()
	line := strings.Repeat("node fetched 42 rows from orders in 3ms; ", 10) + "password=s3cr3t-pa55"
	b.ReportAllocs()
	for b.Loop() {
		r.String(line)
	}
}

func BenchmarkRedactorValue(b *testing.B) {
	r := newTestRedactor()
	v := map[string]any{"rows": []any{
		map[string]any{"id": int64(1), "name": "alice", "note": "token tok_live_abcdef leaked"},
		map[string]any{"id": int64(2), "name": "bob", "note": "nothing here"},
	}}
	b.ReportAllocs()
	for b.Loop() {
		r.Value(v)
	}
}

// TestRedactorIdentityFields: identity fields (DESIGN §7) are not
// credentials and are never redacted, at any depth and in any case; every
// other string field is.
func TestRedactorIdentityFields(t *testing.T) {
	r := secrets.NewRedactor()
	r.Add(map[string]any{
		"user": "postgres", "Username": "svc-orders", "host": "db.internal", "port": "5432",
		"database": "orders", "dbname": "orders2", "db": "3", "base_url": "https://api.example.com",
		"sslmode": "verify-full", "password": "pw-Zq8xW2vK9",
		"basic":   map[string]any{"user": "alice-admin", "password": "basic-pass-77"},
		"stripe":  map[string]any{"token": "sk_live_123456", "host": "api.stripe.com"},
		"headers": map[string]string{"X-Api-Key": "hdr-key-9999", "db": "not-a-secret-db"},
		"dsn":     "postgres://postgres:pw-Zq8xW2vK9@db.internal/orders",
	})
	for _, s := range []string{"postgres", "svc-orders", "db.internal", "5432", "orders", "orders2", "3",
		"https://api.example.com", "verify-full", "alice-admin", "api.stripe.com", "not-a-secret-db"} {
		if got := r.String(s); got != s {
			t.Errorf("identity value String(%q) = %q, want it unchanged", s, got)
		}
	}
	for _, s := range []string{"pw-Zq8xW2vK9", "basic-pass-77", "sk_live_123456", "hdr-key-9999",
		"postgres://postgres:pw-Zq8xW2vK9@db.internal/orders"} {
		if got := r.String(s); got != secrets.Redacted {
			t.Errorf("credential String(%q) = %q, want %q", s, got, secrets.Redacted)
		}
	}
	if !secrets.IdentityField("DBNAME") || secrets.IdentityField("password") || secrets.IdentityField("token") {
		t.Error("IdentityField classification is wrong")
	}
}
