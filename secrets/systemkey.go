package secrets

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kailash-gateway/kgw/store"
)

// systemPrefix starts the names of the gateway's own keys. ':' is not
// allowed in secret names, so no caller can store, read, delete or
// reference them, and List leaves them out.
const systemPrefix = "kgw:"

// isSystemName reports whether name is one of the gateway's own keys.
func isSystemName(name string) bool { return strings.HasPrefix(name, systemPrefix) }

// SystemKey returns the gateway's 32-byte key called purpose (e.g.
// "api-key-hmac"), creating it from crypto/rand the first time. It is kept
// like a secret: sealed under a data key wrapped by the master key, so
// RotateMasterKey re-wraps it with every other secret and it stays the same
// key afterwards. Concurrent first calls (also on other replicas) agree on
// one key. purpose must be lowercase letters, digits and '-'.
func (m *Manager) SystemKey(ctx context.Context, purpose string) ([]byte, error) {
	for _, c := range purpose {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return nil, fmt.Errorf("system key %q: invalid purpose", purpose)
		}
	}
	name := systemPrefix + purpose
	m.keyMu.RLock()
	defer m.keyMu.RUnlock()
	for range maxVersionAttempts {
		rec, err := m.st.GetSecret(ctx, name, 1)
		if err == nil {
			return m.openSystemKey(rec)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("system key %s: %w", purpose, err)
		}
		key := make([]byte, 32)
		rand.Read(key)
		plaintext := []byte(`{"key":"` + base64.StdEncoding.EncodeToString(key) + `"}`)
		rec = &store.SecretRecord{
			Name:       name,
			Version:    1,
			Keys:       []string{"key"},
			CreateTime: m.now().UTC().Truncate(time.Microsecond),
		}
		sealRecord(m.key, rec, plaintext)
		clear(plaintext)
		err = m.st.InsertSecretVersion(ctx, rec)
		if errors.Is(err, store.ErrAlreadyExists) {
			continue // another process created it first: use theirs
		}
		if err != nil {
			return nil, fmt.Errorf("system key %s: %w", purpose, err)
		}
		return key, nil
	}
	return nil, fmt.Errorf("system key %s: %w", purpose, store.ErrConflict)
}

func (m *Manager) openSystemKey(rec *store.SecretRecord) ([]byte, error) {
	pt, err := openRecord(m.key, rec)
	if err != nil {
		return nil, decryptError(rec.Name, rec.Version)
	}
	defer clear(pt)
	values, err := decodeValue(pt)
	if err != nil {
		return nil, decryptError(rec.Name, rec.Version)
	}
	s, _ := values["key"].(string)
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(key) != 32 {
		return nil, decryptError(rec.Name, rec.Version)
	}
	return key, nil
}
