package pmce

import (
	"bytes"
	stdflate "compress/flate"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/gobwas/ws"
	"github.com/shardgate/shardgate/bufpool"
	"github.com/shardgate/shardgate/shard/wsframe"
)

// testJSON is about 1 KiB of JSON that compresses like real messages do
// (market data: repeated keys, varied numbers), not like padding.
func testJSON() []byte {
	var b bytes.Buffer
	b.WriteString(`{"type":"message","channel":"prices.eu.equities","offset":1234567,"data":{"event":"book","symbol":"ACME.PA","ts":1732540000123456789,"seq":4817263,"bids":[`)
	for i := range 8 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"px":%d.%02d,"qty":%d,"orders":%d}`, 101-i, (i*37)%100, 100+i*173%997, 1+i*7%13)
	}
	b.WriteString(`],"asks":[`)
	for i := range 8 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"px":%d.%02d,"qty":%d,"orders":%d}`, 102+i, (i*53)%100, 250+i*311%991, 2+i*5%11)
	}
	b.WriteString(`],"last":{"px":101.87,"qty":300,"side":"buy","trade_id":"T-20261130-0001928374"},"venue":"XPAR","status":"open","currency":"EUR","meta":{"source":"feed-a","latency_us":183,"flags":["snapshot","consolidated"]}}}`)
	return b.Bytes()
}

// stdDeflate compresses p as an independent client would: the standard
// library's flate, a sync flush, the tail stripped (RFC 7692 §7.2.1).
func stdDeflate(tb testing.TB, p []byte) []byte {
	tb.Helper()
	var out bytes.Buffer
	w, _ := stdflate.NewWriter(&out, stdflate.BestCompression)
	w.Write(p)
	w.Flush()
	b := out.Bytes()
	if !bytes.HasSuffix(b, syncTail) {
		tb.Fatalf("sync flush does not end in 00 00 ff ff: % x", b[len(b)-4:])
	}
	return b[:len(b)-4]
}

// closedDeflate compresses p into a complete deflate stream (its last
// block final).
func closedDeflate(tb testing.TB, p []byte) []byte {
	tb.Helper()
	var out bytes.Buffer
	w, _ := stdflate.NewWriter(&out, stdflate.BestSpeed)
	w.Write(p)
	w.Close()
	return out.Bytes()
}

// stdInflate decompresses a message as an independent client would.
func stdInflate(tb testing.TB, z []byte) []byte {
	tb.Helper()
	r := stdflate.NewReader(io.MultiReader(bytes.NewReader(z), bytes.NewReader(inflateTail)))
	out, err := io.ReadAll(r)
	if err != nil {
		tb.Fatalf("inflate: %v", err)
	}
	return out
}

func TestFrameRoundTrip(t *testing.T) {
	d := NewDeflater(DefaultLevel)
	for _, p := range [][]byte{
		testJSON(),
		[]byte(strings.Repeat(`{"a":1}`, 10000)), // 70 KB: a 64-bit length
		[]byte(strings.Repeat("x", 200)),
	} {
		frame := d.Frame(ws.OpText, p)
		if frame == nil {
			t.Fatalf("%d bytes: not compressed", len(p))
		}
		h, err := ws.ReadHeader(bytes.NewReader(frame))
		if err != nil {
			t.Fatal(err)
		}
		if !h.Fin || h.Rsv != 0b100 || h.OpCode != ws.OpText || h.Masked {
			t.Fatalf("header %+v: want a final text frame with RSV1 only", h)
		}
		hl := wsframe.HeaderLen(int(h.Length))
		if int(h.Length) != len(frame)-hl || len(frame) != cap(frame) {
			t.Fatalf("frame of %d bytes (cap %d) declares %d after a %d-byte header", len(frame), cap(frame), h.Length, hl)
		}
		if got := stdInflate(t, frame[hl:]); !bytes.Equal(got, p) {
			t.Fatalf("round trip of %d bytes gave %d bytes", len(p), len(got))
		}
		// AppendFrame with the whole window makes the same bytes behind
		// what dst holds.
		dst := d.AppendFrame([]byte("prefix"), ws.OpText, p, Params(maxWindowBits))
		if string(dst[:6]) != "prefix" || !bytes.Equal(dst[6:], frame) {
			t.Fatalf("AppendFrame differs from Frame")
		}
	}
}

