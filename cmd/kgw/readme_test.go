package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kailash-gateway/kgw/internal/testenv"
)

// readmeCommands returns the shell commands of the indented code blocks of
// md (lines indented by 4 or more spaces, dedented by the block's
// indentation). Only the section whose heading is section ("" for the whole
// text) is read. A command runs on over lines until bash finds it complete:
// no trailing backslash, every quote closed, every compound command (for …
// done) ended. Blocks that start with "{" are printed results, not commands.
func readmeCommands(md, section string) ([]string, error) {
	var blocks [][]string
	var cur []string
	flush := func() {
		if len(cur) > 0 {
			blocks = append(blocks, cur)
		}
		cur = nil
	}
	in := section == ""
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "#") {
			flush()
			if section != "" {
				in = strings.TrimSpace(strings.TrimLeft(line, "#")) == section
			}
			continue
		}
		if in && strings.HasPrefix(line, "    ") && strings.TrimSpace(line) != "" {
			cur = append(cur, line)
			continue
		}
		flush()
	}
	flush()

	var cmds []string
	for _, block := range blocks {
		indent := len(block[0])
		for _, l := range block {
			indent = min(indent, len(l)-len(strings.TrimLeft(l, " ")))
		}
		if strings.HasPrefix(strings.TrimSpace(block[0]), "{") {
			continue
		}
		acc := ""
		for _, l := range block {
			acc += l[indent:] + "\n"
			if strings.HasSuffix(strings.TrimRight(l, " "), "\\") || !bashComplete(acc) {
				continue
			}
			cmds = append(cmds, strings.TrimSpace(acc))
			acc = ""
		}
		if acc != "" {
			return nil, fmt.Errorf("incomplete shell command: %q", acc)
		}
	}
	return cmds, nil
}

// bashComplete reports whether bash parses script without error.
func bashComplete(script string) bool {
	return exec.Command("bash", "-n", "-c", script).Run() == nil
}

func TestReadmeCommands(t *testing.T) {
	md := "# A\n    skip\n## Run it\ntext\n\n    one\n    two \\\n      more\n\n       three 'x\n       y'\n" +
		"    for i in 1 2; do\n      echo $i\n    done\n\n    {\"printed\": 1}\n## Next\n    four\n"
	got, err := readmeCommands(md, "Run it")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"one", "two \\\n  more", "three 'x\n   y'", "for i in 1 2; do\n  echo $i\ndone"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("readmeCommands (-want +got):\n%s", diff)
	}
	if _, err := readmeCommands("# Run it\n    echo 'open\n", "Run it"); err == nil {
		t.Error("an unclosed quote is not reported")
	}
}

// Markers of partialJSON.
const (
	anyValue  = "\x00any"  // `...`, `{...}` or `[...]` as a value: anything
	moreItems = "\x00more" // `, ...` at the end of a list: more elements
)

// partialJSON parses JSON as READMEs write it, with `...` for what they
// leave out: a value `...`, `{...}` or `[...]` stands for any value; `, ...`
// ends an object (whose keys are compared as a subset anyway) or a list
// with more elements; a string ending in "..." is a prefix.
func partialJSON(s string) (any, error) {
	var b strings.Builder
	var stack []byte
	inStr, esc := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if inStr {
			b.WriteByte(c)
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			continue
		}
		switch {
		case c == '"':
			inStr = true
			b.WriteByte(c)
		case (c == '{' || c == '[') && strings.HasPrefix(s[i+1:], "...") && len(s) > i+4 && s[i+4] == c+2:
			b.WriteString(`"\u0000any"`) // '{'+2 == '}', '['+2 == ']'
			i += 4
		case c == '{' || c == '[':
			stack = append(stack, c)
			b.WriteByte(c)
		case c == '}' || c == ']':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			b.WriteByte(c)
		case strings.HasPrefix(s[i:], "..."):
			i += 2
			out := strings.TrimRight(b.String(), " ")
			switch {
			case strings.HasSuffix(out, ":"):
				b.WriteString(`"\u0000any"`)
			case len(stack) > 0 && stack[len(stack)-1] == '[':
				b.WriteString(`"\u0000more"`)
			default:
				b.Reset()
				b.WriteString(strings.TrimSuffix(out, ","))
			}
		default:
			b.WriteByte(c)
		}
	}
	var v any
	if err := json.Unmarshal([]byte(b.String()), &v); err != nil {
		return nil, fmt.Errorf("stated JSON %s (read as %s): %w", s, b.String(), err)
	}
	return v, nil
}

// partialMismatches compares got with want from partialJSON and describes
// each difference: objects compare want's keys only, lists element by
// element, strings ending in "..." as prefixes.
func partialMismatches(path string, want, got any) []string {
	switch w := want.(type) {
	case string:
		if w == anyValue {
			return nil
		}
		g, ok := got.(string)
		if p, cut := strings.CutSuffix(w, "..."); cut && ok && strings.HasPrefix(g, p) {
			return nil
		}
		if ok && g == w {
			return nil
		}
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			break
		}
		var out []string
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				out = append(out, fmt.Sprintf("%s.%s: missing", path, k))
				continue
			}
			out = append(out, partialMismatches(path+"."+k, wv, gv)...)
		}
		return out
	case []any:
		g, ok := got.([]any)
		if !ok {
			break
		}
		more := len(w) > 0 && w[len(w)-1] == moreItems
		if more {
			w = w[:len(w)-1]
		}
		if len(g) < len(w) || (!more && len(g) != len(w)) {
			break
		}
		var out []string
		for i := range w {
			out = append(out, partialMismatches(fmt.Sprintf("%s[%d]", path, i), w[i], g[i])...)
		}
		return out
	default:
		if cmp.Equal(want, got) {
			return nil
		}
	}
	return []string{fmt.Sprintf("%s: README says %s, got %s", path, jsonText(want), jsonText(got))}
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return strings.ReplaceAll(string(b), `\u0000`, "")
}

