package server_test

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

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/kailash-gateway/kgw/access"
	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
)

// testCA issues certificates for the TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func nextSerial() *big.Int {
	b := make([]byte, 16)
	rand.Read(b)
	return new(big.Int).SetBytes(b)
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a PEM certificate and key: a server certificate for
// 127.0.0.1, or a client certificate with cn and optional URI SAN.
func (ca *testCA) issue(t *testing.T, cn string, server bool, uri string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if server {
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	if uri != "" {
		u, _ := url.Parse(uri)
		tmpl.URIs = []*url.URL{u}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// pair issues a client certificate as a tls.Certificate.
func (ca *testCA) pair(t *testing.T, cn string, server bool, uri string) tls.Certificate {
	t.Helper()
	certPEM, keyPEM := ca.issue(t, cn, server, uri)
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestMutualTLS: callers named by their client certificate (SPIFFE URI SAN,
// else cert:<CN>), with roles from role bindings; no certificate or one
// from another CA gets no connection; replaced certificate files are
// served to new connections without a restart.
func TestMutualTLS(t *testing.T) {
	ca, other := newCA(t, "kgw test CA"), newCA(t, "other CA")
	dir := t.TempDir()
	certFile, keyFile, caFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key"), filepath.Join(dir, "ca.pem")
	sc, sk := ca.issue(t, "gateway-1", true, "")
	writeFile(t, certFile, sc)
	writeFile(t, keyFile, sk)
	writeFile(t, caFile, ca.pem)
	files, serverTLS, err := access.NewTLSFiles(certFile, keyFile, caFile)
	if err != nil || files == nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.pem)
	admin := ca.pair(t, "admin-client", false, "")
	s := startStack(t, stackOptions{authRequired: true, tls: serverTLS,
		clientTLS: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{admin}, MinVersion: tls.VersionTLS12}})
	ctx := t.Context()
	if _, err := s.auth.Bindings.Create(ctx, "spiffe://mesh.test/ns/payments/*", []string{access.RoleExecutor}, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.auth.Bindings.Create(ctx, "cert:batch-job", []string{access.RoleViewer}, "test"); err != nil {
		t.Fatal(err)
	}

	dialCert := func(certs ...tls.Certificate) *grpc.ClientConn { return dialTLS(t, s.addr, roots, certs...) }
	whoami := func(conn *grpc.ClientConn) (*kgwv1.WhoAmIResponse, error) {
		return kgwv1.NewAccessServiceClient(conn).WhoAmI(ctx, &kgwv1.WhoAmIRequest{})
	}

	spiffe := dialCert(ca.pair(t, "ignored-cn", false, "spiffe://mesh.test/ns/payments/sa/api"))
	got, err := whoami(spiffe)
	if err != nil || got.GetPrincipal() != "spiffe://mesh.test/ns/payments/sa/api" || got.GetMethod() != "mtls" ||
		len(got.GetRoles()) != 1 || got.GetRoles()[0] != "executor" {
		t.Errorf("WhoAmI with a SPIFFE certificate = %v, %v", got, err)
	}
	// The executor role from the binding works, and no more.
	if _, err := kgwv1.NewWorkflowServiceClient(spiffe).ListWorkflows(ctx, &kgwv1.ListWorkflowsRequest{}); err != nil {
		t.Errorf("ListWorkflows as the SPIFFE executor: %v", err)
	}
	if _, err := kgwv1.NewSecretServiceClient(spiffe).ListSecrets(ctx, &kgwv1.ListSecretsRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("ListSecrets as the SPIFFE executor: %v, want PERMISSION_DENIED", err)
	}

	cn := dialCert(ca.pair(t, "batch-job", false, ""))
	got, err = whoami(cn)
	if err != nil || got.GetPrincipal() != "cert:batch-job" || len(got.GetRoles()) != 1 || got.GetRoles()[0] != "viewer" {
		t.Errorf("WhoAmI with a CN-only certificate = %v, %v", got, err)
	}
	unbound := dialCert(ca.pair(t, "nobody", false, "spiffe://mesh.test/ns/other/sa/x"))
	if _, err := kgwv1.NewWorkflowServiceClient(unbound).ListWorkflows(ctx, &kgwv1.ListWorkflowsRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("ListWorkflows with a certificate no binding matches: %v, want PERMISSION_DENIED", err)
	}

	if _, err := whoami(dialCert()); err == nil || status.Code(err) == codes.OK {
		t.Errorf("WhoAmI without a client certificate succeeded")
	}
	if _, err := whoami(dialCert(other.pair(t, "batch-job", false, ""))); err == nil {
		t.Errorf("WhoAmI with a certificate of another CA succeeded")
	}
	// TLS 1.1 is refused.
	if c, err := tls.Dial("tcp", s.addr, &tls.Config{RootCAs: roots, MaxVersion: tls.VersionTLS11, Certificates: []tls.Certificate{admin}}); err == nil {
		c.Close()
		t.Errorf("a TLS 1.1 handshake succeeded")
	}

	// Replace the server's files: new connections get the new certificate.
	checkCertReload(t, s.addr, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{admin}, NextProtos: []string{"h2"}},
		func() {
			sc, sk := ca.issue(t, "gateway-2", true, "")
			writeFile(t, keyFile, sk)
			writeFile(t, certFile, sc)
		})
	if _, err := whoami(dialCert(ca.pair(t, "batch-job", false, ""))); err != nil {
		t.Errorf("WhoAmI after the rotation: %v", err)
	}
}

// dialTLS connects to addr over TLS, trusting roots and presenting certs;
// the connection is closed at the end of the test.
func dialTLS(t *testing.T, addr string, roots *x509.CertPool, certs ...tls.Certificate) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots, Certificates: certs})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// checkCertReload checks that the gateway at addr serves certificate
// gateway-1 (dialing with cfg), then, after replace has written
// gateway-2's files, serves gateway-2 within 5 s.
func checkCertReload(t *testing.T, addr string, cfg *tls.Config, replace func()) {
	t.Helper()
	served := func() string {
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if got := served(); got != "gateway-1" {
		t.Fatalf("served certificate %q, want gateway-1", got)
	}
	replace()
	deadline := time.Now().Add(5 * time.Second)
	for served() != "gateway-2" {
		if time.Now().After(deadline) {
			t.Fatalf("the replaced certificate was not served within 5 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestForwardedClientCert: with --trust-forwarded-client-cert the caller is
// taken from the sidecar's x-forwarded-client-cert header; without it the
// header is ignored.
func TestForwardedClientCert(t *testing.T) {
	const header = `By=spiffe://mesh.test/ns/kgw/sa/gw;Hash=abc;Subject="CN=api,O=Mesh";URI=spiffe://mesh.test/ns/payments/sa/api`
	for _, trust := range []bool{false, true} {
		s := startStack(t, stackOptions{authRequired: true, trustXFCC: trust})
		ctx := metadata.AppendToOutgoingContext(t.Context(), "x-forwarded-client-cert", header)
		got, err := kgwv1.NewAccessServiceClient(s.dial(t)).WhoAmI(ctx, &kgwv1.WhoAmIRequest{})
		switch {
		case !trust && status.Code(err) != codes.Unauthenticated:
			t.Errorf("untrusted header: %v, %v; want UNAUTHENTICATED", got, err)
		case trust && (err != nil || got.GetPrincipal() != "spiffe://mesh.test/ns/payments/sa/api" || got.GetMethod() != "forwarded_client_cert"):
			t.Errorf("trusted header: %v, %v", got, err)
		}
	}
}
