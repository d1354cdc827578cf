package gateway

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/shardgate/shardgate/internal/wstest"
)

// This file covers wss:// (SPEC "TLS"): the public listener speaking TLS
// only, what a failed or slow TLS handshake costs and how it is counted,
// certificate reloads, and goroutines that stay flat in idle TLS
// connections. Certificates are ECDSA P-256 from a throwaway CA
// (testcert_test.go, internal/wstest).

// TestWSSServesTheClientProtocol: over wss:// a Go client trusting the CA
// negotiates TLS 1.3 (or 1.2 when capped there) with ALPN http/1.1, sees
// the whole chain of the -tls-cert file, and then speaks the client
// protocol exactly as over ws://: subscribe, publish (ack and own copy), a
// broadcast to everyone, ping/pong, and the close handshake.
func TestWSSServesTheClientProtocol(t *testing.T) {
	files := newTLSFiles(t)
	// The certificate file holds the chain: leaf, then CA.
	wstest.WriteFileAtomic(t, files.certFile, files.serving.ChainPEM())
	g := startGateway(t, files.on("", nil))

	for _, tc := range []struct {
		name    string
		maxV    uint16
		version uint16
	}{
		{"TLS 1.3", 0, tls.VersionTLS13},
		{"TLS 1.2", tls.VersionTLS12, tls.VersionTLS12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := wstest.DialTLS(t, g.wssURL(), files.client(0, tc.maxV), nil)
			st := c.TLSState()
			if st.Version != tc.version {
				t.Errorf("negotiated TLS %x, want %x", st.Version, tc.version)
			}
			if st.NegotiatedProtocol != "http/1.1" {
				t.Errorf("ALPN %q, want http/1.1", st.NegotiatedProtocol)
			}
			if len(st.PeerCertificates) != 2 || st.PeerCertificates[0].SerialNumber.Cmp(files.serving.Cert.SerialNumber) != 0 ||
				!st.PeerCertificates[1].Equal(files.ca.Cert) {
				t.Errorf("the gateway presented %d certificates, want the leaf and the CA of the -tls-cert file", len(st.PeerCertificates))
			}

			const ch = "wss-news"
			c.Send(map[string]any{"type": "subscribe", "channel": ch, "id": 1})
			if m := c.Expect("subscribed"); string(m.ID) != "1" || m.Channel == nil || *m.Channel != ch {
				t.Fatalf("subscribe reply %+v", m)
			}
			c.Send(map[string]any{"type": "publish", "channel": ch, "data": map[string]string{"from": "wss"}, "id": "p1"})
			var ack, own bool
			for !ack || !own {
				switch m := c.Read(); {
				case m.Type == "published" && string(m.ID) == `"p1"` && !ack:
					ack = true
				case m.Type == "message" && m.Channel != nil && *m.Channel == ch && string(m.Data) == `{"from":"wss"}` && !own:
					own = true
				default:
					t.Fatalf("unexpected %+v while waiting for the published ack and the own copy", m)
				}
			}

			// A message to everyone: no channel field, received over TLS.
			g.in(t).mustPublish("", `{"to":"all"}`)
			if m := c.Expect("message"); m.Channel != nil || string(m.Data) != `{"to":"all"}` {
				t.Fatalf("broadcast %+v, want data {\"to\":\"all\"} without channel", m)
			}

			pingPong(t, c, "wss-ping-"+tc.name)
			c.Close()
		})
	}
	g.waitMetric(2, "shardgate_upgrades_total", "result", "ok")
	g.waitMetric(2, "shardgate_disconnects_total", "reason", "client_close")
	if n := g.metricSum("shardgate_upgrades_total", "result", "tls_error"); n != 0 {
		t.Errorf("upgrades_total{result=tls_error} = %v after good clients only", n)
	}
}

