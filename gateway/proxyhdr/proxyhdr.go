// Package proxyhdr reads the PROXY protocol header (v1 text, v2 binary)
// that a load balancer (HAProxy, AWS NLB) writes at the start of each
// connection it forwards, from bytes the caller already holds:
//
//	src, n, err := proxyhdr.Parse(buf[:filled])
//	switch {
//	case errors.Is(err, proxyhdr.ErrIncomplete): // read more, call again
//	case err != nil:                            // drop the connection
//	default: // buf[n:filled] is the client's own first bytes
//	}
//
// The caller reads; Parse never blocks and keeps no state between calls,
// so a poller-driven acceptor can call it on every readiness event.
//
// Decoding is go-proxyproto's (proxyproto.Read over a bufio.Reader on the
// complete header). Framing is ours: that parser reads from a stream and
// reports a short input in the same ways as a malformed one (a truncated
// signature is ErrNoProxyProtocol; a v1 line cut before its LF is
// ErrCantReadVersion1Header, exactly as a line with a bad token), so it
// cannot tell an acceptor to wait for more bytes. Parse finds where the
// header ends itself (v1: the LF within 107 bytes; v2: 16 bytes plus the
// length field) and hands the library only complete headers.
package proxyhdr

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/pires/go-proxyproto"
)

const (
	// MaxV1Len is the longest v1 header, CRLF included (the spec's worst
	// case: "PROXY UNKNOWN" with two full IPv6 addresses and ports).
	MaxV1Len = 107
	// MaxV2Payload bounds what follows a v2 header's fixed 16 bytes:
	// addresses and TLVs. The field allows 65535; real proxies send the
	// addresses plus a few small TLVs (AWS NLB: a VPC endpoint ID; HAProxy:
	// ALPN, authority, at most a client certificate of 1-2 KiB), so 4 KiB
	// (go-proxyproto's own default) leaves room and refuses absurd lengths
	// as soon as the length field arrives.
	MaxV2Payload = 4096
	// MaxLen is the longest header Parse accepts, either version.
	MaxLen = v2FixedLen + MaxV2Payload

	v2FixedLen = 16
)

var (
	// ErrIncomplete: b is a prefix of some valid header; read more bytes.
	// Parse never returns it for a prefix that can no longer become valid.
	ErrIncomplete = errors.New("proxyhdr: incomplete header")
	// ErrInvalid: b does not start with a valid header, whatever follows.
	ErrInvalid = errors.New("proxyhdr: invalid header")
)

var (
	sigV1 = []byte("PROXY ")
	sigV2 = proxyproto.SIGV2
)

// v2 command and address-family bytes (spec section 2.2).
const (
	v2Local = byte(proxyproto.LOCAL)
	v2Proxy = byte(proxyproto.PROXY)
)

// Parse reads the PROXY header at the start of b. On success src is the
// client address the header names, or the zero Addr when it names none
// (v2 LOCAL, the proxy's own health check; v1 UNKNOWN; a v2 AF_UNIX
// client): the caller then uses the socket's own peer. An IPv4-mapped IPv6
// address is returned as IPv4. n is the header's length: b[n:] belongs to
// the protocol that follows. Parse does not retain b.
//
// A header that names a datagram (UDP, unix datagram) client is invalid:
// a TCP connection cannot carry one.
func Parse(b []byte) (src netip.Addr, n int, err error) {
	switch {
	case len(b) == 0:
		return netip.Addr{}, 0, ErrIncomplete
	case b[0] == sigV1[0]:
		return parseV1(b)
	case b[0] == sigV2[0]:
		return parseV2(b)
	}
	return netip.Addr{}, 0, ErrInvalid
}

func parseV1(b []byte) (netip.Addr, int, error) {
	line := b[:min(len(b), MaxV1Len)]
	if !hasPrefixOrIsPrefix(line, sigV1) {
		return netip.Addr{}, 0, ErrInvalid
	}
	end := bytes.IndexByte(line, '\n')
	if end < 0 {
		// A slow sender, or a line that is already wrong: wait only when
		// some completion would be a valid header.
		if len(line) == MaxV1Len || v1Witness(line) == nil {
			return netip.Addr{}, 0, ErrInvalid
		}
		return netip.Addr{}, 0, ErrIncomplete
	}
	src, err := decode(line[:end+1])
	if err != nil {
		return netip.Addr{}, 0, err
	}
	return src, end + 1, nil
}

