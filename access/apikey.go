package access

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/kailash-gateway/kgw/store"
)

// API keys look like kgw_<id>_<secret>: id is 16 hex digits (64 random
// bits, public: it names the principal key:<id>), secret is 64 hex digits
// (256 random bits). The store keeps HMAC-SHA256(hmacKey, id "." secret)
// only, under a key of the gateway's own (secrets.Manager.SystemKey), so a
// copy of the store does not let anyone test guesses offline.
const (
	keyPrefix    = "kgw_"
	keyIDLen     = 16
	keySecretLen = 64
	// KeyTTL is how long a replica trusts what it read about a key: a
	// revoked or expired key is refused by every replica within this time
	// (the issue asks for 5 s).
	KeyTTL = 2 * time.Second
	// touchEvery bounds how often a key's last-used time is written.
	touchEvery = time.Minute
	// maxCached bounds the per-replica cache of keys.
	maxCached = 10000
)

// keyStore is the part of store.Store that Keys uses.
type keyStore interface {
	CreateAPIKey(ctx context.Context, k *store.APIKey) error
	GetAPIKey(ctx context.Context, id string) (*store.APIKey, error)
	ListAPIKeys(ctx context.Context, page store.Page) ([]*store.APIKey, string, error)
	DeleteAPIKey(ctx context.Context, id string) error
	TouchAPIKey(ctx context.Context, id string, t time.Time) error
}

// Keys creates, verifies and revokes API keys. It is safe for concurrent
// use.
type Keys struct {
	st  keyStore
	mac []byte
	now func() time.Time

	mu      sync.Mutex
	cache   map[string]cachedKey
	touched map[string]time.Time
}

type cachedKey struct {
	k     *store.APIKey // nil: not found
	until time.Time
	// p is k's principal, built once per read of k (nil when k is).
	p *Principal
	// verified, when set, is SHA-256(id "." secret) of the secret that
	// matched k.Hash on this replica since k was read (see Authenticate).
	verified    [sha256.Size]byte
	hasVerified bool
}

// NewKeys returns Keys over st that hash with hmacKey (32 bytes; from
// secrets.Manager.SystemKey("api-key-hmac")). now may be nil (time.Now).
func NewKeys(st keyStore, hmacKey []byte, now func() time.Time) *Keys {
	if now == nil {
		now = time.Now
	}
	return &Keys{st: st, mac: hmacKey, now: now, cache: map[string]cachedKey{}, touched: map[string]time.Time{}}
}

// CreateRequest describes a new API key.
type CreateRequest struct {
	Name       string
	Roles      []string
	ExpireTime time.Time // zero = never
	Creator    string
}

// Create makes a new API key and returns its metadata and the key itself,
// which exists nowhere else: show it once.
func (k *Keys) Create(ctx context.Context, req CreateRequest) (*store.APIKey, string, error) {
	if err := CheckKeyName(req.Name); err != nil {
		return nil, "", err
	}
	if err := CheckRoles(req.Roles); err != nil {
		return nil, "", err
	}
	now := k.now().UTC().Truncate(time.Microsecond)
	if !req.ExpireTime.IsZero() && !req.ExpireTime.After(now) {
		return nil, "", errors.New("expire_time is not in the future")
	}
	var idb [keyIDLen / 2]byte
	var secret [keySecretLen / 2]byte
	rand.Read(idb[:])
	rand.Read(secret[:])
	id, sec := hex.EncodeToString(idb[:]), hex.EncodeToString(secret[:])
	rec := &store.APIKey{
		ID:         id,
		Name:       req.Name,
		Roles:      normalizeRoles(req.Roles),
		Hash:       k.hash(id, sec),
		CreateTime: now,
		ExpireTime: req.ExpireTime.UTC(),
		Creator:    req.Creator,
	}
	if err := k.st.CreateAPIKey(ctx, rec); err != nil {
		return nil, "", fmt.Errorf("create api key: %w", err)
	}
	out := *rec
	out.Hash = nil
	return &out, keyPrefix + id + "_" + sec, nil
}

// Revoke deletes the key id. Other replicas refuse it within KeyTTL.
func (k *Keys) Revoke(ctx context.Context, id string) error {
	err := k.st.DeleteAPIKey(ctx, id)
	k.mu.Lock()
	delete(k.cache, id)
	k.mu.Unlock()
	return err
}

// List pages through the keys (without their hashes).
func (k *Keys) List(ctx context.Context, page store.Page) ([]*store.APIKey, string, error) {
	keys, next, err := k.st.ListAPIKeys(ctx, page)
	for _, key := range keys {
		key.Hash = nil
	}
	return keys, next, err
}

// LooksLikeKey reports whether token has the shape of an API key (so a
// bearer token that does not is tried as a JWT).
func LooksLikeKey(token string) bool { return strings.HasPrefix(token, keyPrefix) }

