package secrets

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/kailash-gateway/kgw/store"
)

// DefaultCacheTTL is how long Resolve keeps decrypted values when
// Options.CacheTTL is zero.
const DefaultCacheTTL = 5 * time.Second

// maxVersionAttempts bounds Store's retries when concurrent stores of one
// name race for the next version.
const maxVersionAttempts = 16

// Options configure a Manager. The zero value gives the defaults.
type Options struct {
	// CacheTTL is how long Resolve keeps a secret's decrypted values in
	// memory. Zero means DefaultCacheTTL; a negative value disables the
	// cache. Store, Delete and Rotate on this Manager invalidate it at once;
	// changes made through another Manager (another replica) are seen after
	// at most CacheTTL.
	CacheTTL time.Duration
	// Now returns the current time; nil means time.Now. Tests set it.
	Now func() time.Time
}

// StoreRequest asks Manager.Store to create the next version of a secret.
type StoreRequest struct {
	// Name is the secret's name: a letter or digit, then up to 127 letters,
	// digits, '_', '.' or '-'.
	Name string
	// Value is the secret's fields, e.g. {"user": "app", "password": "…"};
	// at least one, JSON-compatible, at most MaxValueSize bytes encoded.
	Value map[string]any
	// ExpireTime, if set, is when the secret stops resolving. It must be in
	// the future. At most one of ExpireTime and TTL may be set.
	ExpireTime time.Time
	// TTL, if set, makes the secret expire TTL after it is stored.
	TTL time.Duration
	// Description is free text for operators (never secret).
	Description string
	// AllowedHosts are the host patterns the credentials may be sent to
	// (see HostAllowed); empty means any host.
	AllowedHosts []string
}

// Metadata describes one secret version. It never holds a value.
type Metadata struct {
	Name         string
	Version      int32
	Keys         []string // names of the value's fields, sorted
	Description  string
	CreateTime   time.Time
	ExpireTime   time.Time // zero = never
	AllowedHosts []string  // canonical patterns; empty = any host
}

// Resolved is the decrypted latest version of a secret, for the resource
// broker. Its values must go only to the resource they are for, and should
// be added to the execution's Redactor.
type Resolved struct {
	Name    string
	Version int32
	// Values are the secret's fields as stored: strings, bools, nil, []any,
	// map[string]any, and numbers as int64 when whole and in range, else
	// float64.
	Values       map[string]any
	AllowedHosts []string
	ExpireTime   time.Time // zero = never
	// CreateTime is when this version was stored. A secret deleted and
	// stored again starts again at version 1, so callers that key anything
	// (such as connection pools) by secret version should key by
	// (Name, Version, CreateTime).
	CreateTime time.Time
}

// A Manager stores, describes and resolves secrets in a store.Store under
// one master key. It is safe for concurrent use. Create it with NewManager.
type Manager struct {
	st  store.Store
	ttl time.Duration
	now func() time.Time

	// keyMu guards key. It is held for reading from sealing or opening a
	// record until the store call that persists or read it returns, so that
	// Rotate (which holds it for writing) never interleaves with them.
	keyMu sync.RWMutex
	key   MasterKey

	cacheMu sync.Mutex
	cache   map[string]cacheEntry
	gen     uint64 // bumped on every invalidation
}

type cacheEntry struct {
	r     *Resolved
	until time.Time
}

// NewManager returns a Manager for the secrets in st, sealed under key.
//
// It checks key against the master-key check value kept in the store: on
// first use it stores one sealed under key; afterwards a different key fails
// here, with an error satisfying errors.Is(err, ErrWrongMasterKey) ("master
// key does not match the one this data was encrypted with"), rather than at
// the first secret read. An all-zero key is refused as unset.
func NewManager(ctx context.Context, st store.Store, key MasterKey, opts Options) (*Manager, error) {
	if key == (MasterKey{}) {
		return nil, errors.New("master key is all zeros: it was not set")
	}
	if err := checkMasterKey(ctx, st, key); err != nil {
		return nil, err
	}
	m := &Manager{st: st, ttl: opts.CacheTTL, now: opts.Now, key: key, cache: make(map[string]cacheEntry)}
	if m.ttl == 0 {
		m.ttl = DefaultCacheTTL
	}
	if m.now == nil {
		m.now = time.Now
	}
	return m, nil
}

