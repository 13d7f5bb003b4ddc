package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kailash-gateway/kgw/secrets"
	"github.com/kailash-gateway/kgw/store/sqlite"
)

// seedSecrets creates a SQLite store in dir with one secret sealed under
// the key in dir/master.key (created) and returns that key.
func seedSecrets(t *testing.T, dir, password string) secrets.MasterKey {
	t.Helper()
	key, _, err := secrets.LoadOrCreateKeyFile(filepath.Join(dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(t.Context(), filepath.Join(dir, "kgw.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mgr, err := secrets.NewManager(t.Context(), st, key, secrets.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mgr.Store(t.Context(), secrets.StoreRequest{Name: "db", Value: map[string]any{"password": password}}); err != nil {
		t.Fatal(err)
	}
	return key
}

// openWith opens the secret "db" in dir's store with key and returns its
// password.
func openWith(t *testing.T, dir string, key secrets.MasterKey) (string, error) {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(dir, "kgw.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mgr, err := secrets.NewManager(t.Context(), st, key, secrets.Options{})
	if err != nil {
		return "", err
	}
	r, err := mgr.Resolve(t.Context(), "db")
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	p, _ := r.Values["password"].(string)
	return p, nil
}

func readKey(t *testing.T, path string) secrets.MasterKey {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k, err := secrets.ParseMasterKey(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func runCLI(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = dispatch(t.Context(), &cli{stdout: &out, stderr: &errb, getenv: envOf(env)}, args)
	return code, out.String(), errb.String()
}

func TestRotateMasterKeyInPlace(t *testing.T) {
	dir := t.TempDir()
	const password = "hunter2-but-longer"
	oldKey := seedSecrets(t, dir, password)
	keyPath := filepath.Join(dir, "master.key")

	code, stdout, stderr := runCLI(t, nil, "secrets", "rotate-master-key", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("rotate-master-key exit %d, stderr %s", code, stderr)
	}
	newKey := readKey(t, keyPath)
	if newKey == oldKey {
		t.Fatal("the key file still holds the old key")
	}
	if !strings.Contains(stdout, "the new key is in "+keyPath) {
		t.Errorf("stdout = %q, want it to say the new key is in %s", stdout, keyPath)
	}
	for _, k := range []secrets.MasterKey{oldKey, newKey} {
		if strings.Contains(stdout+stderr, k.Base64()) {
			t.Fatalf("output contains a master key:\n%s%s", stdout, stderr)
		}
	}
	if _, err := os.Stat(keyPath + ".new"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s.new left behind: %v", keyPath, err)
	}
	if fi, err := os.Stat(keyPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("new key file mode = %v, %v, want 0600", fi.Mode().Perm(), err)
	}
	if _, err := openWith(t, dir, oldKey); !errors.Is(err, secrets.ErrWrongMasterKey) {
		t.Fatalf("NewManager(old key) after rotation = %v, want ErrWrongMasterKey", err)
	}
	if got, err := openWith(t, dir, newKey); err != nil || got != password {
		t.Fatalf("secret under the new key = %q, %v, want the stored password", got, err)
	}

	// Rotating with a key that is not the store's changes nothing.
	wrong := secrets.NewMasterKey()
	code, _, stderr = runCLI(t, map[string]string{"KGW_MASTER_KEY": wrong.Base64()}, "secrets", "rotate-master-key", "--data-dir", dir)
	if code != 1 || !strings.Contains(stderr, "does not match") || strings.Contains(stderr, wrong.Base64()) {
		t.Fatalf("rotate with a wrong key: exit %d, stderr %q, want 1 and a clear message without the key", code, stderr)
	}
	if _, err := os.Stat(keyPath + ".new"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed rotation left %s.new behind", keyPath)
	}
	if got, err := openWith(t, dir, newKey); err != nil || got != password {
		t.Fatalf("after a failed rotation: %q, %v, want the secret still under the current key", got, err)
	}
}

func TestRotateMasterKeyFromEnvToFile(t *testing.T) {
	dir := t.TempDir()
	const password = "correct-horse-battery"
	oldKey := seedSecrets(t, dir, password)
	newPath := filepath.Join(t.TempDir(), "next.key")

	env := map[string]string{"KGW_MASTER_KEY": oldKey.Base64(), "KGW_DATA_DIR": dir}
	code, stdout, stderr := runCLI(t, env, "secrets", "rotate-master-key", "--new-key-file", newPath)
	if code != 0 {
		t.Fatalf("rotate-master-key exit %d, stderr %s", code, stderr)
	}
	newKey := readKey(t, newPath)
	if !strings.Contains(stdout, newPath) || strings.Contains(stdout, newKey.Base64()) || strings.Contains(stdout, oldKey.Base64()) {
		t.Fatalf("stdout = %q, want the new key's path and no key", stdout)
	}
	if readKey(t, filepath.Join(dir, "master.key")) != oldKey {
		t.Error("the current key file changed although --new-key-file was given")
	}
	if got, err := openWith(t, dir, newKey); err != nil || got != password {
		t.Fatalf("secret under the new key = %q, %v", got, err)
	}

	code, _, _ = runCLI(t, nil, "secrets", "frobnicate")
	if code != 2 {
		t.Fatalf("kgw secrets frobnicate exit %d, want 2", code)
	}
}

func TestServeWrongMasterKey(t *testing.T) {
	dir := t.TempDir()
	seedSecrets(t, dir, "some-password")
	wrong := secrets.NewMasterKey()
	code, _, stderr := runCLI(t, map[string]string{"KGW_MASTER_KEY": wrong.Base64()},
		"serve", "--data-dir", dir, "--grpc-addr", "127.0.0.1:0", "--admin-addr=")
	if code != 1 || !strings.Contains(stderr, "master key does not match") || strings.Contains(stderr, wrong.Base64()) {
		t.Fatalf("serve with a wrong key: exit %d, stderr %q; want 1 and a clear message without the key", code, stderr)
	}
	code, _, stderr = runCLI(t, map[string]string{"KGW_MASTER_KEY": "bm90IGEga2V5"},
		"serve", "--data-dir", dir, "--grpc-addr", "127.0.0.1:0", "--admin-addr=")
	if code != 1 || !strings.Contains(stderr, "KGW_MASTER_KEY") || strings.Contains(stderr, "bm90IGEga2V5") {
		t.Fatalf("serve with a malformed key: exit %d, stderr %q; want 1 naming KGW_MASTER_KEY without its value", code, stderr)
	}
}
