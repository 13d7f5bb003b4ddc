package secrets_test

import (
	"bytes"
	"testing"

	"github.com/kailash-gateway/kgw/secrets"
	"github.com/kailash-gateway/kgw/store"
	"github.com/kailash-gateway/kgw/store/sqlite"
)

func TestSystemKeySurvivesRotationAndIsHidden(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, t.TempDir()+"/kgw.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	old := secrets.NewMasterKey()
	m, err := secrets.NewManager(ctx, st, old, secrets.Options{})
	if err != nil {
		t.Fatal(err)
	}
	k1, err := m.SystemKey(ctx, "api-key-hmac")
	if err != nil {
		t.Fatal(err)
	}
	k2, err := m.SystemKey(ctx, "api-key-hmac")
	if err != nil {
		t.Fatal(err)
	}
	if len(k1) != 32 || !bytes.Equal(k1, k2) {
		t.Fatalf("SystemKey twice: %d bytes, equal %v; want the same 32-byte key", len(k1), bytes.Equal(k1, k2))
	}
	if _, err := m.SystemKey(ctx, "Bad:purpose"); err == nil {
		t.Errorf("SystemKey(Bad:purpose) succeeded, want an error")
	}
	list, _, err := m.List(ctx, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Errorf("List shows %d secrets, want the system key hidden", len(list))
	}
	if _, err := m.Get(ctx, "kgw:api-key-hmac"); err == nil {
		t.Errorf("Get(kgw:api-key-hmac) succeeded, want an invalid-name error")
	}
	if _, err := m.Resolve(ctx, "kgw:api-key-hmac"); err == nil {
		t.Errorf("Resolve(kgw:api-key-hmac) succeeded, want an invalid-name error")
	}

	next := secrets.NewMasterKey()
	if err := m.Rotate(ctx, next); err != nil {
		t.Fatal(err)
	}
	m2, err := secrets.NewManager(ctx, st, next, secrets.Options{})
	if err != nil {
		t.Fatal(err)
	}
	k3, err := m2.SystemKey(ctx, "api-key-hmac")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k1, k3) {
		t.Errorf("SystemKey after rotating the master key changed; want the same key re-wrapped")
	}
}
