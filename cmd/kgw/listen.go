package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// errNotLoopback reports a listen address that is not loopback while no
// authentication is configured (DESIGN.md §9: fail closed).
var errNotLoopback = errors.New("non-loopback listen address without authentication")

// checkListenAddr enforces the fail-closed rule: without authentication the
// gRPC server listens on loopback only (127.0.0.0/8, ::1 or "localhost").
// An empty host (all interfaces) is not loopback. Names other than
// "localhost" are not resolved and are refused.
func checkListenAddr(addr string, authConfigured bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", addr, err)
	}
	if authConfigured || isLoopbackHost(host) {
		return nil
	}
	return fmt.Errorf("%w: refusing to listen on %q: no authentication is configured, so kgw serves on loopback addresses only (127.0.0.1, ::1, localhost); use e.g. --grpc-addr 127.0.0.1:50051",
		errNotLoopback, addr)
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.WithZone("").Unmap().IsLoopback()
}

// adminExposed reports whether the admin HTTP address may be reachable
// from other hosts: any host that is not loopback, including an empty
// host or a wildcard address (every interface). The admin server has no
// authentication, so such an address gets a warning at start-up.
func adminExposed(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err != nil || !isLoopbackHost(host)
}
