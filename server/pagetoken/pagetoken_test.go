package pagetoken_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/kailash-gateway/kgw/server/pagetoken"
)

func newCodec(t testing.TB, fill byte) *pagetoken.Codec {
	t.Helper()
	c, err := pagetoken.New(bytes.Repeat([]byte{fill}, 32))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func TestNewRejectsShortKey(t *testing.T) {
	if _, err := pagetoken.New(make([]byte, 16)); err == nil {
		t.Fatal("New(16-byte key) = nil error, want error")
	}
}

func TestRoundTrip(t *testing.T) {
	c := newCodec(t, 1)
	for _, cursor := range []string{"a", "hello_world", "2024-01-01T00:00:00Z|abc", strings.Repeat("x", 1024)} {
		tok, err := c.Encode(cursor, "ListExecutions", "wf", "3")
		if err != nil {
			t.Fatalf("Encode(%q): %v", cursor, err)
		}
		got, err := c.Decode(tok, "ListExecutions", "wf", "3")
		if err != nil || got != cursor {
			t.Fatalf("Decode(Encode(%q)) = %q, %v, want %q, nil", cursor, got, err, cursor)
		}
	}
}

func TestEmpty(t *testing.T) {
	c := newCodec(t, 1)
	tok, err := c.Encode("")
	if err != nil || tok != "" {
		t.Fatalf(`Encode("") = %q, %v, want "", nil`, tok, err)
	}
	cur, err := c.Decode("")
	if err != nil || cur != "" {
		t.Fatalf(`Decode("") = %q, %v, want "", nil`, cur, err)
	}
}

func TestTooLongCursor(t *testing.T) {
	c := newCodec(t, 1)
	if _, err := c.Encode(strings.Repeat("x", 1025)); err == nil {
		t.Fatal("Encode(1025-byte cursor) = nil error, want error")
	}
}

func TestRejects(t *testing.T) {
	c := newCodec(t, 1)
	tok, err := c.Encode("cursor-1", "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(tok)
	flipped := append([]byte(nil), raw...)
	flipped[20] ^= 1
	other, _ := newCodec(t, 2).Encode("cursor-1", "a", "b")

	tests := []struct {
		name  string
		token string
		bind  []string
		want  error
	}{
		{"garbage", "!!!not-base64", []string{"a", "b"}, pagetoken.ErrInvalid},
		{"flipped bit", base64.RawURLEncoding.EncodeToString(flipped), []string{"a", "b"}, pagetoken.ErrInvalid},
		{"truncated", tok[:len(tok)-4], []string{"a", "b"}, pagetoken.ErrInvalid},
		{"other key", other, []string{"a", "b"}, pagetoken.ErrInvalid},
		{"changed fields", tok, []string{"a", "c"}, pagetoken.ErrMismatch},
		{"shifted fields", tok, []string{"ab", ""}, pagetoken.ErrMismatch},
		{"huge", strings.Repeat("A", 10000), nil, pagetoken.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Decode(tt.token, tt.bind...)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode = %q, %v, want error %v", got, err, tt.want)
			}
			if !errors.Is(err, pagetoken.ErrInvalid) {
				t.Fatalf("Decode error %v does not wrap ErrInvalid", err)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	c := newCodec(f, 7)
	for _, cur := range []string{"a", "wf-1", "2024|x"} {
		tok, err := c.Encode(cur, "f")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(tok, "f")
		f.Add(tok, "g")
	}
	f.Add("", "")
	f.Add("AAAA", "x")
	f.Fuzz(func(t *testing.T, token, bind string) {
		cur, err := c.Decode(token, bind)
		if err != nil {
			if !errors.Is(err, pagetoken.ErrInvalid) {
				t.Fatalf("Decode(%q) error %v does not wrap ErrInvalid", token, err)
			}
			return
		}
		// Anything that verifies must re-encode to the same token.
		again, err := c.Encode(cur, bind)
		if err != nil || again != token {
			t.Fatalf("Encode(Decode(%q)) = %q, %v, want the same token", token, again, err)
		}
	})
}

func FuzzRoundTrip(f *testing.F) {
	c := newCodec(f, 9)
	f.Add("cursor", "a", "b")
	f.Add("x", "", "")
	f.Fuzz(func(t *testing.T, cursor, b1, b2 string) {
		tok, err := c.Encode(cursor, b1, b2)
		if err != nil {
			if len(cursor) <= 1024 {
				t.Fatalf("Encode(%q) = %v", cursor, err)
			}
			return
		}
		got, err := c.Decode(tok, b1, b2)
		if err != nil || got != cursor {
			t.Fatalf("Decode(Encode(%q)) = %q, %v", cursor, got, err)
		}
	})
}
