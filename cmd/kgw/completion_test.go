package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCompletionBash sources the bash script in a real bash and asks it
// for completions at several points of a command line.
func TestCompletionBash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("bash not found: install bash to test the completion script (%v)", err)
	}
	var out, errb bytes.Buffer
	if code := dispatch(t.Context(), &cli{stdout: &out, stderr: &errb, getenv: envOf(nil)}, []string{"completion", "bash"}); code != 0 {
		t.Fatalf("completion bash = %d: %s", code, errb.String())
	}
	script := filepath.Join(t.TempDir(), "kgw.bash")
	if err := os.WriteFile(script, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		words []string // the command line; the last word is being completed
		want  string
	}{
		{[]string{"kgw", ""}, "serve workflow run executions secrets resources auth completion version help"},
		{[]string{"kgw", "wor"}, "workflow"},
		{[]string{"kgw", "workflow", ""}, "register validate list get delete"},
		{[]string{"kgw", "--addr", "h:1", "secrets", "s"}, "set-access"},
		{[]string{"kgw", "auth", "keys", ""}, "create list revoke"},
		{[]string{"kgw", "auth", "-o", "json", "bindings", "d"}, "delete"},
		{[]string{"kgw", "workflow", "list", "--tls-c"}, "--tls-ca --tls-cert"},
		{[]string{"kgw", "completion", ""}, "bash zsh fish"},
		{[]string{"kgw", "workflow", "list", ""}, ""},
	}
	for _, tt := range tests {
		var words []string
		for _, w := range tt.words {
			words = append(words, "'"+w+"'")
		}
		cmd := exec.Command(bash, "--norc", "-c", `source "$1"; COMP_WORDS=(`+strings.Join(words, " ")+`); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _kgw; echo "${COMPREPLY[*]}"`, "bash", script)
		got, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, got)
		}
		if strings.TrimSpace(string(got)) != tt.want {
			t.Errorf("completing %q = %q, want %q", tt.words, strings.TrimSpace(string(got)), tt.want)
		}
	}
}

func TestCompletionShells(t *testing.T) {
	for _, shell := range []string{"zsh", "fish"} {
		var out, errb bytes.Buffer
		if code := dispatch(t.Context(), &cli{stdout: &out, stderr: &errb, getenv: envOf(nil)}, []string{"completion", shell}); code != 0 {
			t.Fatalf("completion %s = %d: %s", shell, code, errb.String())
		}
		for _, want := range []string{"workflow", "set-access", "whoami", "revoke", "tls-ca"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("completion %s lacks %q", shell, want)
			}
		}
	}
	var out, errb bytes.Buffer
	if code := dispatch(t.Context(), &cli{stdout: &out, stderr: &errb, getenv: envOf(nil)}, []string{"completion", "tcsh"}); code != exitUsage || !strings.Contains(errb.String(), "want bash, zsh or fish") {
		t.Errorf("completion tcsh = %d %q, want exit 2", code, errb.String())
	}
}

// TestGlobalFlagsBeforeSubcommand: client flags may come before the
// command or subcommand name.
func TestGlobalFlagsBeforeSubcommand(t *testing.T) {
	tests := []struct{ in, want []string }{
		{[]string{"--addr", "h:1", "workflow", "list"}, []string{"workflow", "list", "--addr", "h:1"}},
		{[]string{"-o", "json", "--tls", "list", "--", "x"}, []string{"list", "-o", "json", "--tls", "--", "x"}},
		{[]string{"--token=t", "auth", "whoami"}, []string{"auth", "whoami", "--token=t"}},
		{[]string{"--bogus", "workflow"}, []string{"--bogus", "workflow"}},
		{[]string{"workflow", "--addr", "h:1"}, []string{"workflow", "--addr", "h:1"}},
		{[]string{"--addr"}, []string{"--addr"}},
	}
	for _, tt := range tests {
		if got := hoistClientFlags(tt.in); strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("hoistClientFlags(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	// End to end: the address given before the command is the one dialled.
	var out, errb bytes.Buffer
	code := dispatch(t.Context(), &cli{stdout: &out, stderr: &errb, getenv: envOf(nil)}, []string{"--addr", "127.0.0.1:1", "--timeout", "5s", "workflow", "-o", "json", "list"})
	if code != exitRPC || !strings.Contains(errb.String(), "kgw workflow list: UNAVAILABLE") || !strings.Contains(errb.String(), "127.0.0.1:1") {
		t.Errorf("kgw --addr 127.0.0.1:1 workflow -o json list = %d %q, want UNAVAILABLE at 127.0.0.1:1", code, errb.String())
	}
}