// checkMasterKey verifies key against st's key check value, storing one on
// first use.
func checkMasterKey(ctx context.Context, st store.Store, key MasterKey) error {
	kc, err := st.GetKeyCheck(ctx)
	if errors.Is(err, store.ErrNotFound) {
		err = st.PutKeyCheck(ctx, newKeyCheck(key))
		if err == nil {
			return nil
		}
		if !errors.Is(err, store.ErrAlreadyExists) {
			return fmt.Errorf("store master key check value: %w", err)
		}
		// Another process stored one first: verify against it.
		kc, err = st.GetKeyCheck(ctx)
	}
	if err != nil {
		return fmt.Errorf("read master key check value: %w", err)
	}
	return verifyKeyCheck(key, kc)
}

// Store validates req and stores it, encrypted, as the next version of the
// secret (1 for a new name), returning the new version's metadata. Invalid
// input gives a *ValidationError, whose messages never contain the value.
func (m *Manager) Store(ctx context.Context, req StoreRequest) (*Metadata, error) {
	now := m.now()
	v, err := validate(&req, now)
	if err != nil {
		return nil, err
	}
	defer clear(v.plaintext)

	m.keyMu.RLock()
	defer m.keyMu.RUnlock()
	for range maxVersionAttempts {
		next := int32(1)
		latest, err := m.st.GetSecret(ctx, req.Name, 0)
		switch {
		case err == nil:
			if latest.Version == math.MaxInt32 {
				return nil, fmt.Errorf("store secret '%s': no versions left", req.Name)
			}
			next = latest.Version + 1
		case errors.Is(err, store.ErrNotFound):
		default:
			return nil, fmt.Errorf("store secret '%s': %w", req.Name, err)
		}
		rec := &store.SecretRecord{
			Name:         req.Name,
			Version:      next,
			Keys:         v.keys,
			Description:  req.Description,
			CreateTime:   now.UTC().Truncate(time.Microsecond),
			ExpireTime:   v.expireTime,
			AllowedHosts: v.allowedHosts,
		}
		sealRecord(m.key, rec, v.plaintext)
		err = m.st.InsertSecretVersion(ctx, rec)
		if errors.Is(err, store.ErrAlreadyExists) {
			continue // a concurrent Store took this version
		}
		m.invalidate(req.Name)
		if err != nil {
			return nil, fmt.Errorf("store secret '%s': %w", req.Name, err)
		}
		return metadataOf(rec), nil
	}
	return nil, fmt.Errorf("store secret '%s': %w: too many concurrent stores of this name", req.Name, store.ErrConflict)
}

// Get returns the metadata of the latest version of the secret name. If
// there is none, the error ("secret 'x' not found") satisfies
// errors.Is(err, store.ErrNotFound). Expired secrets are still described.
func (m *Manager) Get(ctx context.Context, name string) (*Metadata, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	rec, err := m.st.GetSecret(ctx, name, 0)
	if err != nil {
		return nil, lookupError(name, err)
	}
	return metadataOf(rec), nil
}

// List returns the metadata of the latest version of each secret, ordered
// by name, one page at a time; the returned cursor is empty at the end.
func (m *Manager) List(ctx context.Context, page store.Page) ([]*Metadata, string, error) {
	recs, next, err := m.st.ListSecrets(ctx, page)
	if err != nil {
		return nil, "", fmt.Errorf("list secrets: %w", err)
	}
	out := make([]*Metadata, 0, len(recs))
	for _, r := range recs {
		if !isSystemName(r.Name) { // the gateway's own keys are not secrets of its callers
			out = append(out, metadataOf(r))
		}
	}
	return out, next, nil
}

