package auth

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ErrBadOrigin is wrapped by ParseOriginPolicy for a malformed entry.
var ErrBadOrigin = errors.New("auth: bad allowed-origins entry")

// OriginPolicy is the parsed -allowed-origins list: which browser origins may
// open a WebSocket. It exists because browsers attach cookies and ambient
// credentials to cross-site WebSocket upgrades; the Origin header is the only
// thing that tells a hostile page apart.
//
// Entries, separated by commas (blanks around them ignored, empty ones
// skipped):
//   - a full origin, "https://app.example.com" or "http://localhost:8080":
//     the scheme and host compare case-insensitively, and the port must be
//     the same, where a scheme's default port (80 for http/ws, 443 for
//     https/wss) counts the same as no port. A single trailing "/" is
//     tolerated; any other path, query, fragment or userinfo is an error.
//     The host may be a wildcard as below ("https://*.example.com"), which
//     then also pins scheme and port.
//   - a host pattern without scheme, "*.example.com": any subdomain at any
//     depth ("a.example.com", "a.b.example.com"), not "example.com" itself,
//     over any scheme and any port. A '*' anywhere but as the whole first
//     label is an error.
//   - a bare host, "example.com" or "[::1]": that host over any scheme and
//     any port.
//   - "*": any well-formed origin (but still not "null" or garbage).
//
// A host entry cannot carry a port ("example.com:8080" is an error): write
// the full origin to pin one.
//
// A nil *OriginPolicy, or one parsed from an empty list, allows everything.
type OriginPolicy struct {
	entries  []originEntry
	anyValid bool // a "*" entry
}

type originEntry struct {
	scheme string // lower case; "" for host entries: any scheme, any port
	host   string // lower case; for a wildcard, the suffix with its dot: ".example.com"
	port   string // full origins only; "" when the scheme's default
	suffix bool   // host is a wildcard suffix
}

// ParseOriginPolicy parses an -allowed-origins list. An error names the
// first malformed entry and wraps ErrBadOrigin. A list with only commas and
// blanks is an error too — it is more likely a mistake than a request to
// allow everything, which the empty list already spells.
func ParseOriginPolicy(list string) (*OriginPolicy, error) {
	p := &OriginPolicy{}
	if strings.TrimSpace(list) == "" {
		return p, nil
	}
	for raw := range strings.SplitSeq(list, ",") {
		entry := strings.TrimSpace(raw)
		if entry == "" {
			continue
		}
		if entry == "*" {
			p.anyValid = true
			continue
		}
		e, err := parseEntry(entry)
		if err != nil {
			return nil, fmt.Errorf("origin entry %q: %s: %w", entry, err, ErrBadOrigin)
		}
		p.entries = append(p.entries, e)
	}
	if len(p.entries) == 0 && !p.anyValid {
		return nil, fmt.Errorf("list %q has no entries: %w", list, ErrBadOrigin)
	}
	return p, nil
}

func parseEntry(entry string) (originEntry, error) {
	var e originEntry
	scheme, rest, full := strings.Cut(entry, "://")
	if !full {
		rest = entry
	} else {
		if !validScheme(scheme) {
			return e, errors.New("invalid scheme")
		}
		e.scheme = strings.ToLower(scheme)
		rest = strings.TrimSuffix(rest, "/")
		if strings.ContainsAny(rest, "/?#@") {
			return e, errors.New("an origin has no path, query, fragment or userinfo")
		}
	}

	host, port, hasPort := splitHostPort(rest)
	if hasPort {
		if !full {
			return e, errors.New("a host entry has no port; write scheme://host:port")
		}
		if !validPort(port) {
			return e, errors.New("invalid port")
		}
		e.port = normalPort(e.scheme, port)
	}
	if wild, ok := strings.CutPrefix(host, "*."); ok {
		e.suffix = true
		host = wild
	}
	if !validHost(host) || (e.suffix && host[0] == '[') {
		return e, errors.New("invalid host")
	}
	e.host = strings.ToLower(host)
	if e.suffix {
		e.host = "." + e.host
	}
	return e, nil
}

