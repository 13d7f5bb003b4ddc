package secrets

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// MasterKeySize is the size of a master key in bytes (AES-256).
const MasterKeySize = 32

// A MasterKey is the 256-bit key that wraps every data key. Its String,
// GoString and Format methods never print the key, so formatting one by
// accident (with any fmt verb) does not leak it; Base64 is the only way to
// get its text form.
type MasterKey [MasterKeySize]byte

// NewMasterKey returns a master key made of 32 random bytes from crypto/rand.
func NewMasterKey() MasterKey {
	var k MasterKey
	rand.Read(k[:]) // never returns an error; crashes the program if the OS has no randomness
	return k
}

// ParseMasterKey decodes a base64 master key (standard or URL alphabet, with
// or without padding, surrounding white space ignored), as given in
// KGW_MASTER_KEY or a key file. It must decode to exactly 32 bytes. Errors
// never repeat the input.
func ParseMasterKey(s string) (MasterKey, error) {
	var k MasterKey
	b := bytes.TrimSpace([]byte(s))
	if len(b) == 0 {
		return k, errors.New("master key is empty")
	}
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding,
	} {
		dec := make([]byte, enc.DecodedLen(len(b)))
		n, err := enc.Decode(dec, b)
		if err != nil {
			clear(dec)
			continue
		}
		if n != MasterKeySize {
			clear(dec)
			return k, fmt.Errorf("master key decodes to %d bytes, want %d", n, MasterKeySize)
		}
		copy(k[:], dec[:n])
		clear(dec)
		return k, nil
	}
	return k, errors.New("master key is not valid base64")
}

// Base64 returns the key in standard padded base64, the form ParseMasterKey,
// KGW_MASTER_KEY and key files use. Handle the result as a secret.
func (k MasterKey) Base64() string { return base64.StdEncoding.EncodeToString(k[:]) }

// String returns a fixed placeholder, never the key.
func (k MasterKey) String() string { return "MasterKey([REDACTED])" }

// GoString returns a fixed placeholder, never the key.
func (k MasterKey) GoString() string { return k.String() }

// Format writes a fixed placeholder for every verb (%v, %d, %x, …), never
// the key.
func (k MasterKey) Format(f fmt.State, verb rune) { io.WriteString(f, k.String()) }

// LoadOrCreateKeyFile reads the base64 master key in the file at path, or, if
// the file does not exist, creates it holding a new random key and reports
// created = true (the caller should log that it did, never the key).
//
// A new file is written with mode 0600, its missing parent directories with
// mode 0700; it appears atomically, so two processes starting at once agree
// on one key. An existing key file that group or others may read or write
// (mode & 0o077 != 0) is refused with a hint to chmod it, as ssh refuses
// private keys: a master key readable by others is already compromised.
func LoadOrCreateKeyFile(path string) (key MasterKey, created bool, err error) {
	key, err = readKeyFile(path)
	if err == nil {
		return key, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return MasterKey{}, false, err
	}
	key = NewMasterKey()
	switch err := writeKeyFile(path, key, false); {
	case err == nil:
		return key, true, nil
	case errors.Is(err, fs.ErrExist):
		// Another process created it first: use its key.
		key, err = readKeyFile(path)
		return key, false, err
	default:
		return MasterKey{}, false, err
	}
}

// WriteKeyFile writes key to the file at path (mode 0600, missing parent
// directories 0700), atomically replacing any existing file. It is what
// `kgw secrets rotate-master-key` uses to store the new key.
func WriteKeyFile(path string, key MasterKey) error {
	return writeKeyFile(path, key, true)
}

func readKeyFile(path string) (MasterKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return MasterKey{}, fmt.Errorf("read master key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return MasterKey{}, fmt.Errorf("read master key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return MasterKey{}, fmt.Errorf("master key file %s is not a regular file", path)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return MasterKey{}, fmt.Errorf("master key file %s has mode %04o: it must not be accessible by group or others (run: chmod 600 %s)",
			path, fi.Mode().Perm(), path)
	}
	buf, err := io.ReadAll(io.LimitReader(f, 4096))
	defer clear(buf)
	if err != nil {
		return MasterKey{}, fmt.Errorf("read master key file %s: %w", path, err)
	}
	key, err := ParseMasterKey(string(buf))
	if err != nil {
		return MasterKey{}, fmt.Errorf("master key file %s: %w", path, err)
	}
	return key, nil
}

// writeKeyFile writes key to a temporary file next to path and then moves it
// into place: with replace, by rename; without, by link, which fails with
// fs.ErrExist if path already exists.
func writeKeyFile(path string, key MasterKey, replace bool) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create master key directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".kgw-master-key-*") // mode 0600
	if err != nil {
		return fmt.Errorf("create master key file: %w", err)
	}
	tmpName := tmp.Name()
	defer func() {
		if rmErr := os.Remove(tmpName); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) && err == nil {
			err = fmt.Errorf("remove temporary master key file: %w", rmErr)
		}
	}()
	text := []byte(key.Base64() + "\n")
	defer clear(text)
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("create master key file: %w", err)
	}
	if _, err := tmp.Write(text); err != nil {
		tmp.Close()
		return fmt.Errorf("write master key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write master key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write master key file: %w", err)
	}
	if replace {
		if err := os.Rename(tmpName, path); err != nil {
			return fmt.Errorf("write master key file: %w", err)
		}
	} else if err := os.Link(tmpName, path); err != nil {
		return fmt.Errorf("create master key file: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // best effort: make the new directory entry durable
		d.Close()
	}
	return nil
}
