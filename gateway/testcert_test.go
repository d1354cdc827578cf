package gateway

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"math/big"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/shardgate/shardgate/internal/wstest"
)

// Helpers of the wss:// tests (tls_test.go): certificate files the gateway
// serves, client configurations, and probes of what a handshake shows.

// tlsFiles is the -tls-cert / -tls-key pair of one test gateway, issued by
// a CA its clients trust. The files may be rewritten while it runs.
type tlsFiles struct {
	ca        *wstest.CA
	certFile  string
	keyFile   string
	serving   *wstest.Leaf // the pair last written
	expiresIn time.Duration
}

// newTLSFiles writes a fresh pair, valid for two hours, into a temporary
// directory.
func newTLSFiles(t testing.TB) *tlsFiles {
	t.Helper()
	dir := t.TempDir()
	f := &tlsFiles{
		ca:       wstest.NewCA(t),
		certFile: filepath.Join(dir, "tls.crt"),
		keyFile:  filepath.Join(dir, "tls.key"),
	}
	f.replace(t, 2*time.Hour)
	return f
}

// replace writes a new pair, expiring validFor from now, over the files
// and returns it. Each pair has its own serial and NotAfter.
func (f *tlsFiles) replace(t testing.TB, validFor time.Duration) *wstest.Leaf {
	t.Helper()
	leaf := f.ca.Issue(t, time.Now().Add(validFor))
	leaf.WritePair(t, f.certFile, f.keyFile)
	f.serving = leaf
	return leaf
}

// on configures a gateway to serve wss:// with the pair (and minVersion,
// "" for the default).
func (f *tlsFiles) on(minVersion string, more func(*Config)) func(*Config) {
	return func(c *Config) {
		c.TLSCert, c.TLSKey = f.certFile, f.keyFile
		if minVersion != "" {
			c.TLSMinVersion = minVersion
		}
		if more != nil {
			more(c)
		}
	}
}

// client is a client configuration trusting the CA that offers ALPN
// http/1.1, as browsers and WebSocket libraries do, between TLS versions
// minV and maxV (0: the library's default).
func (f *tlsFiles) client(minV, maxV uint16) *tls.Config {
	cfg := f.ca.ClientConfig()
	cfg.NextProtos = []string{"http/1.1"}
	cfg.MinVersion, cfg.MaxVersion = minV, maxV
	return cfg
}

func (g *testGateway) wssURL() string { return "wss://" + g.Addr().String() + g.cfg.Path }

// presentedSerial upgrades a fresh wss:// connection, returns the serial
// of the leaf certificate the gateway showed it, and closes it cleanly.
func (g *testGateway) presentedSerial(t testing.TB, cfg *tls.Config) *big.Int {
	t.Helper()
	c := wstest.DialTLS(t, g.wssURL(), cfg, nil)
	st := c.TLSState()
	if len(st.PeerCertificates) == 0 {
		t.Fatal("the gateway presented no certificate")
	}
	c.Close()
	return st.PeerCertificates[0].SerialNumber
}

// expectSerial checks that a new handshake presents leaf.
func (g *testGateway) expectSerial(t testing.TB, cfg *tls.Config, leaf *wstest.Leaf, what string) {
	t.Helper()
	if got := g.presentedSerial(t, cfg); got.Cmp(leaf.Cert.SerialNumber) != 0 {
		t.Fatalf("%s: a new handshake got the certificate with serial %x, want %x", what, got, leaf.Cert.SerialNumber)
	}
}

// expectExpiryGauge checks shardgate_tls_cert_expiry_timestamp_seconds
// against leaf's NotAfter.
func (g *testGateway) expectExpiryGauge(t testing.TB, leaf *wstest.Leaf, what string) {
	t.Helper()
	want := float64(leaf.Cert.NotAfter.Unix())
	if got := g.in(t).metricSum("shardgate_tls_cert_expiry_timestamp_seconds"); got != want {
		t.Fatalf("%s: shardgate_tls_cert_expiry_timestamp_seconds = %v, want %v (%v)", what, got, want, leaf.Cert.NotAfter)
	}
}

// pingPong sends a ping with payload and expects the pong that echoes it,
// answering server pings on the way.
func pingPong(t testing.TB, c *wstest.Client, payload string) {
	t.Helper()
	c.WriteFrame(ws.MaskFrame(ws.NewPingFrame([]byte(payload))))
	for {
		h, p, err := c.ReadFrame(wstest.DefaultTimeout)
		if err != nil {
			t.Fatalf("waiting for the pong to %q: %v", payload, err)
		}
		switch h.OpCode {
		case ws.OpPing:
			c.WriteFrame(ws.MaskFrame(ws.NewPongFrame(p)))
		case ws.OpPong:
			if string(p) != payload {
				t.Fatalf("pong %q, want %q", p, payload)
			}
			return
		default:
			t.Fatalf("frame %v %q while waiting for the pong to %q", h.OpCode, p, payload)
		}
	}
}

// readUntilClosed reads conn until the gateway closes it and returns what
// came and how long the close took. A reset counts as closed (the gateway
// may close with unread bytes in its buffer); a read still blocked after
// within fails the test.
func readUntilClosed(t testing.TB, conn net.Conn, within time.Duration) ([]byte, time.Duration) {
	t.Helper()
	start := time.Now()
	conn.SetReadDeadline(start.Add(within))
	defer conn.SetReadDeadline(time.Time{})
	var got bytes.Buffer
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		got.Write(buf[:n])
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the gateway did not close the connection within %v (received %q)", within, got.Bytes())
		}
		if err != io.EOF && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Logf("connection ended with %v", err)
		}
		return got.Bytes(), time.Since(start)
	}
}

// clientHello is the first record a Go TLS client sends: a real
// ClientHello, captured over a pipe, for tests that send part of one.
func clientHello(t testing.TB) []byte {
	t.Helper()
	client, server := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Fails once the pipe closes below; only its first flight matters.
		_ = tls.Client(client, &tls.Config{ServerName: "localhost", InsecureSkipVerify: true}).Handshake()
	}()
	defer func() {
		client.Close()
		<-done
	}()
	defer server.Close()
	server.SetReadDeadline(time.Now().Add(wstest.DefaultTimeout))
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(server, hdr); err != nil {
		t.Fatalf("read the ClientHello's record header: %v", err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(server, body); err != nil {
		t.Fatalf("read the ClientHello: %v", err)
	}
	return append(hdr, body...)
}
