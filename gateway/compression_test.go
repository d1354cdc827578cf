package gateway

import (
	"bufio"
	"bytes"
	"compress/flate"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/shardgate/shardgate/internal/wstest"
)

// This file covers SPEC "Compression (RFC 7692)" over loopback sockets
// against the real gateway: negotiation, broadcasts compressed once and
// shared, client messages inflated under the limit, and the protocol
// errors the extension adds. The client here is hand-made (gobwas/ws's
// dialer refuses a response parameter it did not offer, and hides the
// response's Sec-WebSocket-Extensions); it compresses and inflates with
// the standard library, an implementation independent of the gateway's.

// deflateClient is one test connection that may have negotiated
// permessage-deflate.
type deflateClient struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
	ext  string // the response's Sec-WebSocket-Extensions ("" when none)
}

// dialDeflate upgrades with one Sec-WebSocket-Extensions line per offer
// (none without offers) and fails the test unless the answer is 101.
func dialDeflate(t testing.TB, g *testGateway, offers ...string) *deflateClient {
	t.Helper()
	conn, err := net.Dial("tcp", g.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return upgradeDeflate(t, g, conn, offers...)
}

// upgradeDeflate is dialDeflate over a connection of the caller's (TLS).
func upgradeDeflate(t testing.TB, g *testGateway, conn net.Conn, offers ...string) *deflateClient {
	t.Helper()
	var req strings.Builder
	fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n", g.cfg.Path, g.Addr())
	for _, o := range offers {
		fmt.Fprintf(&req, "Sec-WebSocket-Extensions: %s\r\n", o)
	}
	req.WriteString("\r\n")
	if _, err := io.WriteString(conn, req.String()); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(wstest.DefaultTimeout))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("upgrade response: %v", err)
	}
	conn.SetReadDeadline(time.Time{})
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade with %q: %s", offers, resp.Status)
	}
	exts := resp.Header.Values("Sec-WebSocket-Extensions")
	if len(exts) > 1 {
		t.Fatalf("%d Sec-WebSocket-Extensions lines in the response: %q", len(exts), exts)
	}
	c := &deflateClient{t: t, conn: conn, br: br}
	if len(exts) == 1 {
		c.ext = exts[0]
	}
	return c
}

// Offers as browsers and the RFC's examples make them.
const (
	offerBrowser = "permessage-deflate; client_max_window_bits"
	answerPlain  = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
)

// deflate compresses p on its own, as RFC 7692 §7.2.1 says.
func deflate(t testing.TB, p []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	w, _ := flate.NewWriter(&out, flate.BestSpeed)
	w.Write(p)
	w.Flush()
	return bytes.TrimSuffix(out.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// inflate decompresses a message as RFC 7692 §7.2.2 says.
func inflate(t testing.TB, z []byte) []byte {
	t.Helper()
	r := flate.NewReader(io.MultiReader(bytes.NewReader(z), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff})))
	p, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("inflate a server message: %v", err)
	}
	return p
}

// writeFrame sends one masked frame with the given RSV bits (RSV1 is 4).
func (c *deflateClient) writeFrame(fin bool, rsv byte, op ws.OpCode, payload []byte) {
	c.t.Helper()
	f := ws.NewFrame(op, fin, bytes.Clone(payload))
	f.Header.Rsv = rsv
	if err := ws.WriteFrame(c.conn, ws.MaskFrame(f)); err != nil {
		c.t.Fatalf("write frame: %v", err)
	}
}

// send writes p as one text message, compressed when z.
func (c *deflateClient) send(p string, z bool) {
	c.t.Helper()
	if z {
		c.writeFrame(true, 4, ws.OpText, deflate(c.t, []byte(p)))
		return
	}
	c.writeFrame(true, 0, ws.OpText, []byte(p))
}

// serverFrame is one frame the gateway sent, with its payload as sent.
type serverFrame struct {
	h       ws.Header
	payload []byte
}

func (f serverFrame) compressed() bool { return f.h.Rsv == 4 }

// next reads the next frame, answering pings.
func (c *deflateClient) next() serverFrame {
	c.t.Helper()
	for {
		c.conn.SetReadDeadline(time.Now().Add(wstest.DefaultTimeout))
		h, err := ws.ReadHeader(c.br)
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(c.br, p); err != nil {
			c.t.Fatalf("read: %v", err)
		}
		if h.OpCode == ws.OpPing {
			c.writeFrame(true, 0, ws.OpPong, p)
			continue
		}
		return serverFrame{h: h, payload: p}
	}
}