func TestPartialJSON(t *testing.T) {
	want, err := partialJSON(`{"a": 1, "b": [...], "c": ..., "d": {...}, "e": ["x ...", ...], "f": "y", ...}`)
	if err != nil {
		t.Fatal(err)
	}
	good := map[string]any{"a": 1.0, "b": []any{}, "c": 2.0, "d": map[string]any{}, "e": []any{"x 1", "z"}, "f": "y", "g": 3.0}
	if m := partialMismatches("r", want, good); m != nil {
		t.Errorf("mismatches of a matching value: %q", m)
	}
	bad := map[string]any{"a": 2.0, "b": 1.0, "d": 1.0, "e": []any{"z"}, "f": "yy"}
	if m := partialMismatches("r", want, bad); len(m) != 4 {
		t.Errorf("mismatches %q, want 4 (a, c missing, e, f)", m)
	}
}

// syncBuffer is a bytes.Buffer safe for a process writing and a test
// reading.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// readmeShell runs README commands with the substitutions the tests allow:
// the kgw binary under test first in PATH, KGW_ADDR, PGHOST/PGPORT/PGUSER
// for createdb and psql, a redis-cli that talks to the test Redis, the
// test servers' ports in resource configs, and the addresses of the
// gateway and the example upstream.
type readmeShell struct {
	root      string
	env       []string
	gw        *testenv.GatewayProcess
	pgPort    int
	redisPort int
	upstream  string      // the example upstream's address
	upBin     string      // the built ./examples/upstream
	upLog     *syncBuffer // what the upstream logged
}

const (
	readmeGatewayAddr  = "127.0.0.1:50051"
	readmeUpstreamAddr = "127.0.0.1:8090"
	readmeUpstreamRun  = "go run ./examples/upstream"
	readmeDBHost       = `"host": "localhost"`
	readmeRedisPort    = `"port": 6379`
)

// newReadmeShell starts the gateway (PostgreSQL and Redis are the shared
// test servers), builds the example upstream and puts kgw, the redis-cli
// wrapper and root/bin (grpcurl) first in PATH.
func newReadmeShell(t *testing.T, root string) *readmeShell {
	t.Helper()
	pg := testenv.Postgres(t)
	redis := testenv.Redis(t)
	gw := testenv.Gateway(t)
	bin := t.TempDir()
	if err := os.Symlink(testenv.KGWBinary(t), filepath.Join(bin, "kgw")); err != nil {
		t.Fatal(err)
	}
	realRedisCLI, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("redis-cli not found (it comes with the redis-server package): %v", err)
	}
	shim := fmt.Sprintf("#!/bin/sh\nexec %s -p %d \"$@\"\n", realRedisCLI, redis.Port)
	if err := os.WriteFile(filepath.Join(bin, "redis-cli"), []byte(shim), 0o755); err != nil {
		t.Fatal(err)
	}
	upBin := filepath.Join(bin, "upstream")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", upBin, "./examples/upstream")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/upstream: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(root, "bin", "grpcurl")); err != nil {
		t.Fatalf("grpcurl not found in %s/bin: run `make tools`", root)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	upAddr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(),
		"PATH="+bin+string(os.PathListSeparator)+filepath.Join(root, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"),
		"KGW_ADDR="+gw.Addr, "PGHOST=127.0.0.1", "PGPORT="+strconv.Itoa(pg.Port), "PGUSER=postgres")
	return &readmeShell{root: root, env: env, gw: gw, pgPort: pg.Port, redisPort: redis.Port, upstream: upAddr, upBin: upBin, upLog: &syncBuffer{}}
}

// substitute rewrites a README command for the test servers.
func (s *readmeShell) substitute(t *testing.T, cmd string) string {
	t.Helper()
	if strings.Contains(cmd, "--type database") {
		if !strings.Contains(cmd, readmeDBHost) {
			t.Fatalf("README database resource does not use %s: %s", readmeDBHost, cmd)
		}
		cmd = strings.Replace(cmd, readmeDBHost, readmeDBHost+`, "port": `+strconv.Itoa(s.pgPort), 1)
	}
	if strings.Contains(cmd, "--type cache") {
		if !strings.Contains(cmd, readmeRedisPort) {
			t.Fatalf("README cache resource does not use %s: %s", readmeRedisPort, cmd)
		}
		cmd = strings.Replace(cmd, readmeRedisPort, `"port": `+strconv.Itoa(s.redisPort), 1)
	}
	cmd = strings.ReplaceAll(cmd, readmeUpstreamRun, s.upBin)
	cmd = strings.ReplaceAll(cmd, readmeUpstreamAddr, s.upstream)
	return strings.ReplaceAll(cmd, readmeGatewayAddr, s.gw.Addr)
}

