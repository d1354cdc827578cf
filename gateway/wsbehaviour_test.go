package gateway

// Tests of the SPEC's "WebSocket behaviour (RFC 6455)" section, over real
// loopback sockets against a running gateway. Broken input is built bit by
// bit with rawFrame; every bad case is watched by a witness, one healthy
// connection per shard that must keep receiving while its neighbour fails.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/shardgate/shardgate/internal/wstest"
)

// rawFrame describes one client frame bit by bit. Its zero value (plus an
// opcode) is a well-formed, final, masked frame; each field breaks one rule.
type rawFrame struct {
	op       ws.OpCode
	payload  []byte
	more     bool // FIN clear: more fragments follow
	rsv      byte // RSV1..RSV3 as the bits rsv1|rsv2|rsv3
	unmasked bool // MASK bit clear, payload sent in the clear
	// claim, when not zero, is the length the header declares instead of
	// len(payload), always in the 64-bit form: a frame that announces
	// more than it carries.
	claim uint64
}

// Reserved bits of rawFrame.rsv.
const (
	rsv1 = 0b100
	rsv2 = 0b010
	rsv3 = 0b001
)

// rawMaskKey is not zero, so a server that forgot to unmask would see
// garbage rather than the plain text.
var rawMaskKey = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// appendTo encodes f onto dst with the shortest length encoding.
func (f rawFrame) appendTo(dst []byte) []byte {
	b0 := byte(f.op)&0x0f | (f.rsv&0b111)<<4
	if !f.more {
		b0 |= 0x80
	}
	var b1 byte
	if !f.unmasked {
		b1 = 0x80
	}
	switch n := len(f.payload); {
	case f.claim != 0:
		dst = binary.BigEndian.AppendUint64(append(dst, b0, b1|127), f.claim)
	case n <= 125:
		dst = append(dst, b0, b1|byte(n))
	case n <= 0xffff:
		dst = binary.BigEndian.AppendUint16(append(dst, b0, b1|126), uint16(n))
	default:
		dst = binary.BigEndian.AppendUint64(append(dst, b0, b1|127), uint64(n))
	}
	if f.unmasked {
		return append(dst, f.payload...)
	}
	dst = append(dst, rawMaskKey[:]...)
	start := len(dst)
	dst = append(dst, f.payload...)
	ws.Cipher(dst[start:], rawMaskKey, 0)
	return dst
}

// wire concatenates frames into the bytes a client writes.
func wire(frames ...rawFrame) []byte {
	var b []byte
	for _, f := range frames {
		b = f.appendTo(b)
	}
	return b
}

// Frame shorthands: a final text frame, and the three kinds of fragment.
func textFrame(s string) rawFrame { return rawFrame{op: ws.OpText, payload: []byte(s)} }
func lastFrag(s string) rawFrame  { return rawFrame{op: ws.OpContinuation, payload: []byte(s)} }
func firstFrag(s string) rawFrame { f := textFrame(s); f.more = true; return f }
func midFrag(s string) rawFrame   { f := lastFrag(s); f.more = true; return f }

// witness is one well-behaved connection per shard, subscribed to channel
// "witness". check publishes a fresh message through the admin API and
// requires every witness connection to receive exactly that message next,
// so a misbehaving neighbour that disturbed its shard shows up at once.
//
// The witness outlives subtests: it reads and answers pings with the t it
// is given, never with the t it was dialled with.
type witness struct {
	g     *testGateway
	conns []*wstest.Client
	seq   int
}

// newWitness must run first on a fresh gateway: the acceptor puts each new
// connection on the least loaded shard, so n sequential dials on an empty
// n-shard gateway land one per shard (checked through the metrics).
func newWitness(t *testing.T, g *testGateway) *witness {
	t.Helper()
	w := &witness{g: g}
	for range g.cfg.Shards {
		c := wstest.Dial(t, g.wsURL(), nil)
		c.Subscribe("witness")
		w.conns = append(w.conns, c)
	}
	for i := range g.cfg.Shards {
		g.in(t).waitMetric(1, "shardgate_connections", "shard", strconv.Itoa(i))
	}
	return w
}

