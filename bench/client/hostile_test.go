package client

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// dialOne dials one connection with o on l and returns it.
func dialOne(t *testing.T, l *Loop, o DialOptions) *Conn {
	t.Helper()
	var c *Conn
	onLoop(t, l, func() {
		var err error
		if c, err = l.DialWith(netip.Addr{}, o); err != nil {
			t.Errorf("dial: %v", err)
		}
	})
	if c == nil {
		t.FailNow()
	}
	return c
}

// waitInput polls until c's socket holds unread input.
func waitInput(t *testing.T, l *Loop, c *Conn) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		var n int
		onLoop(t, l, func() { n, _ = unix.IoctlGetInt(c.fd, unix.SIOCINQ) })
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no input arrived")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPauseLeavesInputInTheKernel(t *testing.T) {
	srv := startServer(t)
	rec := newRecorder()
	l := startLoop(t, Options{Addr: srv.addr(t), Path: "/ws"}, rec)
	c := dialOne(t, l, DialOptions{RecvBuffer: 4096})
	rec.next(t, "open")
	onLoop(t, l, func() {
		var got int
		got, _ = unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
		if got > 2*4096 {
			t.Errorf("SO_RCVBUF is %d, want at most %d", got, 2*4096)
		}
		c.PauseReading()
		if err := c.Send([]byte("while paused")); err != nil {
			t.Errorf("send: %v", err)
		}
	})
	waitInput(t, l, c)
	select {
	case ev := <-rec.events:
		t.Fatalf("event %+v while paused", ev)
	default:
	}
	onLoop(t, l, c.ResumeReading)
	if ev := rec.next(t, "msg"); ev.msg != "while paused" {
		t.Fatalf("after resume got %q", ev.msg)
	}
}

// rawServer upgrades one connection by hand and hands the test the bytes
// that follow the request, so that what SendRaw wrote can be compared.
func rawServer(t *testing.T, want int) (netip.AddrPort, <-chan []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(waitTimeout))
		req := make([]byte, 0, 1024)
		buf := make([]byte, 1024)
		for !bytes.Contains(req, []byte("\r\n\r\n")) {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			req = append(req, buf[:n]...)
		}
		_, keyLine, _ := bytes.Cut(req, []byte("Sec-WebSocket-Key: "))
		var key [24]byte
		copy(key[:], keyLine)
		accept := acceptFor(&key)
		if _, err := c.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + string(accept[:]) + "\r\n\r\n")); err != nil {
			return
		}
		_, rest, _ := bytes.Cut(req, []byte("\r\n\r\n"))
		rest = append([]byte(nil), rest...)
		for len(rest) < want {
			n, err := c.Read(buf)
			if err != nil {
				break
			}
			rest = append(rest, buf[:n]...)
		}
		got <- rest
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return netip.MustParseAddrPort(ln.Addr().String()), got
}

func TestSendRawWritesBytesAsGiven(t *testing.T) {
	frame := AppendFrame(nil, finBit|byte(OpText), []byte("unmasked"), false, 0)
	addr, got := rawServer(t, len(frame))
	rec := newRecorder()
	l := startLoop(t, Options{Addr: addr, Path: "/ws"}, rec)
	c := dialOne(t, l, DialOptions{})
	rec.next(t, "open")
	onLoop(t, l, func() {
		if err := c.SendRaw(frame); err != nil {
			t.Errorf("SendRaw: %v", err)
		}
	})
	select {
	case b := <-got:
		if !bytes.Equal(b, frame) {
			t.Fatalf("server read % x, want % x", b, frame)
		}
	case <-time.After(waitTimeout):
		t.Fatal("server read nothing")
	}
	rec.next(t, "close")
	onLoop(t, l, func() {
		if err := c.SendRaw([]byte{0}); !errors.Is(err, ErrNotOpen) {
			t.Errorf("SendRaw after close: %v, want ErrNotOpen", err)
		}
	})
}

