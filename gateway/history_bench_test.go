package gateway

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shardgate/shardgate/gateway/history"
)

// BenchmarkDeliverHistory is the dispatcher's cost per published message
// (no shards: encoding, and with history the offset, the store and its
// eviction), history off and on in one run. The store is full (its ring
// of 1,000 per channel over 100 channels wraps), as in a steady state.
func BenchmarkDeliverHistory(b *testing.B) {
	data := []byte(fmt.Sprintf("%q", strings.Repeat("x", 254)))
	names := make([]string, 100)
	for i := range names {
		names[i] = fmt.Sprintf("channel-%d", i)
	}
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("history=%v", on), func(b *testing.B) {
			d := &dispatcher{}
			if on {
				h, err := history.NewMemory(history.MemoryConfig{Size: 1000, TTL: time.Hour, MaxBytes: 256 << 20})
				if err != nil {
					b.Fatal(err)
				}
				d.hist = h
				for i := range 200000 {
					if err := d.deliver(names[i%len(names)], data); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := d.deliver(names[i%len(names)], data); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
