package client

import (
	"bufio"
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/gorilla/websocket"
)

func TestParseExtensions(t *testing.T) {
	cases := []struct {
		name   string
		in     []string // header values
		want   Deflate
		ok     bool
		errSub string
	}{
		{name: "declined", in: nil},
		{name: "gorilla and Centrifugo", in: []string{"permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
			want: Deflate{ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 15}, ok: true},
		{name: "context takeover", in: []string{"permessage-deflate"}, want: Deflate{ServerMaxWindowBits: 15}, ok: true},
		{name: "windows, case, quotes, spaces", in: []string{`Permessage-Deflate ;Server_Max_Window_Bits="10"; client_max_window_bits = 12`},
			want: Deflate{ServerMaxWindowBits: 10, ClientMaxWindowBits: 12}, ok: true},
		{name: "empty list items", in: []string{" , permessage-deflate,"}, want: Deflate{ServerMaxWindowBits: 15}, ok: true},
		{name: "other extension", in: []string{"x-webkit-deflate-frame"}, errSub: "not offered"},
		{name: "twice in one line", in: []string{"permessage-deflate, permessage-deflate"}, errSub: "twice"},
		{name: "twice in two lines", in: []string{"permessage-deflate", "permessage-deflate"}, errSub: "twice"},
		{name: "unknown parameter", in: []string{"permessage-deflate; level=9"}, errSub: "unknown"},
		{name: "parameter twice", in: []string{"permessage-deflate; server_no_context_takeover; server_no_context_takeover"}, errSub: "twice"},
		{name: "value on a flag", in: []string{"permessage-deflate; server_no_context_takeover=1"}, errSub: "no value"},
		{name: "window too small", in: []string{"permessage-deflate; server_max_window_bits=7"}, errSub: "8 to 15"},
		{name: "window too large", in: []string{"permessage-deflate; client_max_window_bits=16"}, errSub: "8 to 15"},
		{name: "window without value", in: []string{"permessage-deflate; client_max_window_bits"}, errSub: "8 to 15"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var in [][]byte
			for _, v := range tc.in {
				in = append(in, []byte(v))
			}
			d, ok, err := parseExtensions(in)
			if tc.errSub != "" {
				var he *HandshakeError
				if !errors.As(err, &he) || !strings.Contains(err.Error(), tc.errSub) {
					t.Fatalf("err = %v, want a HandshakeError mentioning %q", err, tc.errSub)
				}
				return
			}
			if err != nil || ok != tc.ok || d != tc.want {
				t.Fatalf("got %+v ok=%v err=%v, want %+v ok=%v", d, ok, err, tc.want, tc.ok)
			}
		})
	}
	if got := (Deflate{ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 15}).String(); got != "permessage-deflate; server_no_context_takeover; client_no_context_takeover" {
		t.Fatalf("String() = %q", got)
	}
}

// The extension lives in Conn's former padding: connections that do not
// use it cost what they cost before it existed.
func TestConnSize(t *testing.T) {
	if size := unsafe.Sizeof(Conn{}); size > 160 {
		t.Fatalf("Conn is %d bytes, was 160 before permessage-deflate", size)
	}
}

// countingListener counts the bytes the server writes on its connections.
type countingListener struct {
	net.Listener
	written *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, l.written}, nil
}

type countingConn struct {
	net.Conn
	written *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	return n, err
}

// startDeflateServer is a gorilla/websocket server with EnableCompression
// (when compress) that answers a text message "N SIZE" with N messages of
// SIZE bytes of JSON-like text, compressed when negotiated, and counts
// the bytes it writes.
func startDeflateServer(t *testing.T, compress bool) (addr netip.AddrPort, written *atomic.Int64, offers *atomic.Value) {
	t.Helper()
	written, offers = new(atomic.Int64), new(atomic.Value)
	var wg sync.WaitGroup
	up := websocket.Upgrader{EnableCompression: compress, WriteBufferSize: 256}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wg.Add(1)
		defer wg.Done()
		offers.Store(r.Header.Get("Sec-WebSocket-Extensions"))
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				return
			}
			var n, size int
			if _, err := fmt.Sscan(string(msg), &n, &size); err != nil {
				return
			}
			for i := range n {
				if err := ws.WriteMessage(websocket.TextMessage, jsonish(i, size)); err != nil {
					return
				}
			}
		}
	}))
	srv.Listener = countingListener{srv.Listener, written}
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		wg.Wait()
	})
	return netip.MustParseAddrPort(srv.Listener.Addr().String()), written, offers
}

