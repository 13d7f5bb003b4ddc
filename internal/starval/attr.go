package starval

import (
	"fmt"
	"slices"
	"strings"

	"go.starlark.net/starlark"
)

// NoSuchAttr is the error of x.name when x, described by what (its type,
// or "module 'time'"), has no attribute name: it lists the names x has,
// sorted. It is a starlark.NoSuchAttrError, so the interpreter still adds
// its own hint for a close name: "database has no .fetchvall field or
// method; valid: execute, fetch, … (did you mean .fetchval?)".
func NoSuchAttr(what, name string, names []string) error {
	names = slices.Sorted(slices.Values(names))
	return starlark.NoSuchAttrError(fmt.Sprintf("%s has no .%s field or method; valid: %s", what, name, strings.Join(names, ", ")))
}
