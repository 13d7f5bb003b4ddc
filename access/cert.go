package access

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// CertPrincipal names the caller of a verified client certificate: its
// SPIFFE id (the first URI SAN with scheme spiffe), else cert:<subject CN>.
func CertPrincipal(c *x509.Certificate) (*Principal, error) {
	for _, u := range c.URIs {
		if u.Scheme == "spiffe" && u.Host != "" {
			return &Principal{Name: u.String(), Method: MethodMTLS}, nil
		}
	}
	if cn := c.Subject.CommonName; cn != "" && CheckPattern(cn) == nil {
		return &Principal{Name: "cert:" + cn, Method: MethodMTLS}, nil
	}
	return nil, authErr(ReasonBadClientCert, "client certificate has neither a SPIFFE URI SAN nor a usable subject common name")
}

// ForwardedPrincipal names the caller from an x-forwarded-client-cert
// header (Envoy's format: elements separated by ',', key=value pairs by
// ';', values optionally quoted). The last element is the one the sidecar
// itself verified. Its URI (a SPIFFE id) wins; else the CN of Subject.
func ForwardedPrincipal(header string) (*Principal, error) {
	elems := splitQuoted(header, ',')
	if len(elems) == 0 {
		return nil, authErr(ReasonBadClientCert, "empty x-forwarded-client-cert header")
	}
	var uri, subject string
	for _, kv := range splitQuoted(elems[len(elems)-1], ';') {
		k, v, _ := strings.Cut(kv, "=")
		v = unquote(strings.TrimSpace(v))
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "uri":
			if strings.HasPrefix(v, "spiffe://") && uri == "" {
				uri = v
			}
		case "subject":
			subject = v
		}
	}
	if uri != "" && CheckPattern(uri) == nil {
		return &Principal{Name: uri, Method: MethodForwarded}, nil
	}
	for _, part := range splitQuoted(subject, ',') {
		if cn, ok := strings.CutPrefix(strings.TrimSpace(part), "CN="); ok && cn != "" && CheckPattern(cn) == nil {
			return &Principal{Name: "cert:" + cn, Method: MethodForwarded}, nil
		}
	}
	return nil, authErr(ReasonBadClientCert, "x-forwarded-client-cert names neither a SPIFFE URI nor a subject CN")
}

// splitQuoted splits s at sep outside double quotes (a backslash escapes
// the next character inside quotes).
func splitQuoted(s string, sep byte) []string {
	var (
		out     []string
		start   int
		inQuote bool
	)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && inQuote:
			i++
		case c == '"':
			inQuote = !inQuote
		case c == sep && !inQuote:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

func unquote(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
		v = strings.ReplaceAll(v, `\"`, `"`)
	}
	return v
}

// TLSFiles serves the gRPC listener's certificate (and, for mTLS, the
// client CA pool) from files, re-reading them when they change: a
// certificate rotated on disk is used for the next handshakes without a
// restart. A change that does not load (half-written files) keeps the last
// good one until the files load again.
type TLSFiles struct {
	certFile, keyFile, caFile string

	mu      sync.Mutex
	checked time.Time
	stamp   string
	cert    *tls.Certificate
	pool    *x509.CertPool
}

// statEvery bounds how often the files are checked for changes.
const statEvery = time.Second

// NewTLSFiles loads the files once (failing when they do not load) and
// returns the server's tls.Config: TLS 1.2 at least; with caFile, client
// certificates are required and verified against it.
func NewTLSFiles(certFile, keyFile, caFile string) (*TLSFiles, *tls.Config, error) {
	f := &TLSFiles{certFile: certFile, keyFile: keyFile, caFile: caFile}
	if err := f.load(); err != nil {
		return nil, nil, err
	}
	base := &tls.Config{MinVersion: tls.VersionTLS12}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		cert, pool := f.current()
		c := &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{*cert},
			NextProtos:   []string{"h2"},
		}
		if f.caFile != "" {
			c.ClientAuth = tls.RequireAndVerifyClientCert
			c.ClientCAs = pool
		}
		return c, nil
	}
	return f, base, nil
}

func (f *TLSFiles) current() (*tls.Certificate, *x509.CertPool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if now := time.Now(); now.Sub(f.checked) >= statEvery {
		f.checked = now
		if f.stampNow() != f.stamp {
			_ = f.loadLocked() // keep the last good files on error
		}
	}
	return f.cert, f.pool
}

func (f *TLSFiles) load() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.loadLocked()
}

func (f *TLSFiles) loadLocked() error {
	stamp := f.stampNow()
	cert, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
	if err != nil {
		return fmt.Errorf("load TLS certificate %s and key %s: %w", f.certFile, f.keyFile, err)
	}
	var pool *x509.CertPool
	if f.caFile != "" {
		pem, err := os.ReadFile(f.caFile)
		if err != nil {
			return fmt.Errorf("read client CA file: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return errors.New("client CA file " + f.caFile + " holds no PEM certificate")
		}
	}
	f.cert, f.pool, f.stamp = &cert, pool, stamp
	return nil
}

// stampNow identifies the files' current contents by size and mtime.
func (f *TLSFiles) stampNow() string {
	var b strings.Builder
	for _, name := range []string{f.certFile, f.keyFile, f.caFile} {
		if name == "" {
			continue
		}
		if fi, err := os.Stat(name); err == nil {
			fmt.Fprintf(&b, "%d/%d;", fi.Size(), fi.ModTime().UnixNano())
		} else {
			b.WriteString("missing;")
		}
	}
	return b.String()
}
