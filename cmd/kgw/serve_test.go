package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/kailash-gateway/kgw/internal/testenv"
)

// repoRoot returns the module root (this test runs in cmd/kgw).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found at %s: %v", root, err)
	}
	return root
}

// quickStartBlocks returns the ```sh code blocks of the README section whose
// heading is "grpcurl quick start", in order.
func quickStartBlocks(readme string) []string {
	var blocks []string
	var cur []string
	inSection, inFence, isSh := false, false, false
	level := 0
	for _, line := range strings.Split(readme, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "```") {
			if inFence {
				if inSection && isSh {
					blocks = append(blocks, strings.Join(cur, "\n"))
				}
				inFence, cur = false, nil
				continue
			}
			inFence, isSh = true, strings.TrimSpace(strings.TrimPrefix(trimmed, "```")) == "sh"
			continue
		}
		if inFence {
			cur = append(cur, line)
			continue
		}
		if strings.HasPrefix(line, "#") {
			l := len(line) - len(strings.TrimLeft(line, "#"))
			title := strings.ToLower(strings.TrimSpace(line[l:]))
			switch {
			case title == "grpcurl quick start":
				inSection, level = true, l
			case inSection && l <= level:
				inSection = false
			}
		}
	}
	return blocks
}

func TestQuickStartBlocksParser(t *testing.T) {
	readme := "# T\n## grpcurl quick start\ntext\n```sh\na 127.0.0.1:50051 list\n# comment\n```\n```text\nskip\n```\n### sub\n```sh\nb\n```\n## Next\n```sh\nc\n```\n"
	got := quickStartBlocks(readme)
	want := []string{"a 127.0.0.1:50051 list\n# comment", "b"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("quickStartBlocks = %q, want %q", got, want)
	}
}

// kgwProcess is a running `kgw serve`.
type kgwProcess struct {
	cmd       *exec.Cmd
	lines     chan string // stderr lines; closed at EOF
	log       strings.Builder
	grpcAddr  string
	adminAddr string
	dataDir   string
}

