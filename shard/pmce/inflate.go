package pmce

import (
	"bytes"
	"errors"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
	"github.com/shardgate/shardgate/shard/wsframe"
)

// inflateTail follows a message's compressed bytes into the decompressor:
// the 00 00 ff ff that RFC 7692 §7.2.2 has the receiver append, then an
// empty final stored block, so that a complete message ends the deflate
// stream (io.EOF) rather than running out of input mid-stream. A message
// that already ended with a final block ignores both.
var inflateTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// ErrCorrupt is returned by Inflate for data that does not inflate.
var ErrCorrupt = errors.New("pmce: invalid compressed data")

// Inflater decompresses permessage-deflate messages, each on its own
// (client_no_context_takeover): it implements wsframe.Inflater. Its
// decompressors, each with its 32 KiB window, come from a pool of its own
// and are reset for every message, so only messages being inflated hold
// one; the zero value is ready to use, and it is safe for concurrent use.
type Inflater struct {
	pool sync.Pool // of *decompressor
}

type decompressor struct {
	r   io.ReadCloser // a flate reader; flate.Resetter
	src bytes.Reader  // the message's bytes and inflateTail
}

func (f *Inflater) get(src []byte) *decompressor {
	d, ok := f.pool.Get().(*decompressor)
	if !ok {
		d = &decompressor{}
		d.src.Reset(src)
		d.r = flate.NewReader(&d.src)
		return d
	}
	d.src.Reset(src)
	// Resetting to a *bytes.Reader cannot fail.
	_ = d.r.(flate.Resetter).Reset(&d.src, nil)
	return d
}

func (f *Inflater) put(d *decompressor) {
	d.src.Reset(nil)
	f.pool.Put(d)
}

// Inflate returns the message compressed inflates to, in a buffer from
// alloc that the caller hands back (see wsframe.Inflater). compressed is
// copied, with the tail RFC 7692 appends, into a buffer from alloc for
// the time of the call.
//
// The output never grows past limit bytes: it is read into a buffer that
// starts small and at most doubles, up to limit, and once that is full
// one more byte decides between ErrTooBig (wsframe's) and the end. A
// decompression bomb thus costs at most limit bytes of output, however
// far it would inflate, and CPU for no more than limit bytes of it.
func (f *Inflater) Inflate(compressed []byte, limit int, alloc wsframe.Allocator) (*[]byte, error) {
	in := alloc.Get(len(compressed) + len(inflateTail))
	copy(*in, compressed)
	copy((*in)[len(compressed):], inflateTail)
	d := f.get(*in)
	defer func() {
		f.put(d)
		alloc.Put(in)
	}()

	limit = max(limit, 0)
	out := alloc.Get(min(limit, max(4*len(compressed), 512)))
	*out = (*out)[:0]
	for {
		if len(*out) == min(cap(*out), limit) {
			if len(*out) == limit {
				var one [1]byte
				n, err := io.ReadFull(d.r, one[:])
				if n > 0 {
					alloc.Put(out)
					return nil, wsframe.ErrTooBig
				}
				if err != io.EOF {
					alloc.Put(out)
					return nil, ErrCorrupt
				}
				return out, nil
			}
			out = grow(out, min(2*cap(*out), limit), alloc)
		}
		b := *out
		n, err := d.r.Read(b[len(b):min(cap(b), limit)])
		*out = b[:len(b)+n]
		switch {
		case err == io.EOF:
			return out, nil
		case err != nil:
			alloc.Put(out)
			return nil, ErrCorrupt
		}
	}
}

// grow moves b into a buffer from alloc of capacity at least n.
func grow(b *[]byte, n int, alloc wsframe.Allocator) *[]byte {
	nb := alloc.Get(n)
	*nb = append((*nb)[:0], *b...)
	alloc.Put(b)
	return nb
}
