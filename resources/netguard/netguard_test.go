package netguard_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"

	"github.com/kailash-gateway/kgw/resources/netguard"
)

var cases = []struct {
	name      string
	addr      string
	linkLocal bool // refused as link-local
	metadata  bool // refused as metadata
}{
	{"loopback v4", "127.0.0.1", false, false},
	{"loopback v6", "::1", false, false},
	{"private", "10.1.2.3", false, false},
	{"public", "93.184.216.34", false, false},
	{"link-local v4", "169.254.10.20", true, false},
	{"link-local v4 edge", "169.254.255.255", true, false},
	{"link-local v6", "fe80::1", true, false},
	{"link-local v6 zone", "fe80::1%eth0", true, false},
	{"link-local multicast", "ff02::1", true, false},
	{"metadata aws gcp azure", "169.254.169.254", false, true},
	{"metadata ecs", "169.254.170.2", false, true},
	{"metadata aws v6", "fd00:ec2::254", false, true},
	{"metadata alibaba", "100.100.100.200", false, true},
	{"metadata v4-mapped", "::ffff:169.254.169.254", false, true},
	{"link-local v4-mapped", "::ffff:169.254.1.1", true, false},
	// The metadata address in every IPv6 form that carries an IPv4 address.
	{"metadata v4-mapped hex", "::ffff:a9fe:a9fe", false, true},
	{"metadata v4-translated", "::ffff:0:169.254.169.254", false, true},
	{"metadata v4-compatible", "::169.254.169.254", false, true},
	{"metadata v4-compatible hex", "::a9fe:a9fe", false, true},
	{"metadata nat64", "64:ff9b::169.254.169.254", false, true},
	{"metadata nat64 hex", "64:ff9b::a9fe:a9fe", false, true},
	{"metadata nat64 long form", "0064:ff9b:0000:0000:0000:0000:a9fe:a9fe", false, true},
	{"metadata nat64 local-use", "64:ff9b:1::a9fe:a9fe", false, true},
	{"metadata 6to4", "2002:a9fe:a9fe::", false, true},
	{"metadata 6to4 with host part", "2002:a9fe:a9fe:1234::5", false, true},
	{"metadata teredo server", "2001:0:a9fe:a9fe::1", false, true},
	{"metadata teredo client", "2001:0:4136:e378:8000:63bf:5601:5601", false, true}, // ^0xff: 169.254.169.254
	{"metadata ecs nat64", "64:ff9b::a9fe:aa02", false, true},
	{"metadata alibaba nat64", "64:ff9b::6464:64c8", false, true},
	{"metadata alibaba 6to4", "2002:6464:64c8::1", false, true},
	{"metadata alibaba v4-compatible", "::100.100.100.200", false, true},
	{"link-local nat64", "64:ff9b::169.254.1.1", true, false},
	{"link-local 6to4", "2002:a9fe:0101::", true, false},
	{"link-local v4-compatible", "::169.254.1.1", true, false},
	// Addresses in those prefixes that carry an ordinary address.
	{"nat64 public", "64:ff9b::5db8:d822", false, false},
	{"6to4 public", "2002:5db8:d822::1", false, false},
	{"v4-compatible loopback", "::127.0.0.1", false, false},
	{"unspecified v6", "::", false, false},
	{"ipv6 public", "2606:4700::1111", false, false},
}

func TestAllowed(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ip := netip.MustParseAddr(tc.addr)
			policies := []struct {
				p         netguard.Policy
				wantAllow bool
			}{
				{netguard.Policy{}, !tc.linkLocal && !tc.metadata},
				{netguard.Policy{AllowLinkLocal: true}, !tc.metadata},
				{netguard.Policy{AllowMetadata: true}, !tc.linkLocal},
				{netguard.Policy{AllowLinkLocal: true, AllowMetadata: true}, true},
			}
			for _, pc := range policies {
				err := pc.p.Allowed(ip)
				if (err == nil) != pc.wantAllow {
					t.Errorf("%+v.Allowed(%s) = %v, want allowed=%v", pc.p, ip, err, pc.wantAllow)
				}
				if err != nil && !errors.Is(err, netguard.ErrForbidden) {
					t.Errorf("%+v.Allowed(%s) = %v, want ErrForbidden", pc.p, ip, err)
				}
			}
			if got, want := netguard.Allowed(ip), (netguard.Policy{}).Allowed(ip); (got == nil) != (want == nil) {
				t.Errorf("Allowed(%s) = %v, want %v", ip, got, want)
			}
		})
	}
}

// TestControl calls the dialer hook directly with the addresses a dialer
// would pass it; nothing is ever dialled.
func TestControl(t *testing.T) {
	p := netguard.Policy{}
	for _, tc := range cases {
		ap := net.JoinHostPort(tc.addr, "80")
		err := p.Control("tcp", ap, nil)
		if refused := tc.linkLocal || tc.metadata; (err != nil) != refused {
			t.Errorf("Control(%s) = %v, want refused=%v", ap, err, refused)
		}
		if err != nil && !errors.Is(err, netguard.ErrForbidden) {
			t.Errorf("Control(%s) = %v, want ErrForbidden", ap, err)
		}
	}
	if err := p.Control("tcp", "not-an-address", nil); !errors.Is(err, netguard.ErrForbidden) {
		t.Errorf("Control(garbage) = %v, want ErrForbidden", err)
	}
}