// jsonish is message i of a test: size bytes of text that compresses
// about as well as JSON does.
func jsonish(i, size int) []byte {
	var b bytes.Buffer
	for k := 0; b.Len() < size; k++ {
		fmt.Fprintf(&b, `{"id":%d,"user":"user-%d","price":%d.%02d},`, i*1000+k, (i*7+k*13)%97, (i*31+k*17)%1000, (k*11)%100)
	}
	return b.Bytes()[:size]
}

// dialOpen dials one connection on l and returns it once open.
func dialOpen(t *testing.T, l *Loop, rec *recorder) *Conn {
	t.Helper()
	c := dialOne(t, l, DialOptions{})
	rec.next(t, "open")
	return c
}

func TestDeflateNegotiatedWithGorilla(t *testing.T) {
	for _, compress := range []bool{true, false} {
		t.Run(fmt.Sprintf("server compression %v", compress), func(t *testing.T) {
			addr, written, offers := startDeflateServer(t, compress)
			rec := newRecorder()
			l := startLoop(t, Options{Addr: addr, Path: "/ws", Compress: true}, rec)
			conn := dialOpen(t, l, rec)
			if got := offers.Load(); got != DeflateOffer {
				t.Fatalf("offered %q, want %q", got, DeflateOffer)
			}
			onLoop(t, l, func() {
				if conn.Compressed() != compress {
					t.Errorf("Compressed() = %v, want %v", conn.Compressed(), compress)
				}
			})
			// Sizes around gorilla's 256-byte write buffer: compressed
			// messages of several frames (RSV1 on the first only), and
			// small ones that compress to one frame.
			sizes := []int{1, 100, 1024, 5000, 70000}
			for _, size := range sizes {
				const n = 5
				onLoop(t, l, func() { _ = conn.Send(fmt.Appendf(nil, "%d %d", n, size)) })
				for i := range n {
					ev := rec.next(t, "msg")
					if want := jsonish(i, size); ev.msg != string(want) {
						t.Fatalf("size %d message %d: got %d bytes %.40q..., want %.40q...", size, i, len(ev.msg), ev.msg, want)
					}
				}
			}
			var got Counters
			var answer *Deflate
			onLoop(t, l, func() { got, answer = l.Counters(), l.DeflateAnswer() })
			total := int64(0)
			for _, size := range sizes {
				total += 5 * int64(size)
			}
			if got.Messages != 5*int64(len(sizes)) || got.MessageBytes != total {
				t.Fatalf("counters %+v: want %d messages of %d bytes", got, 5*len(sizes), total)
			}
			// Every byte the server wrote was read and counted: the
			// 101 answer and every frame, headers included.
			if w := written.Load(); got.BytesRead != w {
				t.Fatalf("read %d bytes, the server wrote %d", got.BytesRead, w)
			}
			if compress {
				if got.Deflate != 1 || got.Plain != 0 || got.Compressed != got.Messages {
					t.Fatalf("counters %+v: want one deflate connection, every message compressed", got)
				}
				if answer == nil || !answer.ServerNoContextTakeover || !answer.ClientNoContextTakeover {
					t.Fatalf("answer %+v, want gorilla's no-context-takeover pair", answer)
				}
				if got.BytesRead*2 > got.MessageBytes {
					t.Fatalf("%d bytes on the wire for %d bytes of messages: not compressed", got.BytesRead, got.MessageBytes)
				}
			} else if got.Deflate != 0 || got.Plain != 1 || got.Compressed != 0 || answer != nil {
				t.Fatalf("counters %+v, answer %+v: want a declined offer", got, answer)
			}
		})
	}
}

// takeoverServer accepts one WebSocket connection by hand and answers the
// offer with answer (no server_no_context_takeover: it keeps one deflate
// stream across messages, which gorilla cannot), then sends each of msgs:
// compressed (RSV1) with the shared context, or plain when it starts with
// "plain:". Frames are split into pieces of split bytes (0: one frame).
func takeoverServer(t *testing.T, answer string, split int, msgs []string) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var conn net.Conn
	var mu sync.Mutex
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		mu.Lock()
		conn = c
		mu.Unlock()
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		key := [24]byte([]byte(req.Header.Get("Sec-WebSocket-Key")))
		accept := acceptFor(&key)
		fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Extensions: %s\r\n\r\n", accept[:], answer)
		var stream bytes.Buffer
		fw, _ := flate.NewWriter(&stream, flate.BestSpeed)
		for _, m := range msgs {
			payload, first := []byte(m), byte(0x01)
			if plain, ok := strings.CutPrefix(m, "plain:"); ok {
				payload = []byte(plain)
			} else {
				stream.Reset()
				fw.Write(payload)
				fw.Flush()
				payload = bytes.TrimSuffix(stream.Bytes(), []byte{0, 0, 0xff, 0xff})
				first |= rsv1Bit
			}
			var out []byte
			for len(payload) > 0 || first != 0 {
				n := len(payload)
				if split > 0 && n > split {
					n = split
				}
				b0 := first
				if n == len(payload) {
					b0 |= finBit
				}
				out = AppendFrame(out, b0, payload[:n], false, 0)
				payload, first = payload[n:], 0
			}
			if _, err := c.Write(out); err != nil {
				return
			}
		}
		buf := make([]byte, 512)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		if conn != nil {
			conn.Close()
		}
		mu.Unlock()
		<-done
	})
	return netip.MustParseAddrPort(ln.Addr().String())
}

