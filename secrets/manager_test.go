package secrets_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/kailash-gateway/kgw/secrets"
	"github.com/kailash-gateway/kgw/store"
)

// A backend opens a fresh, empty store of one kind for one test.
type backend struct {
	name string
	// open returns a new empty store, closed at test cleanup.
	open func(t *testing.T) store.Store
	// raw returns every byte the backend keeps for st, as it lies at rest
	// (files) or as the database returns it (rows as text).
	raw func(t *testing.T, st store.Store) []byte
}

// Distinctive values, so that finding them anywhere is a leak.
const (
	secretPassword = "pw-Zq8xW2vK9-not-for-anyone"
	secretToken    = "tok_live_4f9a1c2e7b6d"
	secretShort    = "abc"
)

func secretValue() map[string]any {
	return map[string]any{
		"user":     "app_user",
		"password": secretPassword,
		"port":     int64(5432),
		"ratio":    0.25,
		"tls":      true,
		"extra":    map[string]any{"token": secretToken, "list": []any{"one", int64(2), nil}},
		"pin":      secretShort,
	}
}

// clock is a settable time source for Options.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newManager(t *testing.T, st store.Store, key secrets.MasterKey, opts secrets.Options) *secrets.Manager {
	t.Helper()
	m, err := secrets.NewManager(t.Context(), st, key, opts)
	if err != nil {
		t.Fatalf("NewManager() error = %v", err)
	}
	return m
}

func mustStore(t *testing.T, m *secrets.Manager, req secrets.StoreRequest) *secrets.Metadata {
	t.Helper()
	md, err := m.Store(t.Context(), req)
	if err != nil {
		t.Fatalf("Store(%q) error = %v", req.Name, err)
	}
	return md
}

// assertNoSecret fails if s contains any of the test's secret values.
func assertNoSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, v := range []string{secretPassword, secretToken} {
		if strings.Contains(s, v) {
			t.Errorf("%s contains a secret value: %q", what, s)
		}
	}
}

// replaceRecord rewrites a stored record through the store API, the way an
// attacker with database access could.
func replaceRecord(t *testing.T, st store.Store, rec *store.SecretRecord) {
	t.Helper()
	if err := st.DeleteSecret(t.Context(), rec.Name); err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DeleteSecret(%q) error = %v", rec.Name, err)
	}
	if err := st.InsertSecretVersion(t.Context(), rec); err != nil {
		t.Fatalf("InsertSecretVersion(%q) error = %v", rec.Name, err)
	}
}

func getRecord(t *testing.T, st store.Store, name string, version int32) *store.SecretRecord {
	t.Helper()
	rec, err := st.GetSecret(t.Context(), name, version)
	if err != nil {
		t.Fatalf("GetSecret(%q, %d) error = %v", name, version, err)
	}
	c := *rec
	c.WrappedKey = slices.Clone(rec.WrappedKey)
	c.Ciphertext = slices.Clone(rec.Ciphertext)
	return &c
}

func runManagerTests(t *testing.T, b backend) {
	t.Run("StoreGetListDelete", func(t *testing.T) { testStoreGetListDelete(t, b) })
	t.Run("Validation", func(t *testing.T) { testValidation(t, b) })
	t.Run("Resolve", func(t *testing.T) { testResolve(t, b) })
	t.Run("Expiry", func(t *testing.T) { testExpiry(t, b) })
	t.Run("Cache", func(t *testing.T) { testCache(t, b) })
	t.Run("Tamper", func(t *testing.T) { testTamper(t, b) })
	t.Run("WrongMasterKey", func(t *testing.T) { testWrongMasterKey(t, b) })
	t.Run("Rotation", func(t *testing.T) { testRotation(t, b) })
	t.Run("ConcurrentStore", func(t *testing.T) { testConcurrentStore(t, b) })
	t.Run("AtRest", func(t *testing.T) { testAtRest(t, b) })
}