// text reads the next text message; compressed says whether it came
// with RSV1.
func (c *deflateClient) text() (msg string, compressed bool) {
	c.t.Helper()
	f := c.next()
	if f.h.OpCode != ws.OpText || !f.h.Fin {
		c.t.Fatalf("got opcode %v fin %v %q, want a final text frame", f.h.OpCode, f.h.Fin, f.payload)
	}
	switch f.h.Rsv {
	case 0:
		return string(f.payload), false
	case 4:
		if c.ext == "" {
			c.t.Fatalf("RSV1 on a connection that did not negotiate permessage-deflate")
		}
		return string(inflate(c.t, f.payload)), true
	default:
		c.t.Fatalf("RSV bits %03b", f.h.Rsv)
		return "", false
	}
}

// expectPlain reads the next text message and wants it uncompressed.
func (c *deflateClient) expectPlain(prefix string) string {
	c.t.Helper()
	m, z := c.text()
	if z || !strings.HasPrefix(m, prefix) {
		c.t.Fatalf("got %.80q (compressed %v), want an uncompressed %s...", m, z, prefix)
	}
	return m
}

// subscribe subscribes, compressing the request when z; the reply comes
// plain whatever the connection negotiated.
func (c *deflateClient) subscribe(channel string, z bool) {
	c.t.Helper()
	c.send(fmt.Sprintf(`{"type":"subscribe","channel":%q}`, channel), z)
	c.expectPlain(`{"type":"subscribed","channel":"` + channel + `"`)
}

// expectClose reads until a close frame and checks its code.
func (c *deflateClient) expectClose(code ws.StatusCode) {
	c.t.Helper()
	for {
		f := c.next()
		if f.h.OpCode != ws.OpClose {
			continue
		}
		got, reason := ws.StatusNoStatusRcvd, ""
		if len(f.payload) >= 2 {
			got, reason = ws.StatusCode(uint16(f.payload[0])<<8|uint16(f.payload[1])), string(f.payload[2:])
		}
		if got != code {
			c.t.Fatalf("close %d %q, want %d", got, reason, code)
		}
		return
	}
}

// TestDeflateNegotiation: each offer list gets the exact answer, or none:
// an offer the gateway cannot accept is declined, and the upgrade goes on
// (101) without the extension.
func TestDeflateNegotiation(t *testing.T) {
	g := startGateway(t, nil)
	cases := []struct {
		name   string
		offers []string
		want   string
	}{
		{"none", nil, ""},
		{"bare", []string{"permessage-deflate"}, answerPlain},
		{"browser", []string{offerBrowser}, answerPlain},
		{"no context takeover both ways", []string{"permessage-deflate; server_no_context_takeover; client_no_context_takeover"}, answerPlain},
		{"client window 9", []string{"permessage-deflate; client_max_window_bits=9"}, answerPlain},
		{"server window 10", []string{"permessage-deflate; server_max_window_bits=10"}, answerPlain + "; server_max_window_bits=10"},
		{"server window 15", []string{"permessage-deflate; server_max_window_bits=15"}, answerPlain + "; server_max_window_bits=15"},
		{"first acceptable offer of a list", []string{"permessage-deflate; server_max_window_bits=16, permessage-deflate; server_max_window_bits=12, permessage-deflate"}, answerPlain + "; server_max_window_bits=12"},
		{"offers over two header lines", []string{"x-webkit-deflate-frame, permessage-deflate; foo", "permessage-deflate; server_max_window_bits=9"}, answerPlain + "; server_max_window_bits=9"},
		{"first header line wins", []string{"permessage-deflate", "permessage-deflate; server_max_window_bits=9"}, answerPlain},
		{"unknown extension", []string{"x-webkit-deflate-frame"}, ""},
		{"unknown parameter", []string{"permessage-deflate; mux"}, ""},
		{"duplicate parameter", []string{"permessage-deflate; client_no_context_takeover; client_no_context_takeover"}, ""},
		{"bad window", []string{"permessage-deflate; server_max_window_bits=7"}, ""},
		{"window without value", []string{"permessage-deflate; server_max_window_bits"}, ""},
		{"value where none belongs", []string{"permessage-deflate; server_no_context_takeover=1"}, ""},
		{"broken quoting", []string{`permessage-deflate; client_max_window_bits="10`}, ""},
		{"garbage", []string{";;;,,,\"\\"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl := dialDeflate(t, g, c.offers...)
			if cl.ext != c.want {
				t.Fatalf("offers %q: answered %q, want %q", c.offers, cl.ext, c.want)
			}
			// The connection works either way.
			cl.subscribe("neg", false)
		})
	}
}