// check proves every witness connection still receives, in order.
func (w *witness) check(t testing.TB) {
	t.Helper()
	w.seq++
	data := fmt.Sprintf(`{"witness":%d}`, w.seq)
	w.g.in(t).mustPublish("witness", data)
	want := `{"type":"message","channel":"witness","data":` + data + `}`
	for i, c := range w.conns {
		if got := readText(t, c); string(got) != want {
			t.Fatalf("witness %d received %s, want %s", i, got, want)
		}
	}
}

// TestWebSocketProtocolErrors sends each kind of broken frame on a fresh
// connection and expects the documented close code, the TCP close after
// it, one more protocol_error disconnect, no subscription left behind, and
// an undisturbed witness on every shard.
func TestWebSocketProtocolErrors(t *testing.T) {
	const maxMsg = 1024
	g := startGateway(t, func(c *Config) { c.MaxMessageBytes = maxMsg })
	w := newWitness(t, g)

	sub := []byte(`{"type":"subscribe","channel":"news"}`)
	big := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name  string
		input []byte
		code  ws.StatusCode
	}{
		{"unmasked text frame", wire(rawFrame{op: ws.OpText, payload: sub, unmasked: true}), ws.StatusProtocolError},
		{"unmasked ping", wire(rawFrame{op: ws.OpPing, payload: []byte("p"), unmasked: true}), ws.StatusProtocolError},
		{"RSV1 set", wire(rawFrame{op: ws.OpText, payload: sub, rsv: rsv1}), ws.StatusProtocolError},
		{"RSV2 set", wire(rawFrame{op: ws.OpText, payload: sub, rsv: rsv2}), ws.StatusProtocolError},
		{"RSV3 set", wire(rawFrame{op: ws.OpText, payload: sub, rsv: rsv3}), ws.StatusProtocolError},
		{"RSV1 on a ping", wire(rawFrame{op: ws.OpPing, rsv: rsv1}), ws.StatusProtocolError},
		{"RSV1 on a continuation", wire(firstFrag("{"), rawFrame{op: ws.OpContinuation, payload: []byte("}"), rsv: rsv1}), ws.StatusProtocolError},
		{"opcode 3", wire(rawFrame{op: 0x3, payload: sub}), ws.StatusProtocolError},
		{"opcode 0xB", wire(rawFrame{op: 0xB}), ws.StatusProtocolError},
		{"opcode 0xF", wire(rawFrame{op: 0xF}), ws.StatusProtocolError},
		{"fragmented ping", wire(rawFrame{op: ws.OpPing, payload: []byte("p"), more: true}), ws.StatusProtocolError},
		{"fragmented ping inside a text message", wire(firstFrag("{"), rawFrame{op: ws.OpPing, more: true}), ws.StatusProtocolError},
		{"ping payload of 126 bytes", wire(rawFrame{op: ws.OpPing, payload: []byte(big(126))}), ws.StatusProtocolError},
		{"pong payload of 126 bytes", wire(rawFrame{op: ws.OpPong, payload: []byte(big(126))}), ws.StatusProtocolError},
		{"close payload of 126 bytes", wire(rawFrame{op: ws.OpClose, payload: append([]byte{0x03, 0xe8}, big(124)...)}), ws.StatusProtocolError},
		{"close payload of 1 byte", wire(rawFrame{op: ws.OpClose, payload: []byte{0x03}}), ws.StatusProtocolError},
		{"close code 999", wire(rawFrame{op: ws.OpClose, payload: ws.NewCloseFrameBody(999, "")}), ws.StatusProtocolError},
		{"close code 1005 on the wire", wire(rawFrame{op: ws.OpClose, payload: ws.NewCloseFrameBody(ws.StatusNoStatusRcvd, "")}), ws.StatusProtocolError},
		{"close reason not UTF-8", wire(rawFrame{op: ws.OpClose, payload: ws.NewCloseFrameBody(ws.StatusNormalClosure, "\xff")}), ws.StatusInvalidFramePayloadData},
		{"64-bit length with the top bit set", wire(rawFrame{op: ws.OpText, claim: 1 << 63}), ws.StatusProtocolError},
		{"continuation with no message", wire(lastFrag(string(sub))), ws.StatusProtocolError},
		{"text frame inside a fragmented message", wire(firstFrag("{"), textFrame(string(sub))), ws.StatusProtocolError},
		{"invalid UTF-8", wire(textFrame("{\"type\":\"\xff\xfe\"}")), ws.StatusInvalidFramePayloadData},
		{"UTF-8 surrogate", wire(textFrame("\"\xed\xa0\x80\"")), ws.StatusInvalidFramePayloadData},
		// Each fragment alone is a valid UTF-8 prefix; together they are not.
		{"invalid UTF-8 across fragments", wire(firstFrag("\"caf\xc3"), lastFrag("\x28\"")), ws.StatusInvalidFramePayloadData},
		{"invalid UTF-8 in the middle fragment", wire(firstFrag(`"a`), midFrag("\xc0\xaf"), lastFrag(`"`)), ws.StatusInvalidFramePayloadData},
		{"binary frame", wire(rawFrame{op: ws.OpBinary, payload: sub}), ws.StatusUnsupportedData},
		{"fragmented binary message", wire(rawFrame{op: ws.OpBinary, payload: sub, more: true}, lastFrag("")), ws.StatusUnsupportedData},
		{"one frame over max-message-bytes", wire(textFrame(big(maxMsg + 1))), ws.StatusMessageTooBig},
		{"64 KiB frame", wire(textFrame(big(64 << 10))), ws.StatusMessageTooBig},
		// Only the header is sent: the length alone must be refused.
		{"header declaring max+1 bytes", wire(rawFrame{op: ws.OpText, claim: maxMsg + 1}), ws.StatusMessageTooBig},
		{"header declaring 1 TiB", wire(rawFrame{op: ws.OpText, claim: 1 << 40}), ws.StatusMessageTooBig},
		{"fragment header declaring past max", wire(firstFrag(big(1000)), rawFrame{op: ws.OpContinuation, claim: 25}), ws.StatusMessageTooBig},
		{"three 400-byte fragments", wire(firstFrag(big(400)), midFrag(big(400)), lastFrag(big(400))), ws.StatusMessageTooBig},
		{"fragments one byte over", wire(firstFrag(big(maxMsg/2)), midFrag(big(maxMsg/2)), lastFrag("x")), ws.StatusMessageTooBig},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gt := g.in(t)
			before := gt.metricSum("shardgate_disconnects_total", "reason", "protocol_error")
			c := wstest.Dial(t, g.wsURL(), nil)
			// Share the witnesses' channel, so that leaving it on the
			// failure path is exercised next to them.
			c.Subscribe("witness")
			c.WriteRaw(tc.input)
			c.ExpectClose(tc.code)
			c.ExpectEOF()
			gt.waitMetric(before+1, "shardgate_disconnects_total", "reason", "protocol_error")
			gt.waitMetric(float64(len(w.conns)), "shardgate_subscriptions")
			w.check(t)
		})
	}
	g.waitMetric(float64(len(w.conns)), "shardgate_connections")
}

