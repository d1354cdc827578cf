package client

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

// tlsConfig trusts srv's certificate and checks it for serverName.
func tlsConfig(t *testing.T, srv *testServer, serverName string) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return &tls.Config{RootCAs: pool, ServerName: serverName, NextProtos: []string{"http/1.1"}}
}

func TestTLSEchoFragmentsPingsAndShutdown(t *testing.T) {
	srv := startTLSServer(t)
	rec := newRecorder()
	conns := map[int]*Conn{}
	rec.onOpen = func(c *Conn) {
		conns[c.Tag] = c
		if err := c.Send(fmt.Appendf(nil, "hello %d", c.Tag)); err != nil {
			panic(err)
		}
	}
	l := startLoop(t, Options{Addr: srv.addr(t), Path: "/ws", TLS: tlsConfig(t, srv, "example.com")}, rec)
	const n = 20
	onLoop(t, l, func() {
		for i := range n {
			c, err := l.Dial(netip.MustParseAddr("127.0.0.2"))
			if err != nil {
				t.Errorf("dial: %v", err)
				return
			}
			c.Tag = i
		}
	})
	for range n {
		if ev := rec.next(t, "msg"); ev.msg != fmt.Sprintf("hello %d", ev.tag) {
			t.Fatalf("conn %d got %q", ev.tag, ev.msg)
		}
	}
	onLoop(t, l, func() {
		st := l.TLSState()
		if st == nil || !st.HandshakeComplete || st.Version != tls.VersionTLS13 || st.NegotiatedProtocol != "http/1.1" {
			t.Errorf("TLS state %+v, want a completed TLS 1.3 handshake with ALPN http/1.1", st)
		}
	})
	send := func(tag int, msg []byte) {
		onLoop(t, l, func() {
			if err := conns[tag].Send(msg); err != nil {
				t.Errorf("send: %v", err)
			}
		})
	}
	send(0, []byte("frag"))
	if ev := rec.next(t, "msg"); ev.msg != strings.Repeat("0123456789", 10) {
		t.Fatalf("reassembled %q", ev.msg)
	}
	send(0, []byte("ping"))
	if ev := rec.next(t, "msg"); ev.msg != "pong:p1" {
		t.Fatalf("after ping got %q", ev.msg)
	}
	// Larger than the socket buffers and than a TLS record: the write
	// leaves ciphertext for EPOLLOUT, the answer spans many records.
	big := bytes.Repeat([]byte("0123456789abcdef"), 512<<10/16)
	send(1, big)
	if ev := rec.next(t, "msg"); ev.msg != string(big) {
		t.Fatalf("echo of %d bytes came back as %d bytes", len(big), len(ev.msg))
	}
	drained := make(chan struct{})
	onLoop(t, l, func() { l.Shutdown(5*time.Second, func() { close(drained) }) })
	for range n {
		if ev := rec.next(t, "close"); ev.err != nil {
			t.Fatalf("conn %d closed with %v, want a clean close", ev.tag, ev.err)
		}
	}
	<-drained
}

func TestTLSFailures(t *testing.T) {
	srv := startTLSServer(t)
	plain := startServer(t)
	silent := silentListener(t)

	cases := []struct {
		name   string
		opts   Options
		reason string
	}{
		{"unknown CA", Options{Addr: srv.addr(t), Path: "/ws", TLS: &tls.Config{ServerName: "example.com", RootCAs: x509.NewCertPool()}}, "tls_bad_certificate"},
		{"wrong name", Options{Addr: srv.addr(t), Path: "/ws", TLS: tlsConfig(t, srv, "other.example")}, "tls_bad_certificate"},
		{"plain server", Options{Addr: plain.addr(t), Path: "/ws", TLS: &tls.Config{ServerName: "example.com"}}, "tls_not_tls"},
		{"no answer", Options{Addr: silent, TLS: &tls.Config{ServerName: "example.com"}, HandshakeTimeout: 150 * time.Millisecond}, "handshake_timeout"},
		{"http status", Options{Addr: srv.addr(t), Path: "/reject", TLS: tlsConfig(t, srv, "example.com")}, "http_503"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder()
			l := startLoop(t, tc.opts, rec)
			onLoop(t, l, func() {
				if _, err := l.Dial(netip.MustParseAddr("127.0.0.4")); err != nil {
					t.Errorf("dial: %v", err)
				}
			})
			if ev := rec.next(t, "close"); Reason(ev.err) != tc.reason {
				t.Fatalf("err = %v (%s), want %s", ev.err, Reason(ev.err), tc.reason)
			}
		})
	}
}

// TestTLSStopDuringHandshakes stops a loop while handshakes hang: every
// socket is closed afterwards (goleak, in TestMain, sees the handshake
// goroutines end).
func TestTLSStopDuringHandshakes(t *testing.T) {
	silent := silentListener(t)
	before := openFDs(t)
	l, err := New(Options{Addr: silent, TLS: &tls.Config{ServerName: "example.com"}}, newRecorder())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Run() }()
	const n = 10
	onLoop(t, l, func() {
		for range n {
			if _, err := l.Dial(netip.Addr{}); err != nil {
				t.Errorf("dial: %v", err)
			}
		}
	})
	// Each handshake holds the socket and its duplicate; the listener's
	// side holds n more (until the test ends).
	waitFor(t, func() bool { return openFDs(t) >= before+3*n })
	l.Stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return openFDs(t) <= before+n })
}

// silentListener accepts connections and never says anything.
func silentListener(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-accepted
		for _, c := range held {
			c.Close()
		}
	})
	return netip.MustParseAddrPort(ln.Addr().String())
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// waitFor polls cond until it holds, failing after waitTimeout.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within", waitTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
