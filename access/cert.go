package access

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// CertPrincipal names the caller of a verified client certificate: its
// SPIFFE id (its only URI SAN with scheme spiffe), else cert:<subject CN>.
// A certificate with several SPIFFE ids, or one that is not a valid SPIFFE
// ID (CheckSPIFFEID), is refused rather than named by its CN: which id
// would be the caller is not clear, and a path such as
// spiffe://td/ns/a/../b would match patterns meant for spiffe://td/ns/a/*.
func CertPrincipal(c *x509.Certificate) (*Principal, error) {
	var ids []string
	for _, u := range c.URIs {
		if strings.EqualFold(u.Scheme, "spiffe") {
			ids = append(ids, u.String())
		}
	}
	switch {
	case len(ids) > 1:
		return nil, authErr(ReasonBadClientCert, "client certificate has more than one SPIFFE URI SAN")
	case len(ids) == 1:
		if err := CheckSPIFFEID(ids[0]); err != nil {
			return nil, authErr(ReasonBadClientCert, "client certificate: "+err.Error())
		}
		return &Principal{Name: ids[0], Method: MethodMTLS}, nil
	}
	if cn := c.Subject.CommonName; usableCN(cn) {
		return &Principal{Name: "cert:" + cn, Method: MethodMTLS}, nil
	}
	return nil, authErr(ReasonBadClientCert, "client certificate has neither a SPIFFE URI SAN nor a usable subject common name")
}

// usableCN reports whether a subject common name can name a caller: a
// valid principal pattern without any "*", so that a principal name never
// looks like a pattern (cert:team-* would otherwise be a name that role
// bindings and allowed_callers entries copy as a prefix).
func usableCN(cn string) bool {
	return cn != "" && CheckPattern(cn) == nil && !strings.Contains(cn, "*")
}

// maxSPIFFEIDLen is the SPIFFE standard's bound on an id's length.
const maxSPIFFEIDLen = 2048

// CheckSPIFFEID reports whether id is a SPIFFE ID naming a workload, as the
// SPIFFE ID standard defines it: spiffe://<trust domain>/<path>, the trust
// domain of lowercase letters, digits, '.', '-' and '_', the path of one or
// more non-empty segments of letters, digits, '.', '-' and '_' that are not
// "." or "..", with no port, user, query, fragment or percent-encoding,
// at most 2048 bytes.
func CheckSPIFFEID(id string) error {
	rest, ok := strings.CutPrefix(id, "spiffe://")
	switch {
	case !ok:
		return fmt.Errorf("%q is not a SPIFFE ID: want spiffe://<trust domain>/<path>", clip(id))
	case len(id) > maxSPIFFEIDLen:
		return fmt.Errorf("SPIFFE ID longer than %d bytes", maxSPIFFEIDLen)
	}
	td, path, _ := strings.Cut(rest, "/")
	if td == "" {
		return fmt.Errorf("%q: SPIFFE ID without a trust domain", clip(id))
	}
	for i := 0; i < len(td); i++ {
		if c := td[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Errorf("%q: SPIFFE trust domains hold lowercase letters, digits, '.', '-' and '_' only", clip(id))
		}
	}
	if path == "" {
		return fmt.Errorf("%q: SPIFFE ID without a workload path", clip(id))
	}
	for _, seg := range strings.Split(path, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%q: SPIFFE ID path segments may not be empty, \".\" or \"..\"", clip(id))
		}
		for i := 0; i < len(seg); i++ {
			if c := seg[i]; !isAlnum(c) && c != '.' && c != '-' && c != '_' {
				return fmt.Errorf("%q: SPIFFE ID paths hold letters, digits, '.', '-' and '_' only", clip(id))
			}
		}
	}
	return nil
}

// ForwardedPrincipal names the caller from an x-forwarded-client-cert
// header (Envoy's format: elements separated by ',', key=value pairs by
// ';', values optionally quoted). The last element is the one the sidecar
// itself verified. Its URI (a SPIFFE id) wins; else the CN of Subject. The
// same rules as CertPrincipal apply: more than one SPIFFE URI, an invalid
// SPIFFE ID, or a Subject with several CNs or that is not a well-formed
// RFC 4514 name is refused.
func ForwardedPrincipal(header string) (*Principal, error) {
	elems := splitQuoted(header, ',')
	if len(elems) == 0 {
		return nil, authErr(ReasonBadClientCert, "empty x-forwarded-client-cert header")
	}
	var (
		uris    []string
		subject string
	)
	for _, kv := range splitQuoted(elems[len(elems)-1], ';') {
		k, v, _ := strings.Cut(kv, "=")
		v = unquote(strings.TrimSpace(v))
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "uri":
			if len(v) >= len("spiffe:") && strings.EqualFold(v[:len("spiffe:")], "spiffe:") {
				uris = append(uris, v)
			}
		case "subject":
			subject = v
		}
	}
	switch {
	case len(uris) > 1:
		return nil, authErr(ReasonBadClientCert, "x-forwarded-client-cert names more than one SPIFFE URI")
	case len(uris) == 1:
		if err := CheckSPIFFEID(uris[0]); err != nil {
			return nil, authErr(ReasonBadClientCert, "x-forwarded-client-cert: "+err.Error())
		}
		return &Principal{Name: uris[0], Method: MethodForwarded}, nil
	}
	cn, err := subjectCN(subject)
	if err != nil {
		return nil, authErr(ReasonBadClientCert, "x-forwarded-client-cert: "+err.Error())
	}
	return &Principal{Name: "cert:" + cn, Method: MethodForwarded}, nil
}

// subjectCN returns the only CN of an RFC 4514 distinguished name (as Envoy
// writes Subject): attributes separated by ',' or '+', where a backslash
// escapes the next character or stands before two hex digits. An escaped
// ',' is part of a value: O=a\,CN=x has no CN.
func subjectCN(dn string) (string, error) {
	if dn == "" {
		return "", errors.New("no SPIFFE URI and no Subject")
	}
	var (
		cns  []string
		attr strings.Builder
		key  string
		seen bool // attr holds a value (after '=')
	)
	end := func() error {
		if !seen {
			return errors.New("malformed Subject: an attribute without '='")
		}
		if strings.EqualFold(strings.TrimSpace(key), "CN") {
			cns = append(cns, attr.String())
		}
		attr.Reset()
		key, seen = "", false
		return nil
	}
	for i := 0; i < len(dn); i++ {
		c := dn[i]
		switch {
		case c == '\\':
			if i+1 >= len(dn) {
				return "", errors.New("malformed Subject: ends in a backslash")
			}
			if i+2 < len(dn) && isHex(dn[i+1]) && isHex(dn[i+2]) {
				b, _ := hex.DecodeString(dn[i+1 : i+3])
				attr.WriteByte(b[0])
				i += 2
			} else {
				attr.WriteByte(dn[i+1])
				i++
			}
		case (c == ',' || c == '+'):
			if err := end(); err != nil {
				return "", err
			}
		case c == '=' && !seen:
			key, seen = attr.String(), true
			attr.Reset()
		default:
			attr.WriteByte(c)
		}
	}
	if err := end(); err != nil {
		return "", err
	}
	switch {
	case len(cns) == 0:
		return "", errors.New("no SPIFFE URI and no CN in Subject")
	case len(cns) > 1:
		return "", errors.New("the Subject has more than one CN")
	case !usableCN(cns[0]):
		return "", errors.New("the CN of Subject cannot name a caller (empty, a space or control character, or '*')")
	}
	return cns[0], nil
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

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