// run runs a README command (after substitute) with bash and returns its
// exit status and output.
func (s *readmeShell) run(t *testing.T, cmd string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", s.substitute(t, cmd))
	c.Dir, c.Env = s.root, s.env
	out, err := c.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return 0, string(out)
}

// startUpstream runs the README's upstream command in the background until
// the test ends, and waits until it accepts connections.
func (s *readmeShell) startUpstream(t *testing.T, cmd string) {
	t.Helper()
	c := exec.Command("bash", "-c", "exec "+s.substitute(t, cmd))
	c.Dir, c.Env = s.root, s.env
	c.Stdout, c.Stderr = s.upLog, s.upLog
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.Start(); err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- c.Wait() }()
	t.Cleanup(func() {
		_ = c.Process.Kill()
		<-exited
	})
	for deadline := time.Now().Add(30 * time.Second); ; {
		conn, err := net.Dial("tcp", s.upstream)
		if err == nil {
			_ = conn.Close()
			return
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("the example upstream (%s) exited: %v\n%s", cmd, err, s.upLog.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the example upstream (%s) does not accept connections on %s:\n%s", cmd, s.upstream, s.upLog.String())
		}
	}
}

// readmeCmd is a README command and what it did.
type readmeCmd struct {
	text string // as the README writes it
	code int
	out  string
}

// readmeExample is one example's README, its commands and their outcome.
type readmeExample struct {
	t      *testing.T
	shell  *readmeShell
	name   string
	readme string // whitespace collapsed to single spaces
	raw    string
	cmds   []readmeCmd
	runs   []int // indexes in cmds of the `kgw run` commands
	seen   map[int]bool
}

// runExample runs the "Run it" commands of examples/<name>/README.md. A
// command other than `kgw run` that fails fails t; the outcome of each run
// is for the checks, which must look at every one of them.
func (s *readmeShell) runExample(t *testing.T, name string) *readmeExample {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.root, "examples", name, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	cmds, err := readmeCommands(string(b), "Run it")
	if err != nil {
		t.Fatalf("examples/%s/README.md: %v", name, err)
	}
	if len(cmds) == 0 {
		t.Fatalf("examples/%s/README.md has no commands under \"Run it\"", name)
	}
	e := &readmeExample{t: t, shell: s, name: name, raw: string(b), readme: strings.Join(strings.Fields(string(b)), " "), seen: map[int]bool{}}
	for _, cmd := range cmds {
		code, out := s.run(t, cmd)
		isRun := strings.Contains(cmd, "kgw run ")
		if code != 0 && !isRun {
			t.Fatalf("README command failed (exit %d): %s\n%s\ngateway log:\n%s", code, cmd, out, s.gw.Logs())
		}
		if isRun {
			e.runs = append(e.runs, len(e.cmds))
		}
		e.cmds = append(e.cmds, readmeCmd{text: cmd, code: code, out: out})
	}
	t.Cleanup(func() {
		for i := range e.runs {
			if !e.seen[i] && !t.Failed() {
				t.Errorf("the test does not check `kgw run` command %d of examples/%s/README.md: %s", i+1, name, e.cmds[e.runs[i]].text)
			}
		}
	})
	return e
}

// command returns the i-th `kgw run` command of the README.
func (e *readmeExample) command(i int) readmeCmd {
	e.t.Helper()
	if i >= len(e.runs) {
		e.t.Fatalf("examples/%s/README.md has %d `kgw run` commands, the test wants #%d", e.name, len(e.runs), i+1)
	}
	e.seen[i] = true
	return e.cmds[e.runs[i]]
}

// results returns the results printed by the i-th `kgw run` command (one
// per execution: a loop runs several), failing t unless it exited 0.
func (e *readmeExample) results(i int) []map[string]any {
	e.t.Helper()
	c := e.command(i)
	if c.code != 0 {
		e.t.Fatalf("README command exited %d, want 0 (COMPLETED): %s\n%s", c.code, c.text, c.out)
	}
	return parseRunResults(e.t, c.out)
}

// result is results for a command that runs one execution.
func (e *readmeExample) result(i int) map[string]any {
	e.t.Helper()
	rs := e.results(i)
	if len(rs) != 1 {
		e.t.Fatalf("README command printed %d results, want 1: %s", len(rs), e.command(i).text)
	}
	return rs[0]
}

// parseRunResults decodes each "result:" of `kgw run` output.
func parseRunResults(t *testing.T, out string) []map[string]any {
	t.Helper()
	var rs []map[string]any
	rest := out
	for {
		_, after, ok := strings.Cut(rest, "\nresult:\n")
		if !ok {
			break
		}
		var r map[string]any
		dec := json.NewDecoder(strings.NewReader(after))
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("kgw run result is not JSON: %v\n%s", err, out)
		}
		rs = append(rs, r)
		rest = after[dec.InputOffset():]
	}
	if len(rs) == 0 {
		t.Fatalf("kgw run printed no result:\n%s", out)
	}
	return rs
}

// failedRun checks that output out of `kgw run` is a failed execution
// (exit 1) whose error contains each of wants.
func failedRun(t *testing.T, what string, code int, out string, wants ...string) {
	t.Helper()
	_, errLine, _ := strings.Cut(out, "\nerror:")
	errLine, _, _ = strings.Cut(errLine, "\n")
	if code != 1 || !strings.Contains(out, "status:    FAILED") {
		t.Errorf("%s: exit %d, want 1 with status FAILED:\n%s", what, code, out)
		return
	}
	for _, w := range wants {
		if !strings.Contains(errLine, w) {
			t.Errorf("%s: error %q lacks %q", what, errLine, w)
		}
	}
}

