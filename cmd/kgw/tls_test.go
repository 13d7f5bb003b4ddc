package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
)

// TestServeTLSFlags starts `kgw serve` in process with --auth required,
// --tls-cert-file/--tls-key-file/--tls-client-ca-file and --jwt-keys-file,
// and checks that a client certificate with a SPIFFE id and a JWT both
// name their callers over the TLS listener.
func TestServeTLSFlags(t *testing.T) {
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	ca, _ := x509.ParseCertificate(caDER)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sc, sk := issueCert(ca, caKey, 2, true, "")
	cc, ck := issueCert(ca, caKey, 3, false, "spiffe://mesh.test/ns/a/sa/b")
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	b64 := base64.RawURLEncoding
	jwks, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": b64.EncodeToString(pub)}}})

	cfg, err := parseServeConfig([]string{"--grpc-addr", "127.0.0.1:0", "--admin-addr=", "--data-dir", dir, "--auth", "required",
		"--tls-cert-file", write("s.pem", sc), "--tls-key-file", write("s.key", sk), "--tls-client-ca-file", write("ca.pem", caPEM),
		"--jwt-keys-file", write("jwks.json", jwks), "--jwt-issuer", "https://idp.test", "--jwt-audience", "kgw", "--jwt-roles-claim", "roles"},
		envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ShutdownTimeout = 10 * time.Second
	h := newReadyHandler()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, slog.New(h)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	var addr string
	select {
	case addr = <-h.ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	pair, err := tls.X509KeyPair(cc, ck)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	acc := kgwv1.NewAccessServiceClient(conn)
	who, err := acc.WhoAmI(t.Context(), &kgwv1.WhoAmIRequest{})
	if err != nil || who.GetPrincipal() != "spiffe://mesh.test/ns/a/sa/b" || who.GetMethod() != "mtls" {
		t.Fatalf("WhoAmI with the client certificate = %v, %v", who, err)
	}
	jwt := signJWT(priv, map[string]any{"iss": "https://idp.test", "aud": "kgw", "sub": "svc", "exp": time.Now().Add(time.Hour).Unix(), "roles": []string{"viewer"}})
	who, err = acc.WhoAmI(metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+jwt), &kgwv1.WhoAmIRequest{})
	if err != nil || who.GetPrincipal() != "jwt:svc" || len(who.GetRoles()) != 1 || who.GetRoles()[0] != "viewer" {
		t.Fatalf("WhoAmI with a JWT = %v, %v", who, err)
	}
}

// issueCert issues a certificate signed by ca (key caKey): a server
// certificate for 127.0.0.1, or a client certificate with the URI SAN
// uri. It returns the certificate and its key in PEM.
func issueCert(ca *x509.Certificate, caKey *ecdsa.PrivateKey, serial int64, server bool, uri string) (certPEM, keyPEM []byte) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "x"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	} else {
		u, _ := url.Parse(uri)
		tmpl.URIs = []*url.URL{u}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	kb, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// signJWT returns the compact JWT of claims signed with priv (EdDSA, key
// id k).
func signJWT(priv ed25519.PrivateKey, claims map[string]any) string {
	b64 := base64.RawURLEncoding
	hb, _ := json.Marshal(map[string]any{"alg": "EdDSA", "kid": "k"})
	cb, _ := json.Marshal(claims)
	signed := b64.EncodeToString(hb) + "." + b64.EncodeToString(cb)
	return signed + "." + b64.EncodeToString(ed25519.Sign(priv, []byte(signed)))
}
