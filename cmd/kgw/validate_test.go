package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// TestWorkflowValidate: Starlark errors are reported at their line in the
// YAML file (a literal block), at the scalar for quoted code, and in the
// code_file; structural problems by field; a valid file exits 0.
func TestWorkflowValidate(t *testing.T) {
	dir := t.TempDir()
	wf := writeFile(t, dir, "wf.yaml", `name: demo
nodes:
  - id: ok
    code: |
      x = 1
      result = {"x": x}
  - id: bad
    code: |
      x = 1

      import json
      result = {"y": 2}
  - id: quoted
    code: "result = {'a': }"
  - id: filed
    code_file: f.star
`)
	writeFile(t, dir, "f.star", "a = 1\nb = (\n")
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := dispatch(t.Context(), &cli{stdout: &out, stderr: &errb, getenv: envOf(nil)}, args)
		return code, out.String() + errb.String()
	}
	code, out := run("workflow", "validate", "-f", wf)
	want := []string{
		wf + ":11:7: nodes[1].code (node 'bad'): `json` is already available; Starlark has no import",
		wf + ":14:11: nodes[2].code (node 'quoted'): line 1:16 of the code: got '}', want primary expression",
		filepath.Join(dir, "f.star") + ":3:1: nodes[3].code (node 'filed'): got end of file, want primary expression",
	}
	if code != exitNotCompleted || strings.TrimSpace(out) != strings.Join(want, "\n") {
		t.Errorf("workflow validate = %d\n%s\nwant 1 and\n%s", code, out, strings.Join(want, "\n"))
	}

	// JSON: every code position maps to its string.
	js := writeFile(t, dir, "wf.json", "{\n  \"name\": \"demo\",\n  \"nodes\": [\n    {\"id\": \"a\", \"code\": \"x = 1\\nif x:\\n  y = \"}\n  ]\n}\n")
	if code, out := run("workflow", "validate", "-f", js); code != exitNotCompleted || !strings.HasPrefix(out, js+":4:25: nodes[0].code (node 'a'): line 3:") {
		t.Errorf("workflow validate JSON = %d %q", code, out)
	}
	// Problems of the file itself and of the structure are the register's.
	bad := writeFile(t, dir, "bad.yaml", "name: Demo!\nnodes:\n  - id: a\n    code: x = 1\n")
	if code, out := run("workflow", "validate", "-f", bad); code != exitNotCompleted || !strings.Contains(out, bad+":1:7: name: \"Demo!\" is not a valid workflow name") {
		t.Errorf("workflow validate bad.yaml = %d %q", code, out)
	}
	// A limit only the gateway knows (at most 20 attempts).
	limit := writeFile(t, dir, "limit.yaml", "name: demo\nnodes:\n  - id: a\n    code: x = 1\n    retry: {max_attempts: 99}\n")
	if code, out := run("workflow", "validate", "-f", limit); code != exitNotCompleted || !strings.Contains(out, limit+": nodes[0].retry.max_attempts:") {
		t.Errorf("workflow validate limit.yaml = %d %q", code, out)
	}
	typo := writeFile(t, dir, "typo.yaml", "name: demo\nnodes:\n  - id: a\n    cod: x = 1\n")
	if code, out := run("workflow", "validate", "-f", typo); code != exitNotCompleted || !strings.Contains(out, typo+":4:5: nodes[0].cod: unknown field") {
		t.Errorf("workflow validate typo.yaml = %d %q", code, out)
	}
	if code, out := run("workflow", "validate"); code != exitUsage || !strings.Contains(out, "missing -f FILE") {
		t.Errorf("workflow validate without -f = %d %q", code, out)
	}
	if code, out := run("workflow", "validate", "-f", filepath.Join(dir, "missing.yaml")); code != exitUsage || !strings.Contains(out, "no such file") {
		t.Errorf("workflow validate missing file = %d %q", code, out)
	}
}

// TestExampleFilesValidateAndRegister: every example workflow file
// validates offline, and the gateway registers it.
func TestExampleFilesValidateAndRegister(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "examples", "*", "workflow*.yaml"))
	if err != nil || len(files) < 10 {
		t.Fatalf("example files: %v, %v", files, err)
	}
	k := newKGWCLI(t)
	for _, f := range files {
		t.Run(filepath.Base(filepath.Dir(f))+"/"+filepath.Base(f), func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := dispatch(t.Context(), &cli{stdout: &out, stderr: &errb, getenv: envOf(nil)}, []string{"workflow", "validate", "-f", f}); code != 0 {
				t.Fatalf("workflow validate -f %s = %d\n%s%s", f, code, out.String(), errb.String())
			}
			if out := k.ok(t, "workflow", "register", "-f", f, "--validate-only"); !strings.Contains(out, "nothing was stored") {
				t.Errorf("register --validate-only = %q", out)
			}
			k.ok(t, "workflow", "register", "-f", f)
		})
	}
}