// startKGW builds the binary and starts `kgw serve` on free loopback ports,
// returning once it logged that it is ready.
func startKGW(t *testing.T, root string) *kgwProcess {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "kgw")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "./cmd/kgw")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	p := &kgwProcess{lines: make(chan string, 1024), dataDir: filepath.Join(dir, "data")}
	p.cmd = exec.Command(bin, "serve", "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--data-dir", p.dataDir, "--log-format", "json", "--access-log")
	p.cmd.Env = append(os.Environ(), "KGW_LOG_LEVEL=info")
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			for range p.lines {
			}
			p.cmd.Wait()
		}
	})
	for line := range p.lines {
		p.log.WriteString(line + "\n")
		var rec struct {
			Msg       string `json:"msg"`
			GRPCAddr  string `json:"grpc_addr"`
			AdminAddr string `json:"admin_addr"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "kgw ready" {
			p.grpcAddr, p.adminAddr = rec.GRPCAddr, rec.AdminAddr
			return p
		}
	}
	p.cmd.Wait()
	t.Fatalf("kgw serve exited (%v) before logging \"kgw ready\":\n%s", p.cmd.ProcessState, p.log.String())
	return nil
}

// stop sends SIGTERM and returns the rest of the log and the exit error.
func (p *kgwProcess) stop(t *testing.T) error {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for line := range p.lines {
		p.log.WriteString(line + "\n")
	}
	return p.cmd.Wait()
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestServeReadmeQuickStart runs the README's grpcurl quick start against
// the real binary, checks the admin endpoints, then stops it with SIGTERM.
func TestServeReadmeQuickStart(t *testing.T) {
	root := repoRoot(t)
	grpcurl := filepath.Join(root, "bin", "grpcurl")
	if _, err := os.Stat(grpcurl); err != nil {
		t.Fatalf("grpcurl not found at %s: run `make tools` (or: GOBIN=%s/bin go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4)", grpcurl, root)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := quickStartBlocks(string(readme))
	if len(blocks) == 0 {
		t.Fatal(`README.md has no sh blocks under a "grpcurl quick start" heading`)
	}

	// The hello-database blocks need a real PostgreSQL: the README's port
	// is replaced by the test server's (its superuser trusts loopback).
	pgPort := strconv.Itoa(testenv.Postgres(t).Port)
	p := startKGW(t, root)
	runQuickStartBlocks(t, root, p.grpcAddr, pgPort, blocks)
	checkAdminEndpoints(t, p.adminAddr)
	checkStoppedLog(t, p)
}

// runQuickStartBlocks runs the README's quick-start blocks against the
// gateway at grpcAddr (the README's PostgreSQL port replaced by pgPort),
// with the tools of root/bin on PATH. Each block's output must contain
// one of its RPC's wanted strings, and every wanted string must be seen
// in some block.
func runQuickStartBlocks(t *testing.T, root, grpcAddr, pgPort string, blocks []string) {
	t.Helper()
	rpcRE := regexp.MustCompile(`kgw\.v1\.\w+Service/(\w+)`)
	expect := map[string][]string{
		"list":             {"kgw.v1.WorkflowService"},
		"RegisterWorkflow": {`"version": 1`},
		"GetWorkflow":      {`"name": "hello"`},
		"ListWorkflows":    {`"latestVersion": 1`},
		"DeleteWorkflow":   {"{"},
		"ExecuteWorkflow":  {`"loud": "HELLO KGW"`, `"message": "Hello from kgw"`},
		"StoreSecret":      {`"keys": [`},
	}
	seen := map[string]bool{}
	for i, block := range blocks {
		script := strings.ReplaceAll(block, "127.0.0.1:50051", grpcAddr)
		script = strings.ReplaceAll(script, `"port": 5432`, `"port": `+pgPort)
		cmd := exec.CommandContext(t.Context(), "bash", "-euo", "pipefail", "-c", script)
		cmd.Env = append(os.Environ(), "PATH="+filepath.Join(root, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("README block %d failed: %v\n--- block\n%s\n--- output\n%s", i, err, block, out)
		}
		kind := "list"
		if m := rpcRE.FindStringSubmatch(block); m != nil {
			kind = m[1]
		}
		wants, ok := expect[kind]
		if !ok {
			continue
		}
		matched := false
		for _, want := range wants {
			if strings.Contains(string(out), want) {
				seen[want], matched = true, true
			}
		}
		if !matched {
			t.Errorf("README block %d (%s) output lacks any of %q:\n%s", i, kind, wants, out)
		}
		if strings.Contains(string(out), "change-me") {
			t.Errorf("README block %d (%s) output shows the secret's password:\n%s", i, kind, out)
		}
		if kind == "list" {
			for _, svc := range []string{
				"kgw.v1.WorkflowService", "kgw.v1.ExecutionService", "kgw.v1.SecretService", "kgw.v1.ResourceService",
				"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
			} {
				if !strings.Contains(string(out), svc) {
					t.Errorf("grpcurl list lacks %s:\n%s", svc, out)
				}
			}
		}
	}
	for kind, wants := range expect {
		for _, want := range wants {
			if !seen[want] {
				t.Errorf("README quick start has no %s example answering %q", kind, want)
			}
		}
	}
}

// checkAdminEndpoints checks the health, readiness and metrics endpoints
// of the admin server at adminAddr after the quick start.
func checkAdminEndpoints(t *testing.T, adminAddr string) {
	t.Helper()
	admin := "http://" + adminAddr
	if code, body := httpGet(t, admin+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d %q, want 200", code, body)
	}
	if code, body := httpGet(t, admin+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz = %d %q, want 200", code, body)
	}
	code, metrics := httpGet(t, admin+"/metrics")
	want := `kgw_grpc_requests_total{code="OK",method="/kgw.v1.WorkflowService/RegisterWorkflow"} 2`
	if code != http.StatusOK || !strings.Contains(metrics, want) || !strings.Contains(metrics, "kgw_grpc_request_duration_seconds_bucket") {
		t.Errorf("/metrics = %d, want it to contain %q and the duration histogram", code, want)
	}
}

// checkStoppedLog stops the gateway p with SIGTERM and checks its log: a
// clean shutdown, request logs without payloads, and the master key file
// created 0600 on this first start, logged once, its key nowhere in the
// log.
func checkStoppedLog(t *testing.T, p *kgwProcess) {
	t.Helper()
	if err := p.stop(t); err != nil {
		t.Fatalf("kgw serve after SIGTERM: %v, want exit status 0\n%s", err, p.log.String())
	}
	log := p.log.String()
	for _, msg := range []string{`"msg":"kgw shutting down"`, `"msg":"kgw stopped"`, `"method":"/kgw.v1.WorkflowService/RegisterWorkflow"`} {
		if !strings.Contains(log, msg) {
			t.Errorf("log lacks %s:\n%s", msg, log)
		}
	}
	// Request logs never carry payloads (the registered node code).
	if strings.Contains(log, "result =") {
		t.Errorf("log contains request payload:\n%s", log)
	}

	// First start: the master key file was created 0600, logged once,
	// and the key is nowhere in the log.
	keyPath := filepath.Join(p.dataDir, "master.key")
	fi, err := os.Stat(keyPath)
	if err != nil {
		t.Fatalf("master key file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("master key file mode = %v, want 0600", fi.Mode().Perm())
	}
	if n := strings.Count(log, `"msg":"created a new master key file`); n != 1 {
		t.Errorf("log has %d 'created a new master key file' lines, want 1:\n%s", n, log)
	}
	keyText, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if k := strings.TrimSpace(string(keyText)); k == "" || strings.Contains(log, k) {
		t.Errorf("log contains the master key (or the key file is empty)")
	}
}
