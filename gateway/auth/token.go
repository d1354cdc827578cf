package auth

import (
	"bytes"
	"net/url"
)

// BearerToken extracts the token from an Authorization header value of the
// form "Bearer <token>" (RFC 6750 §2.1). The scheme is matched
// case-insensitively and surrounding whitespace is ignored. The token must
// be a non-empty b64token — which every JWT is — so a value holding spaces,
// commas or a second credential is refused rather than guessed at.
//
// The returned string is a copy and does not alias headerValue.
func BearerToken(headerValue []byte) (string, bool) {
	v := trimSpace(headerValue)
	const scheme = "bearer"
	if len(v) <= len(scheme) || !equalFold(v[:len(scheme)], scheme) || (v[len(scheme)] != ' ' && v[len(scheme)] != '\t') {
		return "", false
	}
	tok := trimSpace(v[len(scheme):])
	if !isB64Token(tok) {
		return "", false
	}
	return string(tok), true
}

// QueryToken extracts the "token" query parameter from a request URI (path
// and query as sent in the request line, or an absolute URI), URL-decoding it
// ('+' is a space, %XX escapes). The first "token" parameter wins, as with
// url.Values.Get; a first one that is empty or badly escaped is a failure,
// not a reason to look further.
//
// Tokens in query strings end up in access logs; browsers cannot set headers
// on a WebSocket upgrade, which is why this form exists at all.
func QueryToken(requestURI []byte) (string, bool) {
	uri, _, _ := bytes.Cut(requestURI, []byte{'#'})
	_, query, ok := bytes.Cut(uri, []byte{'?'})
	if !ok {
		return "", false
	}
	for len(query) > 0 {
		var pair []byte
		pair, query, _ = bytes.Cut(query, []byte{'&'})
		key, val, _ := bytes.Cut(pair, []byte{'='})
		if !queryKeyIs(key, "token") {
			continue
		}
		tok, err := url.QueryUnescape(string(val))
		if err != nil || tok == "" {
			return "", false
		}
		return tok, true
	}
	return "", false
}

// queryKeyIs reports whether the query-encoded key decodes to name, without
// allocating for the usual unescaped key.
func queryKeyIs(key []byte, name string) bool {
	if bytes.IndexByte(key, '%') < 0 && bytes.IndexByte(key, '+') < 0 {
		return string(key) == name
	}
	k, err := url.QueryUnescape(string(key))
	return err == nil && k == name
}

// isB64Token reports whether b matches RFC 6750's b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(b []byte) bool {
	i := 0
	for i < len(b) {
		c := b[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' {
			i++
			continue
		}
		break
	}
	if i == 0 {
		return false
	}
	for ; i < len(b); i++ {
		if b[i] != '=' {
			return false
		}
	}
	return true
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold is ASCII-only case-insensitive equality. Header syntax and
// hostnames on the wire are ASCII; Unicode folding (strings.EqualFold) would
// let "K" (Kelvin sign) stand in for "k".
func equalFold[T string | []byte](b T, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