// TestWebSocketFraming covers what a correct client may do: fragment its
// messages (with control frames in between), split a UTF-8 rune across
// fragments, send exactly -max-message-bytes, ping, and close.
func TestWebSocketFraming(t *testing.T) {
	const maxMsg = 1024
	g := startGateway(t, func(c *Config) { c.MaxMessageBytes = maxMsg })
	w := newWitness(t, g)

	// publishOf returns a publish request of exactly n bytes.
	publishOf := func(n int) string {
		const head, tail = `{"type":"publish","channel":"big","id":1,"data":"`, `"}`
		return head + strings.Repeat("y", n-len(head)-len(tail)) + tail
	}

	t.Run("subscribe in three fragments with a ping between", func(t *testing.T) {
		c := wstest.Dial(t, g.wsURL(), nil)
		req := `{"type":"subscribe","channel":"frag","id":"f1"}`
		c.WriteRaw(wire(firstFrag(req[:10])))
		c.WriteRaw(wire(rawFrame{op: ws.OpPing, payload: []byte("mid-message")}))
		expectControl(t, c, ws.OpPong, "mid-message")
		c.WriteRaw(wire(midFrag(req[10:30])))
		c.WriteRaw(wire(lastFrag(req[30:])))
		expectJSON(t, c, `{"type":"subscribed","channel":"frag","id":"f1"}`)
		g.in(t).mustPublish("frag", `"whole"`)
		expectText(t, c, `{"type":"message","channel":"frag","data":"whole"}`)
		w.check(t)
	})
	t.Run("fragments in one write, pong between", func(t *testing.T) {
		c := wstest.Dial(t, g.wsURL(), nil)
		req := `{"type":"subscribe","channel":"frag2","id":2}`
		c.WriteRaw(wire(firstFrag(req[:5]), rawFrame{op: ws.OpPong, payload: []byte("unsolicited")},
			midFrag(""), rawFrame{op: ws.OpPing, payload: []byte("p")}, lastFrag(req[5:])))
		expectControl(t, c, ws.OpPong, "p")
		expectJSON(t, c, `{"type":"subscribed","channel":"frag2","id":2}`)
		w.check(t)
	})
	t.Run("rune split across fragments", func(t *testing.T) {
		c := wstest.Dial(t, g.wsURL(), nil)
		c.Subscribe("runes")
		req := `{"type":"publish","channel":"runes","data":"café ☕","id":3}`
		cut := strings.Index(req, "é") + 1  // inside é
		cut2 := strings.Index(req, "☕") + 2 // inside ☕
		c.WriteRaw(wire(firstFrag(req[:cut]), midFrag(req[cut:cut2]), lastFrag(req[cut2:])))
		expectUnordered(t, c,
			`{"type":"published","channel":"runes","id":3}`,
			`{"type":"message","channel":"runes","data":"café ☕"}`)
		w.check(t)
	})
	for _, tc := range []struct {
		name   string
		frames func(req string) []rawFrame
	}{
		{"exactly max-message-bytes in one frame", func(req string) []rawFrame { return []rawFrame{textFrame(req)} }},
		{"exactly max-message-bytes in three fragments", func(req string) []rawFrame {
			return []rawFrame{firstFrag(req[:400]), midFrag(req[400:800]), lastFrag(req[800:])}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := wstest.Dial(t, g.wsURL(), nil)
			req := publishOf(maxMsg)
			if len(req) != maxMsg {
				t.Fatalf("request is %d bytes", len(req))
			}
			c.WriteRaw(wire(tc.frames(req)...))
			expectJSON(t, c, `{"type":"published","channel":"big","id":1}`)
			w.check(t)
		})
	}
	for _, payload := range []string{"", "hello", strings.Repeat("z", 125), "\x00\xff binary is fine in a ping"} {
		t.Run(fmt.Sprintf("ping with %d-byte payload", len(payload)), func(t *testing.T) {
			c := wstest.Dial(t, g.wsURL(), nil)
			c.WriteRaw(wire(rawFrame{op: ws.OpPing, payload: []byte(payload)}))
			expectControl(t, c, ws.OpPong, payload)
			w.check(t)
		})
	}
	t.Run("close 1000 is echoed, then TCP closes", func(t *testing.T) {
		gt := g.in(t)
		// Earlier subtests' clients hang up as they end; once only the
		// witnesses are left, every such disconnect has been counted.
		gt.waitMetric(float64(len(w.conns)), "shardgate_connections")
		before := gt.metricSum("shardgate_disconnects_total", "reason", "client_close")
		c := wstest.Dial(t, g.wsURL(), nil)
		c.Subscribe("witness")
		c.WriteRaw(wire(rawFrame{op: ws.OpClose, payload: ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye")}))
		c.ExpectClose(ws.StatusNormalClosure)
		c.ExpectEOF()
		gt.waitMetric(before+1, "shardgate_disconnects_total", "reason", "client_close")
		gt.waitMetric(float64(len(w.conns)), "shardgate_subscriptions")
		w.check(t)
	})
	t.Run("close 4000 is echoed", func(t *testing.T) {
		c := wstest.Dial(t, g.wsURL(), nil)
		c.WriteRaw(wire(rawFrame{op: ws.OpClose, payload: ws.NewCloseFrameBody(4000, "app")}))
		c.ExpectClose(4000)
		c.ExpectEOF()
		w.check(t)
	})
	t.Run("close without status is answered", func(t *testing.T) {
		c := wstest.Dial(t, g.wsURL(), nil)
		c.WriteRaw(wire(rawFrame{op: ws.OpClose}))
		c.ExpectClose(ws.StatusNoStatusRcvd) // an empty close frame
		c.ExpectEOF()
		w.check(t)
	})
	t.Run("close between fragments", func(t *testing.T) {
		c := wstest.Dial(t, g.wsURL(), nil)
		c.WriteRaw(wire(firstFrag(`{"type":`), rawFrame{op: ws.OpClose, payload: ws.NewCloseFrameBody(ws.StatusGoingAway, "")}))
		c.ExpectClose(ws.StatusGoingAway)
		c.ExpectEOF()
		w.check(t)
	})
	// Dribbled input reaches the shard in many small reads, so frames
	// (and their headers) are kept partial between reads.
	t.Run("fragmented request written one byte at a time", func(t *testing.T) {
		c := wstest.Dial(t, g.wsURL(), nil)
		req := `{"type":"subscribe","channel":"dribble","id":"d"}`
		in := wire(firstFrag(req[:20]), rawFrame{op: ws.OpPing, payload: []byte("drip")}, lastFrag(req[20:]))
		for i := range in {
			c.WriteRaw(in[i : i+1])
		}
		expectControl(t, c, ws.OpPong, "drip")
		expectJSON(t, c, `{"type":"subscribed","channel":"dribble","id":"d"}`)
		w.check(t)
	})
	t.Run("broken frame written one byte at a time", func(t *testing.T) {
		c := wstest.Dial(t, g.wsURL(), nil)
		in := wire(textFrame(`{"type":"subscribe","channel":"ok"}`), firstFrag("\"caf\xc3"), lastFrag("\x28\""))
		for i := range in {
			c.WriteRaw(in[i : i+1])
		}
		expectJSON(t, c, `{"type":"subscribed","channel":"ok"}`)
		c.ExpectClose(ws.StatusInvalidFramePayloadData)
		c.ExpectEOF()
		w.check(t)
	})
	g.waitMetric(float64(len(w.conns)), "shardgate_connections")
}

// TestWebSocketLargeMessages: at the default -max-message-bytes (65536),
// messages of exactly the limit pass, in one frame or in fragments, even
// though they span many socket reads; one byte more closes with 1009.
func TestWebSocketLargeMessages(t *testing.T) {
	g := startGateway(t, nil)
	maxMsg := g.cfg.MaxMessageBytes
	w := newWitness(t, g)
	sub := wstest.Dial(t, g.wsURL(), nil)
	sub.Subscribe("large")

	// publishOf returns a publish request of exactly n bytes, its data a
	// string of n-len(envelope) bytes, and the message subscribers get.
	publishOf := func(n int) (req, msg string) {
		const head, tail = `{"type":"publish","channel":"large","data":"`, `"}`
		data := strings.Repeat("L", n-len(head)-len(tail))
		return head + data + tail, `{"type":"message","channel":"large","data":"` + data + `"}`
	}
	for _, tc := range []struct {
		name   string
		frames func(req string) []rawFrame
	}{
		{"one frame", func(req string) []rawFrame { return []rawFrame{textFrame(req)} }},
		{"seven fragments", func(req string) []rawFrame {
			step := len(req)/7 + 1
			var fs []rawFrame
			for i := 0; i < len(req); i += step {
				f := rawFrame{op: ws.OpContinuation, payload: []byte(req[i:min(i+step, len(req))]), more: i+step < len(req)}
				if i == 0 {
					f.op = ws.OpText
				}
				fs = append(fs, f)
			}
			return fs
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := wstest.Dial(t, g.wsURL(), nil)
			req, msg := publishOf(maxMsg)
			c.WriteRaw(wire(tc.frames(req)...))
			expectJSON(t, c, `{"type":"published","channel":"large"}`)
			expectText(t, sub, msg)
			w.check(t)
		})
	}
	t.Run("one byte over", func(t *testing.T) {
		c := wstest.Dial(t, g.wsURL(), nil)
		req, _ := publishOf(maxMsg + 1)
		c.WriteRaw(wire(textFrame(req)))
		c.ExpectClose(ws.StatusMessageTooBig)
		c.ExpectEOF()
		w.check(t)
	})
}

// TestWebSocketHeartbeat: with -ping-interval 100ms a connection that says
// nothing receives pings, and with -idle-timeout 300ms a connection that
// only answers them stays open through many idle timeouts.
func TestWebSocketHeartbeat(t *testing.T) {
	const idle = 300 * time.Millisecond
	t.Run("server pings", func(t *testing.T) {
		const interval = 100 * time.Millisecond
		g := startGateway(t, func(c *Config) {
			c.PingInterval = interval
			c.IdleTimeout = idle
		})
		c := wstest.Dial(t, g.wsURL(), nil)
		start := time.Now()
		h, _, err := c.ReadFrame(wstest.DefaultTimeout)
		if err != nil {
			t.Fatalf("waiting for a ping: %v", err)
		}
		if h.OpCode != ws.OpPing || !h.Fin {
			t.Fatalf("first frame: opcode %v fin %v, want a final ping", h.OpCode, h.Fin)
		}
		if d := time.Since(start); d > 20*interval {
			t.Fatalf("first ping after %v with -ping-interval %v", d, interval)
		}
		c.Close()
	})

	t.Run("answering pings keeps the connection open", func(t *testing.T) {
		// Pings at a sixth of the idle timeout: answers then arrive at
		// most ~75 ms apart (interval plus one clock tick), leaving a
		// margin for scheduler stalls of a loaded -race run. A third
		// (100 ms) left too little: one run in ten failed on a busy
		// 2-CPU machine, the test process starved for ~200 ms.
		const interval = 50 * time.Millisecond
		gt := startGateway(t, func(c *Config) {
			c.PingInterval = interval
			c.IdleTimeout = idle
		})
		idleBefore := gt.metricSum("shardgate_disconnects_total", "reason", "idle_timeout")
		c := wstest.Dial(t, gt.wsURL(), nil)
		pings := 0
		start := time.Now()
		var timeline []string // ping arrivals, for a failure report
		// Hold the connection for five idle timeouts, answering each ping
		// (the read deadline bounds the wait; this is the behaviour under
		// test, not synchronisation).
		for end := start.Add(5 * idle); time.Now().Before(end); {
			h, p, err := c.ReadFrame(time.Until(end))
			if err != nil {
				if isTimeout(err) {
					break
				}
				t.Fatalf("read after %d pings: %v", pings, err)
			}
			timeline = append(timeline, fmt.Sprintf("%v %v", time.Since(start).Round(time.Millisecond), h.OpCode))
			if h.OpCode != ws.OpPing {
				t.Fatalf("unexpected opcode %v payload %q after %d pings; frames at %v", h.OpCode, p, pings, timeline)
			}
			pings++
			c.WriteFrame(ws.MaskFrame(ws.NewPongFrame(p)))
		}
		if pings < 5 {
			t.Fatalf("%d pings in %v with -ping-interval %v", pings, 5*idle, interval)
		}
		c.Subscribe("alive")
		gt.mustPublish("alive", `1`)
		if m := c.Expect("message"); string(m.Data) != "1" {
			t.Fatalf("got %+v", m)
		}
		if got := gt.metricSum("shardgate_disconnects_total", "reason", "idle_timeout"); got != idleBefore {
			t.Fatalf("idle_timeout disconnects went from %v to %v", idleBefore, got)
		}
		c.Close()
	})
}

// TestWebSocketIdleTimeout: a client that never answers nor sends is
// closed with 1001 "idle timeout" once -idle-timeout passes, and counted.
func TestWebSocketIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	for _, interval := range []time.Duration{100 * time.Millisecond, time.Hour} {
		t.Run(fmt.Sprintf("ping-interval %v", interval), func(t *testing.T) {
			g := startGateway(t, func(c *Config) {
				c.PingInterval = interval
				c.IdleTimeout = idle
			})
			start := time.Now()
			c := wstest.Dial(t, g.wsURL(), nil)
			// ExpectClose skips the pings without answering them.
			if reason := c.ExpectClose(ws.StatusGoingAway); reason != "idle timeout" {
				t.Fatalf("close reason %q, want %q", reason, "idle timeout")
			}
			if d := time.Since(start); d < idle {
				t.Fatalf("closed after %v, before -idle-timeout %v", d, idle)
			}
			c.ExpectEOF()
			g.waitMetric(1, "shardgate_disconnects_total", "reason", "idle_timeout")
			g.waitMetric(0, "shardgate_connections")
		})
	}
}

// expectControl reads the next frame and requires a control frame op with
// exactly payload.
func expectControl(t testing.TB, c *wstest.Client, op ws.OpCode, payload string) {
	t.Helper()
	h, p, err := c.ReadFrame(wstest.DefaultTimeout)
	if err != nil {
		t.Fatalf("waiting for opcode %v: %v", op, err)
	}
	if h.OpCode != op || !h.Fin || !bytes.Equal(p, []byte(payload)) {
		t.Fatalf("got opcode %v fin %v payload %q, want opcode %v payload %q", h.OpCode, h.Fin, p, op, payload)
	}
}
