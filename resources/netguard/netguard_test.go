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
