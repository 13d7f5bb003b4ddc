package secrets

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/kailash-gateway/kgw/store"
)

func testRecord(t *testing.T, key MasterKey, name string, version int32, plaintext string) *store.SecretRecord {
	t.Helper()
	rec := &store.SecretRecord{
		Name:         name,
		Version:      version,
		ExpireTime:   time.Date(2031, 1, 2, 3, 4, 5, 6000, time.UTC),
		AllowedHosts: []string{"db.example.com", "*.internal.example"},
	}
	sealRecord(key, rec, []byte(plaintext))
	return rec
}

func TestSealOpenRoundTrip(t *testing.T) {
	key := NewMasterKey()
	for _, pt := range []string{"", "{}", `{"password":"hunter2-hunter2"}`, string(bytes.Repeat([]byte("x"), 70000))} {
		rec := testRecord(t, key, "db_creds", 3, pt)
		if len(rec.WrappedKey) != wrappedKeySize {
			t.Errorf("len(WrappedKey) = %d, want %d", len(rec.WrappedKey), wrappedKeySize)
		}
		if pt != "" && bytes.Contains(rec.Ciphertext, []byte(pt)) {
			t.Errorf("ciphertext contains the plaintext")
		}
		got, err := openRecord(key, rec)
		if err != nil {
			t.Fatalf("openRecord() error = %v", err)
		}
		if string(got) != pt {
			t.Errorf("openRecord() = %d bytes, want %d", len(got), len(pt))
		}
	}
}

func TestSealUsesFreshKeysAndNonces(t *testing.T) {
	key := NewMasterKey()
	a := testRecord(t, key, "s", 1, "same")
	b := testRecord(t, key, "s", 1, "same")
	if bytes.Equal(a.WrappedKey, b.WrappedKey) || bytes.Equal(a.Ciphertext, b.Ciphertext) {
		t.Errorf("two seals of the same value are equal; want fresh data keys and nonces")
	}
}

func TestOpenRejectsEveryChange(t *testing.T) {
	key := NewMasterKey()
	const pt = `{"password":"correct horse battery staple"}`
	orig := testRecord(t, key, "db_creds", 2, pt)
	clone := func() *store.SecretRecord {
		c := *orig
		c.WrappedKey = slices.Clone(orig.WrappedKey)
		c.Ciphertext = slices.Clone(orig.Ciphertext)
		c.AllowedHosts = slices.Clone(orig.AllowedHosts)
		return &c
	}
	// Every single bit flip of either sealed field.
	for i := range orig.WrappedKey {
		c := clone()
		c.WrappedKey[i] ^= 0x01
		if _, err := openRecord(key, c); !errors.Is(err, errOpen) {
			t.Fatalf("flip WrappedKey[%d]: openRecord() error = %v, want errOpen", i, err)
		}
	}
	for i := range orig.Ciphertext {
		c := clone()
		c.Ciphertext[i] ^= 0x80
		if _, err := openRecord(key, c); !errors.Is(err, errOpen) {
			t.Fatalf("flip Ciphertext[%d]: openRecord() error = %v, want errOpen", i, err)
		}
	}
	other := testRecord(t, key, "other", 2, pt)
	tests := []struct {
		name   string
		change func(*store.SecretRecord)
	}{
		{"renamed", func(r *store.SecretRecord) { r.Name = "db_creds2" }},
		{"other version", func(r *store.SecretRecord) { r.Version = 3 }},
		{"other ciphertext", func(r *store.SecretRecord) { r.Ciphertext = other.Ciphertext }},
		{"other wrapped key", func(r *store.SecretRecord) { r.WrappedKey = other.WrappedKey }},
		{"fields swapped", func(r *store.SecretRecord) { r.WrappedKey, r.Ciphertext = r.Ciphertext, r.WrappedKey }},
		{"expiry extended", func(r *store.SecretRecord) { r.ExpireTime = r.ExpireTime.Add(time.Hour) }},
		{"expiry removed", func(r *store.SecretRecord) { r.ExpireTime = time.Time{} }},
		{"host added", func(r *store.SecretRecord) { r.AllowedHosts = append(r.AllowedHosts, "evil.example") }},
		{"hosts removed", func(r *store.SecretRecord) { r.AllowedHosts = nil }},
		{"host changed", func(r *store.SecretRecord) { r.AllowedHosts[0] = "db.example.co" }},
		{"format byte", func(r *store.SecretRecord) { r.Ciphertext[0] = 2 }},
		{"truncated", func(r *store.SecretRecord) { r.Ciphertext = r.Ciphertext[:len(r.Ciphertext)-1] }},
		{"empty", func(r *store.SecretRecord) { r.Ciphertext, r.WrappedKey = nil, nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := clone()
			tt.change(c)
			if _, err := openRecord(key, c); !errors.Is(err, errOpen) {
				t.Errorf("openRecord() error = %v, want errOpen", err)
			}
		})
	}
	if _, err := openRecord(NewMasterKey(), clone()); !errors.Is(err, errOpen) {
		t.Errorf("openRecord(other key) error = %v, want errOpen", err)
	}
	// Unchanged, it still opens.
	if _, err := openRecord(key, clone()); err != nil {
		t.Errorf("openRecord(unchanged) error = %v", err)
	}
}

