package client

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// bits builds bytes from a readable bit string such as "1000_0001 0000_0101":
// spaces separate bytes, underscores are ignored.
func bits(t testing.TB, s string) []byte {
	t.Helper()
	var out []byte
	for _, f := range strings.Fields(s) {
		f = strings.ReplaceAll(f, "_", "")
		if len(f) != 8 {
			t.Fatalf("bits: %q is not 8 bits", f)
		}
		var b byte
		for _, c := range f {
			b = b<<1 | byte(c-'0')
		}
		out = append(out, b)
	}
	return out
}

func TestParseFrameHeader(t *testing.T) {
	const max = 1 << 15
	cases := []struct {
		name    string
		in      string // bits
		extra   []byte // appended after the bits
		deflate bool   // permessage-deflate negotiated
		want    frameHeader
		wantN   int
		errSub  string
	}{
		{name: "text 5", in: "1000_0001 0000_0101", want: frameHeader{fin: true, op: OpText, length: 5}, wantN: 2},
		{name: "not final", in: "0000_0001 0000_0000", want: frameHeader{op: OpText}, wantN: 2},
		{name: "continuation", in: "1000_0000 0000_0011", want: frameHeader{fin: true, op: OpContinuation, length: 3}, wantN: 2},
		{name: "len16", in: "1000_0001 0111_1110 0000_0001 0000_0000", want: frameHeader{fin: true, op: OpText, length: 256}, wantN: 4},
		{name: "len64", in: "1000_0010 0111_1111", extra: []byte{0, 0, 0, 0, 0, 0, 0x80, 0}, want: frameHeader{fin: true, op: OpBinary, length: 32768}, wantN: 10},
		{name: "ping", in: "1000_1001 0000_0100", want: frameHeader{fin: true, op: OpPing, length: 4}, wantN: 2},
		{name: "close empty", in: "1000_1000 0000_0000", want: frameHeader{fin: true, op: OpClose}, wantN: 2},
		{name: "one byte", in: "1000_0001", wantN: 0},
		{name: "len16 cut", in: "1000_0001 0111_1110 0000_0001", wantN: 0},
		{name: "len64 cut", in: "1000_0001 0111_1111 0000_0000", wantN: 0},
		{name: "masked", in: "1000_0001 1000_0101", errSub: "masked"},
		{name: "rsv1", in: "1100_0001 0000_0101", errSub: "RSV"},
		{name: "rsv1 deflate", in: "1100_0001 0000_0101", deflate: true, want: frameHeader{fin: true, op: OpText, rsv1: true, length: 5}, wantN: 2},
		{name: "rsv1 deflate first fragment", in: "0100_0010 0000_0000", deflate: true, want: frameHeader{op: OpBinary, rsv1: true}, wantN: 2},
		{name: "rsv1 deflate continuation", in: "1100_0000 0000_0101", deflate: true, errSub: "RSV"},
		{name: "rsv1 deflate ping", in: "1100_1001 0000_0000", deflate: true, errSub: "RSV"},
		{name: "rsv1 deflate close", in: "1100_1000 0000_0000", deflate: true, errSub: "RSV"},
		{name: "rsv2 deflate", in: "1010_0001 0000_0101", deflate: true, errSub: "RSV"},
		{name: "rsv1+3 deflate", in: "1101_0001 0000_0101", deflate: true, errSub: "RSV"},
		{name: "reserved opcode", in: "1000_0011 0000_0000", errSub: "reserved opcode"},
		{name: "fragmented ping", in: "0000_1001 0000_0000", errSub: "control"},
		{name: "long ping", in: "1000_1001 0111_1110 0000_0000 0111_1110", errSub: "control"},
		{name: "over limit 16", in: "1000_0001 0111_1110 1111_1111 1111_1111", errSub: "limit"},
		{name: "over limit 64", in: "1000_0001 0111_1111", extra: []byte{0x80, 0, 0, 0, 0, 0, 0, 0}, errSub: "limit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := append(bits(t, tc.in), tc.extra...)
			h, n, err := parseFrameHeader(in, max, tc.deflate)
			if tc.errSub != "" {
				if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tc.errSub) {
					t.Fatalf("err = %v, want ErrProtocol mentioning %q", err, tc.errSub)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if n != tc.wantN || (n > 0 && h != tc.want) {
				t.Fatalf("got %+v n=%d, want %+v n=%d", h, n, tc.want, tc.wantN)
			}
		})
	}
}

func TestAppendMaskedFrame(t *testing.T) {
	for _, size := range []int{0, 1, 7, 125, 126, 65535, 65536} {
		payload := bytes.Repeat([]byte("abcdefghij"), size/10+1)[:size]
		const key = 0x01020304
		f := appendMaskedFrame([]byte("prefix"), OpText, payload, key)
		if !bytes.HasPrefix(f, []byte("prefix")) {
			t.Fatalf("size %d: dst prefix lost", size)
		}
		f = f[len("prefix"):]
		if f[0] != 0x81 || f[1]&maskBit == 0 {
			t.Fatalf("size %d: header bytes %08b %08b: want FIN|text and the mask bit", size, f[0], f[1])
		}
		// Decode with the server-side view: clear the mask bit to reuse the
		// parser, then unmask.
		unmasked := append([]byte(nil), f...)
		unmasked[1] &^= maskBit
		h, n, err := parseFrameHeader(unmasked, 1<<20, false)
		if err != nil || h.length != size || !h.fin || h.op != OpText {
			t.Fatalf("size %d: parse %+v n=%d err=%v", size, h, n, err)
		}
		k := [4]byte(f[n : n+4])
		if k != [4]byte{1, 2, 3, 4} {
			t.Fatalf("size %d: key %v", size, k)
		}
		got := append([]byte(nil), f[n+4:]...)
		mask(got, k)
		if !bytes.Equal(got, payload) {
			t.Fatalf("size %d: payload does not round-trip", size)
		}
		if size > 8 && bytes.Equal(f[n+4:], payload) {
			t.Fatalf("size %d: payload was not masked", size)
		}
	}
}

func TestClosePayload(t *testing.T) {
	code, reason := parseClosePayload(appendClosePayload(nil, 1008, "slow"))
	if code != 1008 || reason != "slow" {
		t.Fatalf("got %d %q", code, reason)
	}
	if code, _ := parseClosePayload(nil); code != StatusNoStatus {
		t.Fatalf("empty close payload: code %d, want %d", code, StatusNoStatus)
	}
}

// FuzzParseFrameHeader: arbitrary server bytes never panic, and an accepted
// header never declares more than the limit or more than a control frame
// may carry.
func FuzzParseFrameHeader(f *testing.F) {
	f.Add([]byte{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'})
	f.Add([]byte{0x82, 0x7e, 0x01, 0x00})
	f.Add([]byte{0x81, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0})
	f.Add([]byte{0x89, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		const max = 4096
		deflate := len(b) > 0 && b[len(b)-1]&1 == 1 // either way, from the input
		h, n, err := parseFrameHeader(b, max, deflate)
		if err != nil || n == 0 {
			return
		}
		if n > len(b) || h.length < 0 || h.length > max || (h.op.isControl() && (h.length > maxLen7 || !h.fin)) ||
			(h.rsv1 && (!deflate || h.op.isControl() || h.op == OpContinuation)) {
			t.Fatalf("accepted bad header %+v n=%d from %x", h, n, b)
		}
	})
}