// TestDeflateOff: with -compression off, no offer is accepted, and a
// compressed frame is a protocol error like any RSV bit.
func TestDeflateOff(t *testing.T) {
	g := startGateway(t, func(c *Config) { c.Compression = false })
	cl := dialDeflate(t, g, offerBrowser)
	if cl.ext != "" {
		t.Fatalf("answered %q with -compression off", cl.ext)
	}
	cl.send(`{"type":"subscribe","channel":"x"}`, true)
	cl.expectClose(ws.StatusProtocolError)
	if n := g.metricSum("shardgate_compressed_connections"); n != 0 {
		t.Errorf("shardgate_compressed_connections %v", n)
	}
}

// bigJSON is about 1 KiB of JSON data that compresses like real messages.
func bigJSON(seq int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{"seq":%d,"quotes":[`, seq)
	for i := range 12 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"symbol":"SG%03d","bid":%d.%02d,"ask":%d.%02d,"venue":"XPAR"}`, i*7%31, 100+i, i*13%100, 101+i, i*29%100)
	}
	b.WriteString(`]}`)
	return b.String()
}

// TestDeflateBroadcastCompressedOnceSharedByShards: three shards, each
// with a deflate and a plain subscriber of one channel. Every broadcast of
// 256 bytes or more reaches the deflate subscribers as one compressed
// frame (RSV1) and the plain ones as the plain frame, the same message;
// the gateway compressed it once (shardgate_compressions_total), not once
// per shard or subscriber. Shorter messages and replies go plain to all.
func TestDeflateBroadcastCompressedOnceSharedByShards(t *testing.T) {
	const shards = 3
	g := startGateway(t, func(c *Config) { c.Shards = shards })
	var zipped, plain []*deflateClient
	for range shards {
		zipped = append(zipped, dialDeflate(t, g, offerBrowser))
	}
	for range shards {
		plain = append(plain, dialDeflate(t, g))
	}
	// The acceptor balances by connection count: each shard holds one of
	// each kind, which the per-shard gauges confirm.
	for i := range shards {
		shard := fmt.Sprint(i)
		g.waitMetric(2, "shardgate_connections", "shard", shard)
		g.waitMetric(1, "shardgate_compressed_connections", "shard", shard)
	}
	for _, c := range append(zipped, plain...) {
		c.subscribe("quotes", c.ext != "")
	}

	const messages = 5
	for i := range messages {
		g.mustPublish("quotes", bigJSON(i))
	}
	g.mustPublish("quotes", `{"small":true}`) // under -compression-min-bytes
	g.mustPublish("", bigJSON(99))            // to everyone

	check := func(c *deflateClient, wantZ bool) {
		for i := range messages {
			m, z := c.text()
			want := `{"type":"message","channel":"quotes","data":` + bigJSON(i) + `}`
			if m != want || z != wantZ {
				t.Fatalf("message %d: %.60q compressed %v, want %.60q compressed %v", i, m, z, want, wantZ)
			}
		}
		if m, z := c.text(); z || m != `{"type":"message","channel":"quotes","data":{"small":true}}` {
			t.Fatalf("small message: %q compressed %v, want it plain", m, z)
		}
		if m, z := c.text(); z != wantZ || m != `{"type":"message","data":`+bigJSON(99)+`}` {
			t.Fatalf("message to everyone: %.60q compressed %v", m, z)
		}
	}
	for _, c := range zipped {
		check(c, true)
	}
	for _, c := range plain {
		check(c, false)
	}

	if n := g.metricSum("shardgate_compressions_total"); n != messages+1 {
		t.Errorf("shardgate_compressions_total %v for %d compressible broadcasts to %d shards, want one each", n, messages+1, shards)
	}
	g.waitMetric(float64((messages+1)*shards), "shardgate_deflated_messages_sent_total")
	if saved := g.metricSum("shardgate_deflate_saved_bytes_total"); saved < float64((messages+1)*shards*300) {
		t.Errorf("shardgate_deflate_saved_bytes_total %v: compression saved less than 300 bytes a delivery", saved)
	}
}

