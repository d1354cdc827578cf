package proxyhdr

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/pires/go-proxyproto"
)

// v2 builds a v2 header with go-proxyproto's writer.
func v2(t testing.TB, cmd proxyproto.ProtocolVersionAndCommand, fam proxyproto.AddressFamilyAndProtocol, src, dst net.Addr, tlvs ...proxyproto.TLV) []byte {
	t.Helper()
	h := &proxyproto.Header{Version: 2, Command: cmd, TransportProtocol: fam, SourceAddr: src, DestinationAddr: dst}
	if err := h.SetTLVs(tlvs); err != nil {
		t.Fatal(err)
	}
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tcp(addr string) *net.TCPAddr {
	ap := netip.MustParseAddrPort(addr)
	return &net.TCPAddr{IP: ap.Addr().AsSlice(), Port: int(ap.Port())}
}

// v2Raw builds a v2 header by hand, for what the writer refuses to write.
func v2Raw(cmd, fam byte, payload []byte) []byte {
	b := append(bytes.Clone(sigV2), cmd, fam, 0, 0)
	binary.BigEndian.PutUint16(b[14:], uint16(len(payload)))
	return append(b, payload...)
}

// validHeaders are headers Parse accepts, with the address each names
// (the zero Addr: none, use the socket's).
func validHeaders(t testing.TB) []struct {
	name string
	hdr  []byte
	src  netip.Addr
} {
	v4, v6 := tcp("192.0.2.7:51000"), tcp("[2001:db8::7]:51000")
	dst4, dst6 := tcp("10.0.0.1:443"), tcp("[2001:db8::1]:443")
	return []struct {
		name string
		hdr  []byte
		src  netip.Addr
	}{
		{"v1 TCP4", []byte("PROXY TCP4 192.0.2.7 10.0.0.1 51000 443\r\n"), netip.MustParseAddr("192.0.2.7")},
		{"v1 TCP6", []byte("PROXY TCP6 2001:db8::7 2001:db8::1 51000 443\r\n"), netip.MustParseAddr("2001:db8::7")},
		{"v1 TCP6 v4-mapped is returned as IPv4", []byte("PROXY TCP6 ::ffff:192.0.2.7 ::1 1 2\r\n"), netip.MustParseAddr("192.0.2.7")},
		{"v1 TCP6 longest", []byte("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"), netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")},
		{"v1 UNKNOWN", []byte("PROXY UNKNOWN\r\n"), netip.Addr{}},
		{"v1 UNKNOWN with ignored fields", []byte("PROXY UNKNOWN ffff:f::1 ffff::2 65535 65535\r\n"), netip.Addr{}},
		{"v2 PROXY TCP4", v2(t, proxyproto.PROXY, proxyproto.TCPv4, v4, dst4), netip.MustParseAddr("192.0.2.7")},
		{"v2 PROXY TCP6", v2(t, proxyproto.PROXY, proxyproto.TCPv6, v6, dst6), netip.MustParseAddr("2001:db8::7")},
		{"v2 PROXY TCP4 with TLVs", v2(t, proxyproto.PROXY, proxyproto.TCPv4, v4, dst4,
			proxyproto.TLV{Type: proxyproto.PP2_TYPE_ALPN, Value: []byte("http/1.1")},
			proxyproto.TLV{Type: proxyproto.PP2_TYPE_AUTHORITY, Value: []byte("ws.example.com")},
			proxyproto.TLV{Type: 0xEA, Value: []byte("\x01vpce-0123456789abcdef0")}, // AWS NLB's VPC endpoint ID
		), netip.MustParseAddr("192.0.2.7")},
		{"v2 PROXY TCP4 with the largest payload", v2Raw(v2Proxy, byte(proxyproto.TCPv4), append([]byte{192, 0, 2, 7, 10, 0, 0, 1, 0, 1, 0, 2}, make([]byte, MaxV2Payload-12)...)), netip.MustParseAddr("192.0.2.7")},
		{"v2 LOCAL", v2Raw(v2Local, byte(proxyproto.UNSPEC), nil), netip.Addr{}},
		{"v2 LOCAL with addresses", v2Raw(v2Local, byte(proxyproto.TCPv4), []byte{192, 0, 2, 7, 10, 0, 0, 1, 0, 1, 0, 2}), netip.Addr{}},
		{"v2 PROXY unix stream", v2Raw(v2Proxy, byte(proxyproto.UnixStream), make([]byte, 216)), netip.Addr{}},
	}
}

func TestParseValidHeaders(t *testing.T) {
	after := []byte("GET /ws HTTP/1.1\r\n\r\n")
	for _, tc := range validHeaders(t) {
		t.Run(tc.name, func(t *testing.T) {
			src, n, err := Parse(append(bytes.Clone(tc.hdr), after...))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if n != len(tc.hdr) {
				t.Errorf("n = %d, want the header's %d bytes", n, len(tc.hdr))
			}
			if src != tc.src {
				t.Errorf("src = %v, want %v", src, tc.src)
			}
		})
	}
}

// TestParseSplitAtEveryOffsetIsIncompleteUntilComplete: a header arriving
// in pieces is waited for, whatever the cut, and accepted once whole.
func TestParseSplitAtEveryOffsetIsIncompleteUntilComplete(t *testing.T) {
	for _, tc := range validHeaders(t) {
		t.Run(tc.name, func(t *testing.T) {
			for k := range len(tc.hdr) {
				if _, _, err := Parse(tc.hdr[:k]); err != ErrIncomplete {
					t.Fatalf("first %d of %d bytes: %v, want ErrIncomplete", k, len(tc.hdr), err)
				}
			}
			if _, n, err := Parse(tc.hdr); err != nil || n != len(tc.hdr) {
				t.Fatalf("whole header: n=%d err=%v", n, err)
			}
		})
	}
}

// TestParseRefusesAtTheFirstWrongByte: input that is not a header is
// refused as soon as a byte rules a header out, not after waiting for a
// full header's worth of bytes. at is the shortest prefix refused.
func TestParseRefusesAtTheFirstWrongByte(t *testing.T) {
	tcp4 := v2(t, proxyproto.PROXY, proxyproto.TCPv4, tcp("192.0.2.7:1"), tcp("10.0.0.1:2"))
	withByte := func(i int, v byte) []byte { b := bytes.Clone(tcp4); b[i] = v; return b }
	cases := []struct {
		name string
		in   []byte
		at   int
	}{
		{"HTTP request without a header", []byte("GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"), 1},
		{"HTTP PUT", []byte("PUT /ws HTTP/1.1\r\n\r\n"), 2},
		{"HTTP/2 preface", []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 3},
		{"TLS ClientHello", []byte{0x16, 0x03, 0x01, 0x02, 0x00}, 1},
		{"PROXY without its space", []byte("PROXY\r\n"), 6},
		{"v1 lower case", []byte("proxy TCP4 1.2.3.4 1.2.3.4 1 2\r\n"), 1},
		{"v1 unknown protocol", []byte("PROXY UDP4 1.2.3.4 1.2.3.4 1 2\r\n"), 8},
		{"v1 IPv6 in TCP4", []byte("PROXY TCP4 ::1 ::1 1 2\r\n"), 12},
		{"v1 octet over 255", []byte("PROXY TCP4 192.0.2.256 10.0.0.1 1 2\r\n"), 22},
		{"v1 octet with a leading zero", []byte("PROXY TCP4 192.0.02.1 10.0.0.1 1 2\r\n"), 19},
		{"v1 IPv6 group of five digits", []byte("PROXY TCP6 2001:db800::1 ::1 1 2\r\n"), 21},
		{"v1 port over 65535", []byte("PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n"), 32},
		{"v1 seventh field", []byte("PROXY TCP4 1.2.3.4 1.2.3.4 1 2 3\r\n"), 31},
		{"v1 LF without CR", []byte("PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n"), 31},
		{"v1 line whose CRLF no longer fits in 107 bytes", []byte("PROXY UNKNOWN " + strings.Repeat("x", 100)), MaxV1Len - 1},
		{"v2 bad version", withByte(12, 0x11), 13},
		{"v2 bad command", withByte(12, 0x22), 13},
		{"v2 PROXY UNSPEC", withByte(13, 0x00), 14},
		{"v2 PROXY UDP", withByte(13, byte(proxyproto.UDPv4)), 14},
		{"v2 undefined family", withByte(13, 0x13), 14},
		{"v2 length over MaxV2Payload", v2Raw(v2Proxy, byte(proxyproto.TCPv4), make([]byte, MaxV2Payload+1)), 16},
		{"v2 length field far over MaxV2Payload", withByte(14, 0xff), 15},
		{"v2 TCP4 shorter than its addresses", v2Raw(v2Proxy, byte(proxyproto.TCPv4), make([]byte, 11)), 16},
		{"v2 signature broken", withByte(11, 0), 12},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k := 0; k < tc.at; k++ {
				if _, _, err := Parse(tc.in[:k]); err != ErrIncomplete {
					t.Fatalf("first %d bytes: %v, want ErrIncomplete (refused before byte %d)", k, err, tc.at)
				}
			}
			for k := tc.at; k <= len(tc.in); k++ {
				if _, n, err := Parse(tc.in[:k]); !errors.Is(err, ErrInvalid) || n != 0 {
					t.Fatalf("first %d bytes: n=%d err=%v, want ErrInvalid", k, n, err)
				}
			}
		})
	}
}