func testStoreGetListDelete(t *testing.T, b backend) {
	ctx := t.Context()
	clk := newClock()
	m := newManager(t, b.open(t), secrets.NewMasterKey(), secrets.Options{Now: clk.Now})

	md := mustStore(t, m, secrets.StoreRequest{
		Name:         "db_creds",
		Value:        secretValue(),
		Description:  "orders database",
		AllowedHosts: []string{"DB.Example.com.", "*.internal.example", "10.0.0.5", "db.example.com"},
		TTL:          time.Hour,
	})
	want := &secrets.Metadata{
		Name:         "db_creds",
		Version:      1,
		Keys:         []string{"extra", "password", "pin", "port", "ratio", "tls", "user"},
		Description:  "orders database",
		CreateTime:   clk.Now(),
		ExpireTime:   clk.Now().Add(time.Hour),
		AllowedHosts: []string{"db.example.com", "*.internal.example", "10.0.0.5"},
	}
	if diff := cmp.Diff(want, md); diff != "" {
		t.Errorf("Store() metadata mismatch (-want +got):\n%s", diff)
	}
	assertNoSecret(t, "metadata", fmt.Sprintf("%#v", md))

	clk.Advance(time.Minute)
	md2 := mustStore(t, m, secrets.StoreRequest{Name: "db_creds", Value: map[string]any{"password": "second"}})
	if md2.Version != 2 {
		t.Errorf("second Store() version = %d, want 2", md2.Version)
	}
	mustStore(t, m, secrets.StoreRequest{Name: "api.key-1", Value: map[string]any{"token": secretToken}})

	got, err := m.Get(ctx, "db_creds")
	if err != nil {
		t.Fatalf("Get() error = %v", err)
	}
	wantLatest := &secrets.Metadata{Name: "db_creds", Version: 2, Keys: []string{"password"}, CreateTime: clk.Now()}
	if diff := cmp.Diff(wantLatest, got, cmp.Comparer(sameInstantOrEmpty), cmp.Comparer(sameStrings)); diff != "" {
		t.Errorf("Get() mismatch (-want +got):\n%s", diff)
	}

	if diff := cmp.Diff([]string{"api.key-1@1", "db_creds@2"}, listAll(t, m)); diff != "" {
		t.Errorf("List() names mismatch (-want +got):\n%s", diff)
	}

	if err := m.Delete(ctx, "db_creds"); err != nil {
		t.Fatalf("Delete() error = %v", err)
	}
	checkDeleted(t, m, "db_creds")
	// A deleted name starts again at version 1.
	if md := mustStore(t, m, secrets.StoreRequest{Name: "db_creds", Value: map[string]any{"a": "b"}}); md.Version != 1 {
		t.Errorf("Store(after delete) version = %d, want 1", md.Version)
	}
}

// listAll lists the secrets of m a page of one at a time, as
// "name@version", checking that no listed metadata holds a secret.
func listAll(t *testing.T, m *secrets.Manager) []string {
	t.Helper()
	var names []string
	page := store.Page{Limit: 1}
	for {
		mds, next, err := m.List(t.Context(), page)
		if err != nil {
			t.Fatalf("List() error = %v", err)
		}
		for _, md := range mds {
			names = append(names, fmt.Sprintf("%s@%d", md.Name, md.Version))
			assertNoSecret(t, "listed metadata", fmt.Sprintf("%#v", md))
		}
		if next == "" {
			return names
		}
		page.After = next
	}
}

// checkDeleted checks that Get, Resolve and Delete of the deleted secret
// name fail with store.ErrNotFound and a message naming it.
func checkDeleted(t *testing.T, m *secrets.Manager, name string) {
	t.Helper()
	ctx := t.Context()
	for _, op := range []struct {
		name string
		call func() error
	}{
		{"Get", func() error { _, err := m.Get(ctx, name); return err }},
		{"Resolve", func() error { _, err := m.Resolve(ctx, name); return err }},
		{"Delete", func() error { return m.Delete(ctx, name) }},
	} {
		err := op.call()
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s(deleted) error = %v, want store.ErrNotFound", op.name, err)
		} else if want := "secret '" + name + "' not found"; err.Error() != want {
			t.Errorf("%s(deleted) error = %q, want %q", op.name, err, want)
		}
	}
}

// sameInstantOrEmpty compares times by instant (backends may change the
// location).
func sameInstantOrEmpty(a, b time.Time) bool { return a.Equal(b) }

// sameStrings treats nil and empty string slices as equal.
func sameStrings(a, b []string) bool { return len(a) == 0 && len(b) == 0 || slices.Equal(a, b) }

