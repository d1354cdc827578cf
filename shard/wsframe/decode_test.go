package wsframe

import (
	"math"
	"strconv"
	"testing"
	"unsafe"

	"github.com/gobwas/ws"
	"github.com/shardgate/shardgate/bufpool"
)

// *bufpool.Pool is the allocator the shards pass.
var _ Allocator = (*bufpool.Pool)(nil)

func (c testCase) wantResult() result {
	data := c.data()
	want := result{msgs: c.want, code: c.code, consumed: len(data) - c.rest}
	return want
}

func TestDecode(t *testing.T) {
	for _, test := range testCases {
		t.Run(test.name, func(t *testing.T) {
			got := feed(t, [][]byte{test.data()}, test.rules())
			want := test.wantResult()
			if test.code != 0 {
				// The offset of the offending frame is checked against
				// other splits in TestDecodeSplit.
				want.consumed = got.consumed
			}
			verifyResult(t, "whole", got, want)
		})
	}
}

// TestDecodeSplit feeds every case as the socket might deliver it: byte by
// byte, and in two reads split at every point. The unconsumed tail is kept
// between reads, as the gateway does, and the outcome must not change.
func TestDecodeSplit(t *testing.T) {
	for _, test := range testCases {
		t.Run(test.name, func(t *testing.T) {
			data := test.data()
			want := feed(t, [][]byte{clone(data)}, test.rules())

			bytewise := make([][]byte, len(data))
			for i := range data {
				bytewise[i] = data[i : i+1 : i+1]
			}
			verifyResult(t, "byte by byte", feed(t, cloneAll(bytewise), test.rules()), want)

			for _, at := range splitPoints(len(data)) {
				chunks := [][]byte{data[:at], data[at:]}
				verifyResult(t, "split at "+strconv.Itoa(at), feed(t, cloneAll(chunks), test.rules()), want)
				if t.Failed() {
					return
				}
			}
		})
	}
}

// splitPoints returns every split point of a small input; for large ones,
// all points near the ends (headers, last bytes) and a stride in between,
// which keeps the race-enabled run short.
func splitPoints(n int) []int {
	if n <= 2048 {
		points := make([]int, n+1)
		for i := range points {
			points[i] = i
		}
		return points
	}
	var points []int
	for i := 0; i <= n; i++ {
		if i < 256 || i > n-256 || i%997 == 0 {
			points = append(points, i)
		}
	}
	return points
}

func cloneAll(chunks [][]byte) [][]byte {
	out := make([][]byte, len(chunks))
	for i, c := range chunks {
		out[i] = clone(c)
	}
	return out
}

// TestDecodeZeroCopy checks that an unfragmented frame's payload is handed
// over as a slice of the input, unmasked in place.
func TestDecodeZeroCopy(t *testing.T) {
	buf := append(text("hello").client(), ping("p").client()...)
	var d Decoder
	var calls int
	_, err := d.Decode(buf, testRules, nil, func(op ws.OpCode, p []byte) bool {
		calls++
		start := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
		at := uintptr(unsafe.Pointer(unsafe.SliceData(p)))
		if at < start || at+uintptr(len(p)) > start+uintptr(len(buf)) {
			t.Errorf(
				"payload of op %d is not a slice of the input",
				op,
			)
		}
		return true
	})
	if err != nil {
		t.Fatalf(
			"Decode: %v",
			err,
		)
	}
	if calls != 2 {
		t.Fatalf(
			"fn called %d times, want 2",
			calls,
		)
	}
	if string(buf[6:11]) != "hello" {
		t.Errorf(
			"payload not unmasked in place: %q",
			buf[6:11],
		)
	}
}

// TestDecoderState checks what a connection keeps between reads: nothing
// but two words when no fragmented message is in progress, and a buffer
// from the allocator only while one is.
func TestDecoderState(t *testing.T) {
	if size, word := unsafe.Sizeof(Decoder{}), unsafe.Sizeof(uintptr(0)); size > 2*word {
		t.Errorf(
			"Decoder is %d bytes, want at most two words (%d)",
			size, 2*word,
		)
	}

	alloc := newTestAllocator(t)
	var d Decoder
	decode := func(f testFrame) {
		t.Helper()
		n, err := d.Decode(f.client(), testRules, alloc, func(ws.OpCode, []byte) bool { return true })
		if err != nil || n != len(f.client()) {
			t.Fatalf(
				"Decode(%v) = %d, %v",
				f, n, err,
			)
		}
	}

	decode(text("unfragmented"))
	if alloc.gets != 0 || d != (Decoder{}) {
		t.Fatalf(
			"after an unfragmented frame: %d Gets, state %+v",
			alloc.gets, d,
		)
	}
	decode(first(""))
	if alloc.gets != 0 || d.op != ws.OpText {
		t.Fatalf(
			"after an empty first fragment: %d Gets, state %+v",
			alloc.gets, d,
		)
	}
	decode(cont("abc"))
	decode(ping("survives"))
	if alloc.outstanding() != 1 || d.op != ws.OpText || string(*d.msg) != "abc" {
		t.Fatalf(
			"during a fragmented message: %d buffers out, state %+v",
			alloc.outstanding(), d,
		)
	}
	decode(last("def"))
	if alloc.outstanding() != 0 || d != (Decoder{}) {
		t.Fatalf(
			"after a fragmented message: %d buffers out, state %+v",
			alloc.outstanding(), d,
		)
	}

	decode(first("abc"))
	d.Reset(alloc)
	if alloc.outstanding() != 0 || d != (Decoder{}) {
		t.Fatalf(
			"after Reset: %d buffers out, state %+v",
			alloc.outstanding(), d,
		)
	}
}