// Allowed reports whether origin, the raw value of an Origin header, matches
// the policy. With a non-empty list, anything that is not a well-formed
// scheme://host[:port] — "null" (sandboxed frames, file: pages), an empty
// value, a path — is refused.
//
// Allowed is only for requests that carry an Origin header: the contract
// lets requests without one through (they are not from a browser), and that
// decision is the caller's, since an absent header and an empty one are
// different things.
func (p *OriginPolicy) Allowed(origin []byte) bool {
	if p == nil || (len(p.entries) == 0 && !p.anyValid) {
		return true
	}
	scheme, host, port, ok := parseOrigin(origin)
	if !ok {
		return false
	}
	if p.anyValid {
		return true
	}
	for i := range p.entries {
		e := &p.entries[i]
		if e.scheme != "" {
			if !equalFold(scheme, e.scheme) || !portIs(scheme, port, e.port) {
				continue
			}
		}
		if e.suffix {
			if len(host) > len(e.host) && equalFold(host[len(host)-len(e.host):], e.host) {
				return true
			}
		} else if equalFold(host, e.host) {
			return true
		}
	}
	return false
}

// parseOrigin splits a serialised origin, scheme "://" host [ ":" port ], into
// sub-slices of b, validating each part.
func parseOrigin(b []byte) (scheme, host, port []byte, ok bool) {
	i := indexSchemeSep(b)
	if i <= 0 {
		return nil, nil, nil, false
	}
	scheme, rest := b[:i], b[i+3:]
	if !validScheme(scheme) {
		return nil, nil, nil, false
	}
	host, port, hasPort := splitHostPort(rest)
	if hasPort && !validPort(port) {
		return nil, nil, nil, false
	}
	if !validHost(host) {
		return nil, nil, nil, false
	}
	return scheme, host, port, true
}

func indexSchemeSep(b []byte) int {
	for i := 0; i+3 <= len(b); i++ {
		if b[i] == ':' {
			if b[i+1] == '/' && b[i+2] == '/' {
				return i
			}
			return -1
		}
	}
	return -1
}

// splitHostPort splits "host[:port]", where host may be a bracketed IPv6
// literal. hasPort is true when a ':' follows the host, even if the port
// after it is empty (which validPort then refuses).
func splitHostPort[T string | []byte](s T) (host, port T, hasPort bool) {
	if len(s) > 0 && s[0] == '[' {
		end := 0
		for end < len(s) && s[end] != ']' {
			end++
		}
		if end == len(s) {
			return s, port, false // unterminated; validHost refuses it
		}
		host, rest := s[:end+1], s[end+1:]
		if len(rest) == 0 {
			return host, port, false
		}
		if rest[0] != ':' {
			return s, port, false // junk after ']'; validHost refuses it
		}
		return host, rest[1:], true
	}
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == ':' {
			return s[:i], s[i+1:], true
		}
	}
	return s, port, false
}

// validScheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) (RFC 3986 §3.1).
func validScheme[T string | []byte](s T) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		isAlpha := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if i == 0 && !isAlpha {
			return false
		}
		if !isAlpha && !('0' <= c && c <= '9') && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// validHost accepts a DNS-style name (non-empty labels of letters, digits,
// '-' and '_', at most 253 bytes — IPv4 literals included) or a bracketed
// IPv6 literal without zone. Browsers send internationalised names in
// punycode, so ASCII is enough.
func validHost[T string | []byte](s T) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	if s[0] == '[' {
		if len(s) < 2 || s[len(s)-1] != ']' {
			return false
		}
		addr, err := netip.ParseAddr(string(s[1 : len(s)-1]))
		return err == nil && addr.Is6() && addr.Zone() == ""
	}
	label := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if label == 0 {
				return false
			}
			label = 0
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
			label++
			if label > 63 {
				return false
			}
		default:
			return false
		}
	}
	return label > 0
}

// validPort: 1 to 5 digits, 1–65535.
func validPort[T string | []byte](s T) bool {
	if len(s) == 0 || len(s) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n >= 1 && n <= 65535
}

// defaultPort is the port a scheme implies when the origin names none.
func defaultPort[T string | []byte](scheme T) string {
	switch {
	case equalFold(scheme, "http"), equalFold(scheme, "ws"):
		return "80"
	case equalFold(scheme, "https"), equalFold(scheme, "wss"):
		return "443"
	}
	return ""
}

// normalPort returns port, or "" when it is scheme's default, so that
// "https://h" and "https://h:443" compare equal.
func normalPort(scheme, port string) string {
	if trimZeros(port) == defaultPort(scheme) {
		return ""
	}
	return trimZeros(port)
}

// portIs reports whether an origin's port (as sent, maybe empty) equals an
// entry's normalised port.
func portIs(scheme, port []byte, want string) bool {
	p := trimZeros(port)
	if len(p) > 0 && string(p) == defaultPort(scheme) {
		p = p[:0]
	}
	return string(p) == want
}

func trimZeros[T string | []byte](s T) T {
	for len(s) > 1 && s[0] == '0' {
		s = s[1:]
	}
	return s
}
