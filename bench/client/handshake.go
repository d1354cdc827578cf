package client

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
)

// maxResponseHeader bounds the bytes of a handshake response the client
// buffers while waiting for its end.
const maxResponseHeader = 8 << 10

// websocketGUID is appended to the key to compute Sec-WebSocket-Accept.
const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// HandshakeError is a handshake the server answered with something other
// than 101 Switching Protocols, or with a 101 that is not a valid upgrade.
type HandshakeError struct {
	Status int    // HTTP status; 101 when the upgrade headers were wrong
	Detail string // what was wrong
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("client: handshake: HTTP %d: %s", e.Status, e.Detail)
}

// errIncomplete means the response has not fully arrived yet.
var errIncomplete = errors.New("client: incomplete handshake response")

// requestTemplate is the handshake request of every connection of a loop,
// split around the only part that changes: the key.
type requestTemplate struct {
	head []byte // request line and fixed headers, ending in "Sec-WebSocket-Key: "
	tail []byte // "\r\n", extra headers, blank line
}

func newRequestTemplate(host, path string, extra http.Header) requestTemplate {
	var t requestTemplate
	t.head = fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ", path, host)
	t.tail = append(t.tail, "\r\n"...)
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range extra[k] {
			t.tail = fmt.Appendf(t.tail, "%s: %s\r\n", k, v)
		}
	}
	t.tail = append(t.tail, "\r\n"...)
	return t
}

// appendRequest appends the request carrying key to dst.
func (t *requestTemplate) appendRequest(dst []byte, key *[24]byte) []byte {
	dst = append(dst, t.head...)
	dst = append(dst, key[:]...)
	return append(dst, t.tail...)
}

// handshakeKey derives a connection's Sec-WebSocket-Key from a seed, so a
// connection needs to store nothing to check the server's answer. The key
// only has to be unpredictable to caches in between, not secret.
func handshakeKey(seed uint64) (key [24]byte) {
	var raw [16]byte
	binary.LittleEndian.PutUint64(raw[:8], splitmix64(seed))
	binary.LittleEndian.PutUint64(raw[8:], splitmix64(seed^0x9e3779b97f4a7c15))
	base64.StdEncoding.Encode(key[:], raw[:])
	return key
}

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// acceptFor computes the Sec-WebSocket-Accept value for key.
func acceptFor(key *[24]byte) (accept [28]byte) {
	h := sha1.New()
	h.Write(key[:])
	h.Write([]byte(websocketGUID))
	var sum [sha1.Size]byte
	base64.StdEncoding.Encode(accept[:], h.Sum(sum[:0]))
	return accept
}

// parseResponse checks the handshake response at the start of b. It returns
// the length of the response header (the frames that follow start there)
// and the values of its Sec-WebSocket-Extensions lines (slices of b; nil
// when there is none), errIncomplete while the blank line has not arrived,
// or a *HandshakeError.
func parseResponse(b []byte, key *[24]byte) (n int, extensions [][]byte, err error) {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		if len(b) > maxResponseHeader {
			return 0, nil, &HandshakeError{Status: 0, Detail: "response header over 8 KiB"}
		}
		return 0, nil, errIncomplete
	}
	lines := b[:end]
	status, rest, _ := bytes.Cut(lines, []byte("\r\n"))
	code, err := parseStatusLine(status)
	if err != nil {
		return 0, nil, err
	}
	if code != http.StatusSwitchingProtocols {
		return 0, nil, &HandshakeError{Status: code, Detail: string(bytes.TrimSpace(status))}
	}
	var upgrade, connection, accept bool
	want := acceptFor(key)
	for len(rest) > 0 {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, nil, &HandshakeError{Status: code, Detail: fmt.Sprintf("malformed header line %q", line)}
		}
		value = bytes.TrimSpace(value)
		switch {
		case asciiEqualFold(name, "Upgrade"):
			upgrade = asciiEqualFold(value, "websocket")
		case asciiEqualFold(name, "Connection"):
			connection = hasToken(value, "upgrade")
		case asciiEqualFold(name, "Sec-WebSocket-Accept"):
			accept = bytes.Equal(value, want[:])
		case asciiEqualFold(name, "Sec-WebSocket-Extensions"):
			extensions = append(extensions, value)
		}
	}
	switch {
	case !upgrade:
		return 0, nil, &HandshakeError{Status: code, Detail: "no Upgrade: websocket"}
	case !connection:
		return 0, nil, &HandshakeError{Status: code, Detail: "no Connection: Upgrade"}
	case !accept:
		return 0, nil, &HandshakeError{Status: code, Detail: "missing or wrong Sec-WebSocket-Accept"}
	}
	return end + 4, extensions, nil
}

// parseStatusLine returns the code of "HTTP/1.1 101 Switching Protocols".
func parseStatusLine(line []byte) (int, error) {
	proto, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok || !bytes.HasPrefix(proto, []byte("HTTP/1.")) || len(rest) < 3 {
		return 0, &HandshakeError{Detail: fmt.Sprintf("malformed status line %q", line)}
	}
	code, err := strconv.Atoi(string(rest[:3]))
	if err != nil || code < 100 || code > 999 || (len(rest) > 3 && rest[3] != ' ') {
		return 0, &HandshakeError{Detail: fmt.Sprintf("malformed status line %q", line)}
	}
	return code, nil
}

// hasToken reports whether the comma-separated list v holds token,
// ignoring case and spaces.
func hasToken(v []byte, token string) bool {
	for len(v) > 0 {
		var item []byte
		item, v, _ = bytes.Cut(v, []byte(","))
		if asciiEqualFold(bytes.TrimSpace(item), token) {
			return true
		}
	}
	return false
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c1, c2 := b[i], s[i]
		if 'A' <= c1 && c1 <= 'Z' {
			c1 += 'a' - 'A'
		}
		if 'A' <= c2 && c2 <= 'Z' {
			c2 += 'a' - 'A'
		}
		if c1 != c2 {
			return false
		}
	}
	return true
}