// variant runs the i-th `kgw run` command of the README with old replaced
// by new (new appended when old is empty), as the README's prose suggests.
func (e *readmeExample) variant(i int, old, new string) (int, string) {
	e.t.Helper()
	cmd := e.command(i).text
	switch {
	case old == "" && new != "":
		cmd += " " + new
	case old != "":
		if !strings.Contains(cmd, old) {
			e.t.Fatalf("README command lacks %q: %s", old, cmd)
		}
		cmd = strings.Replace(cmd, old, new, 1)
	}
	return e.shell.run(e.t, cmd)
}

// claim fails t unless the README says text (whitespace collapsed): the
// test checks what the README says, so a changed sentence needs a changed
// test.
func (e *readmeExample) claim(text string) {
	e.t.Helper()
	if !strings.Contains(e.readme, strings.Join(strings.Fields(text), " ")) {
		e.t.Errorf("examples/%s/README.md no longer says %q; update the test with it", e.name, text)
	}
}

// stated returns the first `code span` of the README after prefix.
func (e *readmeExample) stated(prefix string) string {
	e.t.Helper()
	_, after, ok := strings.Cut(e.readme, strings.Join(strings.Fields(prefix), " "))
	if ok {
		if m := regexp.MustCompile("^[^`]*`([^`]+)`").FindStringSubmatch(after); m != nil {
			return m[1]
		}
	}
	e.t.Fatalf("examples/%s/README.md states nothing in backquotes after %q", e.name, prefix)
	return ""
}

// wantJSON compares got with the README's partial JSON want.
func (e *readmeExample) wantJSON(what, want string, got any) {
	e.t.Helper()
	w, err := partialJSON(want)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, m := range partialMismatches(what, w, got) {
		e.t.Error(m)
	}
}

// sh runs a command of the check's own (psql, redis-cli) through the same
// substitutions, failing t unless it succeeds; it returns the trimmed
// output.
func (e *readmeExample) sh(cmd string) string {
	e.t.Helper()
	code, out := e.shell.run(e.t, cmd)
	if code != 0 {
		e.t.Fatalf("%s: exit %d\n%s", cmd, code, out)
	}
	return strings.TrimSpace(out)
}

// psql runs sql on the example's database and returns the unaligned rows.
func (e *readmeExample) psql(sql string) string {
	e.t.Helper()
	return e.sh("psql -X -At -v ON_ERROR_STOP=1 -d kgw_" + e.name + " -c " + shellQuote(sql))
}

