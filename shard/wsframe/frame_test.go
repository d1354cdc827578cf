package wsframe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// testFrame describes one client frame; its methods build the bytes, so the
// table below reads as frames rather than hex.
type testFrame struct {
	fin      bool
	rsv      byte // RSV1-3 as the low three bits
	op       ws.OpCode
	payload  string
	unmasked bool
	// lenSize forces the extended length field: 2 or 8 bytes. 0 picks the
	// shortest encoding, as a server must.
	lenSize int
	// declare, when set, is the declared length of a frame whose payload
	// has not arrived: only the header is built.
	declare uint64
}

// testMask is the masking key of RFC 6455 section 5.7's examples.
var testMask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// header builds the frame's header, with the mask key if masked.
func (f testFrame) header(masked bool, key [4]byte) []byte {
	length := uint64(len(f.payload))
	if f.declare != 0 {
		length = f.declare
	}
	lenSize := f.lenSize
	if lenSize == 0 {
		switch {
		case length > 0xffff:
			lenSize = 8
		case length > 125:
			lenSize = 2
		}
	}

	b0 := f.rsv<<4 | byte(f.op)
	if f.fin {
		b0 |= 0x80
	}
	var b1 byte
	if masked {
		b1 = 0x80
	}
	h := []byte{b0, b1}
	switch lenSize {
	case 0:
		h[1] |= byte(length)
	case 2:
		h[1] |= 126
		h = binary.BigEndian.AppendUint16(h, uint16(length))
	case 8:
		h[1] |= 127
		h = binary.BigEndian.AppendUint64(h, length)
	default:
		panic(fmt.Sprintf("bad lenSize %d", lenSize))
	}
	if masked {
		h = append(h, key[:]...)
	}
	return h
}

// client returns the frame as a client sends it: masked with testMask,
// unless unmasked.
func (f testFrame) client() []byte { return f.clientWith(testMask) }

// clientWith is client with the masking key key.
func (f testFrame) clientWith(key [4]byte) []byte {
	b := f.header(!f.unmasked, key)
	if f.declare != 0 {
		return b
	}
	start := len(b)
	b = append(b, f.payload...)
	if !f.unmasked {
		for i := range b[start:] {
			b[start+i] ^= key[i%4]
		}
	}
	return b
}

// server returns the frame as a server sends it: never masked.
func (f testFrame) server() []byte {
	return append(f.header(false, [4]byte{}), f.payload...)
}

// encodable reports whether a server could send f as it is: final, no RSV
// bits, shortest length encoding, a known opcode, and a whole payload.
func (f testFrame) encodable() bool {
	return f.fin && f.rsv == 0 && f.lenSize == 0 && f.declare == 0 && !f.unmasked && !f.op.IsReserved()
}

// Shorthands for the common frames.
func text(s string) testFrame  { return testFrame{fin: true, op: ws.OpText, payload: s} }
func ping(s string) testFrame  { return testFrame{fin: true, op: ws.OpPing, payload: s} }
func pong(s string) testFrame  { return testFrame{fin: true, op: ws.OpPong, payload: s} }
func first(s string) testFrame { return testFrame{op: ws.OpText, payload: s} }
func cont(s string) testFrame  { return testFrame{op: ws.OpContinuation, payload: s} }
func last(s string) testFrame  { return testFrame{fin: true, op: ws.OpContinuation, payload: s} }

func closeFrame(code ws.StatusCode, reason string) testFrame {
	p := binary.BigEndian.AppendUint16(nil, uint16(code))
	return testFrame{fin: true, op: ws.OpClose, payload: string(p) + reason}
}

// bits turns "1 000 0001 ..." into bytes, for hand-made headers
// (as in gobwas/ws rw_test.go).
func bits(s string) []byte {
	s = strings.ReplaceAll(s, " ", "")
	b := make([]byte, len(s)/8)
	for i := range b {
		_, err := fmt.Sscanf(s[i*8:i*8+8], "%08b", &b[i])
		if err != nil {
			panic(err)
		}
	}
	return b
}

type message struct {
	op      ws.OpCode
	payload string
}

func (m message) String() string {
	p := m.payload
	if len(p) > 40 {
		p = fmt.Sprintf("%.20q...(%d bytes)", p, len(p))
	}
	return fmt.Sprintf("{op %d %q}", m.op, p)
}

