package wsframe

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

// testInflater inflates with the standard library, as RFC 7692 §7.2.2
// says, under the limit: the decoder's side of the contract is what these
// tests are about (shard/pmce tests the gateway's inflater).
type testInflater struct{}

func (testInflater) Inflate(compressed []byte, limit int, alloc Allocator) (*[]byte, error) {
	src := io.MultiReader(bytes.NewReader(compressed), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff}))
	out, err := io.ReadAll(io.LimitReader(flate.NewReader(src), int64(limit)+1))
	switch {
	case err != nil:
		return nil, err
	case len(out) > limit:
		return nil, ErrTooBig
	}
	b := alloc.Get(len(out))
	copy(*b, out)
	return b, nil
}

// deflated is s compressed as a permessage-deflate sender does it: one
// deflate stream with a sync flush, its 00 00 ff ff tail removed.
func deflated(s string) string {
	var out bytes.Buffer
	w, _ := flate.NewWriter(&out, flate.BestCompression)
	w.Write([]byte(s))
	w.Flush()
	return strings.TrimSuffix(out.String(), "\x00\x00\xff\xff")
}

// Frames of compressed messages: RSV1 (the top bit of rsv) on the first.
func ztext(s string) testFrame {
	return testFrame{fin: true, rsv: 0b100, op: ws.OpText, payload: deflated(s)}
}
func zfirst(z string) testFrame { return testFrame{rsv: 0b100, op: ws.OpText, payload: z} }

var (
	zjson = strings.Repeat(`{"type":"message","channel":"news","data":{"n":1}}`, 40)
	zbomb = deflated(strings.Repeat("\x00", 4<<20)) // 4 MiB of zeros in about 4 KiB
)