func TestExpireTimeZeroAndEpochAgree(t *testing.T) {
	// Backends may give "never" back as the zero time or as the Unix epoch.
	key := NewMasterKey()
	rec := &store.SecretRecord{Name: "s", Version: 1}
	sealRecord(key, rec, []byte("{}"))
	rec.ExpireTime = time.Unix(0, 0)
	if _, err := openRecord(key, rec); err != nil {
		t.Errorf("openRecord(expire = epoch) error = %v", err)
	}
}

func TestRewrapDataKey(t *testing.T) {
	oldKey, newKey := NewMasterKey(), NewMasterKey()
	rec := testRecord(t, oldKey, "s", 7, "value")
	w, err := rewrapDataKey(oldKey, newKey, rec.Name, rec.Version, rec.WrappedKey)
	if err != nil {
		t.Fatalf("rewrapDataKey() error = %v", err)
	}
	rec.WrappedKey = w
	if got, err := openRecord(newKey, rec); err != nil || string(got) != "value" {
		t.Errorf("openRecord(new key) = %q, %v; want the value", got, err)
	}
	if _, err := openRecord(oldKey, rec); !errors.Is(err, errOpen) {
		t.Errorf("openRecord(old key) error = %v, want errOpen", err)
	}
	if _, err := rewrapDataKey(oldKey, newKey, "t", 7, w); !errors.Is(err, errOpen) {
		t.Errorf("rewrapDataKey(wrong name) error = %v, want errOpen", err)
	}
}

func TestKeyCheck(t *testing.T) {
	key := NewMasterKey()
	kc := newKeyCheck(key)
	if err := verifyKeyCheck(key, kc); err != nil {
		t.Errorf("verifyKeyCheck(same key) = %v", err)
	}
	if err := verifyKeyCheck(NewMasterKey(), kc); !errors.Is(err, ErrWrongMasterKey) {
		t.Errorf("verifyKeyCheck(other key) = %v, want ErrWrongMasterKey", err)
	}
	// A wrapped data key is not a key check value, even though the same key sealed it.
	rec := testRecord(t, key, "s", 1, "v")
	if err := verifyKeyCheck(key, rec.WrappedKey); !errors.Is(err, ErrWrongMasterKey) {
		t.Errorf("verifyKeyCheck(wrapped key) = %v, want ErrWrongMasterKey", err)
	}
}

// FuzzOpen feeds arbitrary records to the envelope decoder: it must never
// panic, and must fail with errOpen on anything but an authentic record.
func FuzzOpen(f *testing.F) {
	key := MasterKey{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32}
	valid := &store.SecretRecord{Name: "db_creds", Version: 1, AllowedHosts: []string{"db.example.com"}}
	const plaintext = `{"password":"p4ssw0rd"}`
	sealRecord(key, valid, []byte(plaintext))
	f.Add("db_creds", int32(1), "db.example.com", valid.WrappedKey, valid.Ciphertext)
	f.Add("db_creds", int32(2), "db.example.com", valid.WrappedKey, valid.Ciphertext)
	f.Add("", int32(0), "", []byte{}, []byte{})
	f.Add("x", int32(-1), "", []byte{1}, []byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add("db_creds", int32(1), "db.example.com", valid.Ciphertext, valid.WrappedKey)
	f.Fuzz(func(t *testing.T, name string, version int32, host string, wrapped, ciphertext []byte) {
		rec := &store.SecretRecord{Name: name, Version: version, AllowedHosts: []string{host}, WrappedKey: wrapped, Ciphertext: ciphertext}
		pt, err := openRecord(key, rec)
		if err == nil {
			// Only a record sealed by us opens (fuzz workers reseal the seed
			// with fresh nonces, so compare what it holds, not its bytes).
			if name != valid.Name || version != valid.Version || host != valid.AllowedHosts[0] || string(pt) != plaintext {
				t.Fatalf("openRecord(%q, %d, %q) opened an altered record", name, version, host)
			}
			if _, err := decodeValue(pt); err != nil {
				t.Fatalf("decodeValue(valid record) error = %v", err)
			}
		} else if !errors.Is(err, errOpen) {
			t.Fatalf("openRecord() error = %v, want errOpen", err)
		}
		_ = verifyKeyCheck(key, ciphertext) // must not panic either
		_, _ = decodeValue(ciphertext)      // nor the value decoder
	})
}