// Delete removes every version of the secret name. If there is none, the
// error ("secret 'x' not found") satisfies errors.Is(err, store.ErrNotFound).
func (m *Manager) Delete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	err := m.st.DeleteSecret(ctx, name)
	m.invalidate(name)
	if err != nil {
		return lookupError(name, err)
	}
	return nil
}

// Resolve returns the decrypted latest version of the secret name. Errors:
// store.ErrNotFound ("secret 'x' not found"), ErrExpired ("secret 'x'
// expired at 2030-01-02T15:04:05Z"), ErrDecrypt (the record does not open),
// or a *ValidationError for an invalid name. Results are cached for
// Options.CacheTTL; each call returns its own copy of the values.
func (m *Manager) Resolve(ctx context.Context, name string) (*Resolved, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	now := m.now()
	if r := m.cached(name, now); r != nil {
		if err := checkExpiry(r.Name, r.ExpireTime, now); err != nil {
			return nil, err
		}
		return cloneResolved(r), nil
	}

	m.keyMu.RLock()
	defer m.keyMu.RUnlock()
	gen := m.generation()
	rec, err := m.st.GetSecret(ctx, name, 0)
	if err != nil {
		return nil, lookupError(name, err)
	}
	if err := checkExpiry(rec.Name, rec.ExpireTime, now); err != nil {
		return nil, err
	}
	pt, err := openRecord(m.key, rec)
	if err != nil {
		return nil, decryptError(rec.Name, rec.Version)
	}
	values, err := decodeValue(pt)
	clear(pt)
	if err != nil {
		return nil, decryptError(rec.Name, rec.Version)
	}
	r := &Resolved{
		Name:         rec.Name,
		Version:      rec.Version,
		Values:       values,
		AllowedHosts: slices.Clone(rec.AllowedHosts),
		ExpireTime:   rec.ExpireTime,
		CreateTime:   rec.CreateTime,
	}
	m.put(name, r, gen, now)
	return cloneResolved(r), nil
}

// Rotate re-wraps every data key in the store under newKey (see
// RotateMasterKey) and switches the Manager to it. Store, Resolve and other
// Rotate calls on this Manager wait while it runs. On error nothing changes.
func (m *Manager) Rotate(ctx context.Context, newKey MasterKey) error {
	m.keyMu.Lock()
	defer m.keyMu.Unlock()
	if err := RotateMasterKey(ctx, m.st, m.key, newKey); err != nil {
		return err
	}
	m.key = newKey
	m.invalidateAll()
	return nil
}

// RotateMasterKey re-wraps the data key of every secret version in st from
// oldKey to newKey and replaces the key check value, in one store
// transaction (store.RewrapSecrets): afterwards only newKey opens anything,
// and NewManager with oldKey fails with ErrWrongMasterKey. oldKey must match
// the store's key check value (else ErrWrongMasterKey) and every wrapped key
// must open (else ErrDecrypt, naming the record); on any error nothing
// changes. Values are not re-encrypted: their data keys stay the same.
//
// Managers on other processes keep using oldKey until restarted with
// newKey, so run it (`kgw secrets rotate-master-key`) while no gateway
// writes secrets, and restart gateways with the new key afterwards.
func RotateMasterKey(ctx context.Context, st store.Store, oldKey, newKey MasterKey) error {
	if newKey == (MasterKey{}) {
		return errors.New("rotate master key: new master key is all zeros")
	}
	if newKey == oldKey {
		return errors.New("rotate master key: new master key is the same as the old one")
	}
	kc, err := st.GetKeyCheck(ctx)
	switch {
	case err == nil:
		if err := verifyKeyCheck(oldKey, kc); err != nil {
			return fmt.Errorf("rotate master key: old key: %w", err)
		}
	case errors.Is(err, store.ErrNotFound):
		// Nothing was ever sealed under a checked key; every record is still
		// verified below.
	default:
		return fmt.Errorf("rotate master key: read key check value: %w", err)
	}
	err = st.RewrapSecrets(ctx, func(rec *store.SecretRecord) ([]byte, error) {
		w, err := rewrapDataKey(oldKey, newKey, rec.Name, rec.Version, rec.WrappedKey)
		if err != nil {
			return nil, decryptError(rec.Name, rec.Version)
		}
		return w, nil
	}, newKeyCheck(newKey))
	if err != nil {
		return fmt.Errorf("rotate master key: %w", err)
	}
	return nil
}