// TestDeflateNoCompressionWithoutDeflateConnections: a node none of whose
// connections negotiated the extension never compresses.
func TestDeflateNoCompressionWithoutDeflateConnections(t *testing.T) {
	g := startGateway(t, nil)
	c := dialDeflate(t, g)
	c.subscribe("q", false)
	g.mustPublish("q", bigJSON(1))
	c.expectPlain(`{"type":"message"`)
	if n := g.metricSum("shardgate_compressions_total"); n != 0 {
		t.Errorf("shardgate_compressions_total %v without a deflate connection", n)
	}
}

// TestDeflateServerWindow: a client that allowed a 512-byte window
// (server_max_window_bits=9) gets messages of up to 512 bytes compressed
// and longer ones plain, as RSV1 per message allows.
func TestDeflateServerWindow(t *testing.T) {
	g := startGateway(t, nil)
	c := dialDeflate(t, g, "permessage-deflate; server_max_window_bits=9")
	if c.ext != answerPlain+"; server_max_window_bits=9" {
		t.Fatalf("answered %q", c.ext)
	}
	c.subscribe("w", true)
	short := `"` + strings.Repeat("ab", 200) + `"` // a frame payload of 442 bytes
	g.mustPublish("w", short)
	g.mustPublish("w", bigJSON(1))
	if m, z := c.text(); !z || !strings.Contains(m, short) {
		t.Fatalf("%d-byte message: compressed %v, want compressed", len(m), z)
	}
	if m, z := c.text(); z || !strings.Contains(m, bigJSON(1)) {
		t.Fatalf("%d-byte message over a 512-byte window: compressed %v, want plain", len(m), z)
	}
}

// TestDeflateClientMessages: compressed requests are inflated and served
// like plain ones, whole or fragmented (RSV1 on the first frame only),
// with control frames between the fragments, mixed with plain ones.
func TestDeflateClientMessages(t *testing.T) {
	g := startGateway(t, nil)
	c := dialDeflate(t, g, offerBrowser)
	c.subscribe("in", true)
	c.send(`{"type":"publish","channel":"in","data":{"n":1},"id":1}`, true)
	c.expectPlain(`{"type":"published","channel":"in","id":1}`)
	c.expectPlain(`{"type":"message","channel":"in","data":{"n":1}}`) // under 256 bytes: plain

	big := `{"type":"publish","channel":"in","data":` + bigJSON(7) + `,"id":2}`
	z := deflate(t, []byte(big))
	third := len(z) / 3
	c.writeFrame(false, 4, ws.OpText, z[:third])
	c.writeFrame(true, 0, ws.OpPing, []byte("between"))
	c.writeFrame(false, 0, ws.OpContinuation, z[third:2*third])
	c.writeFrame(true, 0, ws.OpContinuation, z[2*third:])
	if f := c.next(); f.h.OpCode != ws.OpPong || string(f.payload) != "between" {
		t.Fatalf("got opcode %v %q, want the pong", f.h.OpCode, f.payload)
	}
	c.expectPlain(`{"type":"published","channel":"in","id":2}`)
	if m, compressed := c.text(); !compressed || m != `{"type":"message","channel":"in","data":`+bigJSON(7)+`}` {
		t.Fatalf("got %.80q compressed %v", m, compressed)
	}

	c.send(`{"type":"unsubscribe","channel":"in","id":3}`, false)
	c.expectPlain(`{"type":"unsubscribed","channel":"in","id":3}`)
	// Counted at the end of the shard's pass, maybe after the reply left.
	g.waitMetric(4, "shardgate_messages_received_total")
}

