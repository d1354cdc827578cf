package proxyhdr

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// FuzzParse checks Parse on arbitrary bytes (its seed corpus runs with
// every go test):
//   - it never panics, and 0 < n <= len(b) on success, n == 0 otherwise;
//   - ErrIncomplete is never returned for a prefix that can no longer
//     become valid: witness(b) finds a valid header that starts with b;
//   - every proper prefix of an accepted header is ErrIncomplete (a header
//     trickled in pieces is never refused), and bytes after it change
//     nothing;
//   - a refused input stays refused whatever follows.
func FuzzParse(f *testing.F) {
	for _, tc := range validHeaders(f) {
		f.Add(tc.hdr)
		f.Add(append(bytes.Clone(tc.hdr), "GET / HTTP/1.1\r\n\r\n"...))
	}
	for _, s := range []string{
		"", "P", "PROXY", "PROXY ", "PROXY TCP6 ::ffff:1.2.", "PROXY TCP6 1:2:3:4:5:6:7", "PROXY TCP6 1::2:",
		"PROXY TCP4 1.2.3.4 1.2.3.4 1 2", "PROXY UNKNOWN\r", "PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n",
		"GET /ws HTTP/1.1\r\n\r\n", "\r\n\r\n", "\x16\x03\x01",
	} {
		f.Add([]byte(s))
	}
	f.Add(v2Raw(v2Proxy, 0x11, make([]byte, 11)))
	f.Add(v2Raw(v2Local, 0x32, make([]byte, 3)))
	f.Add(v2Raw(v2Proxy, 0x31, make([]byte, 216))[:20])
	f.Fuzz(func(t *testing.T, b []byte) {
		src, n, err := Parse(b)
		switch {
		case err == nil:
			if n <= 0 || n > len(b) {
				t.Fatalf("n = %d of %d bytes", n, len(b))
			}
			for k := range n {
				if _, _, err := Parse(b[:k]); err != ErrIncomplete {
					t.Fatalf("header of %d bytes accepted, its first %d refused: %v", n, k, err)
				}
			}
			if src2, n2, err := Parse(b[:n]); err != nil || n2 != n || src2 != src {
				t.Fatalf("the header alone: %v %d %v, with what follows: %v %d", src2, n2, err, src, n)
			}
		case err == ErrIncomplete:
			if n != 0 {
				t.Fatalf("n = %d with ErrIncomplete", n)
			}
			w := witness(b)
			if w == nil || !bytes.HasPrefix(w, b) {
				t.Fatalf("incomplete %q has no valid completion", b)
			}
			if _, n, err := Parse(w); err != nil || n != len(w) {
				t.Fatalf("incomplete %q: its completion %q: n=%d err=%v", b, w, n, err)
			}
		case errors.Is(err, ErrInvalid):
			if n != 0 {
				t.Fatalf("n = %d with %v", n, err)
			}
			for _, more := range []string{"\n", "\r\n", "0", ":", " "} {
				if _, _, err := Parse(append(bytes.Clone(b), more...)); !errors.Is(err, ErrInvalid) {
					t.Fatalf("%q refused, %q accepted after it: %v", b, more, err)
				}
			}
		default:
			t.Fatalf("Parse: unexpected error %v", err)
		}
	})
}

// witness returns a valid header that starts with the incomplete b, built
// independently of parseV2's checks for v2: the missing fixed bytes take
// the values a PROXY TCP4 header would, the missing length the smallest
// the family allows, and addresses and TLVs are zeros.
func witness(b []byte) []byte {
	if len(b) > 0 && b[0] == sigV1[0] {
		return v1Witness(b)
	}
	w := bytes.Clone(b)
	for len(w) < 12 {
		w = append(w, sigV2[len(w)])
	}
	if len(w) == 12 {
		w = append(w, v2Proxy)
	}
	if len(w) == 13 {
		fam := byte(0x11)
		if w[12] == v2Local {
			fam = 0
		}
		w = append(w, fam)
	}
	if len(w) == 14 {
		w = append(w, 0)
	}
	if len(w) == 15 {
		lo := byte(0)
		if w[14] == 0 && w[12] == v2Proxy {
			lo = map[byte]byte{0x11: 12, 0x21: 36, 0x31: 216}[w[13]]
		}
		w = append(w, lo)
	}
	n := v2FixedLen + int(binary.BigEndian.Uint16(w[14:16]))
	for len(w) < n {
		w = append(w, 0)
	}
	return w
}