func metadataOf(r *store.SecretRecord) *Metadata {
	return &Metadata{
		Name:         r.Name,
		Version:      r.Version,
		Keys:         slices.Clone(r.Keys),
		Description:  r.Description,
		CreateTime:   r.CreateTime,
		ExpireTime:   r.ExpireTime,
		AllowedHosts: slices.Clone(r.AllowedHosts),
	}
}

// lookupError names the secret in a store error; not found reads
// "secret 'x' not found".
func lookupError(name string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("secret '%s' %w", name, store.ErrNotFound)
	}
	return fmt.Errorf("secret '%s': %w", name, err)
}

// checkExpiry returns the ErrExpired error if expire is set and not after now.
func checkExpiry(name string, expire, now time.Time) error {
	if !expire.IsZero() && !now.Before(expire) {
		return fmt.Errorf("secret '%s' %w at %s", name, ErrExpired, expire.UTC().Format(time.RFC3339))
	}
	return nil
}

// decodeValue parses a decrypted value, giving whole numbers as int64.
func decodeValue(pt []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(pt))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		return nil, errors.New("decrypted value is not a JSON object")
	}
	if v == nil {
		return nil, errors.New("decrypted value is not a JSON object")
	}
	return convertNumbers(v).(map[string]any), nil
}

func convertNumbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64() // the encoder wrote a valid number; overflow gives ±Inf
		return f
	case map[string]any:
		for k, e := range v {
			v[k] = convertNumbers(e)
		}
		return v
	case []any:
		for i, e := range v {
			v[i] = convertNumbers(e)
		}
		return v
	default:
		return v
	}
}

func (m *Manager) generation() uint64 {
	m.cacheMu.Lock()
	defer m.cacheMu.Unlock()
	return m.gen
}

func (m *Manager) cached(name string, now time.Time) *Resolved {
	if m.ttl < 0 {
		return nil
	}
	m.cacheMu.Lock()
	defer m.cacheMu.Unlock()
	e, ok := m.cache[name]
	if !ok {
		return nil
	}
	if !now.Before(e.until) {
		delete(m.cache, name)
		return nil
	}
	return e.r
}

// put caches r unless the cache was invalidated since gen was read, which
// would mean r may already be stale.
func (m *Manager) put(name string, r *Resolved, gen uint64, now time.Time) {
	if m.ttl < 0 {
		return
	}
	m.cacheMu.Lock()
	defer m.cacheMu.Unlock()
	if m.gen != gen {
		return
	}
	for k, e := range m.cache { // drop stale entries so the map cannot grow without bound
		if !now.Before(e.until) {
			delete(m.cache, k)
		}
	}
	m.cache[name] = cacheEntry{r: r, until: now.Add(m.ttl)}
}

func (m *Manager) invalidate(name string) {
	m.cacheMu.Lock()
	defer m.cacheMu.Unlock()
	m.gen++
	delete(m.cache, name)
}

func (m *Manager) invalidateAll() {
	m.cacheMu.Lock()
	defer m.cacheMu.Unlock()
	m.gen++
	clear(m.cache)
}

func cloneResolved(r *Resolved) *Resolved {
	c := *r
	c.Values = deepCopy(r.Values).(map[string]any)
	c.AllowedHosts = slices.Clone(r.AllowedHosts)
	return &c
}

func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		c := maps.Clone(v)
		for k, e := range c {
			c[k] = deepCopy(e)
		}
		return c
	case []any:
		c := slices.Clone(v)
		for i, e := range c {
			c[i] = deepCopy(e)
		}
		return c
	default:
		return v
	}
}
