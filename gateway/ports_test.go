package gateway

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/shardgate/shardgate/internal/wstest"
)

// This file covers the public listener (SPEC "Ports" and the handshake
// rules of "WebSocket behaviour"), over real loopback sockets. Hand-written
// requests go through rawExchange so that each malformation is exactly the
// one named; the status line is read with http.ReadResponse.

const testKey = "dGhlIHNhbXBsZSBub25jZQ==" // RFC 6455 §1.3's sample nonce

// upgradeRequest is a well-formed upgrade of path with extra header lines
// (each ending in CRLF) before the blank line.
func upgradeRequest(path, extra string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: gateway.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + testKey + "\r\nSec-WebSocket-Version: 13\r\n" + extra + "\r\n"
}

// statusOf returns the HTTP status of a failed dial, or fails the test.
func statusOf(t testing.TB, err error) int {
	t.Helper()
	var se ws.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("dial error %v carries no HTTP status", err)
	}
	return int(se)
}

// TestHandshakeRejections sends requests the gateway must not upgrade and
// checks each documented answer, the connection closed after it, and a
// bystander still served after every case.
func TestHandshakeRejections(t *testing.T) {
	g := startGateway(t, nil)
	bs := newBystanders(t, g, nil)
	cases := []struct {
		name   string
		req    string
		status int
		header map[string]string // must be present in the answer
	}{
		{name: "upgrade on another path", req: upgradeRequest("/other", ""), status: http.StatusNotFound},
		{name: "upgrade on a path below", req: upgradeRequest("/ws/x", ""), status: http.StatusNotFound},
		{name: "plain GET on another path", req: "GET / HTTP/1.1\r\nHost: gateway.test\r\n\r\n", status: http.StatusNotFound},
		{name: "plain GET on the path", req: "GET /ws HTTP/1.1\r\nHost: gateway.test\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n",
			status: http.StatusUpgradeRequired, header: map[string]string{"Upgrade": "websocket"}},
		{name: "browser-like GET on the path", req: "GET /ws HTTP/1.1\r\nHost: gateway.test\r\nConnection: keep-alive\r\nAccept: text/html\r\n\r\n",
			status: http.StatusUpgradeRequired, header: map[string]string{"Upgrade": "websocket"}},
		{name: "GET with a query on the path", req: "GET /ws?x=1 HTTP/1.1\r\nHost: gateway.test\r\n\r\n",
			status: http.StatusUpgradeRequired},
		{name: "upgrade to another protocol", req: "GET /ws HTTP/1.1\r\nHost: gateway.test\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
			status: http.StatusUpgradeRequired, header: map[string]string{"Upgrade": "websocket"}},
		{name: "wrong version", req: strings.Replace(upgradeRequest("/ws", ""), "Version: 13", "Version: 8", 1),
			status: http.StatusUpgradeRequired, header: map[string]string{"Sec-WebSocket-Version": "13"}},
		{name: "garbage request line", req: "HELLO THERE\r\n\r\n", status: http.StatusBadRequest},
		{name: "binary garbage", req: "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", status: http.StatusBadRequest},
		{name: "missing Sec-WebSocket-Key", req: strings.Replace(upgradeRequest("/ws", ""), "Sec-WebSocket-Key: "+testKey+"\r\n", "", 1),
			status: http.StatusBadRequest},
		{name: "short Sec-WebSocket-Key", req: strings.Replace(upgradeRequest("/ws", ""), testKey, "c2hvcnQ=", 1),
			status: http.StatusBadRequest},
		{name: "missing Sec-WebSocket-Version", req: strings.Replace(upgradeRequest("/ws", ""), "Sec-WebSocket-Version: 13\r\n", "", 1),
			status: http.StatusBadRequest},
		{name: "missing Host", req: strings.Replace(upgradeRequest("/ws", ""), "Host: gateway.test\r\n", "", 1),
			status: http.StatusBadRequest},
		{name: "header line without colon", req: upgradeRequest("/ws", "X-Broken header line\r\n"), status: http.StatusBadRequest},
		{name: "header over 16 KiB", req: upgradeRequest("/ws", "X-Big: "+strings.Repeat("a", 20<<10)+"\r\n"),
			status: http.StatusBadRequest},
		// The SPEC names no status for other methods; gobwas/ws answers
		// 405 Method Not Allowed, which is what a client should see.
		{name: "POST on the path", req: strings.Replace(upgradeRequest("/ws", "Content-Length: 0\r\n"), "GET", "POST", 1),
			status: http.StatusMethodNotAllowed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := rawExchange(t, g, tc.req)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d (%q), want %d", resp.StatusCode, body, tc.status)
			}
			for k, v := range tc.header {
				if got := resp.Header.Get(k); !strings.EqualFold(got, v) {
					t.Errorf("header %s: %q, want %q", k, got, v)
				}
			}
		})
		bs.check(t)
	}
	// Every rejection counts as a bad request; only the bystanders upgraded.
	g.waitMetric(float64(len(cases)), "shardgate_upgrades_total", "result", "bad_request")
	g.waitMetric(float64(len(bs.conns)), "shardgate_upgrades_total", "result", "ok")
	g.waitMetric(float64(len(bs.conns)), "shardgate_connections")
}

