package access

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/kailash-gateway/kgw/store"
)

// bindingStore is the part of store.Store that Bindings uses.
type bindingStore interface {
	CreateRoleBinding(ctx context.Context, b *store.RoleBinding) error
	DeleteRoleBinding(ctx context.Context, id string) error
	ListRoleBindings(ctx context.Context, page store.Page) ([]*store.RoleBinding, string, error)
}

// Bindings gives roles to principals by pattern. Every replica re-reads all
// bindings at most KeyTTL after its last read, so a change reaches every
// replica within that time. It is safe for concurrent use.
type Bindings struct {
	st  bindingStore
	now func() time.Time

	mu    sync.Mutex
	all   []*store.RoleBinding
	until time.Time
}

// NewBindings returns Bindings over st; now may be nil (time.Now).
func NewBindings(st bindingStore, now func() time.Time) *Bindings {
	if now == nil {
		now = time.Now
	}
	return &Bindings{st: st, now: now}
}

// Create stores a binding of roles to principal (a pattern may end in "*").
func (b *Bindings) Create(ctx context.Context, principal string, roles []string, creator string) (*store.RoleBinding, error) {
	if err := CheckPattern(principal); err != nil {
		return nil, fmt.Errorf("principal: %w", err)
	}
	if err := CheckRoles(roles); err != nil {
		return nil, err
	}
	var idb [8]byte
	rand.Read(idb[:])
	rb := &store.RoleBinding{
		ID:         hex.EncodeToString(idb[:]),
		Principal:  principal,
		Roles:      normalizeRoles(roles),
		CreateTime: b.now().UTC().Truncate(time.Microsecond),
		Creator:    creator,
	}
	if err := b.st.CreateRoleBinding(ctx, rb); err != nil {
		return nil, fmt.Errorf("create role binding: %w", err)
	}
	b.forget()
	return rb, nil
}

// Delete removes binding id.
func (b *Bindings) Delete(ctx context.Context, id string) error {
	err := b.st.DeleteRoleBinding(ctx, id)
	b.forget()
	return err
}

// List pages through the bindings.
func (b *Bindings) List(ctx context.Context, page store.Page) ([]*store.RoleBinding, string, error) {
	return b.st.ListRoleBindings(ctx, page)
}

func (b *Bindings) forget() {
	b.mu.Lock()
	b.until = time.Time{}
	b.mu.Unlock()
}

// RolesFor returns the roles that bindings give the principal name.
func (b *Bindings) RolesFor(ctx context.Context, name string) ([]string, error) {
	all, err := b.load(ctx)
	if err != nil {
		return nil, err
	}
	var roles []string
	for _, rb := range all {
		if MatchPrincipal(rb.Principal, name) {
			roles = append(roles, rb.Roles...)
		}
	}
	return roles, nil
}

func (b *Bindings) load(ctx context.Context) ([]*store.RoleBinding, error) {
	now := b.now()
	b.mu.Lock()
	if now.Before(b.until) {
		all := b.all
		b.mu.Unlock()
		return all, nil
	}
	b.mu.Unlock()
	var all []*store.RoleBinding
	page := store.Page{Limit: 1000}
	for {
		items, next, err := b.st.ListRoleBindings(ctx, page)
		if err != nil {
			return nil, fmt.Errorf("read role bindings: %w", err)
		}
		all = append(all, items...)
		if next == "" {
			break
		}
		page.After = next
	}
	b.mu.Lock()
	b.all, b.until = all, now.Add(KeyTTL)
	b.mu.Unlock()
	return all, nil
}
