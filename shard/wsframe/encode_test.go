package wsframe

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// TestAppendFrame encodes, as a server frame, every frame of the shared
// table that a server could send, and compares with the bytes the table's
// builder produces.
func TestAppendFrame(t *testing.T) {
	prefix := []byte("queued")
	for _, test := range testCases {
		t.Run(test.name, func(t *testing.T) {
			for i, f := range test.frames {
				if !f.encodable() {
					continue
				}
				want := f.server()
				got := AppendFrame(bytes.Clone(prefix), f.op, []byte(f.payload))
				if !bytes.HasPrefix(got, prefix) || !bytes.Equal(got[len(prefix):], want) {
					t.Errorf(
						"frame #%d: AppendFrame()\n\t% x\nwant\n\t% x",
						i, truncate(got[len(prefix):]), truncate(want),
					)
				}
				if n := HeaderLen(len(f.payload)); n != len(want)-len(f.payload) {
					t.Errorf(
						"frame #%d: HeaderLen(%d) = %d, want %d",
						i, len(f.payload), n, len(want)-len(f.payload),
					)
				}
			}
		})
	}
}

// TestAppendHeader pins the length encodings at their boundaries, bit by bit.
func TestAppendHeader(t *testing.T) {
	for _, test := range []struct {
		name   string
		op     ws.OpCode
		length int
		want   []byte
	}{
		{
			name:   "text-0",
			op:     ws.OpText,
			length: 0,
			want:   bits("1 000 0001 0 0000000"),
			//        _ ___ ____ _ _______
			//        |  |   |   |    |
			//       Fin |   |  Mask Length
			//          Rsv  |
			//           TextFrame
		},
		{
			name:   "text-125",
			op:     ws.OpText,
			length: 125,
			want:   bits("1 000 0001 0 1111101"),
		},
		{
			name:   "text-126",
			op:     ws.OpText,
			length: 126,
			want:   bits("1 000 0001 0 1111110 00000000 01111110"),
		},
		{
			name:   "binary-65535",
			op:     ws.OpBinary,
			length: 65535,
			want:   bits("1 000 0010 0 1111110 11111111 11111111"),
		},
		{
			name:   "text-65536",
			op:     ws.OpText,
			length: 65536,
			want:   bits("1 000 0001 0 1111111 00000000 00000000 00000000 00000000 00000000 00000001 00000000 00000000"),
		},
		{
			name:   "close-2",
			op:     ws.OpClose,
			length: 2,
			want:   bits("1 000 1000 0 0000010"),
		},
		{
			name:   "pong-0",
			op:     ws.OpPong,
			length: 0,
			want:   bits("1 000 1010 0 0000000"),
		},
	} {
		t.Run(test.name, func(t *testing.T) {
			got := AppendHeader(nil, test.op, test.length)
			if !bytes.Equal(got, test.want) {
				t.Errorf(
					"AppendHeader(%d, %d) = %08b, want %08b",
					test.op, test.length, got, test.want,
				)
			}
			if n := HeaderLen(test.length); n != len(test.want) {
				t.Errorf(
					"HeaderLen(%d) = %d, want %d",
					test.length, n, len(test.want),
				)
			}
		})
	}
}