func TestFrameDeclinesWhatDoesNotShrink(t *testing.T) {
	d := NewDeflater(DefaultLevel)
	for _, p := range [][]byte{nil, []byte("{}"), []byte(`{"a":1}`), randomBytes(4096)} {
		if f := d.Frame(ws.OpBinary, p); f != nil {
			t.Errorf("%d bytes compressed to a %d-byte frame", len(p), len(f))
		}
		// AppendFrame compresses whatever it gets.
		frame := d.AppendFrame(nil, ws.OpBinary, p, Params(maxWindowBits))
		if hl := wsframe.HeaderLen(len(frame) - 2); frame[0] != 0xc2 || !bytes.Equal(stdInflate(t, frame[hl:]), p) {
			t.Errorf("AppendFrame of %d bytes: % x...", len(p), frame[:min(len(frame), 8)])
		}
	}
}

// TestAppendFrameWindow: a connection that asked for a small window gets
// messages longer than it compressed within it. The distances are checked
// by decoding the deflate stream (maxDistance); the content by inflating.
func TestAppendFrameWindow(t *testing.T) {
	d := NewDeflater(DefaultLevel)
	p := bytes.Repeat(testJSON(), 8) // 7.5 KB, repeating every 934 bytes
	for bits := minWindowBits; bits <= maxWindowBits; bits++ {
		params, ok := Accept(fmt.Appendf(nil, "permessage-deflate; server_max_window_bits=%d", bits))
		if !ok {
			t.Fatal("declined")
		}
		frame := d.AppendFrame(nil, ws.OpText, p, params)
		h, _ := ws.ReadHeader(bytes.NewReader(frame))
		z := frame[len(frame)-int(h.Length):]
		if got := stdInflate(t, z); !bytes.Equal(got, p) {
			t.Fatalf("window %d: round trip gave %d bytes", bits, len(got))
		}
		if far := maxDistance(t, append(bytes.Clone(z), 0, 0, 0xff, 0xff)); far > 1<<bits {
			t.Errorf("window %d: a back-reference reaches %d bytes back", bits, far)
		}
		t.Logf("window %2d bits: %d bytes to %d", bits, len(p), len(z))
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

func TestInflate(t *testing.T) {
	big := bytes.Repeat(testJSON(), 40) // ~37 KB, several output doublings
	zeros := make([]byte, 1<<20)
	cases := []struct {
		name    string
		z       []byte
		limit   int
		want    []byte
		wantErr error
	}{
		{"json", stdDeflate(t, testJSON()), 1 << 16, testJSON(), nil},
		{"ours", NewDeflater(DefaultLevel).Frame(ws.OpText, big)[4:], 1 << 16, big, nil},
		{"exactly the limit", stdDeflate(t, big), len(big), big, nil},
		{"one byte over", stdDeflate(t, big), len(big) - 1, nil, wsframe.ErrTooBig},
		{"bomb", stdDeflate(t, zeros), 1 << 16, nil, wsframe.ErrTooBig},
		{"empty message", []byte{0x00}, 100, []byte{}, nil},
		// A stored block of "abc", then the empty stored block's header
		// whose LEN and NLEN the receiver appends.
		{"stored block", []byte{0x00, 0x03, 0x00, 0xfc, 0xff, 'a', 'b', 'c', 0x00}, 100, []byte("abc"), nil},
		// A sender that closed its stream (BFINAL), then added the empty
		// stored block §7.2.1 asks for: what follows the final block is
		// ignored.
		{"ends with a final block", append(closedDeflate(t, []byte("hello")), 0x00), 100, []byte("hello"), nil},
		{"no bytes", nil, 100, nil, ErrCorrupt},
		{"garbage", []byte{0xff, 0xff, 0xff, 0xff}, 100, nil, ErrCorrupt},
		{"reserved block type", []byte{0x06}, 100, nil, ErrCorrupt},
		{"truncated", stdDeflate(t, testJSON())[:100], 1 << 16, nil, ErrCorrupt},
	}
	var in Inflater
	pool := bufpool.New()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			alloc := &countingAllocator{a: pool}
			out, err := in.Inflate(c.z, c.limit, alloc)
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) || out != nil {
					t.Fatalf("got %v (%v), want %v", err, out != nil, c.wantErr)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(*out, c.want) {
					t.Fatalf("inflated %d bytes, want %d", len(*out), len(c.want))
				}
				alloc.Put(out)
			}
			if alloc.out != 0 {
				t.Errorf("%d buffers not given back", alloc.out)
			}
			if alloc.peak > maxHeld(c.limit, len(c.z)) {
				t.Errorf("held %d bytes at once for a limit of %d", alloc.peak, c.limit)
			}
		})
	}
}