// deflateCases are decoded with Rules.Inflater, as for a connection that
// negotiated permessage-deflate; they join testCases, so every one is also
// fed split at every point.
func deflateCases() []testCase {
	z := deflated(zjson)
	third := len(z) / 3
	return []testCase{
		{
			name:    "deflate/text",
			inflate: true,
			frames:  []testFrame{ztext(zjson)},
			want:    []message{msg(ws.OpText, zjson)},
		},
		{
			name:    "deflate/binary",
			inflate: true, binary: true,
			frames: []testFrame{{fin: true, rsv: 0b100, op: ws.OpBinary, payload: deflated("\x00\x01\x02\x00\x01\x02")}},
			want:   []message{msg(ws.OpBinary, "\x00\x01\x02\x00\x01\x02")},
		},
		{
			name:    "deflate/plain message on a deflate connection",
			inflate: true,
			frames:  []testFrame{text("plain"), ztext("zipped"), text("plain again")},
			want:    []message{msg(ws.OpText, "plain"), msg(ws.OpText, "zipped"), msg(ws.OpText, "plain again")},
		},
		{
			name:    "deflate/fragmented",
			inflate: true,
			frames:  []testFrame{zfirst(z[:third]), cont(z[third : 2*third]), last(z[2*third:])},
			want:    []message{msg(ws.OpText, zjson)},
		},
		{
			name:    "deflate/fragmented with control frames between",
			inflate: true,
			frames:  []testFrame{zfirst(z[:third]), ping("p"), cont(z[third : 2*third]), pong(""), last(z[2*third:]), text("next")},
			want:    []message{msg(ws.OpPing, "p"), msg(ws.OpPong, ""), msg(ws.OpText, zjson), msg(ws.OpText, "next")},
		},
		{
			name:    "deflate/empty fragments around the data",
			inflate: true,
			frames:  []testFrame{zfirst(""), cont(z), last("")},
			want:    []message{msg(ws.OpText, zjson)},
		},
		{
			name:    "deflate/empty message compressed",
			inflate: true,
			frames:  []testFrame{{fin: true, rsv: 0b100, op: ws.OpText, payload: "\x00"}},
			want:    []message{msg(ws.OpText, "")},
		},
		{
			name:    "deflate/exactly the limit",
			inflate: true,
			max:     len(zjson),
			frames:  []testFrame{ztext(zjson)},
			want:    []message{msg(ws.OpText, zjson)},
		},
		{
			name:    "deflate/text over a close",
			inflate: true,
			frames:  []testFrame{ztext("bye"), closeFrame(ws.StatusNormalClosure, ""), text("never")},
			want:    []message{msg(ws.OpText, "bye"), msg(ws.OpClose, "\x03\xe8")},
			rest:    len(text("never").client()),
		},

		// Errors.
		{
			name:    "error/deflate inflates past the limit",
			inflate: true,
			max:     len(zjson) - 1,
			frames:  []testFrame{ztext(zjson)},
			code:    ws.StatusMessageTooBig,
		},
		{
			name:    "error/deflate bomb",
			inflate: true,
			max:     64 << 10,
			frames:  []testFrame{{fin: true, rsv: 0b100, op: ws.OpText, payload: zbomb}},
			code:    ws.StatusMessageTooBig,
		},
		{
			name:    "error/deflate fragmented bomb",
			inflate: true,
			max:     64 << 10,
			frames:  []testFrame{zfirst(zbomb[:100]), last(zbomb[100:])},
			code:    ws.StatusMessageTooBig,
		},
		{
			// The compressed size check: a header over MaxCompressed
			// fails before its payload arrives.
			name:    "error/deflate frame over MaxCompressed",
			inflate: true,
			max:     100,
			frames:  []testFrame{{fin: true, rsv: 0b100, op: ws.OpText, declare: uint64(MaxCompressed(100) + 1)}},
			code:    ws.StatusMessageTooBig,
		},
		{
			name:    "error/deflate fragments over MaxCompressed",
			inflate: true,
			max:     100,
			frames:  []testFrame{zfirst(strings.Repeat("z", 1000)), {op: ws.OpContinuation, declare: uint64(MaxCompressed(100) - 999)}},
			code:    ws.StatusMessageTooBig,
		},
		{
			name:    "error/deflate data that does not inflate",
			inflate: true,
			frames:  []testFrame{{fin: true, rsv: 0b100, op: ws.OpText, payload: "\xff\xff\xff\xff"}},
			code:    ws.StatusInvalidFramePayloadData,
		},
		{
			name:    "error/deflate fragmented data that does not inflate",
			inflate: true,
			frames:  []testFrame{zfirst("\xff\xff"), last("\xff\xff")},
			code:    ws.StatusInvalidFramePayloadData,
		},
		{
			name:    "error/deflate no bytes at all",
			inflate: true,
			frames:  []testFrame{{fin: true, rsv: 0b100, op: ws.OpText}},
			code:    ws.StatusInvalidFramePayloadData,
		},
		{
			name:    "error/deflate invalid UTF-8 once inflated",
			inflate: true,
			frames:  []testFrame{ztext(badUTF8)},
			code:    ws.StatusInvalidFramePayloadData,
		},
		{
			name:    "error/deflate RSV1 on a continuation",
			inflate: true,
			frames:  []testFrame{first("a"), {fin: true, rsv: 0b100, op: ws.OpContinuation, payload: deflated("b")}},
			code:    ws.StatusProtocolError,
		},
		{
			name:    "error/deflate RSV1 on the continuation of a compressed message",
			inflate: true,
			frames:  []testFrame{zfirst(z[:third]), {fin: true, rsv: 0b100, op: ws.OpContinuation, payload: z[third:]}},
			code:    ws.StatusProtocolError,
		},
		{
			name:    "error/deflate RSV1 on a ping",
			inflate: true,
			frames:  []testFrame{{fin: true, rsv: 0b100, op: ws.OpPing, payload: "p"}},
			code:    ws.StatusProtocolError,
		},
		{
			name:    "error/deflate RSV1 on a close",
			inflate: true,
			frames:  []testFrame{{fin: true, rsv: 0b100, op: ws.OpClose}},
			code:    ws.StatusProtocolError,
		},
		{
			name:    "error/deflate RSV2",
			inflate: true,
			frames:  []testFrame{{fin: true, rsv: 0b010, op: ws.OpText, payload: "x"}},
			code:    ws.StatusProtocolError,
		},
		{
			name:    "error/deflate RSV1 and RSV3",
			inflate: true,
			frames:  []testFrame{{fin: true, rsv: 0b101, op: ws.OpText, payload: deflated("x")}},
			code:    ws.StatusProtocolError,
		},
		{
			name:   "error/RSV1 without the extension",
			frames: []testFrame{ztext("x")},
			code:   ws.StatusProtocolError,
		},
		{
			name:    "error/deflate binary without Rules.Binary",
			inflate: true,
			frames:  []testFrame{{fin: true, rsv: 0b100, op: ws.OpBinary, payload: deflated("x")}},
			code:    ws.StatusUnsupportedData,
		},
	}
}

