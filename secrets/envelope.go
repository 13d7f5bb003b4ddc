package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/kailash-gateway/kgw/store"
)

// Envelope format, version 1. Both sealed fields of a store.SecretRecord are
//
//	format byte (1) || 12-byte random nonce || AES-256-GCM ciphertext and tag
//
// WrappedKey seals the 32-byte data key under the master key; Ciphertext seals
// the JSON-encoded value under the data key. Each seal authenticates
//
//	"kgw/secret/" || purpose || 0x00 || format byte || uint32 len(name) || name || uint32 version
//
// (big-endian), where purpose is "data-key" or "value", so neither field can
// be moved to another name, version or field without failing to open. The
// value's seal also authenticates the record's expire time and allowed hosts
// (see valueAAD).
const (
	formatV1    byte = 1
	dataKeySize int  = 32
	nonceSize   int  = 12
	tagSize     int  = 16
	// wrappedKeySize is the exact length of a version 1 WrappedKey.
	wrappedKeySize = 1 + nonceSize + dataKeySize + tagSize
)

const (
	purposeDataKey = "data-key"
	purposeValue   = "value"
)

// keyCheckPlaintext is what the key check value seals under the master key.
var keyCheckPlaintext = []byte("kgw master key check v1")

// errOpen is the internal cause of every failure to open a sealed field; it
// is reported to callers as ErrDecrypt or ErrWrongMasterKey.
var errOpen = errors.New("message authentication failed")

// aad returns the additional authenticated data of one sealed field.
func aad(purpose, name string, version int32) []byte {
	b := make([]byte, 0, len("kgw/secret/")+len(purpose)+1+1+4+len(name)+4)
	b = append(b, "kgw/secret/"...)
	b = append(b, purpose...)
	b = append(b, 0, formatV1)
	b = binary.BigEndian.AppendUint32(b, uint32(len(name)))
	b = append(b, name...)
	b = binary.BigEndian.AppendUint32(b, uint32(version))
	return b
}

func newGCM(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic("secrets: " + err.Error()) // unreachable: keys are always 32 bytes
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		panic("secrets: " + err.Error()) // unreachable: the standard GCM parameters
	}
	return gcm
}

// seal encrypts plaintext under key with a random nonce, in the envelope format.
func seal(key, plaintext, additional []byte) []byte {
	out := make([]byte, 1+nonceSize, 1+nonceSize+len(plaintext)+tagSize)
	out[0] = formatV1
	rand.Read(out[1 : 1+nonceSize])
	return newGCM(key).Seal(out, out[1:1+nonceSize], plaintext, additional)
}

// open reverses seal. Every failure, whatever the input, is errOpen.
func open(key, sealed, additional []byte) ([]byte, error) {
	if len(sealed) < 1+nonceSize+tagSize || sealed[0] != formatV1 {
		return nil, errOpen
	}
	pt, err := newGCM(key).Open(nil, sealed[1:1+nonceSize], sealed[1+nonceSize:], additional)
	if err != nil {
		return nil, errOpen
	}
	return pt, nil
}

// valueAAD is the additional authenticated data of a record's Ciphertext:
// the common prefix, then the record's policy — uint64 expire time in Unix
// microseconds (0 = never), uint32 count of allowed hosts, and each host as
// uint32 length || bytes — so that the expiry and allowed_hosts of a record
// cannot be changed in the store without the value failing to open.
func valueAAD(rec *store.SecretRecord) []byte {
	b := aad(purposeValue, rec.Name, rec.Version)
	var exp int64
	if !rec.ExpireTime.IsZero() {
		exp = rec.ExpireTime.UnixMicro()
	}
	b = binary.BigEndian.AppendUint64(b, uint64(exp))
	b = binary.BigEndian.AppendUint32(b, uint32(len(rec.AllowedHosts)))
	for _, h := range rec.AllowedHosts {
		b = binary.BigEndian.AppendUint32(b, uint32(len(h)))
		b = append(b, h...)
	}
	return b
}

// sealRecord encrypts plaintext as the value of rec under a fresh data key,
// setting rec.WrappedKey and rec.Ciphertext. rec's Name, Version, ExpireTime
// and AllowedHosts must be final: they are authenticated.
func sealRecord(master MasterKey, rec *store.SecretRecord, plaintext []byte) {
	dataKey := make([]byte, dataKeySize)
	defer clear(dataKey)
	rand.Read(dataKey)
	rec.Ciphertext = seal(dataKey, plaintext, valueAAD(rec))
	rec.WrappedKey = seal(master[:], dataKey, aad(purposeDataKey, rec.Name, rec.Version))
}

// unwrapDataKey opens the wrapped data key of version of name.
func unwrapDataKey(master MasterKey, name string, version int32, wrappedKey []byte) ([]byte, error) {
	if len(wrappedKey) != wrappedKeySize {
		return nil, errOpen
	}
	return open(master[:], wrappedKey, aad(purposeDataKey, name, version))
}

// openRecord decrypts the value of rec. It never panics, whatever the
// record holds; every failure is errOpen.
func openRecord(master MasterKey, rec *store.SecretRecord) ([]byte, error) {
	dataKey, err := unwrapDataKey(master, rec.Name, rec.Version, rec.WrappedKey)
	if err != nil {
		return nil, err
	}
	defer clear(dataKey)
	return open(dataKey, rec.Ciphertext, valueAAD(rec))
}

// rewrapDataKey re-seals the wrapped data key of version of name under newKey.
func rewrapDataKey(oldKey, newKey MasterKey, name string, version int32, wrappedKey []byte) ([]byte, error) {
	dataKey, err := unwrapDataKey(oldKey, name, version, wrappedKey)
	if err != nil {
		return nil, err
	}
	defer clear(dataKey)
	return seal(newKey[:], dataKey, aad(purposeDataKey, name, version)), nil
}

// keyCheckAAD is the additional authenticated data of the key check value.
var keyCheckAAD = []byte{'k', 'g', 'w', '/', 'k', 'e', 'y', '-', 'c', 'h', 'e', 'c', 'k', 0, formatV1}

// newKeyCheck returns a fresh key check value for master: a constant sealed
// under it, which only the same key opens.
func newKeyCheck(master MasterKey) []byte {
	return seal(master[:], keyCheckPlaintext, keyCheckAAD)
}

// verifyKeyCheck reports whether master opens the key check value kc, as
// an error wrapping ErrWrongMasterKey if it does not.
func verifyKeyCheck(master MasterKey, kc []byte) error {
	pt, err := open(master[:], kc, keyCheckAAD)
	if err != nil || subtle.ConstantTimeCompare(pt, keyCheckPlaintext) != 1 {
		return fmt.Errorf("%w (key check value does not open)", ErrWrongMasterKey)
	}
	return nil
}