func msg(op ws.OpCode, payload string) message { return message{op: op, payload: payload} }

// testMaxMessage is maxMessage for cases that do not set their own.
const testMaxMessage = 1 << 20

// testRules are the gateway's rules with testMaxMessage.
var testRules = Rules{MaxMessage: testMaxMessage}

type testCase struct {
	name   string
	frames []testFrame
	tail   []byte // raw bytes after the frames
	// max is maxMessage; 0 means testMaxMessage, so a case wanting the
	// limit 0 passes -1 (negative counts as 0).
	max int
	// binary sets Rules.Binary: the echo server's decoder.
	binary bool
	// inflate sets Rules.Inflater (testInflater): a connection that
	// negotiated permessage-deflate.
	inflate bool
	want    []message
	code    ws.StatusCode // the *CloseError code; 0 for none
	// rest is how many bytes of a successful case are left unconsumed: a
	// partial frame, or frames after a close.
	rest int
}

func (c testCase) data() []byte {
	var b []byte
	for _, f := range c.frames {
		b = append(b, f.client()...)
	}
	return append(b, c.tail...)
}

func (c testCase) maxMessage() int {
	if c.max == 0 {
		return testMaxMessage
	}
	return c.max
}

func (c testCase) rules() Rules {
	r := Rules{MaxMessage: c.maxMessage(), Binary: c.binary}
	if c.inflate {
		r.Inflater = testInflater{}
	}
	return r
}

var (
	long125   = strings.Repeat("a", 125)
	long126   = strings.Repeat("b", 126)
	long65535 = strings.Repeat("c", 65535)
	long65536 = strings.Repeat("d", 65536)
	unicode   = "héllo, 世界 🌍"
	badUTF8   = "ok\xff"
)

