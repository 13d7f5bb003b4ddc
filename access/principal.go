package access

import (
	"fmt"
	"slices"
	"strings"
)

// Roles.
const (
	RoleAdmin        = "admin"
	RoleDeveloper    = "developer"
	RoleOperator     = "operator"
	RoleExecutor     = "executor"
	RoleViewer       = "viewer"
	RoleSecretsAdmin = "secrets-admin"
)

// Roles lists every role, in the order of the documentation.
var Roles = []string{RoleAdmin, RoleDeveloper, RoleOperator, RoleExecutor, RoleViewer, RoleSecretsAdmin}

// ValidRole reports whether r is one of Roles.
func ValidRole(r string) bool { return slices.Contains(Roles, r) }

// Authentication methods, as WhoAmI reports them.
const (
	MethodNone      = "none"
	MethodAPIKey    = "api_key"
	MethodJWT       = "jwt"
	MethodMTLS      = "mtls"
	MethodForwarded = "forwarded_client_cert"
)

// LocalName is the principal of every caller under --auth none.
const LocalName = "local"

// A Principal is an authenticated caller: its name (`key:<id>`,
// `jwt:<sub>`, a SPIFFE id, `cert:<CN>`, or `local`), its roles (sorted,
// without duplicates) and how it authenticated. It is immutable once built.
type Principal struct {
	Name   string
	Roles  []string
	Method string
}

// Local is the caller under --auth none: the local admin.
var Local = &Principal{Name: LocalName, Roles: []string{RoleAdmin}, Method: MethodNone}

// Has reports whether p has role r.
func (p *Principal) Has(r string) bool { return slices.Contains(p.Roles, r) }

// HasAny reports whether p has at least one of roles.
func (p *Principal) HasAny(roles ...string) bool {
	for _, r := range roles {
		if p.Has(r) {
			return true
		}
	}
	return false
}

// withRoles returns a copy of p with extra roles merged in.
func (p *Principal) withRoles(extra []string) *Principal {
	if len(extra) == 0 {
		return p
	}
	q := *p
	q.Roles = normalizeRoles(append(slices.Clone(p.Roles), extra...))
	return &q
}

// normalizeRoles sorts roles and drops duplicates and unknown names.
func normalizeRoles(roles []string) []string {
	out := make([]string, 0, len(roles))
	for _, r := range roles {
		if ValidRole(r) {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// CheckRoles validates a list of roles given by an administrator: at least
// one, each known.
func CheckRoles(roles []string) error {
	if len(roles) == 0 {
		return fmt.Errorf("at least one role is required (one of %s)", strings.Join(Roles, ", "))
	}
	for _, r := range roles {
		if !ValidRole(r) {
			return fmt.Errorf("unknown role %q: want one of %s", clip(r), strings.Join(Roles, ", "))
		}
	}
	return nil
}

// MatchPrincipal reports whether pattern matches the principal name: equal,
// or pattern ends in "*" and name starts with what comes before it.
func MatchPrincipal(pattern, name string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(name, prefix)
	}
	return pattern == name
}

// maxPatternLen bounds principals, patterns and caller entries.
const maxPatternLen = 512

// CheckPattern validates a principal pattern of a role binding: non-empty,
// printable, at most 512 bytes, "*" only at the end, and not "*" alone
// (which would give roles to every caller; bind roles to keys instead).
func CheckPattern(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("empty principal")
	case len(p) > maxPatternLen:
		return fmt.Errorf("longer than %d bytes", maxPatternLen)
	case p == "*":
		return fmt.Errorf(`"*" alone would match every caller; give a prefix such as "spiffe://mesh.example/ns/payments/*"`)
	case strings.Contains(strings.TrimSuffix(p, "*"), "*"):
		return fmt.Errorf(`%q: "*" may only end a pattern`, clip(p))
	}
	for _, c := range p {
		if c < 0x21 || c == 0x7f {
			return fmt.Errorf("%q: contains a space or control character", clip(p))
		}
	}
	return nil
}

// CheckCaller validates one allowed_callers entry: `role:<name>` with a
// known role, or a principal pattern (see CheckPattern; "*" alone is
// refused here too: list the roles that may use the thing instead).
func CheckCaller(c string) error {
	if r, ok := strings.CutPrefix(c, "role:"); ok {
		if !ValidRole(r) {
			return fmt.Errorf("%q: unknown role: want one of %s", clip(c), strings.Join(Roles, ", "))
		}
		return nil
	}
	return CheckPattern(c)
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// CheckKeyName validates the name of an API key: a letter or digit, then up
// to 127 letters, digits, '_', '.' or '-'.
func CheckKeyName(name string) error {
	if name == "" || len(name) > 128 || !isAlnum(name[0]) {
		return fmt.Errorf("%q is not a valid key name: want a letter or digit, then up to 127 letters, digits, '_', '.' or '-'", clip(name))
	}
	for i := 1; i < len(name); i++ {
		if c := name[i]; !isAlnum(c) && c != '_' && c != '.' && c != '-' {
			return fmt.Errorf("%q is not a valid key name: want a letter or digit, then up to 127 letters, digits, '_', '.' or '-'", clip(name))
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
