package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kailash-gateway/kgw/internal/testenv"
)

// indentedCommands returns the shell commands of the indented code blocks
// of a markdown text: lines indented by 4 or more spaces, with lines ending
// in a backslash joined to the next. Only the section whose heading is
// section ("" for the whole text) is read.
func indentedCommands(md, section string) []string {
	var cmds []string
	in := section == ""
	cont := false
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "#") {
			title := strings.TrimSpace(strings.TrimLeft(line, "#"))
			if section != "" {
				in = title == section
			}
			continue
		}
		if !in {
			continue
		}
		indented := strings.HasPrefix(line, "    ") && strings.TrimSpace(line) != ""
		if !indented {
			cont = false
			continue
		}
		text := strings.TrimSpace(line)
		if cont {
			cmds[len(cmds)-1] += " " + strings.TrimSuffix(text, "\\")
		} else {
			cmds = append(cmds, strings.TrimSuffix(text, "\\"))
		}
		cont = strings.HasSuffix(text, "\\")
	}
	return cmds
}

func TestIndentedCommands(t *testing.T) {
	md := "# A\n    skip\n## Run it\ntext\n\n    one\n    two \\\n      more\n\n       three\n## Next\n    four\n"
	got := indentedCommands(md, "Run it")
	want := []string{"one", "two  more", "three"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("indentedCommands (-want +got):\n%s", diff)
	}
}

// TestHelloDBReadme runs the commands of examples/hello_db/README.md (after
// the shared setup of examples/README.md) with the built kgw binary, against
// a real gateway and PostgreSQL, and checks the result the README states.
// The only edits: the database host gets the test server's port, and the
// PostgreSQL tools get PGHOST/PGPORT/PGUSER.
func TestHelloDBReadme(t *testing.T) {
	root := repoRoot(t)
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	var setup []string
	for _, c := range indentedCommands(read("examples/README.md"), "Running an example by hand") {
		if strings.Contains(c, "kgw secrets put") || strings.Contains(c, "kgw resources put examples_") {
			setup = append(setup, c)
		}
	}
	readme := read("examples/hello_db/README.md")
	var steps []string
	for _, c := range indentedCommands(readme, "Run it") {
		if !strings.HasPrefix(c, "{") { // the printed result
			steps = append(steps, c)
		}
	}
	if len(setup) < 2 || len(steps) != 5 {
		t.Fatalf("README commands: setup %q, hello_db %q; want the secrets/resources setup and 5 steps", setup, steps)
	}
	m := regexp.MustCompile("(?s)Result of node `query`:\\s*\\n\\s+(\\{[^\\n]*\\})").FindStringSubmatch(readme)
	if m == nil {
		t.Fatal("hello_db README states no result of node query")
	}
	var wantResult map[string]any
	if err := json.Unmarshal([]byte(m[1]), &wantResult); err != nil {
		t.Fatalf("README result %s: %v", m[1], err)
	}

	pg := testenv.Postgres(t)
	const dbName = "kgw_hello_db" // as the README says
	if err := pg.DropDatabase(t.Context(), dbName); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.DropDatabase(context.Background(), dbName) })
	gw := testenv.Gateway(t)
	bin := t.TempDir()
	if err := os.Symlink(testenv.KGWBinary(t), filepath.Join(bin, "kgw")); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(),
		"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"KGW_ADDR="+gw.Addr, "PGHOST=127.0.0.1", "PGPORT="+strconv.Itoa(pg.Port), "PGUSER=postgres")
	sh := func(cmd string) (int, string) {
		c := exec.CommandContext(t.Context(), "bash", "-euo", "pipefail", "-c", cmd)
		c.Dir, c.Env = root, env
		out, err := c.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		return 0, string(out)
	}
	localhost := `"host": "localhost"`
	var runCmd, out string
	for _, cmd := range append(setup, steps...) {
		if strings.Contains(cmd, "--type database") {
			if !strings.Contains(cmd, localhost) {
				t.Fatalf("README database resource %q does not use %s", cmd, localhost)
			}
			cmd = strings.Replace(cmd, localhost, `"host": "127.0.0.1", "port": `+strconv.Itoa(pg.Port)+`, "sslmode": "disable"`, 1)
		}
		var code int
		code, out = sh(cmd)
		if code != 0 {
			t.Fatalf("README command failed (exit %d): %s\n%s\ngateway log:\n%s", code, cmd, out, gw.Logs())
		}
		if strings.HasPrefix(cmd, "kgw run ") {
			runCmd = cmd
		}
	}
	if runCmd == "" {
		t.Fatal("the hello_db README runs no workflow")
	}
	// The last command is the run: its result is the README's.
	_, rest, ok := strings.Cut(out, "result:\n")
	if !ok {
		t.Fatalf("kgw run printed no result:\n%s", out)
	}
	var got map[string]map[string]any
	if err := json.NewDecoder(strings.NewReader(rest)).Decode(&got); err != nil {
		t.Fatalf("kgw run result is not JSON: %v\n%s", err, out)
	}
	if diff := cmp.Diff(wantResult, got["query"]); diff != "" {
		t.Errorf("result of node query (-README +got):\n%s", diff)
	}
	// "--param user_id=99 fails the execution: user 99 not found (node query)".
	code, out := sh(strings.Replace(runCmd, "user_id=2", "user_id=99", 1))
	if code != 1 || !strings.Contains(out, "user 99 not found") || !strings.Contains(out, "[query]") {
		t.Errorf("user_id=99: exit %d, want 1 with 'user 99 not found' in node query:\n%s", code, out)
	}
}