// testCases drives the decode, split, encode and fuzz tests.
var testCases = append([]testCase{
	// Unfragmented text and its length encodings.
	{
		name:   "text",
		frames: []testFrame{text("hello")},
		want:   []message{msg(ws.OpText, "hello")},
	},
	{
		name:   "text/empty",
		frames: []testFrame{text("")},
		want:   []message{msg(ws.OpText, "")},
	},
	{
		name:   "text/125",
		frames: []testFrame{text(long125)},
		want:   []message{msg(ws.OpText, long125)},
	},
	{
		name:   "text/126",
		frames: []testFrame{text(long126)},
		want:   []message{msg(ws.OpText, long126)},
	},
	{
		name:   "text/65535",
		frames: []testFrame{text(long65535)},
		want:   []message{msg(ws.OpText, long65535)},
	},
	{
		name:   "text/65536",
		frames: []testFrame{text(long65536)},
		want:   []message{msg(ws.OpText, long65536)},
	},
	{
		name:   "text/non-minimal-16",
		frames: []testFrame{{fin: true, op: ws.OpText, payload: "hi", lenSize: 2}},
		want:   []message{msg(ws.OpText, "hi")},
	},
	{
		name:   "text/non-minimal-64",
		frames: []testFrame{{fin: true, op: ws.OpText, payload: long126, lenSize: 8}},
		want:   []message{msg(ws.OpText, long126)},
	},
	{
		name:   "text/unicode",
		frames: []testFrame{text(unicode)},
		want:   []message{msg(ws.OpText, unicode)},
	},
	{
		name:   "text/exactly-max",
		frames: []testFrame{text("hello")},
		max:    5,
		want:   []message{msg(ws.OpText, "hello")},
	},
	{
		name:   "text/empty-max-0",
		frames: []testFrame{text("")},
		max:    -1,
		want:   []message{msg(ws.OpText, "")},
	},
	{
		name:   "text/several",
		frames: []testFrame{text("a"), text("bc"), text(long126)},
		want: []message{
			msg(ws.OpText, "a"),
			msg(ws.OpText, "bc"),
			msg(ws.OpText, long126),
		},
	},
	{
		name:   "text/partial-after",
		frames: []testFrame{text("one")},
		tail:   text("two").client()[:4],
		want:   []message{msg(ws.OpText, "one")},
		rest:   4,
	},
	{
		name:   "text/header-only-after",
		frames: []testFrame{text("one")},
		tail:   text(long65536).client()[:9],
		want:   []message{msg(ws.OpText, "one")},
		rest:   9,
	},

	// Control frames.
	{
		name:   "ping",
		frames: []testFrame{ping("are you there")},
		want:   []message{msg(ws.OpPing, "are you there")},
	},
	{
		name:   "ping/empty",
		frames: []testFrame{ping("")},
		want:   []message{msg(ws.OpPing, "")},
	},
	{
		name:   "ping/125",
		frames: []testFrame{ping(long125)},
		want:   []message{msg(ws.OpPing, long125)},
	},
	{
		name:   "ping/over-max-message",
		frames: []testFrame{ping("control frames are bounded by 125 bytes only")},
		max:    4,
		want:   []message{msg(ws.OpPing, "control frames are bounded by 125 bytes only")},
	},
	{
		name:   "ping/non-minimal-16",
		frames: []testFrame{{fin: true, op: ws.OpPing, payload: "x", lenSize: 2}},
		want:   []message{msg(ws.OpPing, "x")},
	},
	{
		name:   "ping/binary-payload",
		frames: []testFrame{ping("\xff\x00")},
		want:   []message{msg(ws.OpPing, "\xff\x00")},
	},
	{
		name:   "pong",
		frames: []testFrame{pong("yes")},
		want:   []message{msg(ws.OpPong, "yes")},
	},
	{
		name:   "close/empty",
		frames: []testFrame{{fin: true, op: ws.OpClose}},
		want:   []message{msg(ws.OpClose, "")},
	},
	{
		name:   "close/1000",
		frames: []testFrame{closeFrame(ws.StatusNormalClosure, "")},
		want:   []message{msg(ws.OpClose, "\x03\xe8")},
	},
	{
		name:   "close/1001-reason",
		frames: []testFrame{closeFrame(ws.StatusGoingAway, unicode)},
		want:   []message{msg(ws.OpClose, "\x03\xe9"+unicode)},
	},
	{
		name:   "close/1011",
		frames: []testFrame{closeFrame(ws.StatusInternalServerError, "")},
		want:   []message{msg(ws.OpClose, "\x03\xf3")},
	},
	{
		name:   "close/3000",
		frames: []testFrame{closeFrame(3000, "")},
		want:   []message{msg(ws.OpClose, "\x0b\xb8")},
	},
	{
		name:   "close/4999",
		frames: []testFrame{closeFrame(4999, "bye")},
		want:   []message{msg(ws.OpClose, "\x13\x87bye")},
	},
	{
		name:   "close/stops",
		frames: []testFrame{text("a"), closeFrame(ws.StatusNormalClosure, ""), text("after")},
		want: []message{
			msg(ws.OpText, "a"),
			msg(ws.OpClose, "\x03\xe8"),
		},
		rest: len(text("after").client()),
	},

	// Fragmented messages.
	{
		name:   "fragmented",
		frames: []testFrame{first("Hel"), last("lo")},
		want:   []message{msg(ws.OpText, "Hello")},
	},
	{
		name: "fragmented/interleaved-control",
		frames: []testFrame{
			first("Hel"),
			ping("p"),
			cont("lo, "),
			pong(""),
			ping("q"),
			last("world"),
			text("next"),
		},
		want: []message{
			msg(ws.OpPing, "p"),
			msg(ws.OpPong, ""),
			msg(ws.OpPing, "q"),
			msg(ws.OpText, "Hello, world"),
			msg(ws.OpText, "next"),
		},
	},
	{
		name:   "fragmented/close-inside",
		frames: []testFrame{first("Hel"), closeFrame(ws.StatusGoingAway, ""), last("lo")},
		want:   []message{msg(ws.OpClose, "\x03\xe9")},
		rest:   len(last("lo").client()),
	},
	{
		name:   "fragmented/empty",
		frames: []testFrame{first(""), cont(""), last("")},
		want:   []message{msg(ws.OpText, "")},
	},
	{
		name:   "fragmented/empty-first",
		frames: []testFrame{first(""), last("abc")},
		want:   []message{msg(ws.OpText, "abc")},
	},
	{
		// A valid rune start at a fragment's end waits for the next.
		name:   "fragmented/open-rune-pending",
		frames: []testFrame{first("ok\xf0\x9f")},
	},
	{
		name:   "fragmented/rune-over-four-fragments-with-ping",
		frames: []testFrame{first("\xf0"), cont("\x9f"), ping("p"), cont("\x8c"), last("\x8d!")},
		want:   []message{msg(ws.OpPing, "p"), msg(ws.OpText, "🌍!")},
	},
	{
		name:   "fragmented/split-rune",
		frames: []testFrame{first("\xe4"), cont("\xb8"), last("\x96!")},
		want:   []message{msg(ws.OpText, "世!")},
	},
	{
		name:   "fragmented/exactly-max",
		frames: []testFrame{first("1234"), last("567890")},
		max:    10,
		want:   []message{msg(ws.OpText, "1234567890")},
	},
	{
		name:   "fragmented/twice",
		frames: []testFrame{first("a"), last("b"), first("c"), cont("d"), last("e")},
		want: []message{
			msg(ws.OpText, "ab"),
			msg(ws.OpText, "cde"),
		},
	},
	{
		name:   "fragmented/many",
		frames: manyFragments(strings.Repeat("0123456789", 30)),
		want:   []message{msg(ws.OpText, strings.Repeat("0123456789", 30))},
	},
	{
		name:   "fragmented/large",
		frames: []testFrame{first(long65535), cont(long126), last(long65536)},
		want:   []message{msg(ws.OpText, long65535+long126+long65536)},
	},
	{
		name:   "fragmented/partial-after",
		frames: []testFrame{first("Hel")},
		tail:   last("lo").client()[:5],
		rest:   5,
	},

	// 1002: protocol errors.
	{
		name:   "error/rsv1",
		frames: []testFrame{{fin: true, rsv: 4, op: ws.OpText, payload: "x"}},
		code:   ws.StatusProtocolError,
	},
	{
		name:   "error/rsv2",
		frames: []testFrame{{fin: true, rsv: 2, op: ws.OpText, payload: "x"}},
		code:   ws.StatusProtocolError,
	},
	{
		name:   "error/rsv3-on-ping",
		frames: []testFrame{{fin: true, rsv: 1, op: ws.OpPing}},
		code:   ws.StatusProtocolError,
	},
	{
		name:   "error/unmasked",
		frames: []testFrame{{fin: true, op: ws.OpText, payload: "hello", unmasked: true}},
		code:   ws.StatusProtocolError,
	},
	{
		name:   "error/after-message",
		frames: []testFrame{text("ok"), {fin: true, op: ws.OpText, payload: "x", unmasked: true}},
		want:   []message{msg(ws.OpText, "ok")},
		code:   ws.StatusProtocolError,
	},
	{
		name:   "error/ping-not-final",
		frames: []testFrame{{op: ws.OpPing, payload: "x"}},
		code:   ws.StatusProtocolError,
	},
	{
		name:   "error/ping-126",
		frames: []testFrame{ping(long126)},
		code:   ws.StatusProtocolError,
	},
	{
		name:   "error/close-126",
		frames: []testFrame{closeFrame(ws.StatusNormalClosure, long125[:124])},
		code:   ws.StatusProtocolError,
	},
	{
		name:   "error/ping-declared-64-bit",
		frames: []testFrame{{fin: true, op: ws.OpPing, declare: 1 << 40}},
		code:   ws.StatusProtocolError,
	},
	{
		name:   "error/continuation-without-message",
		frames: []testFrame{last("x")},
		code:   ws.StatusProtocolError,
	},
	{
		name:   "error/continuation-after-message",
		frames: []testFrame{first("a"), last("b"), cont("c")},
		want:   []message{msg(ws.OpText, "ab")},
		code:   ws.StatusProtocolError,
	},
	{
		name:   "error/text-inside-message",
		frames: []testFrame{first("a"), text("b")},
		code:   ws.StatusProtocolError,
	},
	{
		name:   "error/binary-inside-message",
		frames: []testFrame{first("a"), {fin: true, op: ws.OpBinary, payload: "b"}},
		code:   ws.StatusProtocolError,
	},
	{
		name: "error/length-msb",
		tail: bits("1 000 0001 1 1111111 10000000 00000000 00000000 00000000 00000000 00000000 00000000 00000001"),
		//          _ ___ ____ _ _______ _______________________________________________________________________
		//          |  |   |   |    |                                       |
		//         Fin |   |  Mask Length                         Length value, MSB set
		//            Rsv  |
		//              TextFrame
		code: ws.StatusProtocolError,
	},
	{
		name: "error/length-msb-with-key",
		tail: bits("1 000 0001 1 1111111 11111111 11111111 11111111 11111111 11111111 11111111 11111111 11111111 00000001 10001000 00000000 11111111"),
		code: ws.StatusProtocolError,
	},
	{
		name:   "error/close-1-byte",
		frames: []testFrame{{fin: true, op: ws.OpClose, payload: "\x03"}},
		code:   ws.StatusProtocolError,
	},

	// 1003: binary messages.
	{
		name:   "error/binary",
		frames: []testFrame{{fin: true, op: ws.OpBinary, payload: "\x00\x01"}},
		code:   ws.StatusUnsupportedData,
	},
	{
		name:   "error/binary-fragmented",
		frames: []testFrame{{op: ws.OpBinary, payload: "\x00"}, last("\x01")},
		code:   ws.StatusUnsupportedData,
	},

	// Rules.Binary (the Autobahn echo server): binary messages are
	// delivered, reassembled and bounded like text, with no UTF-8 check.
	{
		name:   "binary/accepted",
		frames: []testFrame{{fin: true, op: ws.OpBinary, payload: "\x00\x01\xff"}},
		binary: true,
		want:   []message{msg(ws.OpBinary, "\x00\x01\xff")},
	},
	{
		name:   "binary/empty",
		frames: []testFrame{{fin: true, op: ws.OpBinary}},
		binary: true,
		want:   []message{msg(ws.OpBinary, "")},
	},
	{
		name:   "binary/fragmented-with-ping",
		frames: []testFrame{{op: ws.OpBinary, payload: "\x00\xff"}, ping("p"), last("\xfe")},
		binary: true,
		want:   []message{msg(ws.OpPing, "p"), msg(ws.OpBinary, "\x00\xff\xfe")},
	},
	{
		name:   "binary/text-still-checked",
		frames: []testFrame{text(badUTF8)},
		binary: true,
		code:   ws.StatusInvalidFramePayloadData,
	},
	{
		name:   "error/binary-too-big",
		frames: []testFrame{{op: ws.OpBinary, payload: "abc"}, last("def")},
		max:    5,
		binary: true,
		code:   ws.StatusMessageTooBig,
	},
	{
		name:   "error/binary-inside-text-message",
		frames: []testFrame{first("a"), {fin: true, op: ws.OpBinary, payload: "b"}},
		binary: true,
		code:   ws.StatusProtocolError,
	},
	{
		name:   "error/text-inside-binary-message",
		frames: []testFrame{{op: ws.OpBinary, payload: "a"}, text("b")},
		binary: true,
		code:   ws.StatusProtocolError,
	},

	// 1007: invalid UTF-8.
	{
		name:   "error/utf8",
		frames: []testFrame{text(badUTF8)},
		code:   ws.StatusInvalidFramePayloadData,
	},
	{
		name:   "error/utf8-fragmented",
		frames: []testFrame{first("ok"), ping(""), last("\xc0\xaf")},
		want:   []message{msg(ws.OpPing, "")},
		code:   ws.StatusInvalidFramePayloadData,
	},
	{
		name:   "error/utf8-truncated-rune",
		frames: []testFrame{first("\xe4"), last("\xb8")},
		code:   ws.StatusInvalidFramePayloadData,
	},
	{
		// Fail fast: a fragment that breaks the message fails before the
		// message ends.
		name:   "error/utf8-before-the-message-ends",
		frames: []testFrame{first("ok"), cont("\xff")},
		code:   ws.StatusInvalidFramePayloadData,
	},
	{
		name:   "error/utf8-overlong-start-in-a-fragment",
		frames: []testFrame{first("ok\xe0\x80")},
		code:   ws.StatusInvalidFramePayloadData,
	},
	{
		name:   "error/utf8-surrogate-start-in-a-fragment",
		frames: []testFrame{first("\xed\xa0")},
		code:   ws.StatusInvalidFramePayloadData,
	},
	{
		name:   "error/utf8-above-max-rune-start-in-a-fragment",
		frames: []testFrame{first("\xf4\x90")},
		code:   ws.StatusInvalidFramePayloadData,
	},
	{
		name:   "error/utf8-open-rune-broken-by-next-fragment",
		frames: []testFrame{first("\xf0\x9f"), cont("a")},
		code:   ws.StatusInvalidFramePayloadData,
	},
	{
		name:   "error/utf8-surrogate",
		frames: []testFrame{text("\xed\xa0\x80")},
		code:   ws.StatusInvalidFramePayloadData,
	},
	{
		name:   "error/close-reason-utf8",
		frames: []testFrame{closeFrame(ws.StatusNormalClosure, badUTF8)},
		code:   ws.StatusInvalidFramePayloadData,
	},

	// 1009: messages over maxMessage, found from the header.
	{
		name:   "error/too-big",
		frames: []testFrame{text("hello")},
		max:    4,
		code:   ws.StatusMessageTooBig,
	},
	{
		name:   "error/too-big-max-0",
		frames: []testFrame{text("x")},
		max:    -1,
		code:   ws.StatusMessageTooBig,
	},
	{
		name:   "error/too-big-header-only",
		frames: []testFrame{{fin: true, op: ws.OpText, declare: 1 << 40}},
		code:   ws.StatusMessageTooBig,
	},
	{
		name:   "error/too-big-header-only-16",
		frames: []testFrame{{fin: true, op: ws.OpText, declare: 1000}},
		max:    999,
		code:   ws.StatusMessageTooBig,
	},
	{
		name:   "error/too-big-max-int64",
		frames: []testFrame{{fin: true, op: ws.OpText, declare: 1<<63 - 1}},
		code:   ws.StatusMessageTooBig,
	},
	{
		name:   "error/too-big-fragmented",
		frames: []testFrame{first("hel"), last("lo!")},
		max:    5,
		code:   ws.StatusMessageTooBig,
	},
	{
		name:   "error/too-big-fragmented-header-only",
		frames: []testFrame{first("hel"), {op: ws.OpContinuation, declare: 100}},
		max:    50,
		code:   ws.StatusMessageTooBig,
	},
}, append(generatedErrorCases(), deflateCases()...)...)