func testValidation(t *testing.T, b backend) {
	clk := newClock()
	m := newManager(t, b.open(t), secrets.NewMasterKey(), secrets.Options{Now: clk.Now})
	good := func() secrets.StoreRequest {
		return secrets.StoreRequest{Name: "ok", Value: map[string]any{"password": secretPassword, "token": secretToken}}
	}
	tests := []struct {
		name   string
		change func(*secrets.StoreRequest)
		fields []string
	}{
		{"empty name", func(r *secrets.StoreRequest) { r.Name = "" }, []string{"name"}},
		{"name leading dot", func(r *secrets.StoreRequest) { r.Name = ".x" }, []string{"name"}},
		{"name with slash", func(r *secrets.StoreRequest) { r.Name = "a/b" }, []string{"name"}},
		{"name too long", func(r *secrets.StoreRequest) { r.Name = strings.Repeat("a", 129) }, []string{"name"}},
		{"name is the password", func(r *secrets.StoreRequest) { r.Name = secretPassword + "/" }, []string{"name"}},
		{"no value", func(r *secrets.StoreRequest) { r.Value = nil }, []string{"value"}},
		{"empty field name", func(r *secrets.StoreRequest) { r.Value[""] = secretPassword }, []string{"value"}},
		{"not JSON", func(r *secrets.StoreRequest) { r.Value["bad"] = func() {} }, []string{"value"}},
		{"too large", func(r *secrets.StoreRequest) { r.Value["big"] = strings.Repeat(secretPassword, 5000) }, []string{"value"}},
		{"ttl and expire_time", func(r *secrets.StoreRequest) { r.TTL = time.Hour; r.ExpireTime = clk.Now().Add(time.Hour) }, []string{"ttl"}},
		{"negative ttl", func(r *secrets.StoreRequest) { r.TTL = -time.Second }, []string{"ttl"}},
		{"expire in the past", func(r *secrets.StoreRequest) { r.ExpireTime = clk.Now().Add(-time.Second) }, []string{"expire_time"}},
		{"expire now", func(r *secrets.StoreRequest) { r.ExpireTime = clk.Now() }, []string{"expire_time"}},
		{"long description", func(r *secrets.StoreRequest) { r.Description = strings.Repeat("d", 1025) }, []string{"description"}},
		{"bad hosts", func(r *secrets.StoreRequest) {
			r.AllowedHosts = []string{"ok.example", "*", "db.example.com:0", "a.*.example", "*.com", "-bad.example", "https://x.example", "", " x.example", "fe80::1%eth0"}
		}, []string{"allowed_hosts[1]", "allowed_hosts[2]", "allowed_hosts[3]", "allowed_hosts[4]", "allowed_hosts[5]", "allowed_hosts[6]", "allowed_hosts[7]", "allowed_hosts[8]", "allowed_hosts[9]"}},
		{"password as host", func(r *secrets.StoreRequest) {
			r.AllowedHosts = []string{secretPassword + ":99999", "x:" + secretPassword}
		}, []string{"allowed_hosts[0]", "allowed_hosts[1]"}},
		{"several at once", func(r *secrets.StoreRequest) { r.Name = "-"; r.Value = map[string]any{}; r.TTL = -1 }, []string{"name", "value", "ttl"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := good()
			tt.change(&req)
			_, err := m.Store(t.Context(), req)
			var verr *secrets.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("Store() error = %v, want *ValidationError", err)
			}
			var fields []string
			for _, v := range verr.Violations {
				fields = append(fields, v.Field)
				if v.Description == "" {
					t.Errorf("violation of %s has no description", v.Field)
				}
			}
			if diff := cmp.Diff(tt.fields, fields); diff != "" {
				t.Errorf("violated fields mismatch (-want +got):\n%s", diff)
			}
			assertNoSecret(t, "validation error", err.Error())
		})
	}
	if _, err := m.Get(t.Context(), "ok"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after only invalid requests, Get() error = %v, want not found", err)
	}
	for _, name := range []string{"", "a b", strings.Repeat("x", 200)} {
		var verr *secrets.ValidationError
		if _, err := m.Get(t.Context(), name); !errors.As(err, &verr) {
			t.Errorf("Get(%q) error = %v, want *ValidationError", name, err)
		}
		if _, err := m.Resolve(t.Context(), name); !errors.As(err, &verr) {
			t.Errorf("Resolve(%q) error = %v, want *ValidationError", name, err)
		}
		if err := m.Delete(t.Context(), name); !errors.As(err, &verr) {
			t.Errorf("Delete(%q) error = %v, want *ValidationError", name, err)
		}
	}
}

