// Package pagetoken turns store cursors into opaque, signed page tokens
// (AIP-158) and back.
//
// A token is base64url (no padding) over
//
//	version(1) | binding hash(16) | cursor | HMAC-SHA256(32)
//
// The HMAC covers everything before it, so a client can neither forge a
// cursor nor edit one. The binding hash is a digest of the request fields
// that must not change between pages (for example a list filter); a token
// presented with different fields is rejected with ErrMismatch. Tokens do
// not expire, but they are only valid for the key that signed them: a
// gateway started with a fresh random key invalidates earlier tokens.
package pagetoken

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
)

// Errors returned by Decode; both wrap ErrInvalid.
var (
	// ErrInvalid reports a token that is malformed, tampered with or signed
	// with another key.
	ErrInvalid = errors.New("invalid page token")
	// ErrMismatch reports a genuine token used with request fields that differ
	// from the request that produced it.
	ErrMismatch = fmt.Errorf("%w: request fields changed between pages", ErrInvalid)
)

const (
	version     = 1
	bindLen     = 16
	macLen      = sha256.Size
	headerLen   = 1 + bindLen
	minKeyLen   = 32
	maxCursor   = 1024
	maxTokenLen = 4 * (headerLen + maxCursor + macLen + 2) / 3
)

// Codec signs and verifies page tokens with one key. It is safe for
// concurrent use.
type Codec struct {
	key []byte
}

// New returns a Codec that signs with key, which must be at least 32 bytes
// of secret, random material.
func New(key []byte) (*Codec, error) {
	if len(key) < minKeyLen {
		return nil, fmt.Errorf("page token key: %d bytes, need at least %d", len(key), minKeyLen)
	}
	return &Codec{key: append([]byte(nil), key...)}, nil
}

// Encode returns the token for cursor bound to the request fields bind.
// An empty cursor (the end of a list) gives an empty token. Cursors longer
// than 1024 bytes are an error.
func (c *Codec) Encode(cursor string, bind ...string) (string, error) {
	if cursor == "" {
		return "", nil
	}
	if len(cursor) > maxCursor {
		return "", fmt.Errorf("encode page token: cursor of %d bytes exceeds %d", len(cursor), maxCursor)
	}
	buf := make([]byte, 0, headerLen+len(cursor)+macLen)
	buf = append(buf, version)
	buf = append(buf, bindingHash(bind)...)
	buf = append(buf, cursor...)
	buf = append(buf, c.mac(buf)...)
	return base64.RawURLEncoding.EncodeToString(buf), nil
}

// Decode verifies token and returns its cursor. An empty token gives an empty
// cursor (the first page). Errors satisfy errors.Is(err, ErrInvalid); a
// well-signed token used with other request fields also satisfies
// errors.Is(err, ErrMismatch).
func (c *Codec) Decode(token string, bind ...string) (string, error) {
	if token == "" {
		return "", nil
	}
	if len(token) > maxTokenLen {
		return "", ErrInvalid
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) < headerLen+1+macLen || raw[0] != version {
		return "", ErrInvalid
	}
	body, sum := raw[:len(raw)-macLen], raw[len(raw)-macLen:]
	if !hmac.Equal(sum, c.mac(body)) {
		return "", ErrInvalid
	}
	if !hmac.Equal(body[1:headerLen], bindingHash(bind)) {
		return "", ErrMismatch
	}
	return string(body[headerLen:]), nil
}

func (c *Codec) mac(b []byte) []byte {
	h := hmac.New(sha256.New, c.key)
	h.Write(b)
	return h.Sum(nil)
}

// bindingHash digests the binding fields unambiguously (length-prefixed).
func bindingHash(bind []string) []byte {
	h := sha256.New()
	var n [8]byte
	for _, s := range bind {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	return h.Sum(nil)[:bindLen]
}