// manyFragments splits s into one-byte fragments, so reassembly grows its
// buffer several times.
func manyFragments(s string) []testFrame {
	fs := []testFrame{first(s[:1])}
	for i := 1; i < len(s)-1; i++ {
		fs = append(fs, cont(s[i:i+1]))
	}
	return append(fs, last(s[len(s)-1:]))
}

// generatedErrorCases covers every reserved opcode and every close code
// class that must not appear on the wire.
func generatedErrorCases() []testCase {
	var cases []testCase
	for op := ws.OpCode(0x3); op <= 0xf; op++ {
		if !op.IsReserved() {
			continue
		}
		cases = append(cases, testCase{
			name:   fmt.Sprintf("error/reserved-opcode-%#x", byte(op)),
			frames: []testFrame{{fin: true, op: op}},
			code:   ws.StatusProtocolError,
		})
	}
	for _, code := range []ws.StatusCode{0, 999, 1004, 1005, 1006, 1012, 1014, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		cases = append(cases, testCase{
			name:   fmt.Sprintf("error/close-code-%d", code),
			frames: []testFrame{closeFrame(code, "")},
			code:   ws.StatusProtocolError,
		})
	}
	return cases
}

// result is what decoding some input produced.
type result struct {
	msgs     []message
	code     ws.StatusCode // 0 when no error
	consumed int           // bytes consumed, up to the offending frame on error
}

