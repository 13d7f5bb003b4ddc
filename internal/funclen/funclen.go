// Package funclen finds the long functions of a source tree. Its test
// walks every Go module of the repository and fails on any function longer
// than Max lines that is not on the allow-list in allow.go; `make lint`
// runs that test (docs/development.md, "Function length").
//
// A function's length is counted from the line of its func keyword to the
// line of its closing brace, both included, so a function of Max lines or
// fewer passes. Counted are function declarations and methods, and function
// literals assigned by a top-level var (var f = func() {…}). Literals inside
// a function count as part of that function. Generated files (those whose
// header says "Code generated … DO NOT EDIT.", see go/ast.IsGenerated) are
// skipped, as is everything under a directory named gen, node_modules,
// testdata, or one whose name starts with a dot.
package funclen

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
)

// Max is the longest a function may be, in lines, unless it is allowed.
const Max = 80

// A Func is one function longer than the limit Long was given.
type Func struct {
	// Key names the function as the allow-list does: the file's path
	// relative to the root, with forward slashes, a space, and the
	// function's name, with its receiver's type for a method
	// ("server/server.go New", "executor/run.go run.finish").
	Key   string
	Lines int
	Pos   token.Position // where the function starts, for messages
}

// Long returns the functions of the Go files under root that are longer
// than limit lines, sorted by Key. It fails on the first file that does not
// parse.
func Long(root string, limit int) ([]Func, error) {
	var long []Func
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && skipDir(d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		if ast.IsGenerated(f) {
			return nil
		}
		for name, fn := range funcs(f) {
			start, end := fset.Position(fn.Pos()), fset.Position(fn.End())
			if n := end.Line - start.Line + 1; n > limit {
				long = append(long, Func{Key: filepath.ToSlash(rel) + " " + name, Lines: n, Pos: start})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(long, func(i, j int) bool { return long[i].Key < long[j].Key })
	return long, nil
}

func skipDir(name string) bool {
	switch name {
	case "gen", "node_modules", "testdata":
		return true
	}
	return strings.HasPrefix(name, ".")
}

// funcs yields the file's function declarations and methods, and the
// function literals assigned by its top-level vars, by name.
func funcs(f *ast.File) func(yield func(string, ast.Node) bool) {
	return func(yield func(string, ast.Node) bool) {
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.FuncDecl:
				if d.Body != nil && !yield(funcName(d), d) {
					return
				}
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					vs, ok := spec.(*ast.ValueSpec)
					if !ok {
						continue
					}
					for i, v := range vs.Values {
						if lit, ok := v.(*ast.FuncLit); ok && i < len(vs.Names) && !yield(vs.Names[i].Name, lit) {
							return
						}
					}
				}
			}
		}
	}
}

// funcName is "Name" for a function and "Recv.Name" for a method, the
// receiver's type without pointer or type parameters.
func funcName(d *ast.FuncDecl) string {
	if d.Recv == nil || len(d.Recv.List) == 0 {
		return d.Name.Name
	}
	t := d.Recv.List[0].Type
	for {
		switch x := t.(type) {
		case *ast.StarExpr:
			t = x.X
			continue
		case *ast.IndexExpr:
			t = x.X
			continue
		case *ast.IndexListExpr:
			t = x.X
			continue
		case *ast.ParenExpr:
			t = x.X
			continue
		}
		break
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name + "." + d.Name.Name
	}
	return fmt.Sprintf("%T.%s", t, d.Name.Name)
}

// Check compares the long functions found against the allow-list: each
// entry maps a Key to the most lines that function may have, or to 0 when
// any length is allowed (converters). It returns one message per function
// over the limit and not allowed, per allowed function that grew past its
// entry, and per entry that matches no long function (split or renamed:
// the entry must go, so the list only shrinks).
func Check(long []Func, allow map[string]int) []string {
	var problems []string
	seen := map[string]bool{}
	for _, f := range long {
		seen[f.Key] = true
		max, ok := allow[f.Key]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s: %s is %d lines, over %d: split it along its steps (see docs/development.md)", f.Pos, f.Key, f.Lines, Max))
		case max > 0 && f.Lines > max:
			problems = append(problems, fmt.Sprintf("%s: %s grew to %d lines, over its allowed %d: split it rather than raise the entry", f.Pos, f.Key, f.Lines, max))
		}
	}
	var stale []string
	for key := range allow {
		if !seen[key] {
			stale = append(stale, fmt.Sprintf("allow-list entry %q matches no function over %d lines: remove it", key, Max))
		}
	}
	sort.Strings(stale)
	return append(problems, stale...)
}
