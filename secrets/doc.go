// Package secrets stores credentials encrypted at rest and hands them, in
// clear text, only to the code that connects to the resource they are for.
//
// Every secret version is sealed with envelope encryption: a fresh random
// 256-bit data key seals the JSON-encoded value with AES-256-GCM, and the
// master key seals (wraps) the data key with AES-256-GCM. The secret's name
// and version, and a format version byte, are bound to both seals as
// additional authenticated data, so a record that was altered, renamed, or
// given another record's ciphertext or wrapped key fails to decrypt with an
// error satisfying errors.Is(err, ErrDecrypt). The store only ever sees the
// wrapped key and the ciphertext (store.SecretRecord).
//
// A Manager is the API the gateway uses: Store, Get, List and Delete deal in
// metadata only (never a value); Resolve returns the decrypted values of the
// latest version for the resource broker, cached for a short time. NewManager
// checks the master key against a key check value kept in the store, so a
// wrong key fails at start-up rather than at the first secret read.
// RotateMasterKey re-wraps every data key under a new master key.
//
// A Redactor replaces resolved secret values with "[REDACTED]" in text and in
// JSON-like values before they are stored, streamed or returned.
//
// Errors never contain secret values or key material; they may contain
// secret names, versions and times.
package secrets
