package client

import (
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// dialSocket creates a non-blocking TCP socket, binds it to src when src is
// valid, sets its receive buffer to rcvbuf bytes when positive, and starts
// connecting it to dst. The caller owns the returned fd.
func dialSocket(dst netip.AddrPort, src netip.Addr, rcvbuf int) (int, error) {
	family := unix.AF_INET
	if dst.Addr().Is6() && !dst.Addr().Is4In6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return -1, &DialError{Op: "socket", Err: os.NewSyscallError("socket", err)}
	}
	fail := func(op string, err error) (int, error) {
		unix.Close(fd)
		return -1, &DialError{Op: op, Err: os.NewSyscallError(op, err)}
	}
	// Upgrade requests and subscribes are small writes that must leave at
	// once, as with any WebSocket client.
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		return fail("setsockopt", err)
	}
	// Before connect: the window scale offered in the SYN follows the
	// receive buffer, and a buffer set later would not shrink it.
	if rcvbuf > 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf); err != nil {
			return fail("setsockopt", err)
		}
	}
	if src.IsValid() {
		// Without IP_BIND_ADDRESS_NO_PORT, bind picks a port unique to the
		// source address across all destinations; with it, connect picks
		// one unique to the 4-tuple, so each source address carries a full
		// port range per server.
		if family == unix.AF_INET {
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1); err != nil {
				return fail("setsockopt", err)
			}
		}
		if err := unix.Bind(fd, sockaddr(netip.AddrPortFrom(src, 0), family)); err != nil {
			return fail("bind", err)
		}
	}
	if err := unix.Connect(fd, sockaddr(dst, family)); err != nil && err != unix.EINPROGRESS {
		return fail("connect", err)
	}
	return fd, nil
}

func sockaddr(ap netip.AddrPort, family int) unix.Sockaddr {
	if family == unix.AF_INET {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().Unmap().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}