// parseV2 checks the fixed 16 bytes as they arrive, mirroring what
// go-proxyproto and decode will require of the complete header, so that a
// bad command, family or length is refused at once rather than after
// waiting for up to MaxLen bytes. (FuzzParse holds the mirror to the
// library: every prefix reported incomplete must have a valid completion.)
func parseV2(b []byte) (netip.Addr, int, error) {
	if !hasPrefixOrIsPrefix(b, sigV2) {
		return netip.Addr{}, 0, ErrInvalid
	}
	if len(b) > 12 && b[12] != v2Local && b[12] != v2Proxy {
		return netip.Addr{}, 0, ErrInvalid
	}
	if len(b) > 13 && familyMin(b[12], b[13]) < 0 {
		return netip.Addr{}, 0, ErrInvalid
	}
	if len(b) > 14 && int(b[14])<<8 > MaxV2Payload {
		return netip.Addr{}, 0, ErrInvalid
	}
	if len(b) < v2FixedLen {
		return netip.Addr{}, 0, ErrIncomplete
	}
	length := int(binary.BigEndian.Uint16(b[14:16]))
	// A LOCAL header may carry any length (its address block is skipped);
	// a PROXY header must hold its family's addresses.
	if length > MaxV2Payload || (b[12] == v2Proxy && length < familyMin(b[12], b[13])) {
		return netip.Addr{}, 0, ErrInvalid
	}
	n := v2FixedLen + length
	if len(b) < n {
		// Addresses and TLVs may be any bytes: every completion is valid.
		return netip.Addr{}, 0, ErrIncomplete
	}
	src, err := decode(b[:n])
	if err != nil {
		return netip.Addr{}, 0, err
	}
	return src, n, nil
}

// familyMin returns the length of the address block a v2 header with this
// command and family must carry, or -1 if the pair is refused.
func familyMin(cmd, fam byte) int {
	switch proxyproto.AddressFamilyAndProtocol(fam) {
	case proxyproto.UNSPEC:
		if cmd == v2Local {
			return 0
		}
	case proxyproto.TCPv4:
		return 12
	case proxyproto.TCPv6:
		return 36
	case proxyproto.UnixStream:
		return 216
	case proxyproto.UDPv4, proxyproto.UDPv6, proxyproto.UnixDatagram:
		// Datagram clients: meaningless on a TCP connection, but a LOCAL
		// header's addresses are ignored anyway.
		if cmd == v2Local {
			return 0
		}
	}
	return -1
}

// decode parses one complete header with go-proxyproto and picks the
// client address.
func decode(frame []byte) (netip.Addr, error) {
	// Sized to the frame, so the v1 parser finds the whole line buffered
	// (it refuses a line that arrives in more than one read).
	h, err := proxyproto.Read(bufio.NewReaderSize(bytes.NewReader(frame), len(frame)))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if h.Command.IsLocal() {
		return netip.Addr{}, nil
	}
	switch h.TransportProtocol {
	case proxyproto.TCPv4, proxyproto.TCPv6:
		if a, ok := h.SourceAddr.(*net.TCPAddr); ok {
			if ip, ok := netip.AddrFromSlice(a.IP); ok {
				return ip.Unmap(), nil
			}
		}
		return netip.Addr{}, fmt.Errorf("%w: no source address", ErrInvalid)
	case proxyproto.UnixStream:
		return netip.Addr{}, nil
	}
	return netip.Addr{}, fmt.Errorf("%w: transport %#x is not a stream", ErrInvalid, byte(h.TransportProtocol))
}

// hasPrefixOrIsPrefix reports whether b and sig agree on their common
// length.
func hasPrefixOrIsPrefix(b, sig []byte) bool {
	k := min(len(b), len(sig))
	return bytes.Equal(b[:k], sig[:k])
}
