package pmce

import (
	"bytes"
	"errors"
	"testing"

	"github.com/gobwas/ws"
)

// maxDistance decodes a raw deflate stream (RFC 1951) just far enough to
// return the longest back-reference it makes, so tests can check what a
// compressor promises a connection's window. It stops at the final block
// or where the input ends on a block boundary (a sync flush).
func maxDistance(tb testing.TB, z []byte) int {
	tb.Helper()
	d := &deflateWalker{in: z}
	far, err := d.walk()
	if err != nil {
		tb.Fatalf("maxDistance: %v", err)
	}
	return far
}

type deflateWalker struct {
	in  []byte
	pos int // bit position
}

var errShort = errors.New("deflate stream ends inside a block")

func (d *deflateWalker) bits(n int) (int, error) {
	v := 0
	for i := range n {
		if d.pos>>3 >= len(d.in) {
			return 0, errShort
		}
		bit := int(d.in[d.pos>>3]>>(d.pos&7)) & 1
		v |= bit << i
		d.pos++
	}
	return v, nil
}

// huffman maps (code length, code) to a symbol, canonical codes.
type huffman map[[2]int]int

func newHuffman(lengths []int) huffman {
	var count [16]int
	for _, l := range lengths {
		count[l]++
	}
	count[0] = 0
	var next [16]int
	code := 0
	for l := 1; l < 16; l++ {
		code = (code + count[l-1]) << 1
		next[l] = code
	}
	h := huffman{}
	for sym, l := range lengths {
		if l > 0 {
			h[[2]int{l, next[l]}] = sym
			next[l]++
		}
	}
	return h
}

func (d *deflateWalker) decode(h huffman) (int, error) {
	code := 0
	for l := 1; l < 16; l++ {
		b, err := d.bits(1)
		if err != nil {
			return 0, err
		}
		code = code<<1 | b
		if sym, ok := h[[2]int{l, code}]; ok {
			return sym, nil
		}
	}
	return 0, errors.New("bad Huffman code")
}

var (
	lengthExtra = [29]int{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase    = [30]int{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra   = [30]int{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
	clenOrder   = [19]int{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
)

func (d *deflateWalker) walk() (far int, err error) {
	for {
		if d.pos>>3 >= len(d.in) {
			return far, nil // ended on a block boundary
		}
		final, err := d.bits(1)
		if err != nil {
			return far, err
		}
		typ, err := d.bits(2)
		if err != nil {
			return far, err
		}
		switch typ {
		case 0:
			d.pos = (d.pos + 7) &^ 7
			n, err := d.bits(16)
			if err != nil {
				return far, err
			}
			if _, err := d.bits(16); err != nil {
				return far, err
			}
			d.pos += 8 * n
		case 1, 2:
			lit, dist, err := d.tables(typ)
			if err != nil {
				return far, err
			}
			for {
				sym, err := d.decode(lit)
				if err != nil {
					return far, err
				}
				if sym < 256 {
					continue
				}
				if sym == 256 {
					break
				}
				if _, err := d.bits(lengthExtra[sym-257]); err != nil {
					return far, err
				}
				ds, err := d.decode(dist)
				if err != nil {
					return far, err
				}
				extra, err := d.bits(distExtra[ds])
				if err != nil {
					return far, err
				}
				far = max(far, distBase[ds]+extra)
			}
		default:
			return far, errors.New("reserved block type")
		}
		if final == 1 {
			return far, nil
		}
	}
}

// tables returns the literal/length and distance codes of a fixed (1) or
// dynamic (2) block.
func (d *deflateWalker) tables(typ int) (huffman, huffman, error) {
	if typ == 1 {
		lit := make([]int, 288)
		for i := range lit {
			switch {
			case i < 144:
				lit[i] = 8
			case i < 256:
				lit[i] = 9
			case i < 280:
				lit[i] = 7
			default:
				lit[i] = 8
			}
		}
		dist := make([]int, 30)
		for i := range dist {
			dist[i] = 5
		}
		return newHuffman(lit), newHuffman(dist), nil
	}
	hlit, err := d.bits(5)
	if err != nil {
		return nil, nil, err
	}
	hdist, err := d.bits(5)
	if err != nil {
		return nil, nil, err
	}
	hclen, err := d.bits(4)
	if err != nil {
		return nil, nil, err
	}
	clens := make([]int, 19)
	for i := range hclen + 4 {
		if clens[clenOrder[i]], err = d.bits(3); err != nil {
			return nil, nil, err
		}
	}
	ch := newHuffman(clens)
	lengths := make([]int, 0, hlit+257+hdist+1)
	for len(lengths) < hlit+257+hdist+1 {
		sym, err := d.decode(ch)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case sym < 16:
			lengths = append(lengths, sym)
		case sym == 16:
			n, err := d.bits(2)
			if err != nil || len(lengths) == 0 {
				return nil, nil, errors.New("bad repeat")
			}
			for range n + 3 {
				lengths = append(lengths, lengths[len(lengths)-1])
			}
		case sym == 17:
			n, err := d.bits(3)
			if err != nil {
				return nil, nil, err
			}
			lengths = append(lengths, make([]int, n+3)...)
		default:
			n, err := d.bits(7)
			if err != nil {
				return nil, nil, err
			}
			lengths = append(lengths, make([]int, n+11)...)
		}
	}
	return newHuffman(lengths[:hlit+257]), newHuffman(lengths[hlit+257:]), nil
}

// TestMaxDistance checks the walker against a stream whose references
// are known: the standard library's compression of a repeated string.
func TestMaxDistance(t *testing.T) {
	z := stdDeflate(t, []byte("abcdefgh-abcdefgh-abcdefgh-"))
	if got := maxDistance(t, append(z, 0, 0, 0xff, 0xff)); got != 9 {
		t.Errorf("max distance %d, want 9", got)
	}
	if got := maxDistance(t, append(stdDeflate(t, []byte("no repeats")), 0, 0, 0xff, 0xff)); got != 0 {
		t.Errorf("max distance %d, want 0", got)
	}
}

// TestFrameReferencesStayInTheMessage is what Params.Fits rests on: a
// message compressed on its own (no context takeover) refers back at most
// to its own first byte, so one of at most 2^N bytes fits a window of N
// bits.
func TestFrameReferencesStayInTheMessage(t *testing.T) {
	d := NewDeflater(DefaultLevel)
	for _, n := range []int{256, 300, 1 << 10, 4 << 10, 40 << 10} {
		p := make([]byte, 0, n)
		for len(p) < n {
			p = append(p, testJSON()...)
		}
		p = p[:n]
		frame := d.Frame(ws.OpText, p)
		h, _ := ws.ReadHeader(bytes.NewReader(frame))
		far := maxDistance(t, append(bytes.Clone(frame[len(frame)-int(h.Length):]), 0, 0, 0xff, 0xff))
		if far >= n {
			t.Errorf("%d-byte message: a back-reference reaches %d bytes back", n, far)
		}
	}
}
