package loadgen

import (
	"bytes"
	"compress/flate"
	"encoding/json"
	"testing"
)

// The JSON payload is valid JSON of exactly the size asked for, carries
// what ParseData reads, differs from one message to the next, and
// deflates the way the README says: 1 KiB to about a third at level 1.
func TestJSONPayload(t *testing.T) {
	const sent = int64(1732540000123456789)
	for _, size := range []int{0, 40, 100, 200, 256, 1024, 4096, 65536} {
		var prev []byte
		for seq := uint64(1); seq <= 50; seq++ {
			d := AppendPayload([]byte("keep"), PayloadJSON, sent, seq, size)
			if string(d[:4]) != "keep" {
				t.Fatalf("size %d: dst overwritten", size)
			}
			d = d[4:]
			if size >= 64 && len(d) != size { // smaller: as AppendData, which cannot shrink below its fields
				t.Fatalf("size %d: %d bytes", size, len(d))
			}
			if !json.Valid(d) {
				t.Fatalf("size %d: invalid JSON %s", size, d)
			}
			if ts, s, ok := ParseData(d); !ok || ts != sent || s != seq {
				t.Fatalf("size %d: ParseData = %d %d %v", size, ts, s, ok)
			}
			if bytes.Equal(d, prev) && size >= 256 {
				t.Fatalf("size %d: messages %d and %d are equal", size, seq-1, seq)
			}
			prev = d
		}
	}
	// Deflate ratio at the size of the compression comparison: each
	// message on its own (no context takeover), as a gateway sends it.
	for _, level := range []int{1, 6} {
		var in, out int
		for seq := uint64(1); seq <= 200; seq++ {
			d := AppendJSONData(nil, sent+int64(seq)*1e8, seq, 1024)
			var b bytes.Buffer
			w, _ := flate.NewWriter(&b, level)
			w.Write(d)
			w.Flush()
			in, out = in+len(d), out+b.Len()-4 // RFC 7692 drops the 00 00 ff ff
		}
		ratio := float64(in) / float64(out)
		t.Logf("level %d: 1 KiB JSON payload deflates %.2f×", level, ratio)
		if ratio < 3 || ratio > 5 {
			t.Errorf("level %d: ratio %.2f, want 3 to 5 like real JSON", level, ratio)
		}
	}
}

func BenchmarkAppendJSONData(b *testing.B) {
	b.ReportAllocs()
	var d []byte
	for i := range b.N {
		d = AppendJSONData(d[:0], 1732540000123456789, uint64(i), 1024)
	}
}
