package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kailash-gateway/kgw/store"
)

func sampleSecret(name string, version int32) *store.SecretRecord {
	return &store.SecretRecord{
		Name:         name,
		Version:      version,
		Keys:         []string{"password", "user"},
		Description:  "creds for " + name,
		CreateTime:   at(time.Duration(version) * time.Minute),
		ExpireTime:   at(48 * time.Hour),
		AllowedHosts: []string{"db.internal", "*.example.com"},
		WrappedKey:   []byte(fmt.Sprintf("wrapped-%s-%d\x00\xff", name, version)),
		Ciphertext:   []byte(fmt.Sprintf("sealed-%s-%d\x00\x01", name, version)),
	}
}

func testSecrets(t *testing.T, s store.Store) {
	ctx := t.Context()
	v1, v2 := sampleSecret("db", 1), sampleSecret("db", 2)
	v2.ExpireTime, v2.AllowedHosts, v2.Description = time.Time{}, nil, ""
	must(t, "InsertSecretVersion v1", s.InsertSecretVersion(ctx, v1))
	must(t, "InsertSecretVersion v2", s.InsertSecretVersion(ctx, v2))
	dup := sampleSecret("db", 2)
	dup.Ciphertext = []byte("other")
	wantErr(t, "InsertSecretVersion duplicate", s.InsertSecretVersion(ctx, dup), store.ErrAlreadyExists)

	for _, tc := range []struct {
		version int32
		want    *store.SecretRecord
	}{{0, v2}, {1, v1}, {2, v2}} {
		got, err := s.GetSecret(ctx, "db", tc.version)
		must(t, "GetSecret", err)
		if d := diff(tc.want, got); d != "" {
			t.Errorf("GetSecret(db, %d) (-want +got):\n%s", tc.version, d)
		}
	}
	_, err := s.GetSecret(ctx, "db", 3)
	wantErr(t, "GetSecret(db, 3)", err, store.ErrNotFound)
	_, err = s.GetSecret(ctx, "nope", 0)
	wantErr(t, "GetSecret(nope, 0)", err, store.ErrNotFound)

	must(t, "InsertSecretVersion api", s.InsertSecretVersion(ctx, sampleSecret("api", 1)))
	list, next, err := s.ListSecrets(ctx, store.Page{Limit: 10})
	must(t, "ListSecrets", err)
	if d := diff([]*store.SecretRecord{sampleSecret("api", 1), v2}, list); d != "" || next != "" {
		t.Errorf("ListSecrets = cursor %q, (-want +got):\n%s", next, d)
	}

	must(t, "DeleteSecret", s.DeleteSecret(ctx, "db"))
	for _, v := range []int32{0, 1, 2} {
		_, err := s.GetSecret(ctx, "db", v)
		wantErr(t, fmt.Sprintf("GetSecret(db, %d) after delete", v), err, store.ErrNotFound)
	}
	wantErr(t, "DeleteSecret again", s.DeleteSecret(ctx, "db"), store.ErrNotFound)
	if _, err := s.GetSecret(ctx, "api", 0); err != nil {
		t.Errorf("GetSecret(api) after deleting db: %v", err)
	}
}

func testSecretList(t *testing.T, s store.Store) {
	ctx := t.Context()
	names := []string{"e", "b", "d", "a", "c", "f", "g"}
	for i, n := range names {
		for v := int32(1); v <= int32(i%3)+1; v++ {
			must(t, "InsertSecretVersion", s.InsertSecretVersion(ctx, sampleSecret(n, v)))
		}
	}
	var got []string
	after := ""
	for page := 0; ; page++ {
		list, next, err := s.ListSecrets(ctx, store.Page{After: after, Limit: 2})
		must(t, "ListSecrets", err)
		if len(list) > 2 {
			t.Fatalf("ListSecrets(limit 2) returned %d", len(list))
		}
		for _, r := range list {
			got = append(got, fmt.Sprintf("%s/%d", r.Name, r.Version))
		}
		if next == "" {
			break
		}
		if page > 20 {
			t.Fatalf("ListSecrets does not end")
		}
		after = next
	}
	want := []string{"a/1", "b/2", "c/2", "d/3", "e/1", "f/3", "g/1"}
	if d := diff(want, got); d != "" {
		t.Errorf("ListSecrets pages (-want +got):\n%s", d)
	}
}

