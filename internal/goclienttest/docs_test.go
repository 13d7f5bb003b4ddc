package goclienttest_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// quickStartRegion returns the marked region of quickstart_test.go, dedented
// by one tab, as docs/clients.md shows it.
func quickStartRegion(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile("quickstart_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok1 := strings.Cut(string(src), "// --- quick start ---\n")
	body, _, ok2 := strings.Cut(rest, "\t// --- end quick start ---")
	if !ok1 || !ok2 {
		t.Fatal("quickstart_test.go lacks the quick start markers")
	}
	lines := strings.Split(strings.TrimRight(body, "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, "\t")
	}
	return strings.Join(lines, "\n")
}

// TestDocsQuickStart checks that the Go quick starts in README.md and
// docs/clients.md are the code TestEndToEnd runs.
func TestDocsQuickStart(t *testing.T) {
	want := quickStartRegion(t)
	for _, path := range []string{"README.md", filepath.Join("docs", "clients.md")} {
		doc, err := os.ReadFile(filepath.Join("..", "..", path))
		if err != nil {
			t.Fatal(err)
		}
		_, rest, ok := strings.Cut(string(doc), "<!-- quickstart:go -->\n```go\n")
		block, _, ok2 := strings.Cut(rest, "\n```")
		if !ok || !ok2 {
			t.Fatalf("%s lacks the <!-- quickstart:go --> block", path)
		}
		if block != want {
			t.Errorf("%s Go quick start differs from quickstart_test.go:\n--- docs\n%s\n--- quickstart_test.go\n%s", path, block, want)
		}
	}
}