// TestWSSCarriesMessagesLargerThanARecord: a 60,000-byte message, more
// than three TLS records either way, goes from a wss:// client to the
// gateway (which must gather its records into one frame) and back to it
// and to another subscriber, byte for byte.
func TestWSSCarriesMessagesLargerThanARecord(t *testing.T) {
	files := newTLSFiles(t)
	g := startGateway(t, files.on("", nil))
	cfg := files.client(0, 0)
	sender := wstest.DialTLS(t, g.wssURL(), cfg, nil)
	other := wstest.DialTLS(t, g.wssURL(), cfg, nil)
	sender.Subscribe("big")
	other.Subscribe("big")

	pad := strings.Repeat("0123456789abcdef", 60000/16)
	data := `{"pad":"` + pad + `"}`
	sender.Send(`{"type":"publish","channel":"big","id":1,"data":` + data + `}`)
	for name, c := range map[string]*wstest.Client{"sender": sender, "other": other} {
		for {
			m := c.Read()
			if m.Type == "published" && c == sender {
				continue
			}
			if m.Type != "message" || string(m.Data) != data {
				t.Fatalf("%s got %s %.80q…, want the %d-byte message", name, m.Type, m.Data, len(data))
			}
			break
		}
	}
	pingPong(t, sender, "after a large message")
}

// TestWSSDeliversPastAFullSocket: 8 MiB of messages published to a wss://
// client that reads nothing until the last one is accepted fill the
// socket both ways; the ciphertext the socket refuses is kept and sent
// when it drains, so the client then reads every message, whole and in
// order, while another client is served meanwhile.
func TestWSSDeliversPastAFullSocket(t *testing.T) {
	files := newTLSFiles(t)
	g := startGateway(t, files.on("", func(c *Config) { c.SendQueueBytes = 32 << 20 }))
	cfg := files.client(0, 0)
	// A small fixed receive buffer (no autotuning) so that the socket
	// fills whatever the host's tcp_rmem.
	small := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 64<<10)
		})
		return errors.Join(err, serr)
	}}
	stalled, err := wstest.DialWith(t, ws.Dialer{Timeout: wstest.DefaultTimeout, TLSConfig: cfg, NetDial: small.DialContext}, g.wssURL())
	if err != nil {
		t.Fatal(err)
	}
	stalled.Subscribe("flood")
	w := newTLSWitness(t, g, cfg)

	const n, size = 256, 32 << 10
	pad := strings.Repeat("x", size)
	for i := range n {
		g.mustPublish("flood", `{"seq":`+strconv.Itoa(i)+`,"pad":"`+pad+`"}`)
	}
	w.check(t) // the gateway serves others while stalled's socket is full
	for i := range n {
		m := stalled.Expect("message")
		want := `{"seq":` + strconv.Itoa(i) + `,"pad":"` + pad + `"}`
		if string(m.Data) != want {
			t.Fatalf("message %d: got %.60q… (%d bytes), want seq %d of %d bytes", i, m.Data, len(m.Data), i, len(want))
		}
	}
	if n := g.metricSum("shardgate_disconnects_total", "reason", "slow_consumer"); n != 0 {
		t.Fatalf("disconnects_total{reason=slow_consumer} = %v under a 32 MiB send queue", n)
	}
	pingPong(t, stalled, "after the flood")
}

// TestWSSHeartbeatAndIdleTimeout: the shard's own writes reach a wss://
// client too, not only answers to what it read: pings every
// -ping-interval, and for a client that never answers them, close 1001
// "idle timeout" after -idle-timeout, then the end of the connection.
func TestWSSHeartbeatAndIdleTimeout(t *testing.T) {
	const interval, idle = 100 * time.Millisecond, 400 * time.Millisecond
	files := newTLSFiles(t)
	g := startGateway(t, files.on("", func(c *Config) {
		c.PingInterval = interval
		c.IdleTimeout = idle
	}))
	c := wstest.DialTLS(t, g.wssURL(), files.client(0, 0), nil)
	start := time.Now()
	h, _, err := c.ReadFrame(wstest.DefaultTimeout)
	if err != nil {
		t.Fatalf("waiting for a ping: %v", err)
	}
	if h.OpCode != ws.OpPing {
		t.Fatalf("first frame %v, want a ping", h.OpCode)
	}
	if reason := c.ExpectClose(ws.StatusGoingAway); reason != "idle timeout" {
		t.Errorf("close reason %q, want %q", reason, "idle timeout")
	}
	if took := time.Since(start); took < idle-interval {
		t.Errorf("closed %v after the upgrade, before -idle-timeout %v", took, idle)
	}
	c.ExpectEOF()
	g.waitMetric(1, "shardgate_disconnects_total", "reason", "idle_timeout")
	g.waitMetric(0, "shardgate_connections")
}