// TestDecodeResetAfterError checks that Reset makes a failed Decoder usable
// for a new connection.
func TestDecodeResetAfterError(t *testing.T) {
	alloc := newTestAllocator(t)
	var d Decoder
	bad := append(first("abc").client(), text("x").client()...)
	_, err := d.Decode(bad, testRules, alloc, func(ws.OpCode, []byte) bool { return true })
	if closeCode(t, err) != ws.StatusProtocolError {
		t.Fatalf(
			"Decode: %v, want 1002",
			err,
		)
	}
	d.Reset(alloc)
	var got []message
	_, err = d.Decode(last("x").client(), testRules, alloc, func(op ws.OpCode, p []byte) bool {
		got = append(got, msg(op, string(p)))
		return true
	})
	if closeCode(t, err) != ws.StatusProtocolError {
		t.Fatalf(
			"continuation after Reset: %v, want 1002",
			err,
		)
	}
	d.Reset(alloc)
	_, err = d.Decode(text("y").client(), testRules, alloc, func(op ws.OpCode, p []byte) bool {
		got = append(got, msg(op, string(p)))
		return true
	})
	if err != nil || len(got) != 1 || got[0] != msg(ws.OpText, "y") {
		t.Fatalf(
			"after Reset: %v, %v",
			got, err,
		)
	}
	if alloc.outstanding() != 0 {
		t.Errorf(
			"%d buffers not released",
			alloc.outstanding(),
		)
	}
}

// TestDecodeAllocs checks the promise of the hot path: unfragmented frames
// cost no allocation.
func TestDecodeAllocs(t *testing.T) {
	for _, test := range []struct {
		name  string
		frame testFrame
	}{
		{
			name:  "text",
			frame: text("hello, world"),
		},
		{
			name:  "text/65536",
			frame: text(long65536),
		},
		{
			name:  "ping",
			frame: ping("p"),
		},
		{
			name:  "close",
			frame: closeFrame(ws.StatusNormalClosure, "bye"),
		},
	} {
		t.Run(test.name, func(t *testing.T) {
			buf := benchFrame(test.frame)
			var d Decoder
			fn := func(ws.OpCode, []byte) bool { return true }
			allocs := testing.AllocsPerRun(100, func() {
				_, err := d.Decode(buf, testRules, nil, fn)
				if err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf(
					"Decode: %v allocs per run, want 0",
					allocs,
				)
			}
		})
	}
}

func TestNeed(t *testing.T) {
	for _, test := range []struct {
		name string
		data []byte
		want int
	}{
		{
			name: "empty",
			data: nil,
			want: 0,
		},
		{
			name: "one-byte",
			data: text("hi").client()[:1],
			want: 0,
		},
		{
			name: "no-mask-key",
			data: text("hi").client()[:5],
			want: 0,
		},
		{
			name: "7-bit",
			data: text("hi").client()[:6],
			want: 8,
		},
		{
			name: "16-bit-incomplete",
			data: text(long126).client()[:3],
			want: 0,
		},
		{
			name: "16-bit",
			data: text(long126).client()[:8],
			want: 8 + 126,
		},
		{
			name: "64-bit",
			data: text(long65536).client()[:14],
			want: 14 + 65536,
		},
		{
			name: "unmasked",
			data: testFrame{fin: true, op: ws.OpText, payload: "hi", unmasked: true}.client(),
			want: 4,
		},
		{
			name: "overflow",
			data: testFrame{fin: true, op: ws.OpText, declare: math.MaxUint64}.client(),
			want: math.MaxInt,
		},
	} {
		t.Run(test.name, func(t *testing.T) {
			if got := Need(test.data); got != test.want {
				t.Errorf(
					"Need(% x) = %d, want %d",
					test.data, got, test.want,
				)
			}
		})
	}
}

func TestCloseError(t *testing.T) {
	err := error(&CloseError{Code: ws.StatusMessageTooBig, Reason: "message too big"})
	if got, want := err.Error(), "wsframe: 1009 message too big"; got != want {
		t.Errorf(
			"Error() = %q, want %q",
			got, want,
		)
	}
}
