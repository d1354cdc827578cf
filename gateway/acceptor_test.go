package gateway

import (
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/shardgate/shardgate/internal/wstest"
	"golang.org/x/sys/unix"
)

// TestAcceptedSocketsHaveNoDelay: the sockets the running acceptor takes
// with raw accept4 have TCP_NODELAY on, while it holds them in the
// handshake and after a shard took them over. Nothing sets it per
// connection: it comes from the listener (newAcceptor), so this fails if
// the listener option is dropped or stops carrying over to accepted
// sockets.
func TestAcceptedSocketsHaveNoDelay(t *testing.T) {
	g := startGateway(t, func(c *Config) { c.HandshakeTimeout = time.Minute })
	cases := []struct {
		name string
		dial func(t *testing.T) net.Conn
	}{
		{"in handshake", func(t *testing.T) net.Conn {
			c, err := net.Dial("tcp", g.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			// Half a request: the acceptor keeps the socket pending.
			if _, err := c.Write([]byte("GET " + g.cfg.Path + " HTTP/1.1\r\n")); err != nil {
				t.Fatal(err)
			}
			return c
		}},
		{"upgraded", func(t *testing.T) net.Conn {
			return wstest.Dial(t, g.wsURL(), nil).Conn
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.dial(t)
			var fd int
			waitFor(t, "the gateway's side of "+c.LocalAddr().String(), func() bool {
				var ok bool
				fd, ok = serverSideFd(t, c)
				return ok
			})
			v, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY)
			if err != nil {
				t.Fatal(err)
			}
			// The fd is not ours: make sure the number still named the
			// same socket when it was read.
			if again, ok := serverSideFd(t, c); !ok || again != fd {
				t.Fatalf("fd %d changed hands while it was read", fd)
			}
			if v == 0 {
				t.Fatalf("accepted socket (fd %d) has TCP_NODELAY off", fd)
			}
		})
	}
}

// serverSideFd finds, among this process's descriptors, the socket whose
// peer is c's local end and whose own address is c's remote end: the
// gateway's side of c, which the acceptor holds as a bare fd.
func serverSideFd(t *testing.T, c net.Conn) (int, bool) {
	t.Helper()
	local, remote := c.LocalAddr().(*net.TCPAddr), c.RemoteAddr().(*net.TCPAddr)
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		peer, err := unix.Getpeername(fd)
		if err != nil || !sameInet4(peer, local) {
			continue
		}
		name, err := unix.Getsockname(fd)
		if err != nil || !sameInet4(name, remote) {
			continue
		}
		return fd, true
	}
	return -1, false
}

func sameInet4(sa unix.Sockaddr, a *net.TCPAddr) bool {
	in4, ok := sa.(*unix.SockaddrInet4)
	return ok && in4.Port == a.Port && net.IP(in4.Addr[:]).Equal(a.IP)
}