// TestDecodeDeflateUsesTheAllocator: the callback gets the inflated
// message in a buffer from the allocator, which goes back when it returns
// (feed checks the giving back on every path of every case).
func TestDecodeDeflateUsesTheAllocator(t *testing.T) {
	alloc := newTestAllocator(t)
	var d Decoder
	data := ztext(zjson).client()
	rules := Rules{MaxMessage: 1 << 16, Inflater: testInflater{}}
	var got string
	_, err := d.Decode(data, rules, alloc, func(op ws.OpCode, p []byte) bool {
		got = string(p)
		if alloc.outstanding() != 1 {
			t.Errorf("%d buffers out during the callback, want the inflated message's", alloc.outstanding())
		}
		return true
	})
	if err != nil || got != zjson {
		t.Fatalf("got %d bytes, %v", len(got), err)
	}
	if alloc.outstanding() != 0 {
		t.Errorf("%d buffers not given back", alloc.outstanding())
	}
}

// TestDecodeDeflateInflaterError: any error but ErrTooBig means data that
// does not inflate (1007), ErrTooBig wrapped or not means 1009.
func TestDecodeDeflateInflaterError(t *testing.T) {
	for _, c := range []struct {
		err  error
		code ws.StatusCode
	}{
		{ErrTooBig, ws.StatusMessageTooBig},
		{errors.Join(errors.New("x"), ErrTooBig), ws.StatusMessageTooBig},
		{io.ErrUnexpectedEOF, ws.StatusInvalidFramePayloadData},
	} {
		var d Decoder
		rules := Rules{MaxMessage: 100, Inflater: failingInflater{c.err}}
		_, err := d.Decode(ztext("x").client(), rules, nil, func(ws.OpCode, []byte) bool { return true })
		if got := closeCode(t, err); got != c.code {
			t.Errorf("%v: close %d, want %d", c.err, got, c.code)
		}
	}
}

type failingInflater struct{ err error }

func (f failingInflater) Inflate([]byte, int, Allocator) (*[]byte, error) { return nil, f.err }

// FuzzDecodeDeflate is FuzzDecode for a connection that negotiated
// permessage-deflate: arbitrary bytes, RSV1 anywhere, compressed or not,
// whole and split in two, must decode the same way within the limits.
func FuzzDecodeDeflate(f *testing.F) {
	for _, test := range deflateCases() {
		data := test.data()
		if len(data) > 8192 {
			continue
		}
		f.Add(data, uint(len(data)/2), uint16(min(test.maxMessage(), 1<<16-1)))
	}
	f.Fuzz(func(t *testing.T, data []byte, split uint, limit uint16) {
		rules := Rules{MaxMessage: int(limit), Binary: true, Inflater: testInflater{}}
		at := int(split % uint(len(data)+1))
		whole := feed(t, [][]byte{clone(data)}, rules)
		parts := feed(t, [][]byte{clone(data[:at]), clone(data[at:])}, rules)
		verifyResult(t, "split", parts, whole)
	})
}
