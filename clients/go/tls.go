package kgw

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
)

// TLSFiles names the PEM files of a TLS connection to a gateway: a private
// CA to trust, and a client certificate and key for mTLS. Every field is
// optional, but Cert and Key go together.
type TLSFiles struct {
	// CA is a file of one or more CA certificates that the gateway's
	// certificate must chain to, instead of the system roots.
	CA string
	// Cert and Key are the client certificate (chain) and its private key,
	// presented when the gateway asks for one (mTLS).
	Cert, Key string
	// ServerName overrides the name the gateway's certificate must be valid
	// for (by default the host of the target).
	ServerName string
}

// Config returns a TLS configuration (TLS 1.2 or later) from the files.
// The CA file is read once. The client certificate and key are read now,
// so that a mistake shows at once, and read again at a handshake after
// either file changed (size or modification time), so that short-lived
// certificates renewed in place (SPIFFE, cert-manager) keep working; if
// the new files cannot be loaded, the last good pair is kept.
func (f TLSFiles) Config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.ServerName}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", f.CA)
		}
		cfg.RootCAs = pool
	}
	switch {
	case f.Cert == "" && f.Key == "":
	case f.Cert == "" || f.Key == "":
		return nil, errors.New("a client certificate needs both a certificate file and a key file")
	default:
		kp := &keyPair{certFile: f.Cert, keyFile: f.Key}
		if _, err := kp.get(); err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return kp.get() }
	}
	return cfg, nil
}

// WithTLSFiles connects with TLS configured from files (see
// TLSFiles.Config). A file that cannot be loaded makes Dial fail.
func WithTLSFiles(f TLSFiles) Option {
	return func(c *dialConfig) {
		cfg, err := f.Config()
		if err != nil {
			c.err = fmt.Errorf("TLS: %w", err)
			return
		}
		c.tls, c.insecure = cfg, false
	}
}

// keyPair is a client certificate loaded from files and reloaded when they
// change. It is safe for concurrent use.
type keyPair struct {
	certFile, keyFile string

	mu    sync.Mutex
	cert  *tls.Certificate
	stamp []byte // size and modification time of both files at the last load
}

// get returns the current pair, loading it again if a file changed.
func (k *keyPair) get() (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	stamp, statErr := k.stat()
	if k.cert != nil && (statErr != nil || bytes.Equal(stamp, k.stamp)) {
		return k.cert, nil
	}
	pair, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		if k.cert != nil {
			return k.cert, nil // keep the last good pair while files are being replaced
		}
		return nil, fmt.Errorf("load client certificate: %w", err)
	}
	k.cert, k.stamp = &pair, stamp
	return k.cert, nil
}

func (k *keyPair) stat() ([]byte, error) {
	var out []byte
	for _, p := range []string{k.certFile, k.keyFile} {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		out = fmt.Appendf(out, "%d/%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return out, nil
}