// TestInflateBombHoldsTheLimit: 100 MB of zeros deflate to about 100 KB;
// inflated under a 64 KiB limit, the inflater holds the limit (rounded up
// to a pool class, and at most twice it while the output grows), not
// 100 MB.
func TestInflateBombHoldsTheLimit(t *testing.T) {
	z := stdDeflate(t, make([]byte, 100<<20))
	t.Logf("100 MiB of zeros deflate to %d bytes", len(z))
	alloc := &countingAllocator{a: bufpool.New()}
	var in Inflater
	const limit = 64 << 10
	if _, err := in.Inflate(z, limit, alloc); !errors.Is(err, wsframe.ErrTooBig) {
		t.Fatalf("err %v, want ErrTooBig", err)
	}
	if max := maxHeld(limit, len(z)); alloc.peak > max {
		t.Errorf("held %d bytes at once, want at most %d", alloc.peak, max)
	}
}

// maxHeld is the most Inflate may hold at once: a copy of its input, and
// its output while it grows (the last buffer, up to the limit rounded up
// to a pool class, and the half-size one it is copied from).
func maxHeld(limit, compressed int) int {
	class := func(n int) int {
		if n <= bufpool.MinSize {
			return bufpool.MinSize
		}
		if n > bufpool.MaxSize {
			return n
		}
		c := bufpool.MinSize
		for c < n {
			c *= 2
		}
		return c
	}
	return class(compressed+len(inflateTail)) + class(limit) + class(limit)/2
}

func TestInflateAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	z := stdDeflate(t, testJSON())
	pool := bufpool.New()
	var in Inflater
	in.pool.Put(in.get(nil)) // one decompressor made before measuring
	n := testing.AllocsPerRun(100, func() {
		out, err := in.Inflate(z, 1<<16, pool)
		if err != nil {
			t.Fatal(err)
		}
		pool.Put(out)
	})
	if n > 0 {
		t.Errorf("Inflate allocates %v times per message", n)
	}
}

// countingAllocator counts what is out of a bufpool and the peak bytes.
type countingAllocator struct {
	a         wsframe.Allocator
	out       int
	held      int
	peak      int
	heldSizes map[*[]byte]int
}

func (c *countingAllocator) Get(n int) *[]byte {
	b := c.a.Get(n)
	if c.heldSizes == nil {
		c.heldSizes = map[*[]byte]int{}
	}
	c.heldSizes[b] = cap(*b)
	c.out++
	c.held += cap(*b)
	c.peak = max(c.peak, c.held)
	return b
}

func (c *countingAllocator) Put(b *[]byte) {
	c.out--
	c.held -= c.heldSizes[b]
	delete(c.heldSizes, b)
	c.a.Put(b)
}

// FuzzInflate: whatever the bytes, Inflate returns a message no longer
// than the limit that the standard library inflates the same way, or an
// error, and gives back every buffer.
func FuzzInflate(f *testing.F) {
	f.Add(stdDeflate(f, testJSON()), uint16(2000))
	f.Add(stdDeflate(f, make([]byte, 5000)), uint16(4000))
	f.Add([]byte{0x00}, uint16(0))
	f.Add([]byte{0xff}, uint16(10))
	pool := bufpool.New()
	var in Inflater
	f.Fuzz(func(t *testing.T, z []byte, limit uint16) {
		alloc := &countingAllocator{a: pool}
		out, err := in.Inflate(z, int(limit), alloc)
		ref, refErr := io.ReadAll(io.LimitReader(stdflate.NewReader(io.MultiReader(bytes.NewReader(z), bytes.NewReader(inflateTail))), int64(limit)+1))
		switch {
		case err == nil:
			if len(*out) > int(limit) {
				t.Fatalf("%d bytes over the limit %d", len(*out), limit)
			}
			if refErr != nil || !bytes.Equal(*out, ref) {
				t.Fatalf("inflated %q; the standard library: %q, %v", *out, ref, refErr)
			}
			alloc.Put(out)
		case errors.Is(err, wsframe.ErrTooBig):
			if refErr == nil && len(ref) <= int(limit) {
				t.Fatalf("too big, but the standard library inflates %d bytes", len(ref))
			}
		default:
			if refErr == nil && len(ref) <= int(limit) {
				t.Fatalf("%v, but the standard library inflates %q", err, ref)
			}
		}
		if alloc.out != 0 {
			t.Fatalf("%d buffers not given back", alloc.out)
		}
	})
}