// TestDeflateProtocolErrors: what the extension adds to the close codes.
func TestDeflateProtocolErrors(t *testing.T) {
	g := startGateway(t, nil)
	cases := []struct {
		name  string
		offer bool
		send  func(c *deflateClient)
		code  ws.StatusCode
	}{
		{"data that does not inflate", true, func(c *deflateClient) {
			c.writeFrame(true, 4, ws.OpText, []byte{0xff, 0xfe, 0xfd, 0xfc})
		}, ws.StatusInvalidFramePayloadData},
		{"truncated deflate stream", true, func(c *deflateClient) {
			z := deflate(c.t, []byte(bigJSON(1)))
			c.writeFrame(true, 4, ws.OpText, z[:len(z)/2])
		}, ws.StatusInvalidFramePayloadData},
		{"invalid UTF-8 once inflated", true, func(c *deflateClient) {
			c.writeFrame(true, 4, ws.OpText, deflate(c.t, []byte("{\"type\":\"\xff\"}")))
		}, ws.StatusInvalidFramePayloadData},
		{"RSV1 on a continuation", true, func(c *deflateClient) {
			c.writeFrame(false, 0, ws.OpText, []byte(`{"type":`))
			c.writeFrame(true, 4, ws.OpContinuation, deflate(c.t, []byte(`"x"}`)))
		}, ws.StatusProtocolError},
		{"RSV1 on a ping", true, func(c *deflateClient) {
			c.writeFrame(true, 4, ws.OpPing, []byte("p"))
		}, ws.StatusProtocolError},
		{"RSV2", true, func(c *deflateClient) {
			c.writeFrame(true, 2, ws.OpText, []byte(`{}`))
		}, ws.StatusProtocolError},
		{"RSV1 without negotiation", false, func(c *deflateClient) {
			c.writeFrame(true, 4, ws.OpText, deflate(c.t, []byte(`{"type":"subscribe","channel":"x"}`)))
		}, ws.StatusProtocolError},
		{"binary, compressed", true, func(c *deflateClient) {
			c.writeFrame(true, 4, ws.OpBinary, deflate(c.t, []byte("bin")))
		}, ws.StatusUnsupportedData},
		{"over the limit once inflated", true, func(c *deflateClient) {
			c.writeFrame(true, 4, ws.OpText, deflate(c.t, bytes.Repeat([]byte(" "), 65537)))
		}, ws.StatusMessageTooBig},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var c *deflateClient
			if tc.offer {
				c = dialDeflate(t, g, offerBrowser)
			} else {
				c = dialDeflate(t, g)
			}
			tc.send(c)
			c.expectClose(tc.code)
		})
	}
	g.waitMetric(float64(len(cases)), "shardgate_disconnects_total", "reason", "protocol_error")
}

// TestDeflateBombCostsTheLimit: 100 MB of zeros deflate to about 100 KB.
// Sent compressed (whole, then in four fragments) under -max-message-bytes
// 1 MiB, each closes with 1009 once the limit is inflated; the gateway
// allocates about the limit for it, not 100 MB, and a witness on the same
// shard keeps getting its messages promptly.
func TestDeflateBombCostsTheLimit(t *testing.T) {
	const limit = 1 << 20
	g := startGateway(t, func(c *Config) {
		c.Shards = 1
		c.MaxMessageBytes = limit
	})
	w := newPromptWitness(t, g)
	bomb := zeroBomb(t, 100)
	t.Logf("100 MiB of zeros deflate to %d bytes", len(bomb))
	// It is a valid message, longer than the limit.
	r := flate.NewReader(io.MultiReader(bytes.NewReader(bomb), bytes.NewReader([]byte{0, 0, 0xff, 0xff})))
	if n, err := io.Copy(io.Discard, io.LimitReader(r, 2*limit)); n != 2*limit {
		t.Fatalf("the bomb inflates to %d bytes: %v", n, err)
	}
	runtime.GC()

	for _, fragments := range []int{1, 4} {
		t.Run(fmt.Sprintf("fragments=%d", fragments), func(t *testing.T) {
			c := dialDeflate(t, g, offerBrowser)
			w.check(t)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			size := (len(bomb) + fragments - 1) / fragments
			for i := 0; i < len(bomb); i += size {
				op, rsv := ws.OpContinuation, byte(0)
				if i == 0 {
					op, rsv = ws.OpText, 4
				}
				c.writeFrame(i+size >= len(bomb), rsv, op, bomb[i:min(i+size, len(bomb))])
			}
			c.expectClose(ws.StatusMessageTooBig)
			runtime.ReadMemStats(&after)
			w.check(t)
			// Everything the process allocated meanwhile (the test's own
			// frames included): the inflated output grows up to the limit,
			// copying from half its size, plus the compressed bytes held
			// and their copy with the RFC's tail.
			allocated := after.TotalAlloc - before.TotalAlloc
			if max := uint64(2*limit + 4*len(bomb) + 1<<20); allocated > max {
				t.Errorf("allocated %d KiB while a %d KiB bomb was refused, want at most %d KiB", allocated>>10, len(bomb)>>10, max>>10)
			}
			t.Logf("allocated %d KiB for a bomb under a %d KiB limit", allocated>>10, limit>>10)
		})
	}
	if n := g.metricSum("shardgate_connections"); n != 1 {
		t.Fatalf("%v connections open, want the witness", n)
	}
}

