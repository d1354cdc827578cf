package client

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"
)

// DialOptions.Addr sends one connection to another server than the
// loop's (a cluster's other node), with Host naming it (or, without Host,
// its address); the loop's own connections keep the loop's Host.
func TestDialOptionsAddrAndHost(t *testing.T) {
	other := startServer(t)
	rec := newRecorder()
	l := startLoop(t, Options{Addr: netip.MustParseAddrPort("127.0.0.1:1"), Host: "loop.example", Path: "/ws"}, rec)
	c := dialOne(t, l, DialOptions{Addr: other.addr(t)})
	if ev := rec.next(t, "open"); ev.tag != c.Tag {
		t.Fatalf("open: %+v", ev)
	}
	onLoop(t, l, func() { _ = c.Send([]byte("hello")) })
	if ev := rec.next(t, "msg"); ev.msg != "hello" {
		t.Fatalf("echo: %+v", ev)
	}

	hosts := make(chan string, 3)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(waitTimeout))
			var req []byte
			buf := make([]byte, 1024)
			for !bytes.Contains(req, []byte("\r\n\r\n")) {
				n, err := c.Read(buf)
				if err != nil {
					break
				}
				req = append(req, buf[:n]...)
			}
			_, line, _ := bytes.Cut(req, []byte("\r\nHost: "))
			line, _, _ = bytes.Cut(line, []byte("\r\n"))
			hosts <- string(line)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	raw := netip.MustParseAddrPort(ln.Addr().String())
	for _, o := range []DialOptions{{Addr: raw, Host: "node2.example:8082"}, {Addr: raw}, {Addr: raw, Host: "node2.example:8082"}} {
		dialOne(t, l, o)
		want := o.Host
		if want == "" {
			want = raw.String()
		}
		if got := <-hosts; got != want {
			t.Errorf("Host %q, want %q", got, want)
		}
		rec.next(t, "close")
	}
	onLoop(t, l, func() {
		if len(l.reqs) != 3 { // other's address, node2.example, raw's address
			t.Errorf("%d request templates for 3 hosts", len(l.reqs))
		}
	})
}