func testResolve(t *testing.T, b backend) {
	m := newManager(t, b.open(t), secrets.NewMasterKey(), secrets.Options{CacheTTL: -1})
	mustStore(t, m, secrets.StoreRequest{Name: "db", Value: secretValue(), AllowedHosts: []string{"db.example.com"}})
	r, err := m.Resolve(t.Context(), "db")
	if err != nil {
		t.Fatalf("Resolve() error = %v", err)
	}
	want := &secrets.Resolved{Name: "db", Version: 1, Values: secretValue(), AllowedHosts: []string{"db.example.com"}}
	if diff := cmp.Diff(want, r, cmp.Comparer(sameInstantOrEmpty), cmpIgnoreCreateTime()); diff != "" {
		t.Errorf("Resolve() mismatch (-want +got):\n%s", diff)
	}
	if r.CreateTime.IsZero() {
		t.Errorf("Resolve() CreateTime is zero")
	}
	mustStore(t, m, secrets.StoreRequest{Name: "db", Value: map[string]any{"password": "v2"}})
	r, err = m.Resolve(t.Context(), "db")
	if err != nil || r.Version != 2 || r.Values["password"] != "v2" {
		t.Errorf("Resolve() after second Store = %+v, %v; want version 2", r, err)
	}
}

func cmpIgnoreCreateTime() cmp.Option {
	return cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".CreateTime" }, cmp.Ignore())
}

func testExpiry(t *testing.T, b backend) {
	clk := newClock()
	m := newManager(t, b.open(t), secrets.NewMasterKey(), secrets.Options{Now: clk.Now, CacheTTL: time.Hour})
	mustStore(t, m, secrets.StoreRequest{Name: "ttl", Value: map[string]any{"password": secretPassword}, TTL: 90 * time.Second})
	abs := clk.Now().Add(time.Hour)
	mustStore(t, m, secrets.StoreRequest{Name: "abs", Value: map[string]any{"password": secretPassword}, ExpireTime: abs})

	if _, err := m.Resolve(t.Context(), "ttl"); err != nil {
		t.Fatalf("Resolve(before expiry) error = %v", err)
	}
	clk.Advance(90 * time.Second) // exactly at the expiry: expired; the cache must not hide it
	_, err := m.Resolve(t.Context(), "ttl")
	wantMsg := "secret 'ttl' expired at 2030-01-02T03:05:35Z"
	if !errors.Is(err, secrets.ErrExpired) || err.Error() != wantMsg {
		t.Errorf("Resolve(expired) error = %v, want %q (ErrExpired)", err, wantMsg)
	}
	if _, err := m.Resolve(t.Context(), "abs"); err != nil {
		t.Errorf("Resolve(abs, before expiry) error = %v", err)
	}
	clk.Advance(2 * time.Hour)
	_, err = m.Resolve(t.Context(), "abs")
	if !errors.Is(err, secrets.ErrExpired) || !strings.Contains(err.Error(), abs.Format(time.RFC3339)) {
		t.Errorf("Resolve(abs, expired) error = %v, want ErrExpired naming %s", err, abs.Format(time.RFC3339))
	}
	// Still described.
	if md, err := m.Get(t.Context(), "abs"); err != nil || !md.ExpireTime.Equal(abs) {
		t.Errorf("Get(expired) = %+v, %v; want its metadata", md, err)
	}
	// A new version replaces the expired one.
	mustStore(t, m, secrets.StoreRequest{Name: "abs", Value: map[string]any{"password": "new"}})
	if r, err := m.Resolve(t.Context(), "abs"); err != nil || r.Version != 2 {
		t.Errorf("Resolve(renewed) = %+v, %v; want version 2", r, err)
	}
}