// tlsWitness is one wss:// connection opened before a test misbehaves,
// subscribed, and checked after each case: the bad client cost it nothing.
type tlsWitness struct {
	g *testGateway
	c *wstest.Client
	n int
}

const witnessChannel = "tls-witness"

func newTLSWitness(t testing.TB, g *testGateway, cfg *tls.Config) *tlsWitness {
	t.Helper()
	c := wstest.DialTLS(t, g.wssURL(), cfg, nil)
	c.Subscribe(witnessChannel)
	return &tlsWitness{g: g, c: c}
}

// check publishes a fresh number to the witness's channel and expects it,
// then a pong. Call it from the goroutine of the test that made w.
func (w *tlsWitness) check(t testing.TB) {
	t.Helper()
	w.n++
	want := strconv.Itoa(w.n)
	w.g.in(t).mustPublish(witnessChannel, want)
	if m := w.c.Expect("message"); m.Channel == nil || *m.Channel != witnessChannel || string(m.Data) != want {
		t.Fatalf("witness got %+v, want message %s on %q", m, want, witnessChannel)
	}
	pingPong(t, w.c, "witness-"+want)
}

// TestTLSHandshakeFailuresCountTLSError: clients that cannot complete a
// TLS 1.2+ handshake (TLS 1.0 and 1.1, a plain ws:// upgrade request,
// bytes that are not TLS, a client that distrusts the certificate) get no
// 101, are closed, and each counts one upgrades_total{result="tls_error"};
// a wss:// witness keeps working through all of them.
func TestTLSHandshakeFailuresCountTLSError(t *testing.T) {
	files := newTLSFiles(t)
	g := startGateway(t, files.on("", nil))
	w := newTLSWitness(t, g, files.client(0, 0))

	versionCase := func(v uint16) func(t *testing.T) {
		return func(t *testing.T) {
			_, err := wstest.TryDialTLS(t, g.wssURL(), files.client(v, v), nil)
			if err == nil {
				t.Fatalf("a client capped at TLS %x was upgraded", v)
			}
			t.Logf("client error: %v", err)
		}
	}
	rawCase := func(sent string) func(t *testing.T) {
		return func(t *testing.T) {
			conn, err := net.Dial("tcp", g.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, sent); err != nil {
				t.Fatal(err)
			}
			got, _ := readUntilClosed(t, conn, wstest.DefaultTimeout)
			if strings.Contains(string(got), " 101 ") || strings.Contains(string(got), "Sec-WebSocket-Accept") {
				t.Fatalf("the TLS port upgraded a plain request: %q", got)
			}
		}
	}
	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"TLS 1.0 client", versionCase(tls.VersionTLS10)},
		{"TLS 1.1 client", versionCase(tls.VersionTLS11)},
		{"plain ws:// upgrade request", rawCase(upgradeRequest("/ws", ""))},
		{"text that is not TLS", rawCase("this is not TLS at all\r\n\r\n")},
		{"handshake record holding no ClientHello", rawCase("\x16\x03\x01\x00\x10" + strings.Repeat("\xff", 16))},
		{"record longer than TLS allows", rawCase("\x16\x03\x01\xff\xff" + strings.Repeat("\x00", 64))},
		{"application data before any handshake", rawCase("\x17\x03\x03\x00\x10" + strings.Repeat("\x00", 16))},
		{"client that distrusts the certificate", func(t *testing.T) {
			distrust := &tls.Config{RootCAs: wstest.NewCA(t).Pool(), NextProtos: []string{"http/1.1"}}
			if _, err := wstest.TryDialTLS(t, g.wssURL(), distrust, nil); err == nil {
				t.Fatal("a client trusting another CA completed the handshake")
			}
		}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t)
			g.in(t).waitMetric(float64(i+1), "shardgate_upgrades_total", "result", "tls_error")
		})
		w.check(t)
	}
	if n := g.metricSum("shardgate_upgrades_total", "result", "ok"); n != 1 {
		t.Errorf("upgrades_total{result=ok} = %v, want 1 (the witness)", n)
	}
	if n := g.metricSum("shardgate_connections"); n != 1 {
		t.Errorf("shardgate_connections = %v, want 1 (the witness)", n)
	}
}

