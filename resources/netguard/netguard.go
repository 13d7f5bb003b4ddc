// Package netguard keeps resource connections away from addresses that a
// workflow must never reach: link-local networks (169.254.0.0/16, fe80::/10),
// the instance metadata services of cloud providers, and the gateway's own
// listeners. The check runs on the address a dialer is about to connect to,
// after name resolution, so a host name that resolves to a metadata address
// (metadata.google.internal) is refused like the literal address.
//
// An IPv6 address that carries an IPv4 address is checked as that IPv4
// address too, in every form a network may turn into a connection to it:
// IPv4-mapped (::ffff:a.b.c.d), IPv4-translated (::ffff:0:a.b.c.d, prefix ::ffff:0:0:0/96),
// IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::/96 and the local-use
// 64:ff9b:1::/48), 6to4 (2002:aabb:ccdd::/48) and Teredo (2001::/32: its
// server, and its client address stored inverted).
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
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
// refuses both link-local and metadata addresses. A Policy is not modified
// after it is built and is then safe for concurrent use.
type Policy struct {
	// AllowLinkLocal allows link-local addresses other than metadata endpoints.
	AllowLinkLocal bool
	// AllowMetadata allows cloud instance metadata endpoints.
	AllowMetadata bool
	// Self are the gateway's own listen addresses (its gRPC and admin
	// servers), refused so that a workflow cannot call the gateway's API
	// or admin endpoints with the gateway's network identity. Build them
	// with SelfTargets.
	Self []Target
}

// A Target is a set of addresses on one port: Prefix holds every address
// (a single address, or 127.0.0.0/8 for an IPv4 loopback listener bound to
// a wildcard).
type Target struct {
	Prefix netip.Prefix
	Port   uint16
}

// SelfTargets returns the addresses through which a listener bound to addr
// ("host:port", as net.Listener.Addr reports it, port resolved) can be
// reached: the address itself and, for a wildcard (0.0.0.0, ::, or an
// empty host), every loopback address (127.0.0.0/8, ::1) and every
// address of the machine's interfaces, on that port. A loopback listener
// is also reachable as "localhost": that resolves to a loopback address,
// which is what the dialer sees.
func SelfTargets(addr string) ([]Target, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %w", addr, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("listen address %q: the port must be a number from 1 to 65535", addr)
	}
	p := uint16(port)
	var ips []netip.Addr
	if host == "" {
		ips = []netip.Addr{netip.IPv4Unspecified()}
	} else if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip.Unmap().WithZone("")}
	} else {
		addrs, err := net.DefaultResolver.LookupNetIP(context.Background(), "ip", host)
		if err != nil {
			return nil, fmt.Errorf("listen address %q: %w", addr, err)
		}
		for _, a := range addrs {
			ips = append(ips, a.Unmap().WithZone(""))
		}
	}
	// A connection to the unspecified address reaches the local host (on
	// Linux, its loopback), so it is refused on the listener's port too.
	out := []Target{
		{netip.MustParsePrefix("0.0.0.0/32"), p},
		{netip.MustParsePrefix("::/128"), p},
	}
	for _, ip := range ips {
		if !ip.IsUnspecified() {
			out = append(out, Target{netip.PrefixFrom(ip, ip.BitLen()), p})
			continue
		}
		out = append(out,
			Target{netip.MustParsePrefix("127.0.0.0/8"), p},
			Target{netip.MustParsePrefix("::1/128"), p})
		ifAddrs, err := net.InterfaceAddrs()
		if err != nil {
			return nil, fmt.Errorf("listen address %q: list interface addresses: %w", addr, err)
		}
		for _, a := range ifAddrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok {
					ip = ip.Unmap()
					out = append(out, Target{netip.PrefixFrom(ip, ip.BitLen()), p})
				}
			}
		}
	}
	return out, nil
}

// Allowed reports whether the zero Policy allows ip: nil if so, an error
// wrapping ErrForbidden if not.
func Allowed(ip netip.Addr) error { return Policy{}.Allowed(ip) }

// Allowed reports whether p allows connecting to ip on some port: nil if
// so, an error wrapping ErrForbidden if not. An address that embeds an
// IPv4 address (see the package comment) must be allowed as that address
// too. Self is not consulted: it needs a port (see AllowedAddrPort).
func (p Policy) Allowed(ip netip.Addr) error {
	ip = ip.Unmap().WithZone("")
	if !ip.IsValid() {
		return fmt.Errorf("invalid address: %w", ErrForbidden)
	}
	if err := p.allowedOne(ip); err != nil {
		return err
	}
	for _, v4 := range embeddedIPv4(ip) {
		if err := p.allowedOne(v4); err != nil {
			return fmt.Errorf("%s carries %s: %w", ip, v4, err)
		}
	}
	return nil
}

// AllowedAddrPort is Allowed plus the Self check: ap (or an IPv4 address
// it embeds) must not be one of the gateway's own listeners.
func (p Policy) AllowedAddrPort(ap netip.AddrPort) error {
	if err := p.Allowed(ap.Addr()); err != nil {
		return err
	}
	if len(p.Self) == 0 {
		return nil
	}
	ip := ap.Addr().Unmap().WithZone("")
	for _, a := range append([]netip.Addr{ip}, embeddedIPv4(ip)...) {
		for _, s := range p.Self {
			if s.Port == ap.Port() && s.Prefix.Contains(a) {
				return fmt.Errorf("%s is the gateway's own listener: %w", netip.AddrPortFrom(a, ap.Port()), ErrForbidden)
			}
		}
	}
	return nil
}

// Well-known IPv6 prefixes that carry an IPv4 address.
var (
	ipv4Translated = netip.MustParsePrefix("::ffff:0:0:0/96") // SIIT, RFC 7915
	ipv4Compatible = netip.MustParsePrefix("::/96")           // deprecated, RFC 4291
	nat64          = netip.MustParsePrefix("64:ff9b::/96")    // RFC 6052
	nat64Local     = netip.MustParsePrefix("64:ff9b:1::/48")  // RFC 8215, /96 layout assumed
	sixToFour      = netip.MustParsePrefix("2002::/16")       // RFC 3056
	teredo         = netip.MustParsePrefix("2001::/32")       // RFC 4380
)

// embeddedIPv4 returns the IPv4 addresses an IPv6 address carries in the
// forms the package comment lists (IPv4-mapped addresses are unmapped by
// the caller).
func embeddedIPv4(ip netip.Addr) []netip.Addr {
	if !ip.Is6() {
		return nil
	}
	b := ip.As16()
	last := netip.AddrFrom4([4]byte(b[12:16]))
	switch {
	case ipv4Translated.Contains(ip), nat64.Contains(ip), nat64Local.Contains(ip):
		return []netip.Addr{last}
	case ipv4Compatible.Contains(ip):
		if ip == netip.IPv6Unspecified() || ip == netip.IPv6Loopback() {
			return nil
		}
		return []netip.Addr{last}
	case sixToFour.Contains(ip):
		return []netip.Addr{netip.AddrFrom4([4]byte(b[2:6]))}
	case teredo.Contains(ip):
		client := [4]byte{b[12] ^ 0xff, b[13] ^ 0xff, b[14] ^ 0xff, b[15] ^ 0xff}
		return []netip.Addr{netip.AddrFrom4([4]byte(b[4:8])), netip.AddrFrom4(client)}
	}
	return nil
}

// allowedOne checks one address (no embedded forms) for metadata and
// link-local.
func (p Policy) allowedOne(ip netip.Addr) error {
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
	if err := p.AllowedAddrPort(ap); err != nil {
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