func testCache(t *testing.T, b backend) {
	clk := newClock()
	st := b.open(t)
	key := secrets.NewMasterKey()
	m1 := newManager(t, st, key, secrets.Options{Now: clk.Now, CacheTTL: time.Minute})
	m2 := newManager(t, st, key, secrets.Options{Now: clk.Now, CacheTTL: -1}) // another replica
	resolvePassword := func(m *secrets.Manager) any {
		t.Helper()
		r, err := m.Resolve(t.Context(), "c")
		if err != nil {
			t.Fatalf("Resolve() error = %v", err)
		}
		return r.Values["password"]
	}
	mustStore(t, m1, secrets.StoreRequest{Name: "c", Value: map[string]any{"password": "one"}})
	if got := resolvePassword(m1); got != "one" {
		t.Fatalf("Resolve() = %v, want one", got)
	}
	// Callers get copies: changing one does not change the cache.
	r, _ := m1.Resolve(t.Context(), "c")
	r.Values["password"] = "mutated"
	if got := resolvePassword(m1); got != "one" {
		t.Errorf("after mutating a result, Resolve() = %v, want one", got)
	}

	// A change made by another manager is not seen while cached...
	mustStore(t, m2, secrets.StoreRequest{Name: "c", Value: map[string]any{"password": "two"}})
	if got := resolvePassword(m1); got != "one" {
		t.Errorf("cached Resolve() = %v, want one (the cached value)", got)
	}
	// ...until the cache entry expires.
	clk.Advance(time.Minute)
	if got := resolvePassword(m1); got != "two" {
		t.Errorf("Resolve() after CacheTTL = %v, want two", got)
	}
	// A Store through the same manager invalidates at once.
	mustStore(t, m1, secrets.StoreRequest{Name: "c", Value: map[string]any{"password": "three"}})
	if got := resolvePassword(m1); got != "three" {
		t.Errorf("Resolve() after Store = %v, want three", got)
	}
	// So does a Delete.
	if err := m1.Delete(t.Context(), "c"); err != nil {
		t.Fatal(err)
	}
	if _, err := m1.Resolve(t.Context(), "c"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Resolve() after Delete error = %v, want not found", err)
	}
	// And a Rotate (which must not serve values from before it).
	mustStore(t, m1, secrets.StoreRequest{Name: "c", Value: map[string]any{"password": "four"}})
	resolvePassword(m1)
	if err := m1.Rotate(t.Context(), secrets.NewMasterKey()); err != nil {
		t.Fatalf("Rotate() error = %v", err)
	}
	if got := resolvePassword(m1); got != "four" {
		t.Errorf("Resolve() after Rotate = %v, want four", got)
	}
}

// testTamper changes stored secret records behind the manager's back:
// every change fails decryption (ErrDecrypt, a message naming the secret
// and no secret in it), and an untouched record still opens.
func testTamper(t *testing.T, b backend) {
	st := b.open(t)
	tm := &tamperer{st: st, m: newManager(t, st, secrets.NewMasterKey(), secrets.Options{CacheTTL: -1})}
	testTamperSeal(t, tm)
	testTamperBinding(t, tm)
}

// tamperer is a store and a manager over it, for testTamper.
type tamperer struct {
	st store.Store
	m  *secrets.Manager
}

// store stores a secret with password pw.
func (tm *tamperer) store(t *testing.T, name, pw string) {
	mustStore(t, tm.m, secrets.StoreRequest{Name: name, Value: map[string]any{"password": pw, "token": secretToken}})
}

// checkDecryptError checks that resolving name fails as version version
// of it cannot be decrypted.
func (tm *tamperer) checkDecryptError(t *testing.T, name string, version int32) {
	t.Helper()
	_, err := tm.m.Resolve(t.Context(), name)
	if !errors.Is(err, secrets.ErrDecrypt) {
		t.Fatalf("Resolve(%q) error = %v, want ErrDecrypt", name, err)
	}
	if want := fmt.Sprintf("secret '%s' version %d cannot be decrypted", name, version); !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Resolve(%q) error = %q, want it to start with %q", name, err, want)
	}
	assertNoSecret(t, "decrypt error", err.Error())
}