// TestTLSMinVersion13RefusesTLS12: with -tls-min-version 1.3 a client
// capped at TLS 1.2 fails its handshake (tls_error) while TLS 1.3 clients
// are served.
func TestTLSMinVersion13RefusesTLS12(t *testing.T) {
	files := newTLSFiles(t)
	g := startGateway(t, files.on("1.3", nil))
	w := newTLSWitness(t, g, files.client(0, 0))
	if v := w.c.TLSState().Version; v != tls.VersionTLS13 {
		t.Fatalf("witness negotiated TLS %x, want 1.3", v)
	}
	if _, err := wstest.TryDialTLS(t, g.wssURL(), files.client(tls.VersionTLS12, tls.VersionTLS12), nil); err == nil {
		t.Fatal("a TLS 1.2 client was upgraded under -tls-min-version 1.3")
	}
	g.waitMetric(1, "shardgate_upgrades_total", "result", "tls_error")
	w.check(t)
}

// TestTLSHandshakeTimeoutDropsSlowClients: one -handshake-timeout, counted
// from the TCP accept, covers the TLS handshake and the HTTP upgrade. A
// client that sends nothing, half a ClientHello, or finishes TLS but not
// its upgrade request is closed once it has passed, and counted as
// result="timeout" (not tls_error); so is one whose TLS handshake and
// upgrade request each come within the timeout but together do not (the
// budget does not start again after TLS). A witness keeps working.
func TestTLSHandshakeTimeoutDropsSlowClients(t *testing.T) {
	const timeout = 300 * time.Millisecond
	files := newTLSFiles(t)
	g := startGateway(t, files.on("", func(c *Config) { c.HandshakeTimeout = timeout }))
	w := newTLSWitness(t, g, files.client(0, 0))
	hello := clientHello(t)

	handshake := func(conn net.Conn) (*tls.Conn, error) {
		cfg := files.client(0, 0)
		cfg.ServerName = "127.0.0.1"
		tc := tls.Client(conn, cfg)
		tc.SetDeadline(time.Now().Add(wstest.DefaultTimeout))
		defer tc.SetDeadline(time.Time{})
		return tc, tc.Handshake()
	}
	// afterTLS completes a TLS handshake on conn and then sends sent.
	afterTLS := func(sent string) func(t *testing.T, conn net.Conn) net.Conn {
		return func(t *testing.T, conn net.Conn) net.Conn {
			tc, err := handshake(conn)
			if err != nil {
				t.Fatalf("TLS handshake: %v", err)
			}
			if sent != "" {
				if _, err := io.WriteString(tc, sent); err != nil {
					t.Fatal(err)
				}
			}
			return tc
		}
	}
	// Two thirds of the budget before the ClientHello and two thirds
	// before the upgrade request: the sleeps are the slow client's
	// behaviour, not synchronisation.
	pause := timeout * 2 / 3
	slowBoth := func(t *testing.T, conn net.Conn) net.Conn {
		time.Sleep(pause)
		tc, err := handshake(conn)
		if err != nil {
			// A loaded machine may already have spent the budget: the
			// drop below is then just as right.
			t.Logf("TLS handshake after %v: %v", pause, err)
			return conn
		}
		time.Sleep(pause)
		_, _ = io.WriteString(tc, upgradeRequest("/ws", "")) // the gateway may have closed already
		return tc
	}
	cases := []struct {
		name string
		send func(t *testing.T, conn net.Conn) net.Conn // returns the conn to read
	}{
		{"nothing", func(t *testing.T, conn net.Conn) net.Conn { return conn }},
		{"half a ClientHello", func(t *testing.T, conn net.Conn) net.Conn {
			if _, err := conn.Write(hello[:len(hello)/2]); err != nil {
				t.Fatal(err)
			}
			return conn
		}},
		{"TLS handshake, then no upgrade request", afterTLS("")},
		{"TLS handshake, then half an upgrade request", afterTLS("GET /ws HTTP/1.1\r\nHost: gateway.test\r\n")},
		{"TLS handshake and upgrade request each within the budget, not together", slowBoth},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			conn, err := net.Dial("tcp", g.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			readFrom := tc.send(t, conn)
			got, _ := readUntilClosed(t, readFrom, wstest.DefaultTimeout)
			took := time.Since(start)
			if strings.Contains(string(got), "101 Switching Protocols") {
				t.Fatalf("upgraded after %v, past -handshake-timeout %v: %q", took, timeout, got)
			}
			if took < timeout {
				t.Errorf("dropped after %v, before -handshake-timeout %v (received %q)", took, timeout, got)
			}
			if took > timeout+3*time.Second {
				t.Errorf("dropped after %v, long past -handshake-timeout %v", took, timeout)
			}
			g.in(t).waitMetric(float64(i+1), "shardgate_upgrades_total", "result", "timeout")
			if n := g.in(t).metricSum("shardgate_upgrades_total", "result", "tls_error"); n != 0 {
				t.Errorf("upgrades_total{result=tls_error} = %v: a slow handshake is a timeout", n)
			}
		})
		w.check(t)
	}
}