// TestDialerHook checks that the Dialer built by Policy runs the check: the
// hook is called with the address and refuses it, and an inner hook still
// runs for allowed addresses. Only the hook is exercised, never the network.
func TestDialerHook(t *testing.T) {
	var innerCalls int
	d := netguard.Policy{}.Dialer(net.Dialer{Control: func(string, string, syscall.RawConn) error {
		innerCalls++
		return nil
	}})
	if err := d.Control("tcp4", "169.254.169.254:80", nil); !errors.Is(err, netguard.ErrForbidden) {
		t.Errorf("Dialer.Control(metadata) = %v, want ErrForbidden", err)
	}
	if innerCalls != 0 {
		t.Errorf("inner hook ran %d times for a refused address", innerCalls)
	}
	if err := d.Control("tcp4", "127.0.0.1:80", nil); err != nil {
		t.Errorf("Dialer.Control(loopback) = %v", err)
	}
	if innerCalls != 1 {
		t.Errorf("inner hook ran %d times, want 1", innerCalls)
	}
	// A real dial to loopback goes through the hook and succeeds.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := d.DialContext(context.Background(), "tcp", l.Addr().String())
	if err != nil {
		t.Fatalf("dial loopback: %v", err)
	}
	c.Close()
	if innerCalls != 2 {
		t.Errorf("inner hook ran %d times, want 2", innerCalls)
	}
}

// TestSelf: the gateway's own listeners are refused on their port, in
// every spelling, and a wildcard listener in all its loopback forms; other
// ports and other loopback addresses stay allowed. Only the check runs.
func TestSelf(t *testing.T) {
	tests := []struct {
		listen  []string
		refused []string
		allowed []string
	}{
		{
			listen:  []string{"127.0.0.1:50051", "127.0.0.1:9090"},
			refused: []string{"127.0.0.1:50051", "127.0.0.1:9090", "[::ffff:127.0.0.1]:50051", "[::ffff:7f00:1]:9090", "0.0.0.0:50051", "[::]:9090", "[::127.0.0.1]:50051", "[64:ff9b::7f00:1]:9090", "[2002:7f00:1::]:50051"},
			allowed: []string{"127.0.0.1:50052", "127.0.0.2:50051", "[::1]:50051", "10.0.0.1:50051", "127.0.0.1:5432"},
		},
		{
			listen:  []string{"0.0.0.0:50051"},
			refused: []string{"127.0.0.1:50051", "127.1.2.3:50051", "[::1]:50051", "[0:0:0:0:0:0:0:1]:50051", "[::ffff:127.0.0.1]:50051", "0.0.0.0:50051", "[::]:50051"},
			allowed: []string{"127.0.0.1:50052", "[::1]:6379"},
		},
		{
			listen:  []string{"[::]:9090"},
			refused: []string{"127.0.0.1:9090", "[::1]:9090", "127.255.255.254:9090"},
			allowed: []string{"127.0.0.1:9091"},
		},
		{
			listen:  []string{":8080"},
			refused: []string{"127.0.0.1:8080", "[::1]:8080"},
			allowed: []string{"127.0.0.1:80"},
		},
		{
			listen:  []string{"[::1]:7000"},
			refused: []string{"[::1]:7000", "[0::1]:7000", "0.0.0.0:7000"},
			allowed: []string{"127.0.0.1:7000", "[::1]:7001"},
		},
	}
	for _, tt := range tests {
		var p netguard.Policy
		for _, l := range tt.listen {
			targets, err := netguard.SelfTargets(l)
			if err != nil {
				t.Fatalf("SelfTargets(%s): %v", l, err)
			}
			p.Self = append(p.Self, targets...)
		}
		for _, a := range tt.refused {
			if err := p.Control("tcp", a, nil); !errors.Is(err, netguard.ErrForbidden) {
				t.Errorf("listening on %v: Control(%s) = %v, want ErrForbidden", tt.listen, a, err)
			}
		}
		for _, a := range tt.allowed {
			if err := p.Control("tcp", a, nil); err != nil {
				t.Errorf("listening on %v: Control(%s) = %v, want allowed", tt.listen, a, err)
			}
		}
	}
	// A wildcard listener is reachable through the machine's own
	// addresses too.
	targets, err := netguard.SelfTargets("0.0.0.0:50051")
	if err != nil {
		t.Fatal(err)
	}
	p := netguard.Policy{Self: targets}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, _ := netip.AddrFromSlice(n.IP)
		ap := netip.AddrPortFrom(ip.Unmap(), 50051)
		if err := p.AllowedAddrPort(ap); !errors.Is(err, netguard.ErrForbidden) {
			t.Errorf("wildcard listener: AllowedAddrPort(%s) = %v, want ErrForbidden", ap, err)
		}
	}
	for _, bad := range []string{"no-port", "127.0.0.1:0", "127.0.0.1:x"} {
		if _, err := netguard.SelfTargets(bad); err == nil {
			t.Errorf("SelfTargets(%q) = nil error", bad)
		}
	}
}
