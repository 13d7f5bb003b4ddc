// Package netguard keeps resource connections away from addresses that a
// workflow must never reach: link-local networks (169.254.0.0/16, fe80::/10)
// and the instance metadata services of cloud providers. The check runs on
// the address a dialer is about to connect to, after name resolution, so a
// host name that resolves to a metadata address (metadata.google.internal)
// is refused like the literal address.
package netguard

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// ErrForbidden reports an address the policy does not allow. Errors returned
// by Allowed and Control satisfy errors.Is(err, ErrForbidden).
var ErrForbidden = errors.New("address not allowed")

// metadata lists the cloud instance metadata endpoints.
var metadata = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"), // AWS, GCP (metadata.google.internal), Azure, OpenStack
	netip.MustParseAddr("169.254.170.2"),   // AWS ECS task metadata
	netip.MustParseAddr("fd00:ec2::254"),   // AWS IMDS over IPv6
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
}

// Policy says which guarded address classes are allowed. The zero Policy
// refuses both link-local and metadata addresses. A Policy is a value and is
// safe for concurrent use.
type Policy struct {
	// AllowLinkLocal allows link-local addresses other than metadata endpoints.
	AllowLinkLocal bool
	// AllowMetadata allows cloud instance metadata endpoints.
	AllowMetadata bool
}

// Allowed reports whether the zero Policy allows ip: nil if so, an error
// wrapping ErrForbidden if not.
func Allowed(ip netip.Addr) error { return Policy{}.Allowed(ip) }

// Allowed reports whether p allows connecting to ip: nil if so, an error
// wrapping ErrForbidden if not. IPv4-mapped IPv6 addresses are checked as
// the IPv4 address they carry.
func (p Policy) Allowed(ip netip.Addr) error {
	ip = ip.Unmap().WithZone("")
	if !ip.IsValid() {
		return fmt.Errorf("invalid address: %w", ErrForbidden)
	}
	for _, m := range metadata {
		if ip == m {
			if p.AllowMetadata {
				return nil
			}
			return fmt.Errorf("%s is a cloud metadata address: %w", ip, ErrForbidden)
		}
	}
	if ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() {
		if p.AllowLinkLocal {
			return nil
		}
		return fmt.Errorf("%s is a link-local address: %w", ip, ErrForbidden)
	}
	return nil
}

// Control is a net.Dialer.Control hook that refuses, before any packet is
// sent, a connection to an address p does not allow. address is the
// "ip:port" the dialer resolved.
func (p Policy) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		host, _, splitErr := net.SplitHostPort(address)
		if splitErr != nil {
			host = address
		}
		ip, parseErr := netip.ParseAddr(host)
		if parseErr != nil {
			return fmt.Errorf("dial %s %s: unparsable address: %w", network, address, ErrForbidden)
		}
		ap = netip.AddrPortFrom(ip, 0)
	}
	if err := p.Allowed(ap.Addr()); err != nil {
		return fmt.Errorf("dial %s %s: %w", network, address, err)
	}
	return nil
}

// Dialer returns a net.Dialer whose Control hook applies p. base supplies
// the other settings (timeouts, keep-alive); its own Control, if any, runs
// after p's check (its ControlContext is dropped so that it cannot bypass
// the check).
func (p Policy) Dialer(base net.Dialer) *net.Dialer {
	d := base
	d.ControlContext = nil
	inner := base.Control
	d.Control = func(network, address string, c syscall.RawConn) error {
		if err := p.Control(network, address, c); err != nil {
			return err
		}
		if inner != nil {
			return inner(network, address, c)
		}
		return nil
	}
	return &d
}
