package testpki

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// A Probe is a gRPC server on loopback that speaks TLS (optionally
// requiring client certificates) and answers every call with
// UNIMPLEMENTED ("tls probe") after recording what the client presented.
// A client that gets that answer has completed the handshake. Its methods
// are safe for concurrent use.
type Probe struct {
	// Addr is the listening address, "127.0.0.1:PORT".
	Addr string

	mu    sync.Mutex
	calls []ProbeCall
}

// A ProbeCall is what the probe saw of one call.
type ProbeCall struct {
	// Method is the full gRPC method, "/kgw.v1.WorkflowService/GetWorkflow".
	Method string
	// Authorization is the authorization header ("" when absent).
	Authorization string
	// ClientCN and ClientURIs are the subject CN and URI SANs of the
	// verified client certificate (empty without one).
	ClientCN   string
	ClientURIs []string
}

// StartProbe starts a probe serving cert, which also requires and verifies
// client certificates against clientCAs when that is not nil. It stops
// when tb ends.
func StartProbe(tb testing.TB, cert tls.Certificate, clientCAs *x509.CertPool) *Probe {
	tb.Helper()
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCAs != nil {
		cfg.ClientCAs, cfg.ClientAuth = clientCAs, tls.RequireAndVerifyClientCert
	}
	p := &Probe{}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg)), grpc.UnknownServiceHandler(p.handle))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("testpki: probe: %v", err)
	}
	p.Addr = lis.Addr().String()
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	tb.Cleanup(func() { srv.Stop(); <-done })
	return p
}

func (p *Probe) handle(_ any, stream grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(stream)
	call := ProbeCall{Method: method}
	if md, ok := metadata.FromIncomingContext(stream.Context()); ok {
		call.Authorization = strings.Join(md.Get("authorization"), ",")
	}
	if pr, ok := peer.FromContext(stream.Context()); ok {
		if info, ok := pr.AuthInfo.(credentials.TLSInfo); ok && len(info.State.PeerCertificates) > 0 {
			leaf := info.State.PeerCertificates[0]
			call.ClientCN = leaf.Subject.CommonName
			for _, u := range leaf.URIs {
				call.ClientURIs = append(call.ClientURIs, u.String())
			}
		}
	}
	p.mu.Lock()
	p.calls = append(p.calls, call)
	p.mu.Unlock()
	return status.Error(codes.Unimplemented, "tls probe")
}

// Calls returns what the probe saw, oldest first.
func (p *Probe) Calls() []ProbeCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ProbeCall(nil), p.calls...)
}

// Last returns the latest call, failing tb if there was none.
func (p *Probe) Last(tb testing.TB) ProbeCall {
	tb.Helper()
	calls := p.Calls()
	if len(calls) == 0 {
		tb.Fatal("testpki: the probe saw no call")
	}
	return calls[len(calls)-1]
}
