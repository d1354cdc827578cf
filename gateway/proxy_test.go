package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/pires/go-proxyproto"
	"github.com/shardgate/shardgate/internal/wstest"
)

// These tests run -proxy-protocol over real loopback TCP: every socket
// comes from 127.0.0.1, the "proxy", and its header names the client.

// proxyV1 is a v1 header naming src as the client.
func proxyV1(src string) []byte {
	a := netip.MustParseAddr(src)
	proto := "TCP4"
	if a.Is6() {
		proto = "TCP6"
	}
	dst := "127.0.0.1"
	if a.Is6() {
		dst = "::1"
	}
	return fmt.Appendf(nil, "PROXY %s %s %s 50000 8080\r\n", proto, src, dst)
}

// proxyV2 is a v2 PROXY header naming src as the client, with tlvs.
func proxyV2(t testing.TB, src string, tlvs ...proxyproto.TLV) []byte {
	t.Helper()
	a := netip.MustParseAddr(src)
	dst := netip.MustParseAddr("127.0.0.1")
	if a.Is6() {
		dst = netip.IPv6Loopback()
	}
	h := proxyproto.HeaderProxyFromAddrs(2, net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, 50000)), net.TCPAddrFromAddrPort(netip.AddrPortFrom(dst, 8080)))
	if err := h.SetTLVs(tlvs); err != nil {
		t.Fatal(err)
	}
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// proxyV2Local is the v2 header of the proxy's own health check.
func proxyV2Local(t testing.TB) []byte {
	t.Helper()
	b, err := (&proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}).Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dialProxied upgrades a connection that sends header first, in one write
// or, with trickle, one byte per write.
func dialProxied(t *testing.T, g *testGateway, header []byte, trickle bool) (*wstest.Client, error) {
	t.Helper()
	d := ws.Dialer{Timeout: wstest.DefaultTimeout, NetDial: proxiedNetDial(header, trickle)}
	return wstest.DialWith(t, d, g.wsURL())
}

// proxiedNetDial dials as a proxy does: TCP, then header, then whatever
// the client sends (the upgrade request, or a TLS ClientHello first).
func proxiedNetDial(header []byte, trickle bool) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		chunk := len(header)
		if trickle {
			chunk = 1
		}
		for b := header; len(b) > 0; b = b[min(chunk, len(b)):] {
			if _, err := c.Write(b[:min(chunk, len(b))]); err != nil {
				c.Close()
				return nil, err
			}
		}
		return c, nil
	}
}

// startProxiedGateway is a one-shard gateway with -proxy-protocol and
// -max-conns-per-ip perIP.
func startProxiedGateway(t *testing.T, perIP int) *testGateway {
	return startGateway(t, func(c *Config) {
		c.Shards = 1
		c.ProxyProtocol = true
		c.MaxConnsPerIP = perIP
	})
}

// proxiedWitness is a working connection through the proxy that must keep
// getting its messages promptly.
func proxiedWitness(t *testing.T, g *testGateway) *promptWitness {
	t.Helper()
	c, err := dialProxied(t, g, proxyV1("198.51.100.99"), false)
	if err != nil {
		t.Fatalf("witness: %v", err)
	}
	c.Subscribe("witness")
	return &promptWitness{g: g, c: c}
}

// TestProxyProtocolHeadersThenUpgradeCountTheirClient: after a v1 or v2
// header the upgrade works as without one, and -max-conns-per-ip counts
// the address the header names, not the proxy's; a v2 LOCAL or v1 UNKNOWN
// header names none, and the socket's address is counted.
func TestProxyProtocolHeadersThenUpgradeCountTheirClient(t *testing.T) {
	g := startProxiedGateway(t, 100)
	cases := []struct {
		name    string
		header  []byte
		counted string
	}{
		{"v1 TCP4", proxyV1("192.0.2.1"), "192.0.2.1"},
		{"v1 TCP6", proxyV1("2001:db8::1"), "2001:db8::1"},
		{"v1 UNKNOWN", []byte("PROXY UNKNOWN\r\n"), "127.0.0.1"},
		{"v2 PROXY TCP4", proxyV2(t, "192.0.2.2"), "192.0.2.2"},
		{"v2 PROXY TCP6 with TLVs", proxyV2(t, "2001:db8::2",
			proxyproto.TLV{Type: proxyproto.PP2_TYPE_AUTHORITY, Value: []byte("ws.example.com")},
			proxyproto.TLV{Type: 0xEA, Value: []byte("\x01vpce-0123456789abcdef0")}), "2001:db8::2"},
		{"v2 LOCAL", proxyV2Local(t), "127.0.0.1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := dialProxied(t, g, tc.header, false)
			if err != nil {
				t.Fatalf("upgrade after the header: %v", err)
			}
			c.Subscribe("news") // the connection works past its upgrade
			if n := g.perIP.count(netip.MustParseAddr(tc.counted)); n != 1 {
				t.Errorf("%s holds %d connections, want 1", tc.counted, n)
			}
			c.Close()
			waitFor(t, tc.counted+"'s place to be free", func() bool {
				return g.perIP.count(netip.MustParseAddr(tc.counted)) == 0
			})
		})
	}
}

