// Package layering states the import rules of DESIGN.md §2 and checks a
// package graph against them. Its test runs `go list` over the module and
// fails on any import against the rules; `make lint` runs that test.
//
// The rules, for the module's own packages (standard library and third
// party imports are not checked):
//
//   - imports flow one way, cmd → server → {executor, resources} →
//     secrets → store: a package imports only packages of lower layers, or
//     of its own subtree (executor/node from executor); access (identity
//     and grants) sits beside secrets, above store;
//   - executor and resources never import each other;
//   - the backends under resources/ (resources/postgres, …) are imported
//     only from within resources/ (resources/netguard, a policy and not a
//     backend, is imported like package resources);
//   - executor/node imports neither store nor resources;
//   - generated code (gen/) is imported only by server, clients and cmd.
//
// Helpers under internal/ (and store/internal, resources/internal, which
// Go already confines to their subtree) may be imported from anywhere.
package layering

import (
	"fmt"
	"slices"
	"strings"
)

// layers ranks the top-level packages: a package may import those of a
// lower rank. executor and resources share a rank and must not import
// each other (see Check).
var layers = map[string]int{
	"store":     1,
	"secrets":   2,
	"access":    2, // identity and grants: used by server and cmd, uses store
	"executor":  3,
	"resources": 3,
	"server":    4,
	"cmd":       5,
}

// resourceHelpers are the packages under resources/ that are not
// backends: policies the gateway configures (netguard guards the dials of
// every backend, and cmd/kgw adds the gateway's own listeners to it).
var resourceHelpers = map[string]bool{
	"resources/netguard": true,
}

// A Violation is one import against the rules.
type Violation struct {
	From, To string // module-relative package paths
	Rule     string
}

func (v Violation) String() string { return fmt.Sprintf("%s imports %s: %s", v.From, v.To, v.Rule) }

// Check returns the imports of graph that break the rules. graph maps each
// package of the module, by its path relative to the module root, to the
// module packages it imports (same form); packages outside the module are
// left out by the caller.
func Check(graph map[string][]string) []Violation {
	var out []Violation
	for from, imports := range graph {
		for _, to := range imports {
			if rule := check(from, to); rule != "" {
				out = append(out, Violation{From: from, To: to, Rule: rule})
			}
		}
	}
	slices.SortFunc(out, func(a, b Violation) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// check returns the rule that the import of to by from breaks, or "".
func check(from, to string) string {
	fromTop, toTop := top(from), top(to)
	switch {
	case toTop == "internal" || strings.Contains(to, "/internal/"):
		return "" // helpers; Go confines nested internal packages itself
	case toTop == "gen":
		if fromTop == "server" || fromTop == "clients" || fromTop == "cmd" || fromTop == "gen" {
			return ""
		}
		return "only server, clients and cmd import generated code"
	case from == "executor/node" || strings.HasPrefix(from, "executor/node/"):
		if toTop == "store" || toTop == "resources" {
			return "executor/node imports neither store nor resources"
		}
	}
	if toTop == "resources" && to != "resources" && !resourceHelpers[to] && fromTop != "resources" {
		return "resource backends are reached only through package resources"
	}
	if fromTop == toTop {
		return "" // within one subtree
	}
	rf, okf := layers[fromTop]
	rt, okt := layers[toTop]
	if !okt {
		return "" // clients, examples: not a layer of the gateway
	}
	if !okf {
		return fmt.Sprintf("%s is not a layer of the gateway and may not import it", fromTop)
	}
	if rf == rt {
		return fmt.Sprintf("%s and %s never import each other", fromTop, toTop)
	}
	if rf < rt {
		return "imports flow cmd → server → {executor, resources} → secrets → store"
	}
	return ""
}

// top returns the first element of a module-relative package path.
func top(path string) string {
	t, _, _ := strings.Cut(path, "/")
	return t
}
