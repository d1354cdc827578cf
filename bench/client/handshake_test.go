package client

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestAcceptForRFCExample(t *testing.T) {
	// RFC 6455 section 1.3.
	key := [24]byte([]byte("dGhlIHNhbXBsZSBub25jZQ=="))
	if got := acceptFor(&key); string(got[:]) != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("accept = %s", got)
	}
}

func TestRequestTemplate(t *testing.T) {
	tmpl := newRequestTemplate("127.0.0.1:8080", "/ws?x=1", http.Header{"Authorization": {"Bearer t"}})
	key := handshakeKey(42)
	req := string(tmpl.appendRequest(nil, &key))
	want := "GET /ws?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + string(key[:]) + "\r\nAuthorization: Bearer t\r\n\r\n"
	if req != want {
		t.Fatalf("request:\n%q\nwant\n%q", req, want)
	}
	if other := handshakeKey(43); other == key {
		t.Fatalf("keys of different seeds are equal")
	}
}

func TestParseResponse(t *testing.T) {
	key := handshakeKey(7)
	accept := acceptFor(&key)
	ok := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + string(accept[:]) + "\r\n\r\n"
	cases := []struct {
		name   string
		in     string
		wantN  int
		status int    // for a *HandshakeError
		errSub string // in the error
	}{
		{name: "ok", in: ok, wantN: len(ok)},
		{name: "ok with frame after", in: ok + "\x81\x00", wantN: len(ok)},
		{name: "case and lists", in: strings.NewReplacer("Upgrade: websocket", "upgrade: WebSocket", "Connection: Upgrade", "connection: keep-alive, upgrade").Replace(ok), wantN: 1},
		{name: "incomplete", in: ok[:len(ok)-2], errSub: "incomplete"},
		{name: "503", in: "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", status: 503},
		{name: "401", in: "HTTP/1.0 401 Unauthorized\r\n\r\n", status: 401},
		{name: "wrong accept", in: strings.Replace(ok, string(accept[:4]), "AAAA", 1), status: 101, errSub: "Accept"},
		{name: "no upgrade", in: strings.Replace(ok, "Upgrade: websocket\r\n", "", 1), status: 101, errSub: "Upgrade"},
		{name: "no connection", in: strings.Replace(ok, "Connection: Upgrade\r\n", "", 1), status: 101, errSub: "Connection"},
		{name: "garbage status", in: "SSH-2.0-OpenSSH\r\n\r\n", errSub: "status line"},
		{name: "bad code", in: "HTTP/1.1 1x1 Hmm\r\n\r\n", errSub: "status line"},
		{name: "bad header", in: "HTTP/1.1 101 OK\r\nnocolon\r\n\r\n", status: 101, errSub: "malformed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, _, err := parseResponse([]byte(tc.in), &key)
			var he *HandshakeError
			switch {
			case tc.wantN > 0:
				if err != nil || n != strings.Index(tc.in, "\r\n\r\n")+4 {
					t.Fatalf("n=%d err=%v", n, err)
				}
			case tc.errSub == "incomplete":
				if !errors.Is(err, errIncomplete) {
					t.Fatalf("err = %v, want errIncomplete", err)
				}
			case !errors.As(err, &he):
				t.Fatalf("err = %v, want *HandshakeError", err)
			case he.Status != tc.status || !strings.Contains(he.Error(), tc.errSub):
				t.Fatalf("err = %v, want status %d mentioning %q", err, tc.status, tc.errSub)
			}
		})
	}
}

func TestParseResponseTooLong(t *testing.T) {
	key := handshakeKey(1)
	long := "HTTP/1.1 101 OK\r\nX: " + strings.Repeat("a", maxResponseHeader)
	if _, _, err := parseResponse([]byte(long), &key); err == nil || errors.Is(err, errIncomplete) {
		t.Fatalf("err = %v, want a handshake error for an endless header", err)
	}
}

// FuzzParseResponse: arbitrary bytes from a server never panic, and an
// accepted response always ends in the blank line.
func FuzzParseResponse(f *testing.F) {
	key := handshakeKey(9)
	accept := acceptFor(&key)
	f.Add([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + string(accept[:]) + "\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 404 Not Found\r\n\r\n"))
	f.Add([]byte("\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, _, err := parseResponse(b, &key)
		if err == nil && (n < 4 || n > len(b) || string(b[n-4:n]) != "\r\n\r\n") {
			t.Fatalf("accepted %q with n=%d", b, n)
		}
	})
}
