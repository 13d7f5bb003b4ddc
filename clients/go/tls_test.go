package kgw_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	kgw "github.com/kailash-gateway/kgw/clients/go"
	"github.com/kailash-gateway/kgw/internal/testpki"
)

// reach makes one call through a client dialled with opts and returns its
// error: UNIMPLEMENTED means the call reached the probe over TLS.
func reach(t *testing.T, addr string, opts ...kgw.Option) error {
	t.Helper()
	ctx := t.Context()
	c, err := kgw.Dial(ctx, addr, opts...)
	if err != nil {
		t.Fatalf("Dial() error = %v", err)
	}
	defer c.Close()
	_, err = c.GetWorkflow(ctx, "probe", 0)
	return err
}

func code(err error) codes.Code { return status.Code(err) }

func TestTLSCustomCAAndToken(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "test root")
	probe := testpki.StartProbe(t, ca.Server(t).TLS, nil)
	caFile := ca.WriteCert(t, dir, "ca.crt")

	err := reach(t, probe.Addr, kgw.WithTLSFiles(kgw.TLSFiles{CA: caFile}), kgw.WithToken("kgw_abc_secret"))
	if code(err) != codes.Unimplemented {
		t.Fatalf("call over TLS with the private CA: error = %v, want UNIMPLEMENTED from the probe", err)
	}
	got := probe.Last(t)
	if got.Method != "/kgw.v1.WorkflowService/GetWorkflow" || got.Authorization != "Bearer kgw_abc_secret" || got.ClientCN != "" {
		t.Errorf("probe saw %+v, want GetWorkflow with authorization \"Bearer kgw_abc_secret\" and no client certificate", got)
	}

	// The same server is not trusted without the CA (system roots)...
	if err := reach(t, probe.Addr, kgw.WithTLS(nil)); code(err) != codes.Unavailable || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("call with the system roots: error = %v, want UNAVAILABLE naming the certificate", err)
	}
	// ...nor with another CA, nor under another server name.
	other := testpki.NewCA(t, "other root").WriteCert(t, dir, "other.crt")
	if err := reach(t, probe.Addr, kgw.WithTLSFiles(kgw.TLSFiles{CA: other})); code(err) != codes.Unavailable {
		t.Errorf("call trusting another CA: error = %v, want UNAVAILABLE", err)
	}
	if err := reach(t, probe.Addr, kgw.WithTLSFiles(kgw.TLSFiles{CA: caFile, ServerName: "kgw.example"})); code(err) != codes.Unavailable {
		t.Errorf("call expecting server name kgw.example: error = %v, want UNAVAILABLE", err)
	}
	// A plaintext client cannot talk to a TLS server at all.
	if err := reach(t, probe.Addr, kgw.WithInsecure()); code(err) != codes.Unavailable {
		t.Errorf("plaintext call to a TLS server: error = %v, want UNAVAILABLE", err)
	}
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "mesh root")
	probe := testpki.StartProbe(t, ca.Server(t).TLS, ca.Pool())
	caFile := ca.WriteCert(t, dir, "ca.crt")

	spiffe := ca.Issue(t, testpki.LeafOptions{CommonName: "payments", URIs: []string{"spiffe://mesh.example/ns/payments/sa/api"}, Client: true})
	cert, key := spiffe.WriteFiles(t, dir, "client")
	files := kgw.TLSFiles{CA: caFile, Cert: cert, Key: key}
	if err := reach(t, probe.Addr, kgw.WithTLSFiles(files)); code(err) != codes.Unimplemented {
		t.Fatalf("mTLS call: error = %v, want UNIMPLEMENTED from the probe", err)
	}
	if got := probe.Last(t); got.ClientCN != "payments" || len(got.ClientURIs) != 1 || got.ClientURIs[0] != "spiffe://mesh.example/ns/payments/sa/api" {
		t.Errorf("probe saw client %q %v, want payments with its SPIFFE id", got.ClientCN, got.ClientURIs)
	}

	t.Run("no client certificate", func(t *testing.T) {
		if err := reach(t, probe.Addr, kgw.WithTLSFiles(kgw.TLSFiles{CA: caFile})); code(err) != codes.Unavailable {
			t.Errorf("call without a client certificate: error = %v, want UNAVAILABLE", err)
		}
	})
	t.Run("certificate of another CA", func(t *testing.T) {
		stranger := testpki.NewCA(t, "stranger").Issue(t, testpki.LeafOptions{CommonName: "intruder", Client: true})
		cert, key := stranger.WriteFiles(t, dir, "stranger")
		if err := reach(t, probe.Addr, kgw.WithTLSFiles(kgw.TLSFiles{CA: caFile, Cert: cert, Key: key})); code(err) != codes.Unavailable {
			t.Errorf("call with a certificate of another CA: error = %v, want UNAVAILABLE", err)
		}
	})
	t.Run("renewed in place", func(t *testing.T) {
		cfg, err := files.Config()
		if err != nil {
			t.Fatal(err)
		}
		renewed := ca.Issue(t, testpki.LeafOptions{CommonName: "payments-renewed", Client: true})
		// Different size or a later modification time marks the files as changed.
		time.Sleep(10 * time.Millisecond)
		renewed.WriteFiles(t, dir, "client")
		if err := reach(t, probe.Addr, kgw.WithTLS(cfg)); code(err) != codes.Unimplemented {
			t.Fatalf("call after renewal: error = %v", err)
		}
		if got := probe.Last(t).ClientCN; got != "payments-renewed" {
			t.Errorf("client certificate after renewal = %q, want payments-renewed", got)
		}
		// A half-written replacement keeps the last good pair.
		if err := os.WriteFile(cert, []byte("-----BEGIN CERTIFICATE-----\ntruncated"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := reach(t, probe.Addr, kgw.WithTLS(cfg)); code(err) != codes.Unimplemented {
			t.Fatalf("call while the certificate file is broken: error = %v", err)
		}
		if got := probe.Last(t).ClientCN; got != "payments-renewed" {
			t.Errorf("client certificate while the file is broken = %q, want the last good one", got)
		}
	})
}

func TestTLSFilesErrors(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "root")
	caFile := ca.WriteCert(t, dir, "ca.crt")
	cert, key := ca.Issue(t, testpki.LeafOptions{CommonName: "c", Client: true}).WriteFiles(t, dir, "c")
	notPEM := dir + "/not.pem"
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		files kgw.TLSFiles
		want  string
	}{
		{"missing CA file", kgw.TLSFiles{CA: dir + "/nope.crt"}, "read CA file"},
		{"CA file without PEM", kgw.TLSFiles{CA: notPEM}, "holds no PEM certificate"},
		{"certificate without key", kgw.TLSFiles{CA: caFile, Cert: cert}, "needs both"},
		{"key without certificate", kgw.TLSFiles{Key: key}, "needs both"},
		{"key of another certificate", kgw.TLSFiles{Cert: cert, Key: caFile}, "load client certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := kgw.Dial(t.Context(), "127.0.0.1:1", kgw.WithTLSFiles(tt.files))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Dial(%+v) error = %v, want one containing %q", tt.files, err, tt.want)
			}
			var pathErr *os.PathError
			if tt.name == "missing CA file" && !errors.As(err, &pathErr) {
				t.Errorf("Dial(missing CA) error = %v, want an *os.PathError inside", err)
			}
		})
	}
}