// TestProxyProtocolMaxConnsPerIPIsPerHeaderAddress: with -max-conns-per-ip
// 1, all sockets from one proxy address: a second connection naming the
// same client gets 429, one naming another client upgrades.
func TestProxyProtocolMaxConnsPerIPIsPerHeaderAddress(t *testing.T) {
	g := startProxiedGateway(t, 1)
	if _, err := dialProxied(t, g, proxyV1("192.0.2.1"), false); err != nil {
		t.Fatalf("first connection of 192.0.2.1: %v", err)
	}
	_, err := dialProxied(t, g, proxyV2(t, "192.0.2.1"), false)
	if se, ok := err.(ws.StatusError); !ok || int(se) != http.StatusTooManyRequests {
		t.Fatalf("second connection of 192.0.2.1: %v, want HTTP 429", err)
	}
	g.waitMetric(1, "shardgate_upgrades_total", "result", "too_many_per_ip")
	if _, err := dialProxied(t, g, proxyV2(t, "192.0.2.2"), false); err != nil {
		t.Fatalf("192.0.2.2 through the same proxy: %v", err)
	}
}

// TestProxyProtocolDropsConnectionsWithoutAValidHeader: bytes that do not
// start with a valid header get no answer at all, only a close, counted as
// bad_request; the witness on the same shard is not held up.
func TestProxyProtocolDropsConnectionsWithoutAValidHeader(t *testing.T) {
	g := startProxiedGateway(t, 0)
	w := proxiedWitness(t, g)
	upgrade := fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", g.cfg.Path)
	cases := []struct {
		name string
		sent []byte
	}{
		{"upgrade request without a header", upgrade},
		{"v1 header with a bad address", append([]byte("PROXY TCP4 192.0.2.300 127.0.0.1 1 2\r\n"), upgrade...)},
		{"v1 header with LF only", append([]byte("PROXY TCP4 192.0.2.1 127.0.0.1 1 2\n"), upgrade...)},
		{"v2 header with an unknown command", append([]byte("\r\n\r\n\x00\r\nQUIT\n\x2f\x11\x00\x0c"), upgrade...)},
		{"TLS ClientHello", []byte{0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", g.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(tc.sent); err != nil {
				t.Fatal(err)
			}
			expectClosedWithoutAnswer(t, c)
			g.in(t).waitMetric(float64(i+1), "shardgate_upgrades_total", "result", "bad_request")
			w.check(t)
		})
	}
}

// expectClosedWithoutAnswer fails unless the gateway closes c without
// writing a byte.
func expectClosedWithoutAnswer(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(wstest.DefaultTimeout))
	got, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("want the connection closed, read: %v", err)
	}
	if len(got) > 0 {
		t.Fatalf("want no answer, got %q", got)
	}
}

// TestProxyProtocolHeaderTrickledByteByByteWorks: a header that arrives a
// byte per segment is waited for, not refused.
func TestProxyProtocolHeaderTrickledByteByByteWorks(t *testing.T) {
	g := startProxiedGateway(t, 100)
	for _, header := range [][]byte{proxyV1("2001:db8::7"), proxyV2(t, "192.0.2.7")} {
		c, err := dialProxied(t, g, header, true)
		if err != nil {
			t.Fatalf("upgrade after the header %q trickled: %v", header, err)
		}
		c.Subscribe("news")
	}
	for _, addr := range []string{"2001:db8::7", "192.0.2.7"} {
		if n := g.perIP.count(netip.MustParseAddr(addr)); n != 1 {
			t.Errorf("%s holds %d connections, want 1", addr, n)
		}
	}
}

// TestProxyProtocolStalledHeaderTimesOut: a header that stops half-way is
// dropped by the -handshake-timeout sweep like a stalled request.
func TestProxyProtocolStalledHeaderTimesOut(t *testing.T) {
	g := startGateway(t, func(c *Config) {
		c.ProxyProtocol = true
		c.HandshakeTimeout = 200 * time.Millisecond
	})
	c, err := net.Dial("tcp", g.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("PROXY TCP4 192.0")); err != nil {
		t.Fatal(err)
	}
	expectClosedWithoutAnswer(t, c)
	g.waitMetric(1, "shardgate_upgrades_total", "result", "timeout")
}

// TestWithoutProxyProtocolAProxyHeaderIsABadRequest: without the flag a
// PROXY header is the first line of an HTTP request, and a malformed one.
func TestWithoutProxyProtocolAProxyHeaderIsABadRequest(t *testing.T) {
	g := startGateway(t, nil)
	c, err := net.Dial("tcp", g.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(wstest.DefaultTimeout))
	fmt.Fprintf(c, "%sGET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", proxyV1("192.0.2.1"), g.cfg.Path)
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read the answer: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", res.StatusCode)
	}
	g.waitMetric(1, "shardgate_upgrades_total", "result", "bad_request")
}
