package codec

import (
	"github.com/kailash-gateway/kgw/store"
)

// APIKeyColumns are the api_keys columns ScanAPIKey reads, in order.
const APIKeyColumns = `id, name, roles, hash, create_time, expire_time, last_used_time, creator`

// ScanAPIKey reads one api_keys row selected with APIKeyColumns.
func ScanAPIKey(row Row) (*store.APIKey, error) {
	var (
		k                      store.APIKey
		roles                  string
		create, expire, lastUs int64
	)
	if err := row.Scan(&k.ID, &k.Name, &roles, &k.Hash, &create, &expire, &lastUs, &k.Creator); err != nil {
		return nil, err
	}
	var err error
	if k.Roles, err = DecodeStrings(roles); err != nil {
		return nil, err
	}
	k.CreateTime, k.ExpireTime, k.LastUsedTime = FromNanos(create), FromNanos(expire), FromNanos(lastUs)
	return &k, nil
}

// RoleBindingColumns are the role_bindings columns ScanRoleBinding reads.
const RoleBindingColumns = `id, principal, roles, create_time, creator`

// ScanRoleBinding reads one role_bindings row selected with
// RoleBindingColumns.
func ScanRoleBinding(row Row) (*store.RoleBinding, error) {
	var (
		b      store.RoleBinding
		roles  string
		create int64
	)
	if err := row.Scan(&b.ID, &b.Principal, &roles, &create, &b.Creator); err != nil {
		return nil, err
	}
	var err error
	if b.Roles, err = DecodeStrings(roles); err != nil {
		return nil, err
	}
	b.CreateTime = FromNanos(create)
	return &b, nil
}

// GrantColumns are the grants columns ScanGrant reads.
const GrantColumns = `kind, name, creator, allowed_callers`

// ScanGrant reads one grants row selected with GrantColumns.
func ScanGrant(row Row) (*store.Grant, error) {
	var (
		g       store.Grant
		kind    string
		callers string
	)
	if err := row.Scan(&kind, &g.Name, &g.Creator, &callers); err != nil {
		return nil, err
	}
	g.Kind = store.GrantKind(kind)
	var err error
	if g.AllowedCallers, err = DecodeStrings(callers); err != nil {
		return nil, err
	}
	return &g, nil
}
