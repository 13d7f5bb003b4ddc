package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
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

// securityFlags are the flags that decide how the gRPC listener is
// secured; checkSecurity applies the start-up rules to them.
type securityFlags struct {
	GRPCAddr          string
	Auth              string // "none" or "required"
	TLSCertFile       string
	TLSKeyFile        string
	TLSClientCAFile   string
	InsecurePlaintext bool
	TrustForwarded    bool
	JWKSURL           string
	JWTKeysFile       string
	JWTIssuer         string
	JWTAudience       string
	JWTRolesClaim     string
}

// checkSecurity refuses every flag combination that would serve less
// safely than asked, naming the flag that is missing or in the way:
//   - --tls-cert-file and --tls-key-file go together; --tls-client-ca-file
//     needs both and --auth required;
//   - a non-loopback --grpc-addr needs --auth required, and TLS or
//     --insecure-plaintext (a gateway behind a mesh sidecar);
//   - --insecure-plaintext excludes TLS;
//   - --trust-forwarded-client-cert needs a loopback --grpc-addr, --auth
//     required, and no TLS client CA (the sidecar terminates mTLS);
//   - JWT: --jwt-jwks-url or --jwt-keys-file (not both), each needing
//     --jwt-issuer, --jwt-audience and --auth required; the other --jwt-*
//     flags need one of them.
func checkSecurity(f securityFlags) error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	required := f.Auth == "required"
	switch f.Auth {
	case "none", "required":
	default:
		add("--auth %q: want none or required", f.Auth)
	}
	tls := f.TLSCertFile != "" && f.TLSKeyFile != ""
	switch {
	case f.TLSCertFile != "" && f.TLSKeyFile == "":
		add("--tls-cert-file needs --tls-key-file")
	case f.TLSKeyFile != "" && f.TLSCertFile == "":
		add("--tls-key-file needs --tls-cert-file")
	}
	if f.TLSClientCAFile != "" {
		if !tls {
			add("--tls-client-ca-file needs --tls-cert-file and --tls-key-file (mTLS is TLS first)")
		}
		if !required {
			add("--tls-client-ca-file needs --auth required (client certificates name callers)")
		}
	}
	if f.InsecurePlaintext && (f.TLSCertFile != "" || f.TLSKeyFile != "") {
		add("--insecure-plaintext contradicts --tls-cert-file/--tls-key-file: give one or the other")
	}
	host, _, err := net.SplitHostPort(f.GRPCAddr)
	if err != nil {
		add("--grpc-addr %q: %v", f.GRPCAddr, err)
	}
	loopback := err == nil && isLoopbackHost(host)
	if err == nil && !loopback {
		if !required {
			add("--grpc-addr %s is not loopback: it needs --auth required (and TLS or --insecure-plaintext)", f.GRPCAddr)
		}
		if !tls && !f.InsecurePlaintext {
			add("--grpc-addr %s is not loopback: it needs TLS (--tls-cert-file and --tls-key-file), or --insecure-plaintext behind a mesh sidecar", f.GRPCAddr)
		}
	}
	if f.TrustForwarded {
		if err == nil && !loopback {
			add("--trust-forwarded-client-cert needs a loopback --grpc-addr (only a local sidecar may vouch for callers)")
		}
		if !required {
			add("--trust-forwarded-client-cert needs --auth required")
		}
		if f.TLSClientCAFile != "" {
			add("--trust-forwarded-client-cert contradicts --tls-client-ca-file: the sidecar terminates mTLS")
		}
	}
	jwt := f.JWKSURL != "" || f.JWTKeysFile != ""
	switch {
	case f.JWKSURL != "" && f.JWTKeysFile != "":
		add("--jwt-jwks-url and --jwt-keys-file exclude each other")
	case jwt:
		if f.JWTIssuer == "" {
			add("JWT authentication needs --jwt-issuer")
		}
		if f.JWTAudience == "" {
			add("JWT authentication needs --jwt-audience")
		}
		if !required {
			add("JWT authentication (--jwt-jwks-url/--jwt-keys-file) needs --auth required")
		}
	case f.JWTIssuer != "" || f.JWTAudience != "" || f.JWTRolesClaim != "":
		add("--jwt-issuer, --jwt-audience and --jwt-roles-claim need --jwt-jwks-url or --jwt-keys-file")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", errInsecure, strings.Join(problems, "; "))
	}
	return nil
}

// errInsecure reports a refused combination of security flags.
var errInsecure = errors.New("refusing to start")

// adminExposed reports whether the admin HTTP address may be reachable
// from other hosts: any host that is not loopback, including an empty
// host or a wildcard address (every interface). The admin server has no
// authentication, so such an address gets a warning at start-up.
func adminExposed(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err != nil || !isLoopbackHost(host)
}
