package secrets

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// maxHostLen is the longest DNS name (RFC 1035).
const maxHostLen = 253

// HostAllowed reports whether credentials restricted to the allowed_hosts
// patterns may be sent to host. An empty pattern list allows any host.
// host is what a client is about to dial: a host name or IP literal, with
// or without a port ("db.example.com:5432", "[::1]:5432", "::1"). Matching
// ignores case and a trailing dot. A pattern is a host part, optionally
// followed by ":port":
//
//   - an exact host name: "db.example.com" matches only that name;
//   - a suffix wildcard: "*.example.com" matches "a.example.com" and
//     "a.b.example.com", but not "example.com" itself;
//   - an IP literal: "10.0.0.5" or "::1" (brackets allowed, and required
//     with a port: "[::1]:5432") matches that address in any spelling,
//     including IPv4-mapped IPv6; a wildcard never matches an IP address.
//
// A pattern without a port matches the host on any port; a pattern with a
// port ("db.example.com:5432") matches only a host that carries that port.
// An empty host, a host that is neither an IP literal nor a syntactically
// valid DNS name (a Unix socket directory, a list "a,b", anything with a
// slash or white space), or a pattern that does not follow these rules,
// never matches.
func HostAllowed(patterns []string, host string) bool {
	if len(patterns) == 0 {
		return true
	}
	h, port, ok := splitHost(host)
	if !ok {
		return false
	}
	hostIP, hostIsIP := parseIP(h)
	if !hostIsIP && checkHostName(h) != nil {
		return false
	}
	for _, p := range patterns {
		ph, pport, ok := splitHost(p)
		if !ok || pport != "" && pport != port {
			continue
		}
		if ip, ok := parseIP(ph); ok {
			if hostIsIP && ip == hostIP {
				return true
			}
			continue
		}
		if hostIsIP {
			continue
		}
		if suffix, ok := strings.CutPrefix(ph, "*."); ok {
			if suffix != "" && strings.HasSuffix(h, "."+suffix) && len(h) > len(suffix)+1 {
				return true
			}
			continue
		}
		if h == ph {
			return true
		}
	}
	return false
}

// splitHost splits "host", "host:port", "[ipv6]", "[ipv6]:port" or a bare
// IPv6 literal into its canonical host (lower case, no brackets, no
// trailing dot) and its port ("" if none). ok is false for an empty host
// or a malformed port.
func splitHost(s string) (host, port string, ok bool) {
	s = strings.TrimSpace(s)
	if _, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil {
		host = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	} else if h, p, err := net.SplitHostPort(s); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != p {
			return "", "", false
		}
		host, port = h, p
	} else {
		host = s
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return host, port, host != ""
}

// parseIP parses an IP literal (no zone), unmapping IPv4-mapped IPv6.
func parseIP(s string) (netip.Addr, bool) {
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}

// normalizeHostPattern validates one allowed_hosts pattern and returns its
// canonical form (lower case, no trailing dot, IP literals in standard form,
// a port kept as ":port", IPv6 with a port in brackets).
func normalizeHostPattern(p string) (string, error) {
	if p == "" {
		return "", errors.New("must not be empty")
	}
	if strings.TrimSpace(p) != p {
		return "", errors.New("must not contain white space")
	}
	host, port := p, ""
	bare := strings.TrimSuffix(strings.TrimPrefix(p, "["), "]")
	if _, err := netip.ParseAddr(bare); err != nil && strings.Contains(p, ":") {
		h, pt, err := net.SplitHostPort(p)
		if err != nil {
			return "", errors.New(`must be a host name, *.domain or IP address, optionally with ":port" (an IPv6 address with a port in brackets: "[::1]:5432"), without a scheme`)
		}
		n, err := strconv.Atoi(pt)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != pt {
			return "", errors.New("port must be a number from 1 to 65535")
		}
		host, port = h, pt
	}
	h, err := normalizeHostPart(host)
	if err != nil {
		return "", err
	}
	if port == "" {
		return h, nil
	}
	return net.JoinHostPort(h, port), nil
}

// normalizeHostPart validates the host part of an allowed_hosts pattern.
func normalizeHostPart(p string) (string, error) {
	raw := strings.TrimSuffix(p, ".")
	if strings.HasPrefix(raw, "[") && strings.HasSuffix(raw, "]") {
		raw = raw[1 : len(raw)-1]
	}
	if ip, err := netip.ParseAddr(raw); err == nil {
		if ip.Zone() != "" {
			return "", errors.New("must not have an IPv6 zone")
		}
		return ip.Unmap().String(), nil
	}
	if raw == "*" {
		return "", errors.New(`"*" is not a pattern; leave allowed_hosts empty to allow any host`)
	}
	if strings.Contains(raw, ":") {
		return "", errors.New(`must be a host name, *.domain or IP address, optionally with ":port", without a scheme`)
	}
	name, wildcard := strings.CutPrefix(raw, "*.")
	if strings.Contains(name, "*") {
		return "", errors.New(`a wildcard is allowed only as a leading "*." label`)
	}
	if err := checkHostName(name); err != nil {
		return "", err
	}
	if wildcard {
		if !strings.Contains(name, ".") {
			return "", errors.New(`a wildcard needs at least two labels after "*." (e.g. *.example.com)`)
		}
		return "*." + strings.ToLower(name), nil
	}
	return strings.ToLower(name), nil
}

// checkHostName checks DNS host name syntax: dot-separated labels of 1 to 63
// letters, digits, hyphens and underscores, not starting or ending with a
// hyphen, 253 characters at most.
func checkHostName(name string) error {
	if name == "" || len(name) > maxHostLen {
		return errors.New("must be a host name of 1 to 253 characters")
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return errors.New("each dot-separated label must have 1 to 63 characters")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return errors.New("a label must not start or end with a hyphen")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return errors.New("may contain only letters, digits, hyphens, underscores and dots")
			}
		}
	}
	return nil
}
