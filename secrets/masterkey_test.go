package secrets_test

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kailash-gateway/kgw/secrets"
)

func TestParseMasterKey(t *testing.T) {
	key := secrets.NewMasterKey()
	raw := key[:]
	valid := []struct {
		name string
		in   string
	}{
		{"std", base64.StdEncoding.EncodeToString(raw)},
		{"raw std", base64.RawStdEncoding.EncodeToString(raw)},
		{"url", base64.URLEncoding.EncodeToString(raw)},
		{"raw url", base64.RawURLEncoding.EncodeToString(raw)},
		{"white space", "  " + base64.StdEncoding.EncodeToString(raw) + "\n"},
		{"Base64", key.Base64()},
	}
	for _, tt := range valid {
		t.Run(tt.name, func(t *testing.T) {
			got, err := secrets.ParseMasterKey(tt.in)
			if err != nil {
				t.Fatalf("ParseMasterKey() error = %v", err)
			}
			if got != key {
				t.Errorf("ParseMasterKey() gave another key")
			}
		})
	}

	short := base64.StdEncoding.EncodeToString([]byte("sixteen byte key"))
	invalid := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"spaces", "   "},
		{"not base64", "this is not base64 at all!!"},
		{"16 bytes", short},
		{"33 bytes", base64.StdEncoding.EncodeToString(append(raw[:len(raw):len(raw)], 0))},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			_, err := secrets.ParseMasterKey(tt.in)
			if err == nil {
				t.Fatalf("ParseMasterKey() succeeded, want an error")
			}
			if s := strings.TrimSpace(tt.in); s != "" && strings.Contains(err.Error(), s) {
				t.Errorf("ParseMasterKey() error %q repeats the input", err)
			}
		})
	}
}

func TestMasterKeyNeverPrints(t *testing.T) {
	key := secrets.NewMasterKey()
	enc := key.Base64()
	for _, format := range []string{"%v", "%s", "%+v", "%#v", "%x", "%q", "%d", "%X"} {
		out := fmt.Sprintf(format, key)
		if strings.Contains(out, enc) || strings.Contains(out, fmt.Sprintf("%x", key[:])) || !strings.Contains(out, "REDACTED") {
			t.Errorf("Sprintf(%q, key) = %q, want a placeholder", format, out)
		}
	}
	out := fmt.Sprintf("%v", struct{ K secrets.MasterKey }{key})
	if !strings.Contains(out, "REDACTED") {
		t.Errorf("Sprintf(%%v, struct with key) = %q, want a placeholder", out)
	}
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "nested")
	path := filepath.Join(dir, "master.key")

	key, created, err := secrets.LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatalf("LoadOrCreateKeyFile(new) error = %v", err)
	}
	if !created {
		t.Errorf("LoadOrCreateKeyFile(new) created = false, want true")
	}
	if key == (secrets.MasterKey{}) {
		t.Errorf("LoadOrCreateKeyFile(new) returned the zero key")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("key file mode = %04o, want 0600", got)
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := di.Mode().Perm(); got != 0o700 {
		t.Errorf("key directory mode = %04o, want 0700", got)
	}
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(text)); got != key.Base64() {
		t.Errorf("key file holds something other than the key's base64")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("key directory has %d entries, want only the key file", len(entries))
	}

	again, created, err := secrets.LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatalf("LoadOrCreateKeyFile(existing) error = %v", err)
	}
	if created || again != key {
		t.Errorf("LoadOrCreateKeyFile(existing) = (same key %v, created %v), want (true, false)", again == key, created)
	}
}

func TestLoadOrCreateKeyFileConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	const n = 8
	keys := make([]secrets.MasterKey, n)
	createdCount := 0
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			k, created, err := secrets.LoadOrCreateKeyFile(path)
			if err != nil {
				t.Errorf("LoadOrCreateKeyFile() error = %v", err)
				return
			}
			keys[i] = k
			if created {
				mu.Lock()
				createdCount++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for i := range keys {
		if keys[i] != keys[0] {
			t.Fatalf("concurrent LoadOrCreateKeyFile calls returned different keys")
		}
	}
	if createdCount != 1 {
		t.Errorf("%d calls reported created, want 1", createdCount)
	}
}

func TestLoadKeyFileRefusesLoosePermissions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	key := secrets.NewMasterKey()
	if err := os.WriteFile(path, []byte(key.Base64()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o660} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, _, err := secrets.LoadOrCreateKeyFile(path)
		if err == nil {
			t.Fatalf("LoadOrCreateKeyFile(mode %04o) succeeded, want an error", mode)
		}
		if !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("LoadOrCreateKeyFile(mode %04o) error = %q, want a chmod hint", mode, err)
		}
		if strings.Contains(err.Error(), key.Base64()) {
			t.Errorf("error contains the key")
		}
	}
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	got, _, err := secrets.LoadOrCreateKeyFile(path)
	if err != nil || got != key {
		t.Errorf("LoadOrCreateKeyFile(mode 0400) = (same key %v, %v), want the key", got == key, err)
	}
}

func TestLoadKeyFileRejectsGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	const garbage = "definitely-not-a-key"
	if err := os.WriteFile(path, []byte(garbage), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := secrets.LoadOrCreateKeyFile(path)
	if err == nil {
		t.Fatal("LoadOrCreateKeyFile(garbage) succeeded, want an error")
	}
	if strings.Contains(err.Error(), garbage) {
		t.Errorf("error %q repeats the file's content", err)
	}
	// The existing (bad) file is left alone, not replaced by a new key.
	b, _ := os.ReadFile(path)
	if string(b) != garbage {
		t.Errorf("key file was rewritten")
	}
}

func TestWriteKeyFileReplaces(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	first, _, err := secrets.LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	second := secrets.NewMasterKey()
	if err := secrets.WriteKeyFile(path, second); err != nil {
		t.Fatalf("WriteKeyFile() error = %v", err)
	}
	got, created, err := secrets.LoadOrCreateKeyFile(path)
	if err != nil || created || got != second || got == first {
		t.Errorf("after WriteKeyFile, LoadOrCreateKeyFile = (new key %v, created %v, %v), want the new key", got == second, created, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %04o, want 0600", fi.Mode().Perm())
	}
}