// With server context takeover a message refers back to earlier ones
// (RFC 7692 §7.2.2): the connection keeps a window, and plain messages
// in between do not enter it.
func TestDeflateContextTakeover(t *testing.T) {
	msgs := []string{
		strings.Repeat(`{"channel":"prices","symbol":"ACME","bid":101.25,"ask":101.5}`, 20),
		strings.Repeat(`{"channel":"prices","symbol":"ACME","bid":101.25,"ask":101.5}`, 20), // all back-references
		"plain:{\"not\":\"compressed\"}",
		string(jsonish(7, 40000)), // longer than the window
		string(jsonish(7, 40000)),
		"tiny",
	}
	for _, split := range []int{0, 7} {
		t.Run(fmt.Sprintf("split %d", split), func(t *testing.T) {
			addr := takeoverServer(t, "permessage-deflate; client_no_context_takeover", split, msgs)
			rec := newRecorder()
			// The hand-made server never answers a close: do not wait long.
			l := startLoop(t, Options{Addr: addr, Path: "/ws", Compress: true, CloseTimeout: 100 * time.Millisecond}, rec)
			dialOpen(t, l, rec)
			for i, want := range msgs {
				want = strings.TrimPrefix(want, "plain:")
				if ev := rec.next(t, "msg"); ev.msg != want {
					t.Fatalf("message %d: got %d bytes %.40q..., want %d bytes %.40q...", i, len(ev.msg), ev.msg, len(want), want)
				}
			}
			onLoop(t, l, func() {
				got := l.Counters()
				if got.Compressed != int64(len(msgs)-1) {
					t.Errorf("counters %+v: want %d compressed", got, len(msgs)-1)
				}
				for c, w := range l.inf.windows {
					if len(w) != 1<<15 || !c.Compressed() {
						t.Errorf("window of %d bytes, want 32 KiB", len(w))
					}
				}
				if len(l.inf.windows) != 1 {
					t.Errorf("%d windows kept, want 1", len(l.inf.windows))
				}
				l.Shutdown(waitTimeout, func() {})
			})
			rec.next(t, "close")
			onLoop(t, l, func() {
				if len(l.inf.windows) != 0 {
					t.Errorf("%d windows kept after the close", len(l.inf.windows))
				}
			})
		})
	}
}

func TestDeflateWindowTrim(t *testing.T) {
	var f inflater
	c := &Conn{ext: extDeflate | extTakeover, windowBits: 8}
	f.keepWindow(c, bytes.Repeat([]byte("a"), 200))
	f.keepWindow(c, bytes.Repeat([]byte("b"), 100))
	if w := f.windows[c]; string(w) != strings.Repeat("a", 156)+strings.Repeat("b", 100) {
		t.Fatalf("window %q", w)
	}
	f.keepWindow(c, bytes.Repeat([]byte("c"), 1000))
	if w := f.windows[c]; string(w) != strings.Repeat("c", 256) {
		t.Fatalf("window %q", w)
	}
	f.forget(c)
	if len(f.windows) != 0 {
		t.Fatal("forget kept the window")
	}
}

