package kgw_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// quickStartRegion returns the marked region of example_test.go, dedented
// by one tab, as docs/clients.md shows it.
func quickStartRegion(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok1 := strings.Cut(string(src), "// --- quick start ---\n")
	body, _, ok2 := strings.Cut(rest, "\t// --- end quick start ---")
	if !ok1 || !ok2 {
		t.Fatal("example_test.go lacks the quick start markers")
	}
	lines := strings.Split(strings.TrimRight(body, "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, "\t")
	}
	return strings.Join(lines, "\n")
}

// TestDocsQuickStart checks that the Go quick start in docs/clients.md is
// the code TestEndToEnd runs.
func TestDocsQuickStart(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "clients.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "<!-- quickstart:go -->\n```go\n")
	block, _, ok2 := strings.Cut(rest, "\n```")
	if !ok || !ok2 {
		t.Fatal("docs/clients.md lacks the <!-- quickstart:go --> block")
	}
	if want := quickStartRegion(t); block != want {
		t.Errorf("docs/clients.md Go quick start differs from example_test.go:\n--- docs\n%s\n--- example_test.go\n%s", block, want)
	}
}
