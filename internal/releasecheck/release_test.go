//go:build releasecheck

package releasecheck

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kailash-gateway/kgw/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// repoRoot is the repository root (this package is internal/releasecheck).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// run runs a command in dir and returns its standard output; it fails t
// with the output when the command fails.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s\n%s", name, strings.Join(args, " "), dir, err, out.String(), errb.String())
	}
	return out.String()
}

// quickStart returns the quick start block of a README after marker-free
// fence lang, with the placeholders replaced.
func quickStart(t *testing.T, path, lang string, repl map[string]string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## Quick start.*?```" + lang + "\n(.*?)```").FindSubmatch(data)
	if m == nil {
		t.Fatalf("%s: no ```%s block under ## Quick start", path, lang)
	}
	code := string(m[1])
	for from, to := range repl {
		if !strings.Contains(code, from) {
			t.Fatalf("%s: the quick start no longer contains %s", path, from)
		}
		code = strings.ReplaceAll(code, from, to)
	}
	return code
}

type target struct {
	gateway, db string
	port        int
}

func setup(t *testing.T) target {
	t.Helper()
	pg := testenv.Postgres(t)
	u, err := url.Parse(pg.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return target{gateway: testenv.Gateway(t).Addr, db: strings.TrimPrefix(u.Path, "/"), port: port}
}

func TestPythonWheelAndSdist(t *testing.T) {
	root := repoRoot(t)
	tg := setup(t)
	dist := t.TempDir()
	py := filepath.Join(root, "clients", "python", ".venv", "bin", "python")
	run(t, root, nil, py, "-m", "build", "--outdir", dist, filepath.Join(root, "clients", "python"))
	wheels, _ := filepath.Glob(filepath.Join(dist, "kgw-*.whl"))
	sdists, _ := filepath.Glob(filepath.Join(dist, "kgw-*.tar.gz"))
	if len(wheels) != 1 || len(sdists) != 1 {
		t.Fatalf("build made %v and %v, want one wheel and one sdist", wheels, sdists)
	}
	code := quickStart(t, filepath.Join(root, "clients", "python", "README.md"), "python", map[string]string{
		`"127.0.0.1:50051"`:   strconv.Quote(tg.gateway),
		"port=5432":           "port=" + strconv.Itoa(tg.port),
		`database="postgres"`: "database=" + strconv.Quote(tg.db),
	})
	for _, artefact := range []string{wheels[0], sdists[0]} {
		t.Run(filepath.Base(artefact), func(t *testing.T) {
			dir := t.TempDir() // outside the repository: nothing resolves to the source tree
			venv := filepath.Join(dir, "venv")
			run(t, dir, nil, "python3", "-m", "venv", venv)
			run(t, dir, nil, filepath.Join(venv, "bin", "pip"), "install", "-q", artefact+"[yaml]")
			qs := filepath.Join(dir, "quickstart.py")
			if err := os.WriteFile(qs, []byte(code), 0o600); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 2; i++ {
				if out := run(t, dir, nil, filepath.Join(venv, "bin", "python"), qs); out != "Hello from kgw\n" {
					t.Fatalf("quick start printed %q", out)
				}
			}
			out := run(t, dir, nil, filepath.Join(venv, "bin", "python"), "-c", "import kgw, kgw.v1.workflow_pb2, yaml; print(kgw.__version__, kgw.__file__)")
			if strings.Contains(out, root) {
				t.Errorf("kgw imported from the source tree: %s", out)
			}
		})
	}
}

func TestNpmTarball(t *testing.T) {
	root := repoRoot(t)
	tg := setup(t)
	pkgDir := filepath.Join(root, "clients", "ts")
	dist := t.TempDir()
	run(t, pkgDir, nil, "npm", "ci", "--no-audit", "--no-fund")
	out := run(t, pkgDir, nil, "npm", "pack", "--pack-destination", dist)
	tarballs, _ := filepath.Glob(filepath.Join(dist, "*.tgz"))
	if len(tarballs) != 1 {
		t.Fatalf("npm pack made %v (%s)", tarballs, out)
	}
	dir := t.TempDir()
	run(t, dir, nil, "npm", "init", "-y")
	run(t, dir, nil, "npm", "install", "--no-audit", "--no-fund", tarballs[0])
	code := quickStart(t, filepath.Join(pkgDir, "README.md"), "ts", map[string]string{
		`"127.0.0.1:50051"`:    strconv.Quote(tg.gateway),
		"port: 5432":           "port: " + strconv.Itoa(tg.port),
		`database: "postgres"`: "database: " + strconv.Quote(tg.db),
	})
	// The quick start uses no TypeScript-only syntax, so Node runs it as a module.
	qs := filepath.Join(dir, "quickstart.mjs")
	if err := os.WriteFile(qs, []byte(code), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if out := run(t, dir, nil, "node", qs); out != "Hello from kgw\n" {
			t.Fatalf("quick start printed %q", out)
		}
	}
	// Consumers get one copy of the runtime: the package declares ranges.
	ls := run(t, dir, nil, "npm", "ls", "--all", "--parseable", "@bufbuild/protobuf")
	if n := strings.Count(ls, "node_modules/@bufbuild/protobuf\n"); n != 1 {
		t.Errorf("@bufbuild/protobuf installed %d times:\n%s", n, ls)
	}
}

func TestGoModule(t *testing.T) {
	root := repoRoot(t)
	tg := setup(t)
	dir := t.TempDir()
	writeQuickStartModule(t, root, dir)
	env := []string{"GOFLAGS=-mod=mod", "GOWORK=off"}
	run(t, dir, env, "go", "mod", "tidy")
	for i := 0; i < 2; i++ {
		if out := run(t, dir, env, "go", "run", ".", tg.gateway, strconv.Itoa(tg.port), tg.db); out != "Hello from kgw\n" {
			t.Fatalf("quick start printed %q", out)
		}
	}
	checkClientDeps(t, dir, env)
}

// writeQuickStartModule writes into dir a module whose main runs the Go
// quick start of README.md (arguments: gateway address, PostgreSQL port,
// database), requiring the Go client of the repository at root.
func writeQuickStartModule(t *testing.T, root, dir string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- quickstart:go -->\n```go\n(.*?)```").FindSubmatch(data)
	if m == nil {
		t.Fatal("README.md: no Go quick start")
	}
	body := string(m[1]) // not re-indented: it holds a raw string of Starlark
	main := `package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"

	kgw "github.com/kailash-gateway/kgw/clients/go"
)

func main() {
	port, _ := strconv.Atoi(os.Args[2])
	if _, err := quickStart(context.Background(), os.Args[1], port, os.Args[3]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func quickStart(ctx context.Context, target string, pgPort int, database string) (any, error) {
	` + body + `
	return nil, nil
}

var _ = errors.Is
`
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(main), 0o600); err != nil {
		t.Fatal(err)
	}
	// Nothing is published yet: the fresh module reaches the client and the
	// generated code it requires through replace directives (a dependency's
	// own replace directives do not apply to the module that requires it).
	gomod := "module example.com/quickstart\n\ngo 1.23\n\nrequire github.com/kailash-gateway/kgw/clients/go v0.0.0\n\n" +
		"replace github.com/kailash-gateway/kgw/clients/go => " + filepath.Join(root, "clients", "go") + "\n" +
		"replace github.com/kailash-gateway/kgw/gen/go => " + filepath.Join(root, "gen", "go") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o600); err != nil {
		t.Fatal(err)
	}
}