// testTamperSeal changes the sealed parts: a byte of the ciphertext or of
// the wrapped key, or swaps them between records.
func testTamperSeal(t *testing.T, tm *tamperer) {
	t.Run("flip ciphertext byte", func(t *testing.T) {
		tm.store(t, "flip_ct", secretPassword)
		rec := getRecord(t, tm.st, "flip_ct", 0)
		rec.Ciphertext[len(rec.Ciphertext)/2] ^= 0x01
		replaceRecord(t, tm.st, rec)
		tm.checkDecryptError(t, "flip_ct", 1)
	})
	t.Run("flip wrapped key byte", func(t *testing.T) {
		tm.store(t, "flip_wk", secretPassword)
		rec := getRecord(t, tm.st, "flip_wk", 0)
		rec.WrappedKey[len(rec.WrappedKey)-1] ^= 0x80
		replaceRecord(t, tm.st, rec)
		tm.checkDecryptError(t, "flip_wk", 1)
	})
	t.Run("swap ciphertexts", func(t *testing.T) {
		tm.store(t, "swap_a", secretPassword)
		tm.store(t, "swap_b", "other-password-value")
		a, bb := getRecord(t, tm.st, "swap_a", 0), getRecord(t, tm.st, "swap_b", 0)
		a.Ciphertext, bb.Ciphertext = bb.Ciphertext, a.Ciphertext
		replaceRecord(t, tm.st, a)
		replaceRecord(t, tm.st, bb)
		tm.checkDecryptError(t, "swap_a", 1)
		tm.checkDecryptError(t, "swap_b", 1)
	})
	t.Run("swap whole sealed pair", func(t *testing.T) {
		tm.store(t, "pair_a", secretPassword)
		tm.store(t, "pair_b", "other-password-value")
		a, bb := getRecord(t, tm.st, "pair_a", 0), getRecord(t, tm.st, "pair_b", 0)
		a.Ciphertext, bb.Ciphertext = bb.Ciphertext, a.Ciphertext
		a.WrappedKey, bb.WrappedKey = bb.WrappedKey, a.WrappedKey
		replaceRecord(t, tm.st, a)
		replaceRecord(t, tm.st, bb)
		tm.checkDecryptError(t, "pair_a", 1)
		tm.checkDecryptError(t, "pair_b", 1)
	})
}

// testTamperBinding changes what the seals are bound to: the name, the
// version, the allowed hosts, the expiry.
func testTamperBinding(t *testing.T, tm *tamperer) {
	t.Run("rename", func(t *testing.T) {
		tm.store(t, "original", secretPassword)
		rec := getRecord(t, tm.st, "original", 0)
		rec.Name = "renamed"
		if err := tm.st.InsertSecretVersion(t.Context(), rec); err != nil {
			t.Fatal(err)
		}
		tm.checkDecryptError(t, "renamed", 1)
	})
	t.Run("renumber", func(t *testing.T) {
		tm.store(t, "renumber", secretPassword)
		rec := getRecord(t, tm.st, "renumber", 0)
		rec.Version = 2
		if err := tm.st.InsertSecretVersion(t.Context(), rec); err != nil {
			t.Fatal(err)
		}
		tm.checkDecryptError(t, "renumber", 2)
	})
	t.Run("allowed hosts widened", func(t *testing.T) {
		mustStore(t, tm.m, secrets.StoreRequest{Name: "hosts", Value: map[string]any{"password": secretPassword}, AllowedHosts: []string{"db.example.com"}})
		rec := getRecord(t, tm.st, "hosts", 0)
		rec.AllowedHosts = []string{"db.example.com", "evil.example"}
		replaceRecord(t, tm.st, rec)
		tm.checkDecryptError(t, "hosts", 1)
	})
	t.Run("expiry extended", func(t *testing.T) {
		mustStore(t, tm.m, secrets.StoreRequest{Name: "exp", Value: map[string]any{"password": secretPassword}, TTL: time.Hour})
		rec := getRecord(t, tm.st, "exp", 0)
		rec.ExpireTime = rec.ExpireTime.Add(24 * time.Hour)
		replaceRecord(t, tm.st, rec)
		tm.checkDecryptError(t, "exp", 1)
	})
	t.Run("untouched still opens", func(t *testing.T) {
		tm.store(t, "untouched", secretPassword)
		r, err := tm.m.Resolve(t.Context(), "untouched")
		if err != nil || r.Values["password"] != secretPassword {
			t.Errorf("Resolve(untouched) = %v; want the value", err)
		}
	})
}