func TestAbortReportsAtOnce(t *testing.T) {
	srv := startServer(t)
	for _, reset := range []bool{true, false} {
		rec := newRecorder()
		l := startLoop(t, Options{Addr: srv.addr(t), Path: "/ws"}, rec)
		c := dialOne(t, l, DialOptions{})
		rec.next(t, "open")
		onLoop(t, l, func() {
			c.Abort(reset)
			select {
			case ev := <-rec.events:
				if ev.kind != "close" || !errors.Is(ev.err, ErrAborted) || Reason(ev.err) != "aborted" {
					t.Errorf("reset %v: event %+v, want close with ErrAborted", reset, ev)
				}
			default:
				t.Errorf("reset %v: no OnClose before Abort returned", reset)
			}
			if l.Live() != 0 {
				t.Errorf("reset %v: %d connections live after Abort", reset, l.Live())
			}
		})
	}
}

// TestStalledRequest sends half an upgrade request to raw listeners: one
// that hangs up once it has read it, one that never answers.
func TestStalledRequest(t *testing.T) {
	listen := func(hangUp bool) (netip.AddrPort, <-chan []byte) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan []byte, 1)
		done := make(chan struct{})
		var held net.Conn
		go func() {
			defer close(done)
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = c
			buf := make([]byte, 256)
			c.SetReadDeadline(time.Now().Add(waitTimeout))
			n, _ := io.ReadAtLeast(c, buf, len("GET /ws HTTP/1.1\r\n"))
			got <- buf[:n]
			if hangUp {
				c.Close()
			}
		}()
		t.Cleanup(func() {
			ln.Close()
			<-done
			if held != nil {
				held.Close()
			}
		})
		return netip.MustParseAddrPort(ln.Addr().String()), got
	}
	partial := []byte("GET /ws HTTP/1.1\r\nHost: x\r\n")
	cases := []struct {
		name   string
		hangUp bool
		check  func(err error) bool
	}{
		{"server hangs up", true, func(err error) bool {
			var he *HandshakeError
			return errors.As(err, &he) && he.Status == 0
		}},
		{"server waits", false, func(err error) bool { return errors.Is(err, ErrHandshakeTimeout) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr, got := listen(tc.hangUp)
			rec := newRecorder()
			l := startLoop(t, Options{Addr: addr}, rec)
			dialOne(t, l, DialOptions{Request: partial, Timeout: 300 * time.Millisecond})
			select {
			case b := <-got:
				if !bytes.Equal(b, partial) {
					t.Fatalf("server read %q, want %q", b, partial)
				}
			case <-time.After(waitTimeout):
				t.Fatal("server read nothing")
			}
			if ev := rec.next(t, "close"); !tc.check(ev.err) {
				t.Fatalf("closed with %v", ev.err)
			}
		})
	}
}

func TestAppendFrame(t *testing.T) {
	cases := []struct {
		name    string
		first   byte
		payload []byte
		masked  bool
		want    []byte
	}{
		{"unmasked text", 0x81, []byte("hi"), false, []byte{0x81, 0x02, 'h', 'i'}},
		{"rsv2, zero key", 0xa1, []byte("hi"), true, []byte{0xa1, 0x82, 0, 0, 0, 0, 'h', 'i'}},
		{"fragmented ping", 0x09, nil, true, []byte{0x09, 0x80, 0, 0, 0, 0}},
		{"16-bit length", 0x82, make([]byte, 200), false, append([]byte{0x82, 126, 0, 200}, make([]byte, 200)...)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := AppendFrame(nil, tc.first, tc.payload, tc.masked, 0); !bytes.Equal(got, tc.want) {
				t.Fatalf("got % x, want % x", got, tc.want)
			}
		})
	}
	// With a key, the payload is masked as Send masks it.
	got := AppendFrame(nil, 0x81, []byte("hello"), true, 0x01020304)
	if want := appendMaskedFrame(nil, OpText, []byte("hello"), 0x01020304); !bytes.Equal(got, want) {
		t.Fatalf("masked: got % x, want % x", got, want)
	}
}
