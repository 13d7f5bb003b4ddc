// Package testpki makes throwaway certificate authorities and certificates
// for TLS and mTLS tests: ECDSA P-256 keys, valid from an hour ago for a
// day, written to PEM files on request. Nothing here is fit for production.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A CA is a self-signed certificate authority that issues leaf
// certificates. It is safe for concurrent use.
type CA struct {
	// Cert is the CA certificate.
	Cert *x509.Certificate
	// CertPEM is Cert in PEM form, for a trust store.
	CertPEM []byte
	key     *ecdsa.PrivateKey
}

// NewCA returns a new CA whose subject CN is name. It fails tb on error.
func NewCA(tb testing.TB, name string) *CA {
	tb.Helper()
	key := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(tb),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatalf("testpki: create CA %s: %v", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("testpki: parse CA %s: %v", name, err)
	}
	return &CA{Cert: cert, CertPEM: pemBlock("CERTIFICATE", der), key: key}
}

// Pool returns a certificate pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// WriteCert writes the CA certificate to dir/name and returns its path.
func (ca *CA) WriteCert(tb testing.TB, dir, name string) string {
	tb.Helper()
	return writeFile(tb, dir, name, ca.CertPEM)
}

// LeafOptions describe a leaf certificate.
type LeafOptions struct {
	// CommonName is the subject CN.
	CommonName string
	// DNSNames and IPs are the server names the certificate is valid for.
	DNSNames []string
	IPs      []net.IP
	// URIs are URI SANs, e.g. a SPIFFE id "spiffe://example.org/ns/a/sa/b".
	URIs []string
	// Client makes a client certificate (extended key usage clientAuth);
	// otherwise it is a server certificate.
	Client bool
}

// A Leaf is a certificate issued by a CA, with its private key.
type Leaf struct {
	// CertPEM and KeyPEM are the certificate and its PKCS #8 key in PEM form.
	CertPEM, KeyPEM []byte
	// TLS is the pair ready for a tls.Config.
	TLS tls.Certificate
}

// Issue returns a new leaf certificate signed by ca. It fails tb on error.
func (ca *CA) Issue(tb testing.TB, o LeafOptions) *Leaf {
	tb.Helper()
	key := newKey(tb)
	usage := x509.ExtKeyUsageServerAuth
	if o.Client {
		usage = x509.ExtKeyUsageClientAuth
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(tb),
		Subject:      pkix.Name{CommonName: o.CommonName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		DNSNames:     o.DNSNames,
		IPAddresses:  o.IPs,
	}
	for _, s := range o.URIs {
		u, err := url.Parse(s)
		if err != nil {
			tb.Fatalf("testpki: URI SAN %q: %v", s, err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		tb.Fatalf("testpki: issue %s: %v", o.CommonName, err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatalf("testpki: marshal key: %v", err)
	}
	l := &Leaf{CertPEM: pemBlock("CERTIFICATE", der), KeyPEM: pemBlock("PRIVATE KEY", pkcs8)}
	l.TLS, err = tls.X509KeyPair(l.CertPEM, l.KeyPEM)
	if err != nil {
		tb.Fatalf("testpki: key pair: %v", err)
	}
	return l
}

// Server issues a server certificate for 127.0.0.1, ::1 and localhost.
func (ca *CA) Server(tb testing.TB) *Leaf {
	tb.Helper()
	return ca.Issue(tb, LeafOptions{
		CommonName: "localhost",
		DNSNames:   []string{"localhost"},
		IPs:        []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	})
}

// WriteFiles writes the certificate and key to dir/<base>.crt and
// dir/<base>.key (mode 0600) and returns their paths.
func (l *Leaf) WriteFiles(tb testing.TB, dir, base string) (certFile, keyFile string) {
	tb.Helper()
	return writeFile(tb, dir, base+".crt", l.CertPEM), writeFile(tb, dir, base+".key", l.KeyPEM)
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("testpki: generate key: %v", err)
	}
	return key
}

func serial(tb testing.TB) *big.Int {
	tb.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		tb.Fatalf("testpki: serial: %v", err)
	}
	return n
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func writeFile(tb testing.TB, dir, name string, data []byte) string {
	tb.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		tb.Fatalf("testpki: %v", err)
	}
	return p
}
