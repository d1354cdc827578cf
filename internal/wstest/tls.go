package wstest

import (
	"crypto/tls"
	"net/http"
	"testing"

	"github.com/gobwas/ws"
)

// DialTLS connects to a wss:// url over TLS with cfg (which says whom to
// trust) and fails the test on error.
func DialTLS(t testing.TB, url string, cfg *tls.Config, header http.Header) *Client {
	t.Helper()
	c, err := TryDialTLS(t, url, cfg, header)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	return c
}

// TryDialTLS is DialTLS returning the TLS or handshake error instead of
// failing. The client runs no goroutine once it returns: a test may hold
// thousands of them and count the gateway's goroutines alone.
func TryDialTLS(t testing.TB, url string, cfg *tls.Config, header http.Header) (*Client, error) {
	d := ws.Dialer{Timeout: DefaultTimeout, TLSConfig: cfg}
	if header != nil {
		d.Header = ws.HandshakeHeaderHTTP(header)
	}
	return DialWith(t, d, url)
}

// TLSState is the connection's TLS state (version, ALPN, the server's
// certificates); it fails the test when the connection is not TLS.
func (c *Client) TLSState() tls.ConnectionState {
	c.t.Helper()
	tc, ok := c.Conn.(*tls.Conn)
	if !ok {
		c.t.Fatalf("%s is not a TLS connection (%T)", c, c.Conn)
	}
	return tc.ConnectionState()
}
