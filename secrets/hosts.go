package secrets

import (
	"errors"
	"net"
	"net/netip"
	"strings"
)

// maxHostLen is the longest DNS name (RFC 1035).
const maxHostLen = 253

// HostAllowed reports whether credentials restricted to the allowed_hosts
// patterns may be sent to host. An empty pattern list allows any host.
// Matching ignores case and a trailing dot; host may carry a port
// ("db.example.com:5432", "[::1]:5432"), which is ignored. A pattern is one of
//
//   - an exact host name: "db.example.com" matches only that name;
//   - a suffix wildcard: "*.example.com" matches "a.example.com" and
//     "a.b.example.com", but not "example.com" itself;
//   - an IP literal: "10.0.0.5" or "::1" (brackets allowed) matches that
//     address in any spelling, including IPv4-mapped IPv6; a wildcard never
//     matches an IP address.
//
// An empty host, or a pattern that does not follow these rules, never matches.
func HostAllowed(patterns []string, host string) bool {
	if len(patterns) == 0 {
		return true
	}
	h := canonicalHost(host)
	if h == "" {
		return false
	}
	hostIP, hostIsIP := parseIP(h)
	for _, p := range patterns {
		p = canonicalHost(p)
		if p == "" {
			continue
		}
		if ip, ok := parseIP(p); ok {
			if hostIsIP && ip == hostIP {
				return true
			}
			continue
		}
		if hostIsIP {
			continue
		}
		if suffix, ok := strings.CutPrefix(p, "*."); ok {
			if suffix != "" && strings.HasSuffix(h, "."+suffix) && len(h) > len(suffix)+1 {
				return true
			}
			continue
		}
		if h == p {
			return true
		}
	}
	return false
}

// canonicalHost strips a port, IPv6 brackets and a trailing dot, and lower-cases.
func canonicalHost(s string) string {
	s = strings.TrimSpace(s)
	if h, _, err := net.SplitHostPort(s); err == nil {
		s = h
	}
	s = strings.TrimPrefix(s, "[")
	s = strings.TrimSuffix(s, "]")
	s = strings.TrimSuffix(s, ".")
	return strings.ToLower(s)
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
// canonical form (lower case, no trailing dot, IP literals in standard form).
func normalizeHostPattern(p string) (string, error) {
	if p == "" {
		return "", errors.New("must not be empty")
	}
	if strings.TrimSpace(p) != p {
		return "", errors.New("must not contain white space")
	}
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
		return "", errors.New("must be a host name, *.domain or IP address, without a port or scheme")
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