func testWrongMasterKey(t *testing.T, b backend) {
	st := b.open(t)
	key := secrets.NewMasterKey()
	m := newManager(t, st, key, secrets.Options{})
	mustStore(t, m, secrets.StoreRequest{Name: "s", Value: map[string]any{"password": secretPassword}})

	_, err := secrets.NewManager(t.Context(), st, secrets.NewMasterKey(), secrets.Options{})
	if !errors.Is(err, secrets.ErrWrongMasterKey) {
		t.Fatalf("NewManager(wrong key) error = %v, want ErrWrongMasterKey", err)
	}
	if !strings.Contains(err.Error(), "master key does not match the one this data was encrypted with") {
		t.Errorf("NewManager(wrong key) error = %q, want the clear message", err)
	}
	if _, err := secrets.NewManager(t.Context(), st, secrets.MasterKey{}, secrets.Options{}); err == nil {
		t.Errorf("NewManager(zero key) succeeded, want an error")
	}
	// The right key still works, and the check value was not replaced.
	m2 := newManager(t, st, key, secrets.Options{})
	if _, err := m2.Resolve(t.Context(), "s"); err != nil {
		t.Errorf("Resolve() with the right key error = %v", err)
	}
}

func testRotation(t *testing.T, b backend) {
	ctx := t.Context()
	st := b.open(t)
	k1, k2, k3 := secrets.NewMasterKey(), secrets.NewMasterKey(), secrets.NewMasterKey()
	m := newManager(t, st, k1, secrets.Options{CacheTTL: -1})
	names := []string{"a", "b", "c", "d"}
	for i, n := range names {
		for v := 0; v <= i; v++ { // several versions each
			mustStore(t, m, secrets.StoreRequest{Name: n, Value: map[string]any{"password": fmt.Sprintf("%s-%s-%d", secretPassword, n, v)}})
		}
	}
	before := map[string]*store.SecretRecord{}
	for i, n := range names {
		for v := int32(1); v <= int32(i+1); v++ {
			before[fmt.Sprint(n, v)] = getRecord(t, st, n, v)
		}
	}

	// Wrong old key: refused, nothing changes.
	if err := secrets.RotateMasterKey(ctx, st, k3, k2); !errors.Is(err, secrets.ErrWrongMasterKey) {
		t.Errorf("RotateMasterKey(wrong old key) error = %v, want ErrWrongMasterKey", err)
	}
	if err := secrets.RotateMasterKey(ctx, st, k1, k1); err == nil {
		t.Errorf("RotateMasterKey(same key) succeeded, want an error")
	}
	newManager(t, st, k1, secrets.Options{})

	if err := secrets.RotateMasterKey(ctx, st, k1, k2); err != nil {
		t.Fatalf("RotateMasterKey() error = %v", err)
	}
	checkRewrapped(t, st, names, before)
	if _, err := secrets.NewManager(ctx, st, k1, secrets.Options{}); !errors.Is(err, secrets.ErrWrongMasterKey) {
		t.Errorf("NewManager(old key) after rotation error = %v, want ErrWrongMasterKey", err)
	}
	// The stale manager (still on k1) can no longer open anything.
	for _, n := range names {
		if _, err := m.Resolve(ctx, n); !errors.Is(err, secrets.ErrDecrypt) {
			t.Errorf("old-key Resolve(%q) error = %v, want ErrDecrypt", n, err)
		}
	}
	m2 := newManager(t, st, k2, secrets.Options{CacheTTL: -1})
	for i, n := range names {
		r, err := m2.Resolve(ctx, n)
		if err != nil {
			t.Errorf("new-key Resolve(%q) error = %v", n, err)
			continue
		}
		if want := fmt.Sprintf("%s-%s-%d", secretPassword, n, i); r.Values["password"] != want {
			t.Errorf("new-key Resolve(%q) gave another value", n)
		}
	}

	testManagerRotate(t, st, m2, k1, k3)
}

