package gateway

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// TestAcceptedSocketsInheritNoDelay guards the acceptor's assumption that
// TCP_NODELAY set on the listening socket carries over to sockets taken
// with raw accept4, so that no per-connection setsockopt is needed.
func TestAcceptedSocketsInheritNoDelay(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	raw, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var lfd int
	raw.Control(func(fd uintptr) { lfd = int(fd) })
	if err := unix.SetsockoptInt(lfd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var fd int
	for {
		fd, _, err = unix.Accept4(lfd, unix.SOCK_CLOEXEC)
		if err != unix.EAGAIN {
			break
		}
	}
	if err != nil {
		t.Fatalf("accept4: %v", err)
	}
	defer unix.Close(fd)
	v, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY)
	if err != nil {
		t.Fatal(err)
	}
	if v == 0 {
		t.Fatal("accepted socket has TCP_NODELAY off: set it per connection")
	}
}