// zeroBomb returns mib MiB of zeros deflated, without making them: one
// MiB compressed and sync-flushed, repeated (each copy refers only to its
// own bytes), the last 00 00 ff ff stripped as RFC 7692 §7.2.1 says.
func zeroBomb(t testing.TB, mib int) []byte {
	t.Helper()
	var out bytes.Buffer
	w, _ := flate.NewWriter(&out, flate.BestCompression)
	w.Write(make([]byte, 1<<20))
	w.Flush()
	bomb := bytes.Repeat(out.Bytes(), mib)
	return bytes.TrimSuffix(bomb, []byte{0, 0, 0xff, 0xff})
}

// TestDeflateOverTLS: a wss:// upgrade (handshake on a TLS goroutine,
// records through tlsfd) negotiates and compresses the same way.
func TestDeflateOverTLS(t *testing.T) {
	files := newTLSFiles(t)
	g := startGateway(t, files.on("", nil))
	conn, err := tls.Dial("tcp", g.Addr().String(), files.client(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := upgradeDeflate(t, g, conn, offerBrowser)
	if c.ext != answerPlain {
		t.Fatalf("answered %q over TLS", c.ext)
	}
	c.subscribe("tls", true)
	g.mustPublish("tls", bigJSON(5))
	if m, z := c.text(); !z || !strings.Contains(m, bigJSON(5)) {
		t.Fatalf("over TLS: compressed %v: %.80q", z, m)
	}
	c.send(`{"type":"publish","channel":"tls","data":`+bigJSON(6)+`,"id":1}`, true)
	c.expectPlain(`{"type":"published"`)
	if m, z := c.text(); !z || !strings.Contains(m, bigJSON(6)) {
		t.Fatalf("over TLS: compressed %v: %.80q", z, m)
	}
}

// TestDeflateIdleConnectionCostsNoMore: an idle connection that negotiated
// permessage-deflate holds no compression state, so its live heap is
// within 0.2 KiB of a plain connection's. The clients (raw sockets, the
// same for both kinds) live in this process too; the difference is the
// gateway's.
func TestDeflateIdleConnectionCostsNoMore(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 2,000 connections")
	}
	const n = 1000
	g := startGateway(t, func(c *Config) { c.Shards = 2 })
	open := func(offer ...string) uint64 {
		before := heapInUse()
		for range n {
			c := dialDeflate(t, g, offer...)
			c.subscribe("idle", false)
		}
		return heapInUse() - before
	}
	plain := open()
	zipped := open(offerBrowser)
	perPlain := float64(plain) / n
	perZipped := float64(zipped) / n
	t.Logf("live heap per idle connection (gateway and test client): %.0f bytes plain, %.0f bytes with permessage-deflate", perPlain, perZipped)
	if perZipped-perPlain > 200 {
		t.Errorf("a deflate connection holds %.0f bytes more than a plain one, want at most 200", perZipped-perPlain)
	}
	g.waitMetric(n, "shardgate_compressed_connections")
}

// TestDeflateHistoryRecoveryGoesPlain: with history on, live messages are
// compressed for a deflate subscriber and a recovery replays plain, in
// order, with offsets.
func TestDeflateHistoryRecoveryGoesPlain(t *testing.T) {
	g := startGateway(t, func(c *Config) { c.HistorySize = 10 })
	c := dialDeflate(t, g, offerBrowser)
	c.send(`{"type":"subscribe","channel":"h"}`, true)
	sub := c.expectPlain(`{"type":"subscribed","channel":"h"`)
	var ack struct {
		Epoch  string `json:"epoch"`
		Offset uint64 `json:"offset"`
	}
	if err := json.Unmarshal([]byte(sub), &ack); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		g.mustPublish("h", bigJSON(i))
		m, z := c.text()
		if !z || !strings.Contains(m, `"offset":`) || !strings.Contains(m, bigJSON(i)) {
			t.Fatalf("live message %d: compressed %v: %.80q", i, z, m)
		}
	}
	r := dialDeflate(t, g, offerBrowser)
	r.send(fmt.Sprintf(`{"type":"subscribe","channel":"h","recover":{"epoch":%q,"offset":%d}}`, ack.Epoch, ack.Offset), true)
	r.expectPlain(`{"type":"subscribed","channel":"h"`)
	for i := range 3 {
		if m, z := r.text(); z || !strings.Contains(m, bigJSON(i)) {
			t.Fatalf("replayed message %d: compressed %v: %.80q", i, z, m)
		}
	}
	g.mustPublish("h", bigJSON(3))
	if m, z := r.text(); !strings.Contains(m, bigJSON(3)) {
		t.Fatalf("after the replay: compressed %v: %.80q", z, m)
	}
}