// feed decodes chunks the way the gateway does: each chunk is appended to
// a pending buffer, Decode runs on it, and the unconsumed tail moves to the
// front to wait for the next chunk. The callback stops at a close frame, and
// the rest of the input is then never decoded. feed also checks the
// invariants every input must keep, valid or not.
func feed(tb testing.TB, chunks [][]byte, rules Rules) result {
	tb.Helper()
	alloc := newTestAllocator(tb)
	maxMessage := rules.MaxMessage
	limit := max(maxMessage, 0)

	var (
		d       Decoder
		res     result
		pending []byte
		stopped bool
	)
	fn := func(op ws.OpCode, p []byte) bool {
		switch op {
		case ws.OpText, ws.OpBinary:
			if op == ws.OpBinary && !rules.Binary {
				tb.Errorf("delivered a binary message without Rules.Binary")
			}
			if len(p) > limit {
				tb.Errorf(
					"delivered a %d-byte message over maxMessage %d",
					len(p), maxMessage,
				)
			}
			if op == ws.OpText && !utf8.Valid(p) {
				tb.Errorf(
					"delivered invalid UTF-8 text %q",
					p,
				)
			}
		case ws.OpPing, ws.OpPong, ws.OpClose:
			if len(p) > ws.MaxControlFramePayloadSize {
				tb.Errorf(
					"delivered a %d-byte control frame",
					len(p),
				)
			}
		default:
			tb.Errorf(
				"delivered opcode %#x",
				byte(op),
			)
		}
		res.msgs = append(res.msgs, message{op: op, payload: string(p)})
		if op == ws.OpClose {
			stopped = true
			return false
		}
		return true
	}

	for _, chunk := range chunks {
		if stopped || res.code != 0 {
			break
		}
		pending = append(pending, chunk...)
		n, err := d.Decode(pending, rules, alloc, fn)
		if n < 0 || n > len(pending) {
			tb.Fatalf(
				"Decode consumed %d of %d bytes",
				n, len(pending),
			)
		}
		res.consumed += n
		if err != nil {
			res.code = closeCode(tb, err)
			if alloc.outstanding() != 0 {
				tb.Errorf(
					"%d reassembly buffers not released after an error",
					alloc.outstanding(),
				)
			}
			break
		}
		if n > 0 {
			pending = append(pending[:0], pending[n:]...)
		}
		if stopped {
			break
		}
		// The tail is an incomplete frame whose header, once whole, Decode
		// has already checked against the limits.
		need := Need(pending)
		if need != 0 && need <= len(pending) {
			tb.Errorf(
				"Decode left a complete %d-byte frame in %d pending bytes",
				need, len(pending),
			)
		}
		frameLimit := limit
		if rules.Inflater != nil {
			frameLimit = MaxCompressed(maxMessage)
		}
		if need > ws.MaxHeaderSize+max(frameLimit, ws.MaxControlFramePayloadSize) {
			tb.Errorf(
				"Decode accepted the header of a %d-byte frame with maxMessage %d",
				need, maxMessage,
			)
		}
	}

	d.Reset(alloc)
	if alloc.outstanding() != 0 {
		tb.Errorf(
			"%d reassembly buffers not released after Reset",
			alloc.outstanding(),
		)
	}
	return res
}

