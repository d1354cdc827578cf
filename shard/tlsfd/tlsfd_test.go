package tlsfd

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"testing"
	"time"
	"unsafe"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testConfigs returns a server config with a fresh self-signed P-256
// certificate for 127.0.0.1, and a client config trusting it.
func testConfigs(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tlsfd test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}}}
	client = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	return server, client
}

// socketPair returns the server side of a loopback TCP connection as a
// raw non-blocking fd (owned by the caller) and the client side.
func socketPair(t *testing.T) (int, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sc.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	fd := -1
	var dupErr error
	if err := raw.Control(func(s uintptr) { fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil || dupErr != nil {
		t.Fatal(err, dupErr)
	}
	sc.Close()
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd, client
}

// handshakePair runs both handshakes and detaches the server side.
func handshakePair(t *testing.T) (*Conn, *tls.Conn, int) {
	t.Helper()
	serverCfg, clientCfg := testConfigs(t)
	fd, raw := socketPair(t)
	client := tls.Client(raw, clientCfg)
	done := make(chan error, 1)
	go func() { done <- client.Handshake() }()
	server, err := Server(context.Background(), fd, serverCfg, nil, time.Now().Add(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	server.Detach(nil)
	return server, client, fd
}

// waitReadable blocks until fd has input: the event a shard would get.
func waitReadable(t *testing.T, fd int) {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 10_000)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			t.Fatalf("socket never became readable: n=%d err=%v", n, err)
		}
		return
	}
}

// holdConn sends the client's writes on, or, while hold is set, keeps
// them: the test then delivers a record's bytes in pieces of its choice.
type holdConn struct {
	net.Conn
	hold bool
	held []byte
}

func (c *holdConn) Write(p []byte) (int, error) {
	if c.hold {
		c.held = append(c.held, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// TestTemporaryReadErrorLeavesConnUsable pins the crypto/tls behaviour the
// shards rely on: a transport Read that returns a Temporary net.Error in
// the middle of a record makes tls.Conn.Read return that error and leaves
// the connection usable; the next Read finishes the record. If a Go
// release makes the error sticky, this test fails.
func TestTemporaryReadErrorLeavesConnUsable(t *testing.T) {
	serverCfg, clientCfg := testConfigs(t)
	fd, raw := socketPair(t)
	hc := &holdConn{Conn: raw}
	client := tls.Client(hc, clientCfg)
	done := make(chan error, 1)
	go func() { done <- client.Handshake() }()
	server, err := Server(context.Background(), fd, serverCfg, nil, time.Now().Add(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	server.Detach(nil)

	buf := make([]byte, 64)
	// Nothing sent (TLS 1.3 tickets go server to client): would block.
	if n, err := server.Read(buf); n != 0 || !IsWouldBlock(err) {
		t.Fatalf("read with nothing sent: n=%d err=%v, want ErrWouldBlock", n, err)
	}

	// The client's next record reaches the server in two halves.
	hc.hold = true
	if _, err := client.Write([]byte("hello, shard")); err != nil {
		t.Fatal(err)
	}
	hc.hold = false
	rec := hc.held
	if _, err := raw.Write(rec[:len(rec)/2]); err != nil {
		t.Fatal(err)
	}
	waitReadable(t, fd)
	if n, err := server.Read(buf); n != 0 || !IsWouldBlock(err) {
		t.Fatalf("read of half a record: n=%d err=%v, want ErrWouldBlock", n, err)
	}
	if _, err := raw.Write(rec[len(rec)/2:]); err != nil {
		t.Fatal(err)
	}
	waitReadable(t, fd)
	n, err := server.Read(buf)
	if err != nil || string(buf[:n]) != "hello, shard" {
		t.Fatalf("read after the record completed: %q, %v; want the message (the temporary error must not be sticky)", buf[:n], err)
	}

	// And the connection still writes.
	if _, err := server.Write([]byte("reply")); err != nil {
		t.Fatalf("write after a temporary read error: %v", err)
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(client, got); err != nil || string(got) != "reply" {
		t.Fatalf("client read %q, %v", got, err)
	}
}

func TestDetachedWriteKeepsWhatTheSocketRefuses(t *testing.T) {
	server, client, fd := handshakePair(t)
	// Shrink the send buffer so the socket fills quickly.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4096)
	chunk := bytes.Repeat([]byte("x"), 16<<10)
	var sent int
	for i := 0; i < 1000; i++ {
		n, err := server.Write(chunk)
		if IsWouldBlock(err) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sent += n
	}
	if server.Buffered() == 0 {
		t.Fatalf("the socket took %d bytes without ever refusing: the test did not fill it", sent)
	}
	if n, err := server.Write(chunk); n != 0 || !IsWouldBlock(err) {
		t.Fatalf("write while ciphertext is kept: n=%d err=%v, want 0, ErrWouldBlock", n, err)
	}
	// The client reads everything; Flush eventually empties the buffer.
	readDone := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(client, make([]byte, sent))
		readDone <- err
	}()
	for server.Buffered() > 0 {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		if _, err := unix.Poll(fds, 10_000); err != nil && err != unix.EINTR {
			t.Fatal(err)
		}
		if err := server.Flush(); err != nil && !IsWouldBlock(err) {
			t.Fatal(err)
		}
	}
	if err := <-readDone; err != nil {
		t.Fatalf("client read: %v", err)
	}
}

func TestPeerCloseReadsEOF(t *testing.T) {
	server, client, fd := handshakePair(t)
	client.Close() // close_notify, then FIN
	waitReadable(t, fd)
	buf := make([]byte, 16)
	var err error
	for i := 0; i < 10; i++ {
		_, err = server.Read(buf)
		if !IsWouldBlock(err) {
			break
		}
		waitReadable(t, fd)
	}
	if !errors.Is(err, io.EOF) {
		t.Fatalf("read after the peer closed: %v, want io.EOF", err)
	}
}

func TestHandshakeDeadline(t *testing.T) {
	serverCfg, _ := testConfigs(t)
	fd, _ := socketPair(t) // the client never speaks
	start := time.Now()
	_, err := Server(context.Background(), fd, serverCfg, nil, time.Now().Add(100*time.Millisecond))
	if err == nil {
		t.Fatal("handshake with a silent client succeeded")
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("handshake gave up after %v, deadline was 100ms", elapsed)
	}
}

// TestTrimFindsTLSInputBuffers fails when a Go release renames or retypes
// the tls.Conn fields trim empties: connections would keep working, but
// every idle one would hold its handshake's buffers again.
func TestTrimFindsTLSInputBuffers(t *testing.T) {
	if !trimOffsets().ok {
		t.Fatal("crypto/tls.Conn no longer has rawInput/input/hand of the expected types: trim is a no-op; revisit trim.go")
	}
}

// TestTrimmedConnKeepsWorking reads a message, trims, and reads more (a
// small record, then one larger than any before) and writes: trimming
// must leave nothing behind that a later record needs.
func TestTrimmedConnKeepsWorking(t *testing.T) {
	server, client, fd := handshakePair(t)
	buf := make([]byte, 64<<10)
	for i, msg := range [][]byte{[]byte("one"), bytes.Repeat([]byte("b"), 40<<10), []byte("three")} {
		if _, err := client.Write(msg); err != nil {
			t.Fatal(err)
		}
		got := 0
		for got < len(msg) {
			waitReadable(t, fd)
			for {
				n, err := server.Read(buf[got:])
				got += n
				if IsWouldBlock(err) {
					server.Trim()
					if raw, hand := heldInput(server); raw != 0 || hand != 0 {
						t.Fatalf("message %d: after Trim the tls.Conn still holds %d + %d bytes of input buffers", i, raw, hand)
					}
					break
				}
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
			}
		}
		if !bytes.Equal(buf[:got], msg) {
			t.Fatalf("message %d: got %d bytes, want %d", i, got, len(msg))
		}
	}
	if _, err := server.Write([]byte("done")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(client, got); err != nil || string(got) != "done" {
		t.Fatalf("client read %q, %v", got, err)
	}
}

// heldInput returns the capacities of the input buffers trim empties.
func heldInput(c *Conn) (raw, hand int) {
	tf := trimOffsets()
	base := unsafe.Pointer(c.tls)
	return (*bytes.Buffer)(unsafe.Add(base, tf.rawInput)).Cap(), (*bytes.Buffer)(unsafe.Add(base, tf.hand)).Cap()
}