func testRewrap(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, "PutKeyCheck", s.PutKeyCheck(ctx, []byte("check-1")))
	var originals []*store.SecretRecord
	for _, r := range []*store.SecretRecord{sampleSecret("a", 1), sampleSecret("a", 2), sampleSecret("b", 1)} {
		must(t, "InsertSecretVersion", s.InsertSecretVersion(ctx, r))
		originals = append(originals, r)
	}
	current := func() map[string][]byte {
		m := map[string][]byte{}
		for _, r := range originals {
			got, err := s.GetSecret(ctx, r.Name, r.Version)
			must(t, "GetSecret", err)
			m[fmt.Sprintf("%s/%d", r.Name, r.Version)] = got.WrappedKey
			if !bytes.Equal(got.Ciphertext, r.Ciphertext) {
				t.Errorf("%s/%d: ciphertext changed by RewrapSecrets", r.Name, r.Version)
			}
		}
		return m
	}
	before := current()

	// A failing rewrap changes nothing.
	errBadKey := errors.New("cannot unwrap")
	calls := 0
	err := s.RewrapSecrets(ctx, func(r *store.SecretRecord) ([]byte, error) {
		calls++
		if calls == 2 {
			return nil, errBadKey
		}
		return append([]byte("new:"), r.WrappedKey...), nil
	}, []byte("check-2"))
	wantErr(t, "RewrapSecrets with a failing func", err, errBadKey)
	if d := diff(before, current()); d != "" {
		t.Errorf("failed RewrapSecrets changed wrapped keys (-before +after):\n%s", d)
	}
	kc, err := s.GetKeyCheck(ctx)
	must(t, "GetKeyCheck", err)
	if string(kc) != "check-1" {
		t.Errorf("failed RewrapSecrets changed the key check to %q", kc)
	}

	// A successful rewrap replaces every wrapped key and the key check.
	seen := map[string]bool{}
	must(t, "RewrapSecrets", s.RewrapSecrets(ctx, func(r *store.SecretRecord) ([]byte, error) {
		seen[fmt.Sprintf("%s/%d", r.Name, r.Version)] = true
		return append([]byte("new:"), r.WrappedKey...), nil
	}, []byte("check-2")))
	want := map[string][]byte{}
	for k, v := range before {
		want[k] = append([]byte("new:"), v...)
		if !seen[k] {
			t.Errorf("RewrapSecrets did not call rewrap for %s", k)
		}
	}
	if d := diff(want, current()); d != "" {
		t.Errorf("RewrapSecrets wrapped keys (-want +got):\n%s", d)
	}
	kc, err = s.GetKeyCheck(ctx)
	must(t, "GetKeyCheck", err)
	if string(kc) != "check-2" {
		t.Errorf("key check after RewrapSecrets = %q, want check-2", kc)
	}
}

func testKeyCheck(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.GetKeyCheck(ctx)
	wantErr(t, "GetKeyCheck on an empty store", err, store.ErrNotFound)
	must(t, "PutKeyCheck", s.PutKeyCheck(ctx, []byte("kc\x00\xff")))
	got, err := s.GetKeyCheck(ctx)
	must(t, "GetKeyCheck", err)
	if string(got) != "kc\x00\xff" {
		t.Errorf("GetKeyCheck = %q, want %q", got, "kc\x00\xff")
	}
	wantErr(t, "second PutKeyCheck", s.PutKeyCheck(ctx, []byte("other")), store.ErrAlreadyExists)
	got, err = s.GetKeyCheck(ctx)
	must(t, "GetKeyCheck", err)
	if string(got) != "kc\x00\xff" {
		t.Errorf("GetKeyCheck after a refused Put = %q, want the first value", got)
	}
}

func testResources(t *testing.T, s store.Store) {
	ctx := t.Context()
	spec := store.ResourceSpec{Type: "database", Config: jsonValue(), CredentialsRef: "db_creds", CredentialsKey: "main"}
	created, err := s.PutResource(ctx, &store.Resource{Name: "orders_db", Spec: spec})
	must(t, "PutResource create", err)
	if created.CreateTime.IsZero() || !created.UpdateTime.Equal(created.CreateTime) {
		t.Errorf("PutResource create: CreateTime %v, UpdateTime %v; want both set and equal", created.CreateTime, created.UpdateTime)
	}
	got, err := s.GetResource(ctx, "orders_db")
	must(t, "GetResource", err)
	if d := diff(created, got); d != "" {
		t.Errorf("GetResource (-want +got):\n%s", d)
	}
	if d := diff(spec, got.Spec); d != "" {
		t.Errorf("GetResource spec (-want +got):\n%s", d)
	}

	spec2 := store.ResourceSpec{Ref: "elsewhere"}
	replaced, err := s.PutResource(ctx, &store.Resource{Name: "orders_db", Spec: spec2})
	must(t, "PutResource replace", err)
	if !replaced.CreateTime.Equal(created.CreateTime) || replaced.UpdateTime.Before(created.UpdateTime) {
		t.Errorf("PutResource replace: CreateTime %v, UpdateTime %v; want CreateTime %v kept and UpdateTime not earlier",
			replaced.CreateTime, replaced.UpdateTime, created.CreateTime)
	}
	got, err = s.GetResource(ctx, "orders_db")
	must(t, "GetResource", err)
	if d := diff(replaced, got); d != "" {
		t.Errorf("GetResource after replace (-want +got):\n%s", d)
	}

	for _, n := range []string{"d", "b", "a", "c"} {
		_, err := s.PutResource(ctx, &store.Resource{Name: n, Spec: store.ResourceSpec{Type: "cache"}})
		must(t, "PutResource", err)
	}
	var names []string
	after := ""
	for page := 0; ; page++ {
		list, next, err := s.ListResources(ctx, store.Page{After: after, Limit: 2})
		must(t, "ListResources", err)
		for _, r := range list {
			names = append(names, r.Name)
		}
		if next == "" {
			break
		}
		if page > 20 {
			t.Fatalf("ListResources does not end")
		}
		after = next
	}
	if d := diff([]string{"a", "b", "c", "d", "orders_db"}, names); d != "" {
		t.Errorf("ListResources pages (-want +got):\n%s", d)
	}

	must(t, "DeleteResource", s.DeleteResource(ctx, "orders_db"))
	_, err = s.GetResource(ctx, "orders_db")
	wantErr(t, "GetResource after delete", err, store.ErrNotFound)
	wantErr(t, "DeleteResource again", s.DeleteResource(ctx, "orders_db"), store.ErrNotFound)
	_, err = s.GetResource(ctx, "never")
	wantErr(t, "GetResource(never)", err, store.ErrNotFound)
}