// checkClientDeps checks what a build of the module in dir pulls in, and
// what go get adds to its module graph (go list -m all): none of the
// server's dependencies, nor the server module itself.
func checkClientDeps(t *testing.T, dir string, env []string) {
	t.Helper()
	server := []string{"github.com/jackc/pgx", "github.com/redis/rueidis", "go.starlark.net", "modernc.org/sqlite", "github.com/mattn/go-sqlite3"}
	mods := run(t, dir, env, "go", "list", "-deps", "-f", "{{with .Module}}{{.Path}}{{end}}", ".")
	for _, dep := range server {
		if strings.Contains(mods, dep) {
			t.Errorf("the Go client's build needs %s, a server dependency", dep)
		}
	}
	all := run(t, dir, env, "go", "list", "-m", "all")
	for _, line := range strings.Split(strings.TrimSpace(all), "\n") {
		path, _, _ := strings.Cut(line, " ")
		if path == "github.com/kailash-gateway/kgw" {
			t.Errorf("go list -m all lists the server module: %q", line)
		}
		for _, dep := range server {
			if strings.HasPrefix(path, dep) {
				t.Errorf("go list -m all lists %q, a server dependency", line)
			}
		}
	}
	for _, want := range []string{"github.com/kailash-gateway/kgw/clients/go", "github.com/kailash-gateway/kgw/gen/go", "google.golang.org/grpc"} {
		if !regexp.MustCompile("(?m)^" + regexp.QuoteMeta(want) + " ").MatchString(all) {
			t.Errorf("go list -m all lacks %s:\n%s", want, all)
		}
	}
	t.Logf("go list -m all in the fresh module:\n%s", all)
}