// TestReloadServesNewCertificate: Reload re-reads -tls-cert/-tls-key;
// new handshakes then present the new certificate, a connection opened
// before keeps its session and works (receive, send, ping), the expiry
// gauge follows the serving certificate, and reloads_total{result="ok"}
// counts it. Rewriting the files alone changes nothing.
func TestReloadServesNewCertificate(t *testing.T) {
	files := newTLSFiles(t)
	first := files.serving
	g := startGateway(t, files.on("", nil))
	cfg := files.client(0, 0)

	g.expectSerial(t, cfg, first, "at start")
	g.expectExpiryGauge(t, first, "at start")
	open := wstest.DialTLS(t, g.wssURL(), cfg, nil)
	open.Subscribe("reload")

	second := files.replace(t, 3*time.Hour)
	g.expectSerial(t, cfg, first, "files rewritten, no reload yet")

	if err := g.Reload(); err != nil {
		t.Fatalf("Reload with a good pair: %v", err)
	}
	g.expectSerial(t, cfg, second, "after Reload")
	g.expectExpiryGauge(t, second, "after Reload")
	g.waitMetric(1, "shardgate_reloads_total", "result", "ok")
	if n := g.metricSum("shardgate_reloads_total", "result", "error"); n != 0 {
		t.Errorf("reloads_total{result=error} = %v, want 0", n)
	}

	// The connection from before the reload: same session, still served.
	if got := open.TLSState().PeerCertificates[0].SerialNumber; got.Cmp(first.Cert.SerialNumber) != 0 {
		t.Fatalf("the open connection's certificate serial is %x, want the first one's %x", got, first.Cert.SerialNumber)
	}
	g.mustPublish("reload", `"after"`)
	if m := open.Expect("message"); string(m.Data) != `"after"` {
		t.Fatalf("open connection got %+v after the reload", m)
	}
	open.Send(map[string]any{"type": "publish", "channel": "reload", "data": "mine", "id": 7})
	for seen := 0; seen < 2; seen++ {
		if m := open.Read(); m.Type != "published" && (m.Type != "message" || string(m.Data) != `"mine"`) {
			t.Fatalf("open connection got %+v after publishing", m)
		}
	}
	pingPong(t, open, "after-reload")
	open.Close()
}

