package pmce

import (
	"bytes"
	"sync"

	"github.com/gobwas/ws"
	"github.com/klauspost/compress/flate"
	"github.com/shardgate/shardgate/shard/wsframe"
)

// DefaultLevel is the compression level the gateway uses: BestSpeed.
//
// Measured on 1 KiB of JSON (2-core Xeon VM, klauspost/compress v1.20.3,
// shard/pmce BenchmarkDeflate): level 1 deflates it to 49.6% in about
// 9 µs; the default level (5 in this library) to 47.8% in about 12 µs;
// the standard library takes 13 µs at level 1 and 35 µs at its default
// for about the same ratio. A broadcast is compressed once, so the ratio
// pays per delivery and the CPU once per message; 2 points of ratio do
// not buy a third more CPU on the channels with few subscribers, where
// compression is not amortised.
const DefaultLevel = flate.BestSpeed

// syncTail is what a sync flush ends with and what RFC 7692 §7.2.1 has the
// sender strip from a compressed message.
var syncTail = []byte{0x00, 0x00, 0xff, 0xff}

// maxKeptScratch bounds the output buffer a pooled compressor keeps: a
// rare huge message does not pin its size in the pool.
const maxKeptScratch = 64 << 10

// Deflater compresses messages into permessage-deflate frames. It is
// safe for concurrent use: compressors come from pools of its own, one per
// goroutine compressing at a time, and are reset for every message
// (server_no_context_takeover).
type Deflater struct {
	level int
	// pools[bits] holds compressors whose window is 2^bits: pools[15] at
	// level, for Frame; the others, for AppendFrame to a connection that
	// asked for a smaller window, at the one level the library offers
	// with a custom window.
	pools [maxWindowBits + 1]sync.Pool // of *compressor
}

type compressor struct {
	w   *flate.Writer
	out bytes.Buffer
}

// NewDeflater returns a Deflater compressing at level (flate.BestSpeed to
// flate.BestCompression, or flate.DefaultCompression).
func NewDeflater(level int) *Deflater {
	return &Deflater{level: level}
}

// get returns a compressor whose window is 2^bits (8 to 15).
func (d *Deflater) get(bits int) *compressor {
	if c, ok := d.pools[bits].Get().(*compressor); ok {
		return c
	}
	c := &compressor{}
	var w *flate.Writer
	var err error
	if bits < maxWindowBits {
		w, err = flate.NewWriterWindow(&c.out, 1<<bits)
	} else if w, err = flate.NewWriter(&c.out, d.level); err != nil {
		// Only an invalid level fails; fall back to the default one.
		w, err = flate.NewWriter(&c.out, DefaultLevel)
	}
	if err != nil {
		panic("pmce: " + err.Error()) // the window sizes are 256 to 32768: within the library's bounds
	}
	c.w = w
	return c
}

func (d *Deflater) put(bits int, c *compressor) {
	if c.out.Cap() > maxKeptScratch {
		c.out = bytes.Buffer{}
	}
	d.pools[bits].Put(c)
}

// deflate compresses payload on its own and returns the compressed bytes
// without the sync tail, valid until c is used again.
func (c *compressor) deflate(payload []byte) []byte {
	c.out.Reset()
	c.w.Reset(&c.out)
	// Writing to a bytes.Buffer does not fail.
	_, _ = c.w.Write(payload)
	_ = c.w.Flush()
	b := c.out.Bytes()
	// A sync flush always ends with the empty stored block's 00 00 ff ff.
	return b[:len(b)-len(syncTail)]
}

// Frame returns a new final frame with opcode op and RSV1 set whose
// payload is payload deflated on its own, sized exactly; the caller owns
// it. It returns nil when the compressed frame would not be smaller than
// the plain one: the message is then better sent plain (RSV1 clear),
// which a deflate connection always accepts.
func (d *Deflater) Frame(op ws.OpCode, payload []byte) []byte {
	c := d.get(maxWindowBits)
	defer d.put(maxWindowBits, c)
	z := c.deflate(payload)
	if len(z) >= len(payload) {
		return nil
	}
	frame := make([]byte, 0, wsframe.HeaderLen(len(z))+len(z))
	frame = wsframe.AppendCompressedHeader(frame, op, len(z))
	return append(frame, z...)
}

// AppendFrame appends to dst a final frame with opcode op and RSV1 set
// whose payload is payload deflated on its own, for one connection: within
// the window p allows, whatever the message's length (a window under 32
// KiB takes a compressor of its own, which Go's standard library lacks),
// and whether or not that makes it smaller. p must be in use.
func (d *Deflater) AppendFrame(dst []byte, op ws.OpCode, payload []byte, p Params) []byte {
	bits := p.WindowBits()
	c := d.get(bits)
	defer d.put(bits, c)
	z := c.deflate(payload)
	dst = wsframe.AppendCompressedHeader(dst, op, len(z))
	return append(dst, z...)
}
