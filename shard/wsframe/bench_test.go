package wsframe

import (
	"bytes"
	"strings"
	"testing"

	"github.com/gobwas/ws"
	"github.com/shardgate/shardgate/bufpool"
)

// benchMask has every byte below 0x80, so xoring it maps ASCII to ASCII: a
// frame of ASCII text unmasked in place is still a valid frame (masked
// differently), and a benchmark can decode the same bytes every iteration
// instead of copying a fresh frame in. The cipher does the same work for any
// key.
var benchMask = [4]byte{0x12, 0x34, 0x56, 0x78}

// benchFrame concatenates fs as client frames masked with benchMask.
func benchFrame(fs ...testFrame) []byte {
	var b []byte
	for _, f := range fs {
		b = append(b, f.clientWith(benchMask)...)
	}
	return b
}

func repeatFrames(n int, f testFrame) []testFrame {
	fs := make([]testFrame, n)
	for i := range fs {
		fs[i] = f
	}
	return fs
}

func fragments(n int, chunk string) []testFrame {
	fs := []testFrame{first(chunk)}
	for range n - 2 {
		fs = append(fs, cont(chunk))
	}
	return append(fs, last(chunk))
}

func BenchmarkDecode(b *testing.B) {
	small := strings.Repeat("s", 32)
	for _, bench := range []struct {
		name   string
		frames []testFrame
	}{
		{
			name:   "text-32B",
			frames: []testFrame{text(small)},
		},
		{
			name:   "text-32B-x16",
			frames: repeatFrames(16, text(small)),
		},
		{
			name:   "text-64KiB",
			frames: []testFrame{text(strings.Repeat("l", 64<<10))},
		},
		{
			name:   "fragmented-16x1KiB",
			frames: fragments(16, strings.Repeat("f", 1<<10)),
		},
		{
			name:   "fragmented-4x32B-ping",
			frames: []testFrame{first(small), ping("p"), cont(small), cont(small), last(small)},
		},
	} {
		b.Run(bench.name, func(b *testing.B) {
			buf := benchFrame(bench.frames...)
			pool := bufpool.New()
			var (
				d         Decoder
				delivered int
			)
			fn := func(_ ws.OpCode, p []byte) bool {
				delivered += len(p)
				return true
			}
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				n, err := d.Decode(buf, testRules, pool, fn)
				if err != nil || n != len(buf) {
					b.Fatalf(
						"Decode = %d, %v; want %d, nil",
						n, err, len(buf),
					)
				}
			}
			if delivered == 0 {
				b.Fatal("nothing delivered")
			}
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	payload := bytes.Repeat([]byte("e"), 256)

	b.Run("AppendFrame-256B", func(b *testing.B) {
		buf := make([]byte, 0, HeaderLen(len(payload))+len(payload))
		b.SetBytes(int64(len(payload)))
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendFrame(buf[:0], ws.OpText, payload)
		}
	})
	b.Run("AppendFrame-256B-new-buffer", func(b *testing.B) {
		var buf []byte
		b.SetBytes(int64(len(payload)))
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendFrame(nil, ws.OpText, payload)
		}
		_ = buf
	})
	b.Run("AppendClose", func(b *testing.B) {
		buf := make([]byte, 0, ws.MaxHeaderSize+ws.MaxControlFramePayloadSize)
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendClose(buf[:0], ws.StatusGoingAway, "shard shutting down")
		}
	})
}