// redisInt runs a redis-cli command that answers an integer.
func (e *readmeExample) redisInt(cmd string) int {
	e.t.Helper()
	out := e.sh(cmd)
	n, err := strconv.Atoi(out)
	if err != nil {
		e.t.Fatalf("%s = %q, want an integer", cmd, out)
	}
	return n
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// field walks decoded JSON: field(v, "a", "b") is v["a"]["b"], nil when a
// step is missing.
func field(v any, keys ...string) any {
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}

// TestExampleReadmes runs the "Run it" commands of every examples/*/README.md,
// as written, after the setup of examples/README.md, with the built kgw
// binary against one real gateway, PostgreSQL, Redis and the example
// upstream, and checks the results each README states. The only changes to
// the commands are the addresses of the test servers (readmeShell).
func TestExampleReadmes(t *testing.T) {
	root := repoRoot(t)
	index, err := os.ReadFile(filepath.Join(root, "examples", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	names := exampleNames(t, string(index))
	setup, err := readmeCommands(string(index), "Running an example by hand")
	if err != nil {
		t.Fatalf("examples/README.md: %v", err)
	}

	s := newReadmeShell(t, root)
	pg := testenv.Postgres(t)
	for _, name := range names {
		if err := pg.DropDatabase(t.Context(), "kgw_"+name); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = pg.DropDatabase(context.Background(), "kgw_"+name) })
	}
	// The READMEs write under the key prefix demo:; an external test Redis
	// may hold keys of an earlier run.
	if code, out := s.run(t, "redis-cli --scan --pattern 'demo:*' | xargs -r redis-cli del"); code != 0 {
		t.Fatalf("clear demo:* keys: %s", out)
	}

	// examples/README.md: the upstream, then the shared secrets and
	// resources; its hello_db walk-through must be the hello_db README's,
	// and its grpcurl command runs after that.
	var upstreamCmd, grpcurlCmd string
	var walkThrough []string
	for _, c := range setup {
		switch {
		case strings.Contains(c, readmeUpstreamRun):
			upstreamCmd = c
		case strings.HasPrefix(c, "grpcurl "):
			grpcurlCmd = c
		case strings.Contains(c, "hello_db"):
			walkThrough = append(walkThrough, c)
		}
	}
	if upstreamCmd == "" || grpcurlCmd == "" {
		t.Fatalf("examples/README.md lacks the upstream or the grpcurl command: %q", setup)
	}
	s.startUpstream(t, upstreamCmd)
	var nSetup int
	for _, c := range setup {
		if c == upstreamCmd || c == grpcurlCmd || strings.Contains(c, "hello_db") {
			continue
		}
		nSetup++
		if code, out := s.run(t, c); code != 0 {
			t.Fatalf("examples/README.md command failed (exit %d): %s\n%s\ngateway log:\n%s", code, c, out, s.gw.Logs())
		}
	}
	if nSetup != 4 {
		t.Errorf("examples/README.md has %d setup commands, want 4 (two secrets, two resources)", nSetup)
	}
	checkWalkThrough(t, root, walkThrough)

	for _, c := range readmeChecks {
		t.Run(c.name, func(t *testing.T) {
			c.check(t, s.runExample(t, c.name))
		})
		if c.name == "hello_db" {
			t.Run("hello_db_grpcurl", func(t *testing.T) {
				checkGrpcurlHello(t, s, grpcurlCmd)
			})
		}
	}
	if t.Failed() {
		t.Logf("gateway log:\n%s\nupstream log:\n%s", s.gw.Logs(), s.upLog.String())
	}
}

// exampleNames returns the examples listed in the table of
// examples/README.md (index), which must be those of readmeChecks, in
// order.
func exampleNames(t *testing.T, index string) []string {
	t.Helper()
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^\| \[(\w+)\]\((\w+)\) \|`).FindAllStringSubmatch(index, -1) {
		names = append(names, m[1])
	}
	var checked []string
	for _, c := range readmeChecks {
		checked = append(checked, c.name)
	}
	if diff := cmp.Diff(names, checked); diff != "" {
		t.Fatalf("the examples of examples/README.md's table (-) and the checks of this test (+) differ:\n%s", diff)
	}
	return names
}

// checkWalkThrough checks that the hello_db commands of examples/README.md
// (walkThrough) are those of examples/hello_db/README.md under root.
func checkWalkThrough(t *testing.T, root string, walkThrough []string) {
	t.Helper()
	helloDB, err := os.ReadFile(filepath.Join(root, "examples", "hello_db", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	helloCmds, err := readmeCommands(string(helloDB), "Run it")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(helloCmds, walkThrough); diff != "" {
		t.Errorf("the hello_db walk-through of examples/README.md (+) is not examples/hello_db/README.md's (-):\n%s", diff)
	}
}

// checkGrpcurlHello runs the grpcurl command of examples/README.md in the
// shell s and checks the hello_db execution it prints.
func checkGrpcurlHello(t *testing.T, s *readmeShell, cmd string) {
	t.Helper()
	code, out := s.run(t, cmd)
	var resp struct {
		Execution struct {
			Status string
			Result map[string]map[string]any
		}
	}
	if err := json.Unmarshal([]byte(out), &resp); code != 0 || err != nil {
		t.Fatalf("examples/README.md grpcurl: exit %d, %v:\n%s", code, err, out)
	}
	if resp.Execution.Status != "EXECUTION_STATUS_COMPLETED" || !strings.HasPrefix(fmt.Sprint(resp.Execution.Result["query"]["message"]), "Hello, Grace!") {
		t.Errorf("examples/README.md grpcurl: %s", out)
	}
}

// readmeChecks checks what each README says its commands do, in the order
// of examples/README.md's table.
var readmeChecks = []struct {
	name  string
	check func(*testing.T, *readmeExample)
}{
	{"hello_db", checkHelloDBReadme},
	{"user_etl", checkUserETLReadme},
	{"dashboard_data", checkDashboardDataReadme},
	{"process_events", checkProcessEventsReadme},
	{"validate_order", checkValidateOrderReadme},
	{"read_replica", checkReadReplicaReadme},
	{"rate_limited_calls", checkRateLimitedCallsReadme},
	{"smart_caching", checkSmartCachingReadme},
	{"graceful_degradation", checkGracefulDegradationReadme},
	{"retry_with_backoff", checkRetryWithBackoffReadme},
	{"batch_process", checkBatchProcessReadme},
	{"concurrent_processing", checkConcurrentProcessingReadme},
	{"tiered_caching", checkTieredCachingReadme},
	{"instrumented_step", checkInstrumentedStepReadme},
	{"debug_mode", checkDebugModeReadme},
	{"event_sourcing", checkEventSourcingReadme},
	{"order_saga", checkOrderSagaReadme},
}

func checkHelloDBReadme(t *testing.T, e *readmeExample) {
	m := regexp.MustCompile("(?s)Result of node `query`:\\s*\\n\\s+(\\{[^\\n]*\\})").FindStringSubmatch(e.raw)
	if m == nil {
		t.Fatal("hello_db README states no result of node query")
	}
	var want map[string]any
	if err := json.Unmarshal([]byte(m[1]), &want); err != nil {
		t.Fatalf("README result %s: %v", m[1], err)
	}
	if diff := cmp.Diff(want, e.result(0)["query"]); diff != "" {
		t.Errorf("result of node query (-README +got):\n%s", diff)
	}
	e.claim("`--param user_id=99` fails the execution: `user 99 not found` (node `query`).")
	code, out := e.variant(0, "user_id=2", "user_id=99")
	failedRun(t, "user_id=99", code, out, "[query]", "user 99 not found")
}

// output returns the output of the README command (not a `kgw run`) that
// contains substr.
func (e *readmeExample) output(substr string) string {
	e.t.Helper()
	for _, c := range e.cmds {
		if strings.Contains(c.text, substr) && !strings.Contains(c.text, "kgw run ") {
			return strings.TrimSpace(c.out)
		}
	}
	e.t.Fatalf("examples/%s/README.md has no command with %q", e.name, substr)
	return ""
}

// executionID returns the execution id that `kgw run` printed.
func executionID(t *testing.T, out string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^execution: (\S+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("kgw run printed no execution id:\n%s", out)
	}
	return m[1]
}

// mustJSON decodes s or fails t.
func mustJSON(t *testing.T, what, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%s = %q: not JSON: %v", what, s, err)
	}
	return v
}

func checkUserETLReadme(t *testing.T, e *readmeExample) {
	e.wantJSON("load", e.stated("`load` returns"), e.result(0)["load"])
	get := "redis-cli get demo:user:profile:2"
	cmd := e.output(get)
	_, comment, _ := strings.Cut(e.raw[strings.Index(e.raw, get):], "# ")
	comment, _, _ = strings.Cut(comment, "\n")
	e.wantJSON("demo:user:profile:2", comment, mustJSON(t, get, cmd))
	e.claim("redis-cli ttl demo:etl:summary      # ≤ 3600")
	if ttl, err := strconv.Atoi(e.output("redis-cli ttl demo:etl:summary")); err != nil || ttl <= 0 || ttl > 3600 {
		t.Errorf("TTL of demo:etl:summary = %d (%v), want in (0, 3600]", ttl, err)
	}
	e.claim("User 4, created 30 days ago, is not loaded.")
	if n := e.redisInt("redis-cli exists demo:user:profile:4"); n != 0 {
		t.Error("user 4 was loaded")
	}
}

func checkDashboardDataReadme(t *testing.T, e *readmeExample) {
	build := e.result(0)["build"]
	e.claim("`build` returns the dashboard with the `users`, `orders` and `revenue` sections")
	for _, s := range []string{"users", "orders", "revenue"} {
		if field(build, "dashboard", "sections", s) == nil {
			t.Errorf("build.dashboard.sections lacks %s: %v", s, build)
		}
	}
	errs, _ := strings.CutPrefix(e.stated("sections,"), "errors: ")
	e.wantJSON("build.dashboard.errors", errs, field(build, "dashboard", "errors"))
	degraded, _ := strings.CutPrefix(e.stated("\"HTTP 503: ...\"}` and"), "degraded: ")
	e.wantJSON("build.degraded", degraded, field(build, "degraded"))
	e.claim("`redis-cli ttl demo:dashboard:main` shows at most 60")
	if n := e.redisInt("redis-cli ttl demo:dashboard:main"); n <= 0 || n > 60 {
		t.Errorf("TTL of demo:dashboard:main = %d, want in (0, 60]", n)
	}
}

func checkProcessEventsReadme(t *testing.T, e *readmeExample) {
	e.wantJSON("enrich", e.stated("Result:"), e.result(0)["enrich"])
	e.claim("`redis-cli ttl demo:event:e1` ≈ 86400")
	if n := e.redisInt("redis-cli ttl demo:event:e1"); n <= 86000 || n > 86400 {
		t.Errorf("TTL of demo:event:e1 = %d, want ≈ 86400", n)
	}
	e.claim("`redis-cli lrange demo:queue:high 0 -1` → `e1`")
	if got := e.sh("redis-cli lrange demo:queue:high 0 -1"); got != "e1" {
		t.Errorf("demo:queue:high = %q, want e1", got)
	}
}

func checkValidateOrderReadme(t *testing.T, e *readmeExample) {
	e.wantJSON("validate", e.stated("`validate` returns"), e.result(0)["validate"])
	creditCalls := func() int { return strings.Count(e.shell.upLog.String(), "POST /credit-check") }
	before := creditCalls()
	if before != 1 {
		t.Errorf("the upstream logged %d credit checks, want 1", before)
	}
	items := e.stated("`validate` returns `{\"valid\": true, \"order_total\": 119.3, ...}`. With")
	e.claim("it returns `valid: false`, reason `only 2 of MON-27 in stock, 5 requested`, and the credit API is not called.")
	code, out := e.variant(0, `items='[{"sku": "KB-01", "qty": 2}, {"sku": "MS-02", "qty": 1}]'`, items)
	if code != 0 {
		t.Fatalf("%s: exit %d:\n%s", items, code, out)
	}
	v := parseRunResults(t, out)[0]["validate"]
	e.wantJSON("validate", `{"valid": false, "reasons": ["only 2 of MON-27 in stock, 5 requested"], "credit_checked": false}`, v)
	if n := creditCalls(); n != before {
		t.Errorf("the credit API was called for an order out of stock (%d calls, want %d)", n, before)
	}
	e.claim("Orders above 1000 are refused by the credit check.")
	code, out = e.variant(0, `items='[{"sku": "KB-01", "qty": 2}, {"sku": "MS-02", "qty": 1}]'`, `items='[{"sku": "MON-27", "qty": 2}, {"sku": "KB-01", "qty": 10}]'`)
	if code != 0 {
		t.Fatalf("order above 1000: exit %d:\n%s", code, out)
	}
	v = parseRunResults(t, out)[0]["validate"]
	if field(v, "valid") != false || field(v, "credit_checked") != true || !strings.Contains(fmt.Sprint(field(v, "reasons")), "credit limit") {
		t.Errorf("order above 1000: validate = %v, want refused by the credit check", v)
	}
}

func checkReadReplicaReadme(t *testing.T, e *readmeExample) {
	r := e.result(0)["report"]
	e.claim("Result: per-region orders and revenue of the last 7 days, the new `report_id`, `read_only_enforced: true`")
	e.wantJSON("report", `{"regions": [{"region": "apac", "orders": 1, "revenue": 42}, {"region": "eu", "orders": 2, "revenue": 350.5}, {"region": "us", "orders": 1, "revenue": 80.25}], "report_id": ..., "read_only_enforced": true}`, r)
	sql := e.stated("read_only_enforced: true`;")
	e.claim("`" + sql + "` shows `kgw_writer`")
	if got := e.psql(sql); got != "kgw_writer" {
		t.Errorf("%s = %q, want kgw_writer", sql, got)
	}
}

func checkRateLimitedCallsReadme(t *testing.T, e *readmeExample) {
	c := e.command(0)
	e.wantJSON("notify", e.stated("Result:"), e.result(0)["notify"])
	e.claim("The upstream logs six `POST /notify` requests, and the execution takes at least a second")
	if n := strings.Count(e.shell.upLog.String(), "POST /notify"); n != 6 {
		t.Errorf("the upstream logged %d POST /notify, want 6:\n%s", n, e.shell.upLog.String())
	}
	m := regexp.MustCompile(`(?m)^duration:\s+(\S+)$`).FindStringSubmatch(c.out)
	if m == nil {
		t.Fatalf("kgw run printed no duration:\n%s", c.out)
	}
	// Six calls at 5 per second: the sixth starts 5 × 200 ms after the first.
	if d, err := time.ParseDuration(strings.ReplaceAll(m[1], "µ", "u")); err != nil || d < time.Second {
		t.Errorf("execution took %s (%v), want at least 1s at 5 requests per second", m[1], err)
	}
}

func checkSmartCachingReadme(t *testing.T, e *readmeExample) {
	first := e.result(0)["report"]
	e.claim("The first run returns `source: \"database\"` with 2 orders and revenue 350.5")
	e.wantJSON("report", `{"source": "database", "ttl": 3600, "report": {"orders": 2, "revenue": 350.5}}`, first)
	insert := e.stated("with the same report, even after")
	e.psql(insert)
	e.claim("run it again and it returns `source: \"cache\"` with the same report, even after")
	code, out := e.variant(0, "", "")
	if code != 0 {
		t.Fatalf("second run: exit %d:\n%s", code, out)
	}
	second := parseRunResults(t, out)[0]["report"]
	if field(second, "source") != "cache" || !cmp.Equal(field(first, "report"), field(second, "report")) {
		t.Errorf("second run = %v, want the first report (%v) from the cache", second, field(first, "report"))
	}
	e.claim("`report_type=realtime` computes a fresh report cached for 30 s.")
	code, out = e.variant(0, "report_type=daily", "report_type=realtime")
	if code != 0 {
		t.Fatalf("realtime run: exit %d:\n%s", code, out)
	}
	e.wantJSON("realtime report", `{"source": "database", "ttl": 30, "report": {"orders": 3}}`, parseRunResults(t, out)[0]["report"])
	if n := e.redisInt("redis-cli ttl demo:report:realtime:eu"); n <= 0 || n > 30 {
		t.Errorf("TTL of demo:report:realtime:eu = %d, want in (0, 30]", n)
	}
}

func checkGracefulDegradationReadme(t *testing.T, e *readmeExample) {
	r := e.result(0)["load_items"]
	e.claim("Result: items 1 and 2 in `successes`, item 3 in `fallbacks` (`stale: true`), " +
		"item 4 (`item 4 is locked for maintenance`) and item 99 (`item 99 not found`) in `errors`, `degraded: true`.")
	e.wantJSON("load_items", `{"successes": [{"id": 1}, {"id": 2}], "fallbacks": [{"id": 3, "stale": true}], "errors": [{"id": 4}, {"id": 99}], "degraded": true}`, r)
	for i, want := range []string{"item 4 is locked for maintenance", "item 99 not found"} {
		errs, _ := field(r, "errors").([]any)
		if len(errs) > i && !strings.Contains(fmt.Sprint(field(errs[i], "error")), want) {
			t.Errorf("errors[%d] = %v, want %q", i, errs[i], want)
		}
	}
}

func checkRetryWithBackoffReadme(t *testing.T, e *readmeExample) {
	e.claim("The first shows two retries")
	if n := strings.Count(e.command(0).out, "node_retrying"); n != 2 {
		t.Errorf("--watch showed %d node_retrying events, want 2:\n%s", n, e.command(0).out)
	}
	e.wantJSON("call", e.stated("The first shows two retries, then"), e.result(0)["call"])
	call := e.result(1)["call"]
	e.wantJSON("call", e.stated("the second returns"), call)
	errs, _ := field(call, "errors").([]any)
	for _, err := range errs {
		if !strings.Contains(fmt.Sprint(err), "503 Server Error") {
			t.Errorf("loop error %q does not name the 503", err)
		}
	}
}

func checkBatchProcessReadme(t *testing.T, e *readmeExample) {
	e.wantJSON("import_records", e.stated("Result:"), e.result(0)["import_records"])
}

func checkConcurrentProcessingReadme(t *testing.T, e *readmeExample) {
	r := e.result(0)["process"]
	e.wantJSON("process", e.stated("Result:"), r)
	if errs, _ := field(r, "errors").([]any); len(errs) != 10 {
		t.Errorf("errors = %v, want 10", field(r, "errors"))
	}
	sql := e.stated("pool_size\": ...}`;")
	e.claim("`" + sql + "` shows 190 done and 10 failed.")
	if got := e.psql(sql + " ORDER BY 1"); got != "done|190\nfailed|10" {
		t.Errorf("%s = %q, want 190 done and 10 failed", sql, got)
	}
}

func checkTieredCachingReadme(t *testing.T, e *readmeExample) {
	e.claim("The three results say `\"tier\": \"database\"`, `\"l2\"`, then `\"l1\"`.")
	var tiers []any
	for _, r := range e.results(0) {
		tiers = append(tiers, field(r, "lookup", "tier"))
	}
	if diff := cmp.Diff([]any{"database", "l2", "l1"}, tiers); diff != "" {
		t.Errorf("tiers of the three runs (-README +got):\n%s", diff)
	}
}

func checkInstrumentedStepReadme(t *testing.T, e *readmeExample) {
	r := e.result(0)["count_orders"]
	e.wantJSON("count_orders", e.stated("Result:"), r)
	e.claim("the list's head is the same metric.")
	lrange := "redis-cli lrange demo:metrics:instrumented_step 0 0"
	if diff := cmp.Diff(field(r, "metric"), mustJSON(t, lrange, e.output(lrange))); diff != "" {
		t.Errorf("head of the metrics list (-result +list):\n%s", diff)
	}
	flag := e.stated("the same metric. With")
	e.claim("the execution fails with `simulated failure` and the head metric has `\"ok\": false`.")
	code, out := e.variant(0, "", flag)
	failedRun(t, flag, code, out, "[count_orders]", "simulated failure")
	head := mustJSON(t, lrange, e.sh(lrange))
	if field(head, "ok") != false || field(head, "execution_id") != executionID(t, out) {
		t.Errorf("head metric after the failure = %v, want ok false for execution %s", head, executionID(t, out))
	}
}

func checkDebugModeReadme(t *testing.T, e *readmeExample) {
	e.claim("The first result is just the orders (`count: 2`).")
	plain := e.result(0)["orders"]
	if field(plain, "count") != 2.0 || field(plain, "debug") != nil {
		t.Errorf("result without debug = %v, want 2 orders and no debug section", plain)
	}
	var resp struct {
		Execution struct{ Result map[string]any }
	}
	if out := e.output("grpcurl "); json.Unmarshal([]byte(out), &resp) != nil {
		t.Fatalf("grpcurl printed no ExecuteWorkflowResponse:\n%s", out)
	}
	e.claim("add `debug` with `inputs: {\"customer\": \"acme\"}` and `pool`, e.g. `{\"size\": 1, \"freesize\": 1}` on an idle gateway.")
	for what, r := range map[string]any{"kgw run --context-json": e.result(1)["orders"], "grpcurl": resp.Execution.Result["orders"]} {
		e.wantJSON(what, `{"count": 2, "debug": {"inputs": {"customer": "acme"}, "pool": {...}}}`, r)
		size, _ := field(r, "debug", "pool", "size").(float64)
		free, _ := field(r, "debug", "pool", "freesize").(float64)
		if size < 1 || free < 0 || free > size {
			t.Errorf("%s: debug.pool = %v, want size ≥ 1 and 0 ≤ freesize ≤ size", what, field(r, "debug", "pool"))
		}
	}
}

func checkEventSourcingReadme(t *testing.T, e *readmeExample) {
	e.claim("Results: versions 1, 2, 3")
	for i := range 3 {
		if v := field(e.result(i), "append_event", "version"); v != float64(i+1) {
			t.Errorf("run %d: version %v, want %d", i+1, v, i+1)
		}
	}
	e.wantJSON("state", e.stated("the last state is"), field(e.result(2), "append_event", "state"))
	e.claim("Withdrawing 500 fails with `insufficient funds` and stores nothing.")
	code, out := e.variant(2, `payload='{"amount": 30}'`, `payload='{"amount": 500}'`)
	failedRun(t, "withdrawing 500", code, out, "[append_event]", "insufficient funds")
	if got := e.psql("SELECT (SELECT count(*) FROM events) || ' ' || (SELECT version FROM aggregates WHERE id = 'acct-1')"); got != "3 3" {
		t.Errorf("events and aggregate version after the failed withdrawal = %q, want 3 3", got)
	}
}

func checkOrderSagaReadme(t *testing.T, e *readmeExample) {
	e.claim("The first completes (`create_order` returns the order and charge ids; WIDGET stock 10 → 8).")
	e.wantJSON("create_order", `{"order_id": ..., "charge_id": ..., "status": "confirmed"}`, e.result(0)["create_order"])
	if got := e.psql("SELECT stock FROM inventory WHERE sku = 'WIDGET'"); got != "8" {
		t.Errorf("WIDGET stock = %s, want 8", got)
	}
	declined := e.stated("The second fails in node `charge` with")
	e.claim("its reservation is `released` and GADGET stock is back to 5.")
	c := e.command(1)
	failedRun(t, "order B-200", c.code, c.out, "[charge]", declined)
	if got := e.psql("SELECT status FROM reservations WHERE id = 'res-" + executionID(t, c.out) + "'"); got != "released" {
		t.Errorf("reservation of the declined order = %q, want released", got)
	}
	if got := e.psql("SELECT stock FROM inventory WHERE sku = 'GADGET'"); got != "5" {
		t.Errorf("GADGET stock = %s, want 5", got)
	}
}
