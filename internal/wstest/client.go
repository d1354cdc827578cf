// Package wstest is a small WebSocket client for tests: it dials with
// gobwas/ws, writes masked frames (well-formed or deliberately broken),
// and reads server frames with deadlines, so tests never sleep to wait.
package wstest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// DefaultTimeout bounds every read a test waits on.
const DefaultTimeout = 10 * time.Second

// Client is one test connection. It is used by one goroutine.
type Client struct {
	t    testing.TB
	Conn net.Conn
	br   *bufio.Reader
}

// Dial connects to url (ws://host:port/path) and fails the test on error.
func Dial(t testing.TB, url string, header http.Header) *Client {
	t.Helper()
	c, err := TryDial(t, url, header)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	return c
}

// TryDial connects and returns the handshake error instead of failing.
// A rejected upgrade yields a ws.StatusError carrying the HTTP status.
func TryDial(t testing.TB, url string, header http.Header) (*Client, error) {
	d := ws.Dialer{Timeout: DefaultTimeout}
	if header != nil {
		d.Header = ws.HandshakeHeaderHTTP(header)
	}
	return DialWith(t, d, url)
}

// DialWith connects with a dialer of the caller's (a source address, a
// TLS config) and returns the handshake error instead of failing.
func DialWith(t testing.TB, d ws.Dialer, url string) (*Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	conn, br, _, err := d.Dial(ctx, url)
	if err != nil {
		return nil, err
	}
	c := &Client{t: t, Conn: conn, br: br}
	if br == nil {
		c.br = bufio.NewReader(conn)
	}
	t.Cleanup(func() { conn.Close() })
	return c, nil
}

// WriteFrame sends one client frame, masked unless the header says not.
func (c *Client) WriteFrame(f ws.Frame) {
	c.t.Helper()
	if err := ws.WriteFrame(c.Conn, f); err != nil {
		c.t.Fatalf("write frame: %v", err)
	}
}

// WriteRaw sends raw bytes (for hand-made broken frames).
func (c *Client) WriteRaw(b []byte) {
	c.t.Helper()
	if _, err := c.Conn.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// Send writes v as a JSON text message (a string is sent verbatim).
func (c *Client) Send(v any) {
	c.t.Helper()
	var b []byte
	switch v := v.(type) {
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			c.t.Fatalf("marshal: %v", err)
		}
	}
	c.WriteFrame(ws.MaskFrame(ws.NewTextFrame(b)))
}

// ReadFrame reads one server frame within timeout.
func (c *Client) ReadFrame(timeout time.Duration) (ws.Header, []byte, error) {
	c.Conn.SetReadDeadline(time.Now().Add(timeout))
	defer c.Conn.SetReadDeadline(time.Time{})
	h, err := ws.ReadHeader(c.br)
	if err != nil {
		return h, nil, err
	}
	if h.Masked {
		return h, nil, errors.New("server frame is masked")
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(c.br, p); err != nil {
		return h, nil, err
	}
	return h, p, nil
}

// Msg is a decoded gateway message.
type Msg struct {
	Type    string          `json:"type"`
	Channel *string         `json:"channel"`
	ID      json.RawMessage `json:"id"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

// Read returns the next text message, skipping pings (which it answers).
func (c *Client) Read() Msg {
	c.t.Helper()
	for {
		h, p, err := c.ReadFrame(DefaultTimeout)
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		switch h.OpCode {
		case ws.OpPing:
			c.WriteFrame(ws.MaskFrame(ws.NewPongFrame(p)))
			continue
		case ws.OpText:
			var m Msg
			if err := json.Unmarshal(p, &m); err != nil {
				c.t.Fatalf("server sent invalid JSON %q: %v", p, err)
			}
			return m
		default:
			c.t.Fatalf("expected a text frame, got opcode %v payload %q", h.OpCode, p)
		}
	}
}

// Expect reads the next message and checks its type.
func (c *Client) Expect(typ string) Msg {
	c.t.Helper()
	m := c.Read()
	if m.Type != typ {
		c.t.Fatalf("expected %q, got %+v", typ, m)
	}
	return m
}

// Subscribe subscribes and waits for the acknowledgement.
func (c *Client) Subscribe(channel string) {
	c.t.Helper()
	c.Send(map[string]any{"type": "subscribe", "channel": channel})
	m := c.Expect("subscribed")
	if m.Channel == nil || *m.Channel != channel {
		c.t.Fatalf("subscribed ack for wrong channel: %+v", m)
	}
}

// ExpectClose reads frames until a close frame and checks its code; it
// skips data frames (they may precede the close) and fails on timeout.
func (c *Client) ExpectClose(code ws.StatusCode) string {
	c.t.Helper()
	for {
		h, p, err := c.ReadFrame(DefaultTimeout)
		if err != nil {
			c.t.Fatalf("waiting for close %d: %v", code, err)
		}
		if h.OpCode != ws.OpClose {
			continue
		}
		got, reason := ws.StatusNoStatusRcvd, ""
		if len(p) >= 2 {
			got = ws.StatusCode(uint16(p[0])<<8 | uint16(p[1]))
			reason = string(p[2:])
		}
		if got != code {
			c.t.Fatalf("close code %d (%q), want %d", got, reason, code)
		}
		return reason
	}
}

// ExpectEOF checks that the server closes the TCP connection.
func (c *Client) ExpectEOF() {
	c.t.Helper()
	c.Conn.SetReadDeadline(time.Now().Add(DefaultTimeout))
	defer c.Conn.SetReadDeadline(time.Time{})
	_, err := io.Copy(io.Discard, c.br)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		c.t.Fatalf("server did not close the connection")
	}
}

// Close sends a close frame with code and waits for the server's answer.
func (c *Client) Close() {
	c.t.Helper()
	c.WriteFrame(ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye"))))
	c.ExpectClose(ws.StatusNormalClosure)
	c.ExpectEOF()
}

// Errorf formats for messages about this client.
func (c *Client) String() string { return fmt.Sprintf("client %s", c.Conn.LocalAddr()) }