// Compressed messages a client must refuse: one that does not inflate,
// one that inflates past the limit (a decompression bomb), and RSV1 on a
// connection that did not negotiate the extension.
func TestDeflateRefusals(t *testing.T) {
	cases := []struct {
		name     string
		answer   string
		compress bool
		msg      string
		reason   string
	}{
		{name: "bomb", answer: "permessage-deflate; server_no_context_takeover", compress: true, msg: strings.Repeat("0", 2<<20), reason: "protocol_error"},
		{name: "not negotiated", answer: "permessage-deflate", compress: false, msg: "hello", reason: "bad_handshake"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := takeoverServer(t, tc.answer, 0, []string{tc.msg})
			rec := newRecorder()
			l := startLoop(t, Options{Addr: addr, Path: "/ws", Compress: tc.compress, MaxMessageBytes: 1 << 20}, rec)
			onLoop(t, l, func() {
				if _, err := l.Dial(netip.Addr{}); err != nil {
					t.Errorf("dial: %v", err)
				}
			})
			if ev := rec.next(t, "close"); Reason(ev.err) != tc.reason {
				t.Fatalf("closed with %v (%s), want %s", ev.err, Reason(ev.err), tc.reason)
			}
		})
	}
	t.Run("garbage", func(t *testing.T) {
		// A frame with RSV1 whose payload is no deflate data.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		served := make(chan struct{})
		go func() {
			defer close(served)
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			req, err := http.ReadRequest(bufio.NewReader(c))
			if err != nil {
				return
			}
			key := [24]byte([]byte(req.Header.Get("Sec-WebSocket-Key")))
			accept := acceptFor(&key)
			fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
				"Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\r\n", accept[:])
			c.Write(AppendFrame(nil, finBit|rsv1Bit|byte(OpText), []byte{0xff, 0xff, 0xff, 0xff, 0xff}, false, 0))
			buf := make([]byte, 64)
			for {
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
		}()
		rec := newRecorder()
		l := startLoop(t, Options{Addr: netip.MustParseAddrPort(ln.Addr().String()), Path: "/ws", Compress: true}, rec)
		onLoop(t, l, func() {
			if _, err := l.Dial(netip.Addr{}); err != nil {
				t.Errorf("dial: %v", err)
			}
		})
		if ev := rec.next(t, "close"); Reason(ev.err) != "protocol_error" {
			t.Fatalf("closed with %v, want protocol_error", ev.err)
		}
		ln.Close()
		<-served
	})
}

// Two connections get the same messages, compressed by gorilla per
// connection: each distinct message is inflated once, and both
// connections see it whole.
func TestDeflateRepeatsInflatedOnce(t *testing.T) {
	addr, _, _ := startDeflateServer(t, true)
	rec := newRecorder()
	l := startLoop(t, Options{Addr: addr, Path: "/ws", Compress: true}, rec)
	a, b := dialOpen(t, l, rec), dialOpen(t, l, rec)
	const n = 3 * memoEntries // more than it remembers
	for _, c := range []*Conn{a, b} {
		onLoop(t, l, func() { _ = c.Send(fmt.Appendf(nil, "%d 2000", n)) })
		for i := range n {
			if ev := rec.next(t, "msg"); ev.msg != string(jsonish(i, 2000)) {
				t.Fatalf("message %d: got %.40q...", i, ev.msg)
			}
		}
	}
	// The second connection's messages arrive after all of the first's,
	// by which time each has left the memory: every one inflated again.
	var before Counters
	onLoop(t, l, func() { before = l.Counters() })
	if before.Compressed != 2*n || before.Inflated != 2*n {
		t.Errorf("counters %+v: want %d compressed and inflated", before, 2*n)
	}
	// Interleaved, as a broadcast arrives: one inflation per message.
	onLoop(t, l, func() {
		_ = a.Send([]byte("4 3000"))
		_ = b.Send([]byte("4 3000"))
	})
	for range 8 {
		if ev := rec.next(t, "msg"); len(ev.msg) != 3000 {
			t.Fatalf("got %d bytes", len(ev.msg))
		}
	}
	onLoop(t, l, func() {
		if got := l.Counters(); got.Compressed != before.Compressed+8 || got.Inflated != before.Inflated+4 {
			t.Errorf("counters %+v after %+v: want 8 more compressed, 4 more inflated", got, before)
		}
	})
}

// BenchmarkInflate: one 1 KiB JSON message, inflated anew each time
// (distinct messages) or remembered (the same broadcast on many
// connections of a loop).
func BenchmarkInflate(b *testing.B) {
	var msgs [][]byte
	for i := range 2 * memoEntries {
		var buf bytes.Buffer
		w, _ := flate.NewWriter(&buf, flate.BestSpeed)
		w.Write(jsonish(i, 1024))
		w.Flush()
		msgs = append(msgs, bytes.TrimSuffix(buf.Bytes(), []byte{0, 0, 0xff, 0xff}))
	}
	c := &Conn{ext: extDeflate}
	for _, bc := range []struct {
		name     string
		distinct int
	}{{"distinct", len(msgs)}, {"repeated", 1}} {
		b.Run(bc.name, func(b *testing.B) {
			var f inflater
			b.ReportAllocs()
			b.SetBytes(1024)
			i := 0
			for b.Loop() {
				if _, err := f.inflate(c, msgs[i%bc.distinct], 1<<20); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