// checkRewrapped checks that a rotation gave every version of the secrets
// names (name i has i+1 versions, as they were before it) a new wrapped
// key and left its ciphertext as it was.
func checkRewrapped(t *testing.T, st store.Store, names []string, before map[string]*store.SecretRecord) {
	t.Helper()
	for i, n := range names {
		for v := int32(1); v <= int32(i+1); v++ {
			old, now := before[fmt.Sprint(n, v)], getRecord(t, st, n, v)
			if bytes.Equal(old.WrappedKey, now.WrappedKey) {
				t.Errorf("%s version %d: wrapped key unchanged by rotation", n, v)
			}
			if !bytes.Equal(old.Ciphertext, now.Ciphertext) {
				t.Errorf("%s version %d: ciphertext changed by rotation", n, v)
			}
		}
	}
}

// testManagerRotate rotates m2 (on key k2, over st) to k3 with
// Manager.Rotate, then shows that a record whose wrapped key does not open
// stops the next rotation (to k1) with nothing changed.
func testManagerRotate(t *testing.T, st store.Store, m2 *secrets.Manager, k1, k3 secrets.MasterKey) {
	ctx := t.Context()
	// Manager.Rotate switches the manager itself.
	if err := m2.Rotate(ctx, k3); err != nil {
		t.Fatalf("Rotate() error = %v", err)
	}
	if _, err := m2.Resolve(ctx, "d"); err != nil {
		t.Errorf("Resolve() after Rotate error = %v", err)
	}
	mustStore(t, m2, secrets.StoreRequest{Name: "e", Value: map[string]any{"password": "after"}})
	m3 := newManager(t, st, k3, secrets.Options{})
	if r, err := m3.Resolve(ctx, "e"); err != nil || r.Values["password"] != "after" {
		t.Errorf("Resolve(stored after Rotate) = %v", err)
	}

	// A record whose wrapped key does not open stops the rotation; nothing changes.
	bad := getRecord(t, st, "b", 2)
	bad.WrappedKey[5] ^= 0x01
	replaceRecord(t, st, bad) // b now has only this version
	err := m2.Rotate(ctx, k1)
	if !errors.Is(err, secrets.ErrDecrypt) || !strings.Contains(err.Error(), "secret 'b' version 2") {
		t.Errorf("Rotate(with a tampered record) error = %v, want ErrDecrypt naming b version 2", err)
	}
	if _, err := secrets.NewManager(ctx, st, k1, secrets.Options{}); !errors.Is(err, secrets.ErrWrongMasterKey) {
		t.Errorf("after a failed rotation, NewManager(k1) error = %v, want ErrWrongMasterKey", err)
	}
	if r, err := m2.Resolve(ctx, "a"); err != nil || r.Version != 1 {
		t.Errorf("after a failed rotation, Resolve(a) = %v, want it still readable under k3", err)
	}
}

func testConcurrentStore(t *testing.T, b backend) {
	m := newManager(t, b.open(t), secrets.NewMasterKey(), secrets.Options{})
	const n = 6
	versions := make([]int32, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			md, err := m.Store(t.Context(), secrets.StoreRequest{Name: "race", Value: map[string]any{"i": fmt.Sprint(i)}})
			if err != nil {
				t.Errorf("Store() error = %v", err)
				return
			}
			versions[i] = md.Version
		})
	}
	wg.Wait()
	slices.Sort(versions)
	if diff := cmp.Diff([]int32{1, 2, 3, 4, 5, 6}, versions); diff != "" {
		t.Errorf("concurrent Store() versions mismatch (-want +got):\n%s", diff)
	}
}

func testAtRest(t *testing.T, b backend) {
	st := b.open(t)
	m := newManager(t, st, secrets.NewMasterKey(), secrets.Options{})
	for i := range 20 {
		mustStore(t, m, secrets.StoreRequest{Name: fmt.Sprintf("s%02d", i), Value: secretValue(), Description: "described"})
	}
	raw := b.raw(t, st)
	if !bytes.Contains(raw, []byte("described")) {
		t.Fatalf("raw scan does not even find the description: it scans the wrong bytes")
	}
	for _, v := range []string{secretPassword, secretToken} {
		for _, form := range [][]byte{[]byte(v), utf16le(v)} {
			if bytes.Contains(raw, form) {
				t.Errorf("raw storage contains a secret value")
			}
		}
	}
}

func utf16le(s string) []byte {
	var out []byte
	for _, c := range []byte(s) {
		out = append(out, c, 0)
	}
	return out
}