func TestAppendClose(t *testing.T) {
	// 41 three-byte runes: 123 bytes exactly; one more ASCII byte in front
	// puts the 124th byte inside a rune.
	runes := strings.Repeat("世", 41)
	for _, test := range []struct {
		name       string
		code       ws.StatusCode
		reason     string
		want       []byte
		wantReason string
	}{
		{
			name: "normal",
			code: ws.StatusNormalClosure,
			want: []byte{0x88, 0x02, 0x03, 0xe8},
		},
		{
			name:       "reason",
			code:       ws.StatusMessageTooBig,
			reason:     "message too big",
			want:       append([]byte{0x88, 17, 0x03, 0xf1}, "message too big"...),
			wantReason: "message too big",
		},
		{
			name: "no-status",
			code: ws.StatusNoStatusRcvd,
			// The reason cannot travel without a code.
			reason: "ignored",
			want:   []byte{0x88, 0x00},
		},
		{
			name:       "ascii-truncated",
			code:       ws.StatusGoingAway,
			reason:     strings.Repeat("x", 200),
			wantReason: strings.Repeat("x", 123),
		},
		{
			name:       "runes-fit",
			code:       ws.StatusGoingAway,
			reason:     runes,
			wantReason: runes,
		},
		{
			name:       "runes-truncated-on-boundary",
			code:       ws.StatusGoingAway,
			reason:     "a" + runes,
			wantReason: "a" + strings.Repeat("世", 40),
		},
		{
			name:       "four-byte-runes",
			code:       ws.StatusPolicyViolation,
			reason:     strings.Repeat("🌍", 40),
			wantReason: strings.Repeat("🌍", 30),
		},
	} {
		t.Run(test.name, func(t *testing.T) {
			got := AppendClose([]byte("x"), test.code, test.reason)[1:]
			if test.want != nil && !bytes.Equal(got, test.want) {
				t.Errorf(
					"AppendClose() = % x, want % x",
					got, test.want,
				)
			}
			if len(got)-2 > ws.MaxControlFramePayloadSize {
				t.Fatalf(
					"close payload is %d bytes",
					len(got)-2,
				)
			}

			// The frame must decode, once masked as a client would send it,
			// to the same code and reason.
			client := maskServerFrame(got)
			wantCode := test.code
			var d Decoder
			var decoded bool
			_, err := d.Decode(client, testRules, nil, func(op ws.OpCode, p []byte) bool {
				code, reason := ParseClose(p)
				if op != ws.OpClose || code != wantCode || string(reason) != test.wantReason {
					t.Errorf(
						"decoded op %d code %d reason %q, want close %d %q",
						op, code, reason, wantCode, test.wantReason,
					)
				}
				if !utf8.Valid(reason) {
					t.Errorf(
						"reason %q is not valid UTF-8",
						reason,
					)
				}
				decoded = true
				return false
			})
			if err != nil || !decoded {
				t.Errorf(
					"decoding the close frame: %v (decoded %v)",
					err, decoded,
				)
			}
		})
	}
}

func TestParseClose(t *testing.T) {
	for _, test := range []struct {
		name    string
		payload []byte
		code    ws.StatusCode
		reason  string
	}{
		{
			name:    "empty",
			payload: nil,
			code:    ws.StatusNoStatusRcvd,
		},
		{
			name:    "one-byte",
			payload: []byte{0x03},
			code:    ws.StatusNoStatusRcvd,
		},
		{
			name:    "code",
			payload: []byte{0x03, 0xe8},
			code:    ws.StatusNormalClosure,
		},
		{
			name:    "code-reason",
			payload: []byte("\x0f\xa0bye"),
			code:    4000,
			reason:  "bye",
		},
	} {
		t.Run(test.name, func(t *testing.T) {
			code, reason := ParseClose(test.payload)
			if code != test.code || string(reason) != test.reason {
				t.Errorf(
					"ParseClose(% x) = %d, %q; want %d, %q",
					test.payload, code, reason, test.code, test.reason,
				)
			}
		})
	}
}

func TestAppendFrameAllocs(t *testing.T) {
	payload := bytes.Repeat([]byte("p"), 256)
	buf := make([]byte, 0, 512)
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendFrame(buf[:0], ws.OpText, payload)
		buf = AppendClose(buf, ws.StatusGoingAway, "shard shutting down")
	})
	if allocs != 0 {
		t.Errorf(
			"AppendFrame into a reused buffer: %v allocs per run, want 0",
			allocs,
		)
	}
}

// maskServerFrame turns an unmasked server frame into the client frame with
// the same content, masked with testMask.
func maskServerFrame(frame []byte) []byte {
	hlen, _, _ := parseLength(frame)
	out := append([]byte(nil), frame[:hlen]...)
	out[1] |= maskBit
	out = append(out, testMask[:]...)
	for i, b := range frame[hlen:] {
		out = append(out, b^testMask[i%4])
	}
	return out
}

// truncate shortens long byte slices in failure messages.
func truncate(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}