// closeCode returns the code of a *CloseError.
func closeCode(tb testing.TB, err error) ws.StatusCode {
	tb.Helper()
	var ce *CloseError
	if !errors.As(err, &ce) {
		tb.Fatalf(
			"Decode error %v is not a *CloseError",
			err,
		)
	}
	return ce.Code
}

// verifyResult compares a result against another one or a case's want.
func verifyResult(tb testing.TB, what string, got, want result) {
	tb.Helper()
	if got.code != want.code {
		tb.Errorf(
			"%s: close code %d, want %d",
			what, got.code, want.code,
		)
	}
	if !equalMessages(got.msgs, want.msgs) {
		tb.Errorf(
			"%s: messages\n\t%v\nwant\n\t%v",
			what, got.msgs, want.msgs,
		)
	}
	if got.consumed != want.consumed {
		tb.Errorf(
			"%s: consumed %d bytes, want %d",
			what, got.consumed, want.consumed,
		)
	}
}

func equalMessages(a, b []message) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// testAllocator hands out plain heap buffers and checks that every one
// comes back exactly once.
type testAllocator struct {
	tb   testing.TB
	out  map[*[]byte]bool
	gets int
}

func newTestAllocator(tb testing.TB) *testAllocator {
	return &testAllocator{tb: tb, out: make(map[*[]byte]bool)}
}

func (a *testAllocator) Get(n int) *[]byte {
	b := make([]byte, n)
	a.out[&b] = true
	a.gets++
	return &b
}

func (a *testAllocator) Put(b *[]byte) {
	if !a.out[b] {
		a.tb.Errorf(
			"Put of a buffer not from Get or already put: %p",
			b,
		)
	}
	delete(a.out, b)
}

func (a *testAllocator) outstanding() int { return len(a.out) }

// clone copies b so that in-place unmasking of one decode does not leak
// into another.
func clone(b []byte) []byte { return bytes.Clone(b) }
