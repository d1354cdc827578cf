package pmce

import (
	"bytes"
	stdflate "compress/flate"
	"fmt"
	"testing"

	"github.com/gobwas/ws"
	"github.com/klauspost/compress/flate"
	"github.com/shardgate/shardgate/bufpool"
)

// BenchmarkDeflate compresses testJSON (about 1 KiB) on its own, as a
// broadcast is, with both libraries at their fastest and default levels.
// "ratio" is compressed bytes over plain bytes. This is what chose
// DefaultLevel and klauspost/compress.
func BenchmarkDeflate(b *testing.B) {
	p := testJSON()
	levels := []struct {
		name  string
		level int
	}{{"BestSpeed", 1}, {"Default", -1}}
	for _, l := range levels {
		b.Run("klauspost/"+l.name, func(b *testing.B) {
			var out bytes.Buffer
			w, _ := flate.NewWriter(&out, l.level)
			b.ReportAllocs()
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				out.Reset()
				w.Reset(&out)
				w.Write(p)
				w.Flush()
			}
			b.ReportMetric(float64(out.Len()-4)/float64(len(p)), "ratio")
		})
		b.Run("stdlib/"+l.name, func(b *testing.B) {
			var out bytes.Buffer
			w, _ := stdflate.NewWriter(&out, l.level)
			b.ReportAllocs()
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				out.Reset()
				w.Reset(&out)
				w.Write(p)
				w.Flush()
			}
			b.ReportMetric(float64(out.Len()-4)/float64(len(p)), "ratio")
		})
	}
	// The gateway's own path: pooled compressor, exact-size frame.
	b.Run("Deflater.Frame", func(b *testing.B) {
		d := NewDeflater(DefaultLevel)
		b.ReportAllocs()
		b.SetBytes(int64(len(p)))
		var n int
		for b.Loop() {
			n = len(d.Frame(ws.OpText, p))
		}
		b.ReportMetric(float64(n)/float64(len(p)+4), "ratio")
	})
}

// BenchmarkInflate inflates testJSON as the shard does, from a pool.
func BenchmarkInflate(b *testing.B) {
	p := testJSON()
	for _, size := range []int{1, 16} {
		msg := bytes.Repeat(p, size)
		z := stdDeflate(b, msg)
		b.Run(fmt.Sprintf("%dB", len(msg)), func(b *testing.B) {
			pool := bufpool.New()
			var in Inflater
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				out, err := in.Inflate(z, 1<<20, pool)
				if err != nil {
					b.Fatal(err)
				}
				pool.Put(out)
			}
		})
	}
}
