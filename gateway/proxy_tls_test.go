package gateway

import (
	"net/netip"
	"testing"

	"github.com/gobwas/ws"
	"github.com/shardgate/shardgate/internal/wstest"
)

// TestProxyProtocolThenTLS: on a wss:// listener the PROXY header comes
// before the ClientHello (the proxy forwards TLS untouched); whether the
// header arrives alone or byte by byte, the TLS handshake and the upgrade
// follow it, and -max-conns-per-ip counts the address it names.
func TestProxyProtocolThenTLS(t *testing.T) {
	files := newTLSFiles(t)
	g := startGateway(t, files.on("", func(c *Config) {
		c.ProxyProtocol = true
		c.MaxConnsPerIP = 10
	}))
	for _, tc := range []struct {
		name    string
		header  []byte
		trickle bool
		client  string
	}{
		{"v1", proxyV1("192.0.2.1"), false, "192.0.2.1"},
		{"v2 trickled", proxyV2(t, "2001:db8::2"), true, "2001:db8::2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := ws.Dialer{Timeout: wstest.DefaultTimeout, TLSConfig: files.client(0, 0), NetDial: proxiedNetDial(tc.header, tc.trickle)}
			c, err := wstest.DialWith(t, d, g.wssURL())
			if err != nil {
				t.Fatalf("wss upgrade after the header: %v", err)
			}
			c.Subscribe("news")
			if n := g.perIP.count(netip.MustParseAddr(tc.client)); n != 1 {
				t.Errorf("%s holds %d connections, want 1", tc.client, n)
			}
		})
	}
}
