package main

import (
	"errors"
	"strings"
	"testing"
)

// TestListenAddrForms: the spellings of "every interface" and the
// shorthands some resolvers read as loopback are not loopback here (only
// what netip parses as a loopback address, or "localhost", is), and
// --trust-forwarded-client-cert is refused with each of them. Nothing is
// listened on: the check itself is called.
func TestListenAddrForms(t *testing.T) {
	for _, host := range []string{
		"", "0.0.0.0", "[::]", "[0:0:0:0:0:0:0:0]", "[::ffff:0.0.0.0]",
		"127.1", "0177.0.0.1", "0x7f.0.0.1", "2130706433", "LOCALHOST", "localhost.",
		"127.0.0.1.nip.io", "[fe80::1%lo]", "[::ffff:10.0.0.1]", "10.0.0.5", "host.example",
	} {
		addr := host + ":50051"
		if err := checkListenAddr(addr, false); !errors.Is(err, errNotLoopback) {
			t.Errorf("checkListenAddr(%q) = %v; want errNotLoopback", addr, err)
		}
		err := checkSecurity(securityFlags{GRPCAddr: addr, Auth: "required", InsecurePlaintext: true, TrustForwarded: true})
		if err == nil || !strings.Contains(err.Error(), "--trust-forwarded-client-cert needs a loopback --grpc-addr") {
			t.Errorf("--trust-forwarded-client-cert on %q: %v", addr, err)
		}
	}
	for _, host := range []string{"127.0.0.1", "127.255.255.254", "[::1]", "[::ffff:127.0.0.1]", "localhost"} {
		addr := host + ":50051"
		if err := checkListenAddr(addr, false); err != nil {
			t.Errorf("checkListenAddr(%q) = %v", addr, err)
		}
		if err := checkSecurity(securityFlags{GRPCAddr: addr, Auth: "required", TrustForwarded: true}); err != nil {
			t.Errorf("--trust-forwarded-client-cert on %q: %v", addr, err)
		}
	}
}