// TestHandshakeRejectedOverDial checks the same answers as a WebSocket
// client library sees them.
func TestHandshakeRejectedOverDial(t *testing.T) {
	g := startGateway(t, nil)
	bs := newBystanders(t, g, nil)
	base := "ws://" + g.Addr().String()
	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/", http.StatusNotFound},
		{"/other", http.StatusNotFound},
		{"/WS", http.StatusNotFound},
	} {
		t.Run(tc.path, func(t *testing.T) {
			_, err := wstest.TryDial(t, base+tc.path, nil)
			if err == nil {
				t.Fatalf("upgrade on %s succeeded", tc.path)
			}
			if got := statusOf(t, err); got != tc.status {
				t.Fatalf("status %d, want %d", got, tc.status)
			}
		})
		bs.check(t)
	}
}

// TestUpgradeResponse checks the 101 answer and that a frame sent in the
// same write as the upgrade request (pipelined before the answer) is
// processed.
func TestUpgradeResponse(t *testing.T) {
	g := startGateway(t, nil)
	bs := newBystanders(t, g, nil)

	var out bytes.Buffer
	out.WriteString(upgradeRequest("/ws", "Origin: https://anything.test\r\n"))
	if err := ws.WriteFrame(&out, ws.MaskFrame(ws.NewTextFrame([]byte(`{"type":"subscribe","channel":"piped","id":"p1"}`)))); err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", g.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(wstest.DefaultTimeout))
	if _, err := conn.Write(out.Bytes()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read 101: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	sum := sha1.Sum([]byte(testKey + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	for k, want := range map[string]string{
		"Upgrade":              "websocket",
		"Connection":           "Upgrade",
		"Sec-WebSocket-Accept": base64.StdEncoding.EncodeToString(sum[:]),
	} {
		if got := resp.Header.Get(k); !strings.EqualFold(got, want) {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}

	readText := func() string {
		t.Helper()
		for {
			f, err := ws.ReadFrame(br)
			if err != nil {
				t.Fatalf("read frame: %v", err)
			}
			if f.Header.OpCode == ws.OpText {
				return string(f.Payload)
			}
		}
	}
	if got, want := readText(), `{"type":"subscribed","channel":"piped","id":"p1"}`; got != want {
		t.Fatalf("reply to the pipelined frame: %s, want %s", got, want)
	}
	g.mustPublish("piped", `"through"`)
	if got, want := readText(), `{"type":"message","channel":"piped","data":"through"}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	bs.check(t)
}

// TestHandshakeInPieces: a request that arrives one byte per segment, well
// within the timeout, is upgraded.
func TestHandshakeInPieces(t *testing.T) {
	g := startGateway(t, nil)
	conn, err := net.Dial("tcp", g.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(wstest.DefaultTimeout))
	req := upgradeRequest("/ws", "")
	for i := range len(req) {
		if _, err := conn.Write([]byte{req[i]}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	g.waitMetric(1, "shardgate_connections")
}

// TestHandshakeTimeout: a client that does not finish its handshake within
// -handshake-timeout is dropped (the server closes the TCP connection,
// answering nothing) and counted as result="timeout".
func TestHandshakeTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	g := startGateway(t, func(c *Config) { c.HandshakeTimeout = timeout })
	bs := newBystanders(t, g, nil)
	cases := []struct{ name, sent string }{
		{"nothing", ""},
		{"half a request line", "GET /w"},
		{"headers without the blank line", strings.TrimSuffix(upgradeRequest("/ws", ""), "\r\n")},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			conn, err := net.Dial("tcp", g.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if tc.sent != "" {
				if _, err := io.WriteString(conn, tc.sent); err != nil {
					t.Fatal(err)
				}
			}
			expectServerClose(t, conn, wstest.DefaultTimeout)
			if took := time.Since(start); took < timeout {
				t.Errorf("dropped after %v, before -handshake-timeout %v", took, timeout)
			}
			if got := g.in(t).metricSum("shardgate_upgrades_total", "result", "timeout"); got != float64(i+1) {
				t.Errorf("upgrades_total{result=timeout} = %v, want %d", got, i+1)
			}
		})
		bs.check(t)
	}
}

// TestMaxConns: over -max-conns open connections an upgrade gets 503 and
// counts as over_capacity; once a client leaves, upgrades succeed again.
func TestMaxConns(t *testing.T) {
	g := startGateway(t, func(c *Config) { c.MaxConns = 2; c.Shards = 1 })
	bs := newBystanders(t, g, nil)
	second := wstest.Dial(t, g.wsURL(), nil)

	for i := 1; i <= 3; i++ {
		_, err := wstest.TryDial(t, g.wsURL(), nil)
		if err == nil {
			t.Fatalf("upgrade %d over -max-conns 2 succeeded", i)
		}
		if got := statusOf(t, err); got != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503", got)
		}
		g.waitMetric(float64(i), "shardgate_upgrades_total", "result", "over_capacity")
		bs.check(t)
	}

	second.Close()
	var third *wstest.Client
	waitFor(t, "an upgrade to succeed after a client left", func() bool {
		c, err := wstest.TryDial(t, g.wsURL(), nil)
		if err != nil {
			if got := statusOf(t, err); got != http.StatusServiceUnavailable {
				t.Fatalf("status %d, want 503 or success", got)
			}
			return false
		}
		third = c
		return true
	})
	third.Subscribe(bystanderChannel)
	bs.check(t)
	if m := third.Expect("message"); string(m.Data) != strconv.Itoa(bs.n) {
		t.Fatalf("new client got %+v", m)
	}
}

// bystanders are well-behaved connections, one per shard, subscribed to
// bystanderChannel. Tests that throw bad input at the gateway call check
// after each case, from the test's own goroutine, to prove that everybody
// else is still served. (wsbehaviour_test.go's witness does the same for
// frame-level abuse; bystanders also dial with headers, for auth.)
type bystanders struct {
	g     *testGateway
	conns []*wstest.Client
	n     int
}

const bystanderChannel = "bystander"

// newBystanders dials one connection per shard with header (nil: none)
// and subscribes each. It must run before any other connection is open:
// the acceptor puts a new connection on the least loaded shard, so that
// is what spreads them one per shard (checked through the metrics).
func newBystanders(t testing.TB, g *testGateway, header http.Header) *bystanders {
	t.Helper()
	b := &bystanders{g: g}
	for range g.cfg.Shards {
		c := wstest.Dial(t, g.wsURL(), header)
		c.Subscribe(bystanderChannel)
		b.conns = append(b.conns, c)
	}
	for i := range g.cfg.Shards {
		g.in(t).waitMetric(1, "shardgate_connections", "shard", strconv.Itoa(i))
	}
	return b
}

// check publishes a fresh number through the admin API and expects each
// bystander to receive exactly that next. Call it from the goroutine of
// the test that dialled the bystanders (their clients fail that test).
func (b *bystanders) check(t testing.TB) {
	t.Helper()
	b.n++
	want := strconv.Itoa(b.n)
	b.g.in(t).mustPublish(bystanderChannel, want)
	for i, c := range b.conns {
		m := c.Expect("message")
		if m.Channel == nil || *m.Channel != bystanderChannel || string(m.Data) != want {
			t.Fatalf("bystander %d got %+v, want message %s on %q", i, m, want, bystanderChannel)
		}
	}
}

// adminDo sends one admin API request and returns the status, header and
// body; header holds name, value pairs. It fails t, so subtests may use it.
func adminDo(t testing.TB, g *testGateway, method, path, body string, header ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, g.adminURL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// rawExchange writes req verbatim, in one write, on a new TCP connection to
// the public listener and returns the gateway's response with its body
// read. A rejected handshake is answered and then the connection is
// closed: rawExchange checks that too.
func rawExchange(t testing.TB, g *testGateway, req string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", g.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(wstest.DefaultTimeout))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatalf("write request: %v", err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no HTTP response to %.60q: %v", req, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read response body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		// A reset is a close too: the gateway reads no further than the
		// header it refuses (16 KiB at most), and closing a socket with
		// unread input makes the kernel send RST rather than FIN.
		n, err := br.Read(make([]byte, 1))
		if n != 0 || err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("after a %d answer: read %d bytes, %v; want the gateway to close", resp.StatusCode, n, err)
		}
	}
	return resp, string(body)
}

// expectServerClose waits up to timeout for the gateway to close conn
// without sending anything, and returns how long that took.
func expectServerClose(t testing.TB, conn net.Conn, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	conn.SetReadDeadline(start.Add(timeout))
	defer conn.SetReadDeadline(time.Time{})
	n, err := conn.Read(make([]byte, 512))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("gateway did not close the connection within %v", timeout)
	}
	if n != 0 || err != io.EOF {
		t.Fatalf("read %d bytes, %v; want EOF", n, err)
	}
	return time.Since(start)
}

// TestNewFailsCleanly: a public or admin address already in use is an
// error from New, after whatever was started has been stopped again.
func TestNewFailsCleanly(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		name string
		set  func(*Config)
	}{
		{"listen in use", func(c *Config) { c.Listen = busy.Addr().String() }},
		{"admin in use", func(c *Config) { c.Admin = busy.Addr().String() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Defaults()
			cfg.Listen, cfg.Admin, cfg.Shards = "127.0.0.1:0", "127.0.0.1:0", 2
			tc.set(&cfg)
			g, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err == nil {
				g.Shutdown()
				t.Fatal("New succeeded on an address in use")
			}
			if !strings.Contains(err.Error(), busy.Addr().String()) {
				t.Errorf("error %q does not name the address", err)
			}
		})
	}
}