// TestReloadKeepsOldPairOnBadFiles: a pair that does not load (the key of
// another certificate, files that are not PEM, a missing file) makes
// Reload return an error and count reloads_total{result="error"}; new
// handshakes still present the old certificate, the expiry gauge still
// shows it, and open connections keep working. A good pair afterwards is
// taken.
func TestReloadKeepsOldPairOnBadFiles(t *testing.T) {
	files := newTLSFiles(t)
	serving := files.serving
	g := startGateway(t, files.on("", nil))
	cfg := files.client(0, 0)
	w := newTLSWitness(t, g, cfg)

	other := files.ca.Issue(t, time.Now().Add(5*time.Hour))
	cases := []struct {
		name      string
		cert, key []byte // nil: remove the file
	}{
		{"key of another certificate", other.CertPEM, serving.KeyPEM},
		{"certificate of another key", serving.CertPEM, other.KeyPEM},
		{"certificate not PEM", []byte("not PEM\n"), serving.KeyPEM},
		{"key not PEM", serving.CertPEM, []byte("-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n")},
		{"empty certificate file", []byte{}, serving.KeyPEM},
		{"certificate file missing", nil, serving.KeyPEM},
		{"key file missing", serving.CertPEM, nil},
		{"key and certificate swapped", serving.KeyPEM, serving.CertPEM},
	}
	write := func(t *testing.T, path string, data []byte) {
		if data == nil {
			if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			return
		}
		wstest.WriteFileAtomic(t, path, data)
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			write(t, files.certFile, tc.cert)
			write(t, files.keyFile, tc.key)
			err := g.Reload()
			if err == nil {
				t.Fatal("Reload succeeded")
			}
			t.Logf("Reload: %v", err)
			g.in(t).waitMetric(float64(i+1), "shardgate_reloads_total", "result", "error")
			g.expectSerial(t, cfg, serving, "after a failed reload")
			g.expectExpiryGauge(t, serving, "after a failed reload")
		})
		w.check(t)
	}
	if n := g.metricSum("shardgate_reloads_total", "result", "ok"); n != 0 {
		t.Errorf("reloads_total{result=ok} = %v after failed reloads only", n)
	}

	good := files.replace(t, 4*time.Hour)
	if err := g.Reload(); err != nil {
		t.Fatalf("Reload with a good pair after failures: %v", err)
	}
	g.expectSerial(t, cfg, good, "after a good reload")
	g.expectExpiryGauge(t, good, "after a good reload")
	g.waitMetric(1, "shardgate_reloads_total", "result", "ok")
	w.check(t)
}

// TestReloadDuringHandshakes reloads again and again, alternating two
// pairs, while clients keep dialling: every handshake succeeds and shows
// one of the two certificates, whole (under -race, a torn swap of the
// pair is a report, not a lucky pass).
func TestReloadDuringHandshakes(t *testing.T) {
	files := newTLSFiles(t)
	a := files.serving
	g := startGateway(t, files.on("", nil))
	cfg := files.client(0, 0)
	b := files.ca.Issue(t, time.Now().Add(3*time.Hour))
	known := map[string]bool{a.Cert.SerialNumber.String(): true, b.Cert.SerialNumber.String(): true}

	stop := make(chan struct{})
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		dials  int
		failed []string
	)
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := wstest.TryDialTLS(t, g.wssURL(), cfg, nil)
				var problem string
				if err != nil {
					problem = err.Error()
				} else {
					tc := c.Conn.(*tls.Conn)
					st := tc.ConnectionState()
					if serial := st.PeerCertificates[0].SerialNumber.String(); !known[serial] {
						problem = "unknown certificate serial " + serial
					}
					tc.Close()
				}
				mu.Lock()
				dials++
				if problem != "" {
					failed = append(failed, problem)
				}
				mu.Unlock()
			}
		})
	}
	const reloads = 20
	for i := range reloads {
		leaf := a
		if i%2 == 0 {
			leaf = b
		}
		leaf.WritePair(t, files.certFile, files.keyFile)
		if err := g.Reload(); err != nil {
			t.Errorf("Reload %d: %v", i, err)
		}
		// Let some handshakes run under this pair before the next swap.
		before := func() int { mu.Lock(); defer mu.Unlock(); return dials }()
		waitFor(t, "handshakes between reloads", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return dials >= before+2
		})
	}
	close(stop)
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d of %d dials during reloads failed; first: %s", len(failed), dials, failed[0])
	}
	g.waitMetric(reloads, "shardgate_reloads_total", "result", "ok")
	// The last reload wrote a (i = 19, odd): new handshakes show it.
	g.expectSerial(t, cfg, a, "after the last reload")
	g.expectExpiryGauge(t, a, "after the last reload")
}

