package main

import (
	"bytes"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/kailash-gateway/kgw/internal/testenv"
)

// kgwCLI runs client subcommands in-process against one gateway.
type kgwCLI struct {
	addr string
	// seen collects every byte the CLI printed, to check that no secret
	// value ever appears in any output.
	seen bytes.Buffer
}

func newKGWCLI(t *testing.T) *kgwCLI {
	t.Helper()
	return &kgwCLI{addr: testenv.Gateway(t).Addr}
}

// run runs `kgw args...` with stdin and returns the exit status and output.
func (k *kgwCLI) run(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	c := &cli{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, getenv: envOf(map[string]string{"KGW_ADDR": k.addr})}
	code = dispatch(t.Context(), c, args)
	k.seen.Write(out.Bytes())
	k.seen.Write(errb.Bytes())
	return code, out.String(), errb.String()
}

// ok runs args and fails the test unless the exit status is 0.
func (k *kgwCLI) ok(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := k.run(t, "", args...)
	if code != 0 {
		t.Fatalf("kgw %s = exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// want runs args and checks the exit status and that the output (stdout
// and stderr) contains every substring of contains.
func (k *kgwCLI) want(t *testing.T, code int, args []string, contains ...string) string {
	t.Helper()
	got, out, errs := k.run(t, "", args...)
	all := out + errs
	if got != code {
		t.Errorf("kgw %s = exit %d, want %d\n%s", strings.Join(args, " "), got, code, all)
	}
	for _, s := range contains {
		if !strings.Contains(all, s) {
			t.Errorf("kgw %s output lacks %q:\n%s", strings.Join(args, " "), s, all)
		}
	}
	return out
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCLIWorkflows(t *testing.T) {
	k := newKGWCLI(t)
	root := repoRoot(t)
	dir := t.TempDir()

	k.want(t, 0, []string{"workflow", "register", "-f", filepath.Join(root, "examples/hello_db/workflow.yaml")},
		"registered workflow hello_db version 1")
	inline := writeFile(t, dir, "inline.yaml", "name: inline\ndescription: inline code\nlabels: {team: cli}\nnodes:\n  - id: a\n    code: |\n      result = {\"x\": x + 1}\n  - id: b\n    code: |\n      result = {\"y\": x * 10}\nconnections:\n  - {from_node: a, from_output: x, to_node: b}\n")
	k.want(t, 0, []string{"workflow", "register", "-f", inline}, "registered workflow inline version 1 (2 nodes)")
	writeFile(t, dir, "step.star", "result = {\"greeting\": \"hi \" + who}\n")
	codeFile := writeFile(t, dir, "codefile.json", `{"name": "codefile", "nodes": [{"id": "s", "code_file": "step.star"}]}`)
	k.want(t, 2, []string{"workflow", "register", codeFile}, "unexpected arguments") // -f is required
	k.want(t, 0, []string{"workflow", "register", "--file", codeFile}, "registered workflow codefile version 1")

	out := k.ok(t, "workflow", "list")
	for _, re := range []string{`(?m)^NAME\s+VERSION\s+NODES`, `(?m)^codefile\s+1\s+1\s`, `(?m)^hello_db\s+1\s+1\s+db\s`, `(?m)^inline\s+1\s+2\s+-\s+team=cli\s`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("workflow list lacks %s:\n%s", re, out)
		}
	}
	var list struct {
		Workflows []struct {
			Name          string `json:"name"`
			LatestVersion int    `json:"latestVersion"`
		} `json:"workflows"`
	}
	if err := json.Unmarshal([]byte(k.ok(t, "workflow", "list", "-o", "json")), &list); err != nil || len(list.Workflows) != 3 {
		t.Fatalf("workflow list -o json = %+v, %v; want 3 workflows", list, err)
	}

	k.want(t, 0, []string{"workflow", "get", "inline"}, "name:        inline", "version:     1", "a.x -> b", "team=cli")

	// -o yaml writes a file that registers again, as the next version with
	// the same definition.
	yml := k.ok(t, "workflow", "get", "codefile", "-o", "yaml")
	if !strings.Contains(yml, `result = {"greeting": "hi " + who}`) {
		t.Errorf("workflow get -o yaml lacks the code of code_file:\n%s", yml)
	}
	again := writeFile(t, dir, "again.yaml", yml)
	k.want(t, 0, []string{"workflow", "register", "-f", again}, "registered workflow codefile version 2")
	if yml2 := k.ok(t, "workflow", "get", "codefile", "--version", "2", "-o", "yaml"); yml2 != yml {
		t.Errorf("version 2 as yaml differs from version 1:\n%s\n---\n%s", yml2, yml)
	}
	var got struct {
		Workflow struct {
			Name    string `json:"name"`
			Version int    `json:"version"`
			Nodes   []struct {
				ID   string `json:"id"`
				Code string `json:"code"`
			} `json:"nodes"`
		} `json:"workflow"`
	}
	if err := json.Unmarshal([]byte(k.ok(t, "workflow", "get", "codefile", "--version", "1", "-o", "json")), &got); err != nil {
		t.Fatal(err)
	}
	if got.Workflow.Version != 1 || len(got.Workflow.Nodes) != 1 || got.Workflow.Nodes[0].ID != "s" {
		t.Errorf("workflow get -o json = %+v, want version 1 with node s", got)
	}

	k.want(t, 0, []string{"workflow", "delete", "codefile"}, "deleted workflow codefile")
	k.want(t, 3, []string{"workflow", "get", "codefile"}, "kgw workflow get: NOT_FOUND [WORKFLOW_NOT_FOUND]")
	k.want(t, 3, []string{"workflow", "delete", "codefile"}, "NOT_FOUND")

	// The gateway's violations, one per line.
	bad := writeFile(t, dir, "bad.yaml", "name: bad\nnodes:\n  - id: a\n    code: |\n      import json\n  - id: b\n    code: result = {\n")
	_, _, errs := k.run(t, "", "workflow", "register", "-f", bad)
	if !regexp.MustCompile(`(?m)^kgw workflow register: INVALID_ARGUMENT \[INVALID_WORKFLOW\]: .*\n  workflow\.nodes\[0\]\.code: .*\n  workflow\.nodes\[1\]\.code: `).MatchString(errs) {
		t.Errorf("invalid workflow: stderr does not show the code, reason and one violation per line:\n%s", errs)
	}
	// A broken file is a usage error (2) naming the line.
	broken := writeFile(t, dir, "broken.yaml", "name: broken\nnodes:\n  - id: a\n    timeout: soon\n    code: result = {}\n")
	k.want(t, 2, []string{"workflow", "register", "-f", broken}, "invalid workflow file", "broken.yaml:4:")
	k.want(t, 2, []string{"workflow", "register", "-f", filepath.Join(dir, "missing.yaml")}, "missing.yaml")
	// -f - reads standard input.
	code, out, errs := k.run(t, "name: stdin_wf\nnodes:\n  - id: a\n    code: result = {}\n", "workflow", "register", "-f", "-")
	if code != 0 || !strings.Contains(out, "registered workflow stdin_wf version 1") {
		t.Errorf("register -f - = %d %q %q", code, out, errs)
	}
}

// helloDB creates a database with examples/hello_db/schema.sql applied and
// returns its host, port and name.
func helloDB(t *testing.T) (host string, port int, name string) {
	t.Helper()
	dsn := testenv.Postgres(t).NewDatabase(t)
	schema, err := os.ReadFile(filepath.Join(repoRoot(t), "examples/hello_db/schema.sql"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	if _, err := conn.Exec(t.Context(), string(schema)); err != nil {
		t.Fatalf("apply schema: %v", err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	port, _ = strconv.Atoi(u.Port())
	return u.Hostname(), port, strings.TrimPrefix(u.Path, "/")
}

// TestCLISecretsAndRun stores credentials from stdin, names a resource,
// runs hello_db against real PostgreSQL (plain, watched, failing, unknown)
// and checks that the secret value appears in no output.
func TestCLISecretsAndRun(t *testing.T) {
	k := newKGWCLI(t)
	host, port, db := helloDB(t)
	password := "pw-" + strconv.FormatInt(int64(os.Getpid()), 36) + "-Zq9xK" // trust auth ignores it

	cliSecrets(t, k, password)
	config := cliResources(t, k, host, port, db)
	cliRun(t, k, config)

	k.want(t, 0, []string{"resources", "pools"}, "KEY", "database", "pg@1")
	k.want(t, 0, []string{"resources", "delete", "hello2"}, "deleted resource hello2")
	k.want(t, 3, []string{"resources", "get", "hello2"}, "NOT_FOUND")
	k.want(t, 3, []string{"resources", "check", "hello2"}, "NOT_FOUND")

	if strings.Contains(k.seen.String(), password) {
		t.Errorf("a secret value appeared in the CLI's output:\n%s", k.seen.String())
	}
}

// cliSecrets stores, lists, shows and deletes secrets with the CLI k, and
// stores secret pg (holding password) for the steps after it; broken
// values are refused.
func cliSecrets(t *testing.T, k *kgwCLI, password string) {
	t.Helper()
	code, out, errs := k.run(t, `{"user": "postgres", "password": "`+password+`"}`,
		"secrets", "put", "pg", "--from-stdin", "--description", "hello db", "--allowed-host", "127.0.0.1", "--ttl", "24h")
	if code != 0 || !strings.Contains(out, "stored secret pg version 1 (keys: password, user)") {
		t.Fatalf("secrets put --from-stdin = %d\n%s%s", code, out, errs)
	}
	if strings.Contains(errs, "warning") {
		t.Errorf("secrets put --from-stdin warned: %s", errs)
	}
	k.want(t, 0, []string{"secrets", "list"}, "NAME", "pg", "password,user", "127.0.0.1", "hello db")
	k.want(t, 0, []string{"secrets", "get", "pg"}, "version:       1", "keys:          password, user", "allowed hosts: 127.0.0.1")
	k.want(t, 0, []string{"secrets", "get", "pg", "-o", "json"}, `"name": "pg"`, `"keys": [`)
	k.want(t, 0, []string{"secrets", "put", "other", "--value", `{"token": "` + password + `"}`},
		"warning: --value puts the secret in your shell history", "stored secret other version 1")
	valueFile := writeFile(t, t.TempDir(), "creds.json", `{"token": "`+password+`"}`)
	k.want(t, 0, []string{"secrets", "put", "other", "--value-file", valueFile, "--expire-time", "2099-01-02T03:04:05Z"},
		"stored secret other version 2")
	k.want(t, 0, []string{"secrets", "get", "other"}, "expires:       2099-01-02T03:04:05Z")
	// Broken values are refused without being echoed.
	k.want(t, 2, []string{"secrets", "put", "x", "--value", `{"password": ` + password + `}`}, "invalid JSON at byte")
	k.want(t, 2, []string{"secrets", "put", "x", "--value", `["` + password + `"]`}, "want a JSON object")
	k.want(t, 2, []string{"secrets", "put", "x"}, "exactly one of")
	k.want(t, 2, []string{"secrets", "put", "x", "--from-stdin", "--value", "{}"}, "exactly one of")
	k.want(t, 2, []string{"secrets", "put", "x", "--from-stdin", "--ttl", "1h", "--expire-time", "2099-01-02T03:04:05Z"}, "exclude each other")
	k.want(t, 0, []string{"secrets", "delete", "other"}, "deleted secret other")
	k.want(t, 3, []string{"secrets", "get", "other"}, "NOT_FOUND")
}

// cliResources stores, lists, shows and checks named resources hello and
// hello2 on the database db at host:port with the CLI k, and returns
// hello's config as JSON.
func cliResources(t *testing.T, k *kgwCLI, host string, port int, db string) (config string) {
	t.Helper()
	config = `{"host": "` + host + `", "port": ` + strconv.Itoa(port) + `, "database": "` + db + `", "sslmode": "disable"}`
	k.want(t, 0, []string{"resources", "put", "hello", "--type", "database", "--config", config, "--credentials-ref", "pg"},
		"stored resource hello (database {")
	k.want(t, 2, []string{"resources", "put", "leaky", "--type", "database", "--config", `{"password": "x"}`}, `config key "password" is a credential`)
	k.want(t, 0, []string{"resources", "list"}, "hello", "database", "pg")
	k.want(t, 0, []string{"resources", "get", "hello"}, "type:            database", "credentials ref: pg", `"database": "`+db+`"`)
	k.want(t, 0, []string{"resources", "check", "hello"}, "hello: healthy")
	specFile := writeFile(t, t.TempDir(), "spec.yaml", "type: database\nconfig:\n  host: "+host+"\n  port: "+strconv.Itoa(port)+"\n  database: "+db+"\n  sslmode: disable\ncredentials_ref: pg\n")
	k.want(t, 0, []string{"resources", "put", "hello2", "-f", specFile}, "stored resource hello2")
	return config
}

// cliRun runs workflow hello_db with the CLI k through the named
// resources, an inline spec (config and secret pg), --watch and -o json,
// and checks the exit statuses of failures.
func cliRun(t *testing.T, k *kgwCLI, config string) {
	t.Helper()
	k.want(t, 0, []string{"workflow", "register", "-f", filepath.Join(repoRoot(t), "examples/hello_db/workflow.yaml")}, "version 1")
	const hello = "Hello, Grace! You are one of 3 users."
	k.want(t, 0, []string{"run", "hello_db", "--param", "user_id=2", "--resource", "db=@hello"},
		"status:    COMPLETED", `"message": "`+hello+`"`, `"user_count": 3`)
	k.want(t, 0, []string{"run", "hello_db", "--params-json", `{"user_id": 1}`, "--param", "user_id=3", "--resource", "db=@hello2"},
		"Hello, Linus!")

	// An inline spec instead of a ref.
	inline := `db={"type": "database", "config": ` + config + `, "credentials_ref": "pg"}`
	k.want(t, 0, []string{"run", "hello_db", "--param", "user_id=1", "--resource", inline}, "Hello, Ada!")

	// --watch: the node's events, then the result.
	out := k.want(t, 0, []string{"run", "hello_db", "--param", "user_id=2", "--resource", "db=@hello", "--watch"}, hello)
	for _, re := range []string{
		`(?m)^\s+1  \S+  execution_started\s+-\s+workflow hello_db version 1$`,
		`(?m)^\s+\d+  \S+  node_started\s+query\s+attempt 1$`,
		`(?m)^\s+\d+  \S+  node_completed\s+query\s+attempt 1 in \S+: \{"message":"Hello, Grace! You are one of 3 users.","user_count":3\}$`,
		`(?m)^\s+\d+  \S+  execution_completed\s+-\s+COMPLETED$`,
		`(?m)^status:    COMPLETED$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("run --watch output lacks %s:\n%s", re, out)
		}
	}
	// -o json: the ExecuteWorkflowResponse.
	var resp struct {
		Execution struct {
			Status string                    `json:"status"`
			Result map[string]map[string]any `json:"result"`
		} `json:"execution"`
	}
	if err := json.Unmarshal([]byte(k.ok(t, "run", "hello_db", "--param", "user_id=2", "--resource", "db=@hello", "-o", "json")), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Execution.Status != "EXECUTION_STATUS_COMPLETED" || resp.Execution.Result["query"]["message"] != hello {
		t.Errorf("run -o json = %+v", resp)
	}

	// Exit statuses: a failing workflow (1), an unknown workflow (3), a
	// usage error (2).
	k.want(t, 1, []string{"run", "hello_db", "--param", "user_id=99", "--resource", "db=@hello"},
		"status:    FAILED", "user 99 not found", "[query]")
	k.want(t, 1, []string{"run", "hello_db", "--param", "user_id=99", "--resource", "db=@hello", "--watch"},
		"node_failed", "execution_failed", "user 99 not found")
	k.want(t, 3, []string{"run", "nope", "--resource", "db=@hello"}, "kgw run: NOT_FOUND [WORKFLOW_NOT_FOUND]")
	k.want(t, 2, []string{"run", "hello_db", "--param", "user_id"}, "want key=value")
	k.want(t, 2, []string{"run", "hello_db", "--resource", "db"}, "want name=@ref")
	k.want(t, 2, []string{"run"}, "missing arguments")
}

// TestCLIExecutions starts a slow execution, lists, gets, cancels and
// watches it.
func TestCLIExecutions(t *testing.T) {
	k := newKGWCLI(t)
	wf := writeFile(t, t.TempDir(), "slow.yaml", "name: slow\nnodes:\n  - id: a\n    code: |\n      logger.warning(\"starting\", n=n)\n      result = {\"n\": n}\n  - id: b\n    code: |\n      time.sleep(secs)\n      result = {\"slept\": secs}\nconnections:\n  - {from_node: a, to_node: b}\n")
	k.ok(t, "workflow", "register", "-f", wf)
	k.ok(t, "run", "slow", "--param", "n=1", "--param", "secs=0")

	id := strings.TrimSpace(k.ok(t, "run", "slow", "--param", "n=2", "--param", "secs=600", "--detach", "--idempotency-key", "cli-test"))
	if id == "" || strings.ContainsAny(id, " \n") {
		t.Fatalf("run --detach printed %q, want an execution id", id)
	}
	// The same key attaches to the same execution.
	if again := strings.TrimSpace(k.ok(t, "run", "slow", "--param", "n=2", "--param", "secs=600", "--detach", "--idempotency-key", "cli-test")); again != id {
		t.Errorf("run --detach with the same idempotency key = %s, want %s", again, id)
	}
	k.want(t, 0, []string{"executions", "list", "--workflow", "slow"}, id, "COMPLETED")
	k.want(t, 0, []string{"executions", "get", id}, "execution: "+id, "idempotency key: cli-test")
	k.want(t, 0, []string{"executions", "cancel", id}, "execution "+id+": CANCELLED")

	out := k.want(t, 1, []string{"executions", "watch", id}, "execution_cancelled", "status:    CANCELLED")
	if !regexp.MustCompile(`(?m)^\s+\d+  \S+  node_log\s+a\s+\[warning\] starting n=2$`).MatchString(out) {
		t.Errorf("executions watch lacks the log line with its level:\n%s", out)
	}
	lines := strings.Split(strings.TrimSpace(strings.Split(out, "\n\n")[0]), "\n")
	out2 := k.want(t, 1, []string{"executions", "watch", id, "--after-seq", "2"}, "execution_cancelled")
	lines2 := strings.Split(strings.TrimSpace(strings.Split(out2, "\n\n")[0]), "\n")
	if len(lines2) != len(lines)-2 || !strings.HasPrefix(strings.TrimSpace(lines2[0]), "3  ") {
		t.Errorf("watch --after-seq 2 printed %d events starting %q, want %d starting at seq 3", len(lines2), lines2[0], len(lines)-2)
	}
	var ev struct {
		Event struct {
			Seq string `json:"seq"`
		} `json:"event"`
	}
	jl := strings.Split(strings.TrimSpace(k.want(t, 1, []string{"executions", "watch", id, "-o", "json"})), "\n")
	if len(jl) != len(lines) || json.Unmarshal([]byte(jl[0]), &ev) != nil || ev.Event.Seq != "1" {
		t.Errorf("watch -o json = %d lines, first %q; want %d JSON lines from seq 1", len(jl), jl[0], len(lines))
	}

	k.want(t, 0, []string{"executions", "get", id}, "status:    CANCELLED", "CANCELLED")
	out = k.ok(t, "executions", "list", "--status", "cancelled")
	if !strings.Contains(out, id) || strings.Contains(out, "COMPLETED") {
		t.Errorf("executions list --status cancelled:\n%s", out)
	}
	out = k.ok(t, "executions", "list", "--limit", "1")
	if n := strings.Count(strings.TrimSpace(out), "\n"); n != 1 || !strings.Contains(out, id) {
		t.Errorf("executions list --limit 1 = %d rows, want the newest (%s):\n%s", n, id, out)
	}
	var list struct {
		Executions []struct {
			ID string `json:"id"`
		} `json:"executions"`
	}
	if err := json.Unmarshal([]byte(k.ok(t, "executions", "list", "-o", "json", "--workflow", "slow")), &list); err != nil || len(list.Executions) != 2 {
		t.Errorf("executions list -o json = %+v, %v; want 2", list, err)
	}
	k.want(t, 2, []string{"executions", "list", "--status", "weird"}, "--status")
	k.want(t, 3, []string{"executions", "get", "no-such-id"}, "kgw executions get: ")
	k.want(t, 3, []string{"executions", "cancel", "no-such-id"}, "kgw executions cancel: ")
}

func TestParseParam(t *testing.T) {
	tests := []struct {
		in    string
		key   string
		value any
	}{
		{"n=3", "n", 3.0},
		{"f=-1.5e2", "f", -150.0},
		{"ok=true", "ok", true},
		{"off=false", "off", false},
		{"nothing=null", "nothing", nil},
		{"name=ada", "name", "ada"},
		{`zip="02134"`, "zip", "02134"},
		{"zip=02134", "zip", "02134"}, // not JSON (leading zero): a string
		{"ids=[1, 2]", "ids", []any{1.0, 2.0}},
		{`obj={"a": {"b": [true]}}`, "obj", map[string]any{"a": map[string]any{"b": []any{true}}}},
		{"empty=", "empty", ""},
		{"prefix=demo:", "prefix", "demo:"},
		{"eq=a=b", "eq", "a=b"},
		{"date=2024-01-02", "date", "2024-01-02"},
		{"spaced= 7 ", "spaced", 7.0},
		{"two=1 2", "two", "1 2"},
		{"big=9007199254740992", "big", 9007199254740992.0},
		{`bigstr="12345678901234567890"`, "bigstr", "12345678901234567890"},
		{"True=True", "True", "True"},
	}
	for _, tt := range tests {
		key, v, err := parseParam(tt.in)
		if err != nil || key != tt.key || !cmp.Equal(v, tt.value) {
			t.Errorf("parseParam(%q) = %q, %#v, %v; want %q, %#v", tt.in, key, v, err, tt.key, tt.value)
		}
	}
	for _, in := range []string{"noequals", "=v", "big=12345678901234567890", "huge=1e400", "nested=[9007199254740993]"} {
		if _, _, err := parseParam(in); err == nil {
			t.Errorf("parseParam(%q) succeeded, want an error", in)
		}
	}
}

func FuzzParseParam(f *testing.F) {
	for _, s := range []string{"n=3", "a=[1,2]", `o={"x":null}`, "s=text", "e=", "x=1e400"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		key, v, err := parseParam(s)
		if err != nil {
			return
		}
		if key == "" || strings.Contains(key, "=") {
			t.Fatalf("parseParam(%q) key = %q", s, key)
		}
		raw := s[len(key)+1:]
		if str, ok := v.(string); ok && str == raw {
			return // taken literally
		}
		if !json.Valid([]byte(raw)) {
			t.Fatalf("parseParam(%q) decoded invalid JSON to %#v", s, v)
		}
		if _, err := json.Marshal(v); err != nil {
			t.Fatalf("parseParam(%q) = %#v, not JSON-encodable: %v", s, v, err)
		}
	})
}

// TestCLIUsage covers help and command-line mistakes, which need no gateway.
func TestCLIUsage(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"help"}, 0, "executions", ""},
		{[]string{"help", "workflow"}, 0, "register -f FILE", ""},
		{[]string{"workflow", "--help"}, 0, "get NAME [--version N]", ""},
		{[]string{"workflow"}, 2, "", "Subcommands:"},
		{[]string{"workflow", "frob"}, 2, "", `unknown subcommand "frob"`},
		{[]string{"run", "--help"}, 0, "--param k=v", ""},
		{[]string{"run", "-h"}, 0, "Client flags:", ""},
		{[]string{"executions", "watch", "--help"}, 0, "--after-seq", ""},
		{[]string{"secrets", "--help"}, 0, "rotate-master-key", ""},
		{[]string{"secrets", "put", "--help"}, 0, "--from-stdin", ""},
		{[]string{"resources", "put", "--help"}, 0, "--credentials-ref", ""},
		{[]string{"resources", "--help"}, 0, "pools", ""},
		{[]string{"workflow", "list", "--bogus"}, 2, "", "flag provided but not defined: -bogus"},
		{[]string{"workflow", "get"}, 2, "", "missing arguments"},
		{[]string{"workflow", "get", "a", "b"}, 2, "", `unexpected arguments ["b"]`},
		{[]string{"workflow", "list", "-o", "yaml"}, 2, "", `--output "yaml"`},
		{[]string{"workflow", "list", "--tls", "--insecure"}, 2, "", "--insecure excludes --tls"},
		{[]string{"workflow", "register"}, 2, "", "missing -f FILE"},
		{[]string{"run", "w", "--params-json", "[1]"}, 2, "", "want a JSON object"},
		{[]string{"run", "w", "--params-json", "{}", "--params-file", "x.json"}, 2, "", "exclude each other"},
		{[]string{"run", "w", "--resource", "db=@a", "--resource", "db=@b"}, 2, "", "given twice"},
		{[]string{"run", "w", "--resource", `db={"tpye": "x"}`}, 2, "", "--resource db"},
		{[]string{"run", "w", "--watch", "--detach"}, 2, "", "exclude each other"},
		{[]string{"resources", "put", "r"}, 2, "", "missing --type"},
		{[]string{"executions", "list", "--limit", "-1"}, 2, "", "--limit"},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		c := &cli{stdout: &out, stderr: &errb, getenv: envOf(nil)}
		code := dispatch(t.Context(), c, tt.args)
		if code != tt.code || !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errb.String(), tt.stderr) {
			t.Errorf("kgw %q = %d\nstdout %q\nstderr %q\nwant %d, %q, %q", tt.args, code, out.String(), errb.String(), tt.code, tt.stdout, tt.stderr)
		}
	}
}

// TestCLIUnreachable: a gateway that is not there is an RPC error (3) with
// a hint.
func TestCLIUnreachable(t *testing.T) {
	var out, errb bytes.Buffer
	c := &cli{stdout: &out, stderr: &errb, getenv: envOf(map[string]string{"KGW_ADDR": "127.0.0.1:1"})}
	code := dispatch(t.Context(), c, []string{"workflow", "list"})
	// The whole text: the address once, how to start a gateway, how to
	// point kgw at one.
	const want = "kgw workflow list: UNAVAILABLE: cannot reach the gateway at 127.0.0.1:1: " +
		`connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused"` +
		" (is it running? start one with `kgw serve`, or give the address it listens on)\n" +
		"  (point kgw at a running gateway with --addr or KGW_ADDR)\n"
	if code != 3 || errb.String() != want {
		t.Errorf("workflow list against a closed port = %d,\n%q, want 3 and\n%q", code, errb.String(), want)
	}
}