// Authenticate verifies an API key and returns its principal (key:<id>,
// with the key's roles). Failures are *AuthError.
//
// The keyed hash (HMAC-SHA256, with its allocations about 1 µs and 9
// allocations a call) is computed once per read of the key's record: a
// secret that matched it leaves SHA-256(id "." secret) in the record's
// cache entry, and later calls compare the same digest of what they
// present with it in constant time (about 0.15 µs, no allocation). That
// digest is set only after the HMAC check succeeded against the record
// read from the store, and goes with the entry (KeyTTL, Revoke), so a
// revoked or expired key is refused as quickly as before; a different
// secret matches only by a SHA-256 collision, and is otherwise checked
// against the HMAC as before. With the principal built once per read
// and the Go client's header built once (clients/go bearer), an API-key
// no-op ExecuteWorkflow went from 259 to 244 allocations a call (client
// and gateway; --auth none: 235), BenchmarkAuthCheck from 13 to 2, and
// BenchmarkAuthThroughput's CPU ratio (API key vs --auth none) from a
// median of 0.85× (0.82–0.92) to 0.94× (0.82–0.99), six runs of each
// build in turns at a load average of 14 on the 2-core machine
// (docs/performance.md, "Tracing and auth overhead").
func (k *Keys) Authenticate(ctx context.Context, token string) (*Principal, error) {
	id, sec, ok := parseKey(token)
	if !ok {
		return nil, authErr(ReasonMalformed, "malformed API key: want kgw_<id>_<secret>")
	}
	now := k.now()
	c, err := k.lookup(ctx, id, now)
	if err != nil {
		return nil, authErr(ReasonInternal, "cannot verify the API key now; retry")
	}
	// The same answer for an unknown id and a wrong secret.
	if c.k == nil {
		return nil, authErr(ReasonUnknownKey, "invalid API key")
	}
	d := quickDigest(id, sec)
	if !c.hasVerified || subtle.ConstantTimeCompare(c.verified[:], d[:]) != 1 {
		if !hmac.Equal(c.k.Hash, k.hash(id, sec)) {
			return nil, authErr(ReasonWrongKey, "invalid API key")
		}
		k.verified(id, c.k, d)
	}
	if !c.k.ExpireTime.IsZero() && !now.Before(c.k.ExpireTime) {
		return nil, authErr(ReasonExpired, "API key expired")
	}
	k.touch(ctx, id, now)
	return c.p, nil
}

// quickDigest is SHA-256(id "." secret), computed without allocating.
func quickDigest(id, secret string) [sha256.Size]byte {
	var b [keyIDLen + 1 + keySecretLen]byte
	n := copy(b[:], id)
	b[n] = '.'
	copy(b[n+1:], secret)
	return sha256.Sum256(b[:n+1+len(secret)])
}

// verified records d as the digest of the secret that matched rec, when
// rec is still the cached record of id.
func (k *Keys) verified(id string, rec *store.APIKey, d [sha256.Size]byte) {
	k.mu.Lock()
	if c, ok := k.cache[id]; ok && c.k == rec {
		c.verified, c.hasVerified = d, true
		k.cache[id] = c
	}
	k.mu.Unlock()
}

// RolesOf returns the roles of key id (nil when it is gone), for callers
// known only by name (an execution resumed after a restart).
func (k *Keys) RolesOf(ctx context.Context, id string) ([]string, error) {
	now := k.now()
	c, err := k.lookup(ctx, id, now)
	if err != nil || c.k == nil {
		return nil, err
	}
	if !c.k.ExpireTime.IsZero() && !now.Before(c.k.ExpireTime) {
		return nil, nil
	}
	return c.k.Roles, nil
}

// lookup returns the cache entry of key id, reading the store when there
// is none younger than KeyTTL.
func (k *Keys) lookup(ctx context.Context, id string, now time.Time) (cachedKey, error) {
	k.mu.Lock()
	c, ok := k.cache[id]
	k.mu.Unlock()
	if ok && now.Before(c.until) {
		return c, nil
	}
	rec, err := k.st.GetAPIKey(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return cachedKey{}, err
	}
	c = cachedKey{until: now.Add(KeyTTL)}
	if err == nil {
		c.k = rec
		c.p = &Principal{Name: "key:" + id, Roles: rec.Roles, Method: MethodAPIKey}
	}
	k.mu.Lock()
	if len(k.cache) >= maxCached {
		k.evictLocked(now)
	}
	k.cache[id] = c
	k.mu.Unlock()
	return c, nil
}

// evictLocked makes room in a full cache: expired entries go first, then
// those of unknown ids, and only then everything. A flood of random ids
// (each one an unknown key) thus does not push the keys in use out of the
// cache, which would send every real call to the store too.
func (k *Keys) evictLocked(now time.Time) {
	for id, c := range k.cache {
		if !now.Before(c.until) {
			delete(k.cache, id)
		}
	}
	if len(k.cache) < maxCached {
		return
	}
	for id, c := range k.cache {
		if c.k == nil {
			delete(k.cache, id)
		}
	}
	if len(k.cache) >= maxCached {
		clear(k.cache)
	}
}

// touch writes the last-used time at most once per touchEvery per key on
// this replica. A failed write is not an authentication failure.
func (k *Keys) touch(ctx context.Context, id string, now time.Time) {
	k.mu.Lock()
	last, ok := k.touched[id]
	due := !ok || now.Sub(last) >= touchEvery
	if due {
		if len(k.touched) >= maxCached {
			clear(k.touched)
		}
		k.touched[id] = now
	}
	k.mu.Unlock()
	if due {
		_ = k.st.TouchAPIKey(ctx, id, now.UTC().Truncate(time.Second))
	}
}

func (k *Keys) hash(id, secret string) []byte {
	h := hmac.New(sha256.New, k.mac)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write([]byte(secret))
	return h.Sum(nil)
}

func parseKey(token string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(token, keyPrefix)
	if !ok || len(rest) != keyIDLen+1+keySecretLen || rest[keyIDLen] != '_' {
		return "", "", false
	}
	id, secret = rest[:keyIDLen], rest[keyIDLen+1:]
	if !isLowerHex(id) || !isLowerHex(secret) {
		return "", "", false
	}
	return id, secret, true
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