// TestGoroutinesFlatInIdleTLSConnections holds 500 and then 5,000 idle
// wss:// connections and checks that the process's goroutine count grows
// by fewer than 20 between them: TLS handshakes run on short-lived
// goroutines, idle TLS connections hold none. The clients live in this
// process too; once their handshake is done they are bare *tls.Conn
// objects with no reader goroutine, so every goroutine counted is the
// gateway's (or the test's fixed few).
func TestGoroutinesFlatInIdleTLSConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 5,000 TLS connections")
	}
	files := newTLSFiles(t)
	g := startGateway(t, files.on("", nil))
	cfg := files.client(0, 0)
	// Resumed sessions and plain X25519 keep 5,000 handshakes cheap under
	// -race; the first handshake is a full one all the same.
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(16)
	cfg.CurvePreferences = []tls.CurveID{tls.X25519}

	var clients []*wstest.Client
	dialUpTo := func(n int) {
		t.Helper()
		const workers = 32
		todo := n - len(clients)
		var (
			mu    sync.Mutex
			fresh []*wstest.Client
			errs  []error
			wg    sync.WaitGroup
		)
		jobs := make(chan struct{})
		for range workers {
			wg.Go(func() {
				for range jobs {
					c, err := wstest.TryDialTLS(t, g.wssURL(), cfg, nil)
					mu.Lock()
					if err != nil {
						errs = append(errs, err)
					} else {
						fresh = append(fresh, c)
					}
					mu.Unlock()
				}
			})
		}
		for range todo {
			jobs <- struct{}{}
		}
		close(jobs)
		wg.Wait()
		clients = append(clients, fresh...)
		if len(errs) > 0 {
			t.Fatalf("%d of %d wss:// dials failed; first: %v", len(errs), todo, errs[0])
		}
		g.waitMetric(float64(n), "shardgate_connections")
	}

	dialUpTo(500)
	at500 := runtime.NumGoroutine()
	dialUpTo(5000)
	// Handshake goroutines of the last dials may still be returning:
	// wait for the count to settle rather than read it once.
	var at5000 int
	deadline := time.Now().Add(10 * time.Second)
	for {
		at5000 = runtime.NumGoroutine()
		if at5000-at500 < 20 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("goroutines: %d at 500 wss:// connections, %d at 5000", at500, at5000)
	if d := at5000 - at500; d >= 20 {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines grew by %d between 500 and 5000 idle TLS connections\n%s", d, buf[:runtime.Stack(buf, true)])
	}

	// The connections are live: the first and the last get a broadcast.
	for _, c := range []*wstest.Client{clients[0], clients[len(clients)-1]} {
		c.Subscribe("alive")
	}
	g.mustPublish("alive", `"yes"`)
	for _, c := range []*wstest.Client{clients[0], clients[len(clients)-1]} {
		if m := c.Expect("message"); string(m.Data) != `"yes"` {
			t.Fatalf("%s got %+v", c, m)
		}
	}
}
