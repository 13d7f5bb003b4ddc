package access

import (
	"strings"

	"github.com/kailash-gateway/kgw/store"
)

// MayUse reports whether p may use (reference in an execution, a named
// resource or CheckResource) a secret or named resource whose grant is g
// (nil: it predates access control). Admins always may; otherwise the
// creator, and callers that an allowed_callers entry matches. Things
// without a creator are usable by admins and secrets-admins only until an
// administrator grants them.
func MayUse(p *Principal, g *store.Grant) bool {
	if p.Has(RoleAdmin) {
		return true
	}
	if g == nil || g.Creator == "" || g.Creator == LocalName {
		if p.Has(RoleSecretsAdmin) {
			return true
		}
		if g == nil {
			return false
		}
	}
	if g.Creator != "" && g.Creator == p.Name {
		return true
	}
	return matchesCallers(p, g.AllowedCallers)
}

// MayExecute reports whether p may execute a workflow whose grant is g (nil:
// none recorded). Empty allowed_callers lets every caller that may execute
// at all; otherwise admins, the creator and the callers listed.
func MayExecute(p *Principal, g *store.Grant) bool {
	if g == nil || len(g.AllowedCallers) == 0 || p.Has(RoleAdmin) {
		return true
	}
	if g.Creator != "" && g.Creator == p.Name {
		return true
	}
	return matchesCallers(p, g.AllowedCallers)
}

// MayChange reports whether p may register a new version of, delete or
// change the grants of a thing whose grant is g: admins, and its creator.
// Things without a creator are changed by admins (and, for secrets,
// secrets-admins: see MayUse) only.
func MayChange(p *Principal, g *store.Grant) bool {
	if p.Has(RoleAdmin) {
		return true
	}
	return g != nil && g.Creator != "" && g.Creator == p.Name
}

func matchesCallers(p *Principal, callers []string) bool {
	for _, c := range callers {
		if r, ok := strings.CutPrefix(c, "role:"); ok {
			if p.Has(r) {
				return true
			}
			continue
		}
		if MatchPrincipal(c, p.Name) {
			return true
		}
	}
	return false
}
