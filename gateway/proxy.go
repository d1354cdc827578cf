package gateway

import (
	"net/netip"

	"github.com/shardgate/shardgate/gateway/proxyhdr"
	"golang.org/x/sys/unix"
)

// -proxy-protocol: every connection on the public listener starts with a
// PROXY protocol v1 or v2 header written by the load balancer in front
// (HAProxy, AWS NLB). The acceptor reads it into the handshake buffer like
// the request that follows, on readiness, with no goroutine:
//
//   - accept does not count the socket's peer (the load balancer) in the
//     ipLimiter; the header's client address is counted once the header is
//     complete, so -max-conns-per-ip limits clients, not the proxy;
//   - a header that arrives in pieces is waited for within the same
//     -handshake-timeout as the rest of the handshake, and can hold at
//     most proxyhdr.MaxLen bytes of the buffer;
//   - bytes that cannot start a valid header drop the connection at once,
//     with no HTTP answer (counted as bad_request): whoever sent them is
//     not the proxy, and an answer would tell a scanner what listens;
//   - v2 LOCAL (the proxy's own health check) and v1 UNKNOWN name no
//     client: the socket's peer stands in for it.
//
// Once the header is parsed its bytes leave p.buf, p.proxied is set and
// what follows (the HTTP request, or on a TLS listener the ClientHello)
// is handled exactly as on a listener without the flag.

// proxyHeader parses p's PROXY header from the bytes read so far. It
// reports whether onReadable goes on with p.buf: false while the header is
// incomplete, when nothing follows it yet, or when p was dropped (p.done).
// On success the header is cut from the front of p.buf, p.client and
// p.tag are set and p.proxied is true.
func (a *acceptor) proxyHeader(p *pendingConn) bool {
	buf := (*p.buf)[:p.n]
	src, n, err := proxyhdr.Parse(buf)
	switch {
	case err == proxyhdr.ErrIncomplete:
		return false
	case err != nil:
		a.hs.count(upgradeBadRequest)
		a.log.Debug("dropped a connection without a valid PROXY header", "peer", peerAddr(p.fd), "err", err)
		a.drop(p)
		return false
	}
	if !src.IsValid() {
		src = peerAddr(p.fd)
	}
	p.client = src
	p.proxied = true
	if a.perIP != nil {
		p.tag = a.perIP.add(src)
	}
	p.n = copy(*p.buf, buf[n:])
	return p.n > 0
}

// peerAddr returns the socket's peer address (IPv4-mapped IPv6 as IPv4),
// or the zero Addr if the peer is gone.
func peerAddr(fd int) netip.Addr {
	sa, err := unix.Getpeername(fd)
	if err != nil {
		return netip.Addr{}
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrFrom4(sa.Addr)
	case *unix.SockaddrInet6:
		return netip.AddrFrom16(sa.Addr).Unmap()
	}
	return netip.Addr{}
}
