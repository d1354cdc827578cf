package shard

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/gobwas/ws"
	"github.com/shardgate/shardgate/shard/protocol"
	"github.com/shardgate/shardgate/shard/wsframe"
	"golang.org/x/sys/unix"
)

// newBenchShard returns a shard whose n subscribers of "bench" write to
// /dev/null: real write(2) calls that always succeed, without the 3-9 µs
// a loopback socket costs, so what is measured is the gateway's own
// overhead per delivery. The subscribers are not registered with the
// poller (/dev/null cannot be), and the benchmark drives the shard on its
// own goroutine, which is safe because nothing wakes the shard meanwhile.
func newBenchShard(b *testing.B, n int) *Shard {
	b.Helper()
	s, err := New(Options{MaxMessageBytes: 65536, SendQueueBytes: 1 << 20, Metrics: NopMetrics(), Publisher: nopPublisher{}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	for range n {
		fd, err := unix.Open("/dev/null", unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			b.Fatalf("open /dev/null: %v", err)
		}
		c := &conn{fd: int32(fd), idx: -1}
		s.conns.Add(1)
		s.addConn(c)
		s.subscribe(c, "bench")
	}
	return s
}

type nopPublisher struct{}

func (nopPublisher) PublishFromClient(_ string, _ json.RawMessage, done func(error)) { done(nil) }

func benchFrame(size int) []byte {
	data := []byte(fmt.Sprintf("%q", strings.Repeat("x", size-2)))
	n := protocol.MessageLen("bench", data)
	f := wsframe.AppendHeader(make([]byte, 0, wsframe.HeaderLen(n)+n), ws.OpText, n)
	return protocol.AppendMessage(f, "bench", data)
}

// BenchmarkFanout hands one pre-encoded 256-byte message to 1, 100 and
// 10,000 subscribers of one shard. allocs/op stays 0 whatever the fan-out:
// the frame is shared, never copied or re-encoded per subscriber.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			s := newBenchShard(b, n)
			casts := []task{{kind: taskBroadcast, channel: "bench", frame: benchFrame(256)}}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				s.broadcast(casts)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
		})
	}
}

// BenchmarkEncodeAndFanout includes encoding the message, as the
// dispatcher does once per message: exactly one allocation per message,
// for 1 subscriber as for 10,000.
func BenchmarkEncodeAndFanout(b *testing.B) {
	data := []byte(fmt.Sprintf("%q", strings.Repeat("x", 254)))
	for _, n := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			s := newBenchShard(b, n)
			casts := make([]task, 1)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				ln := protocol.MessageLen("bench", data)
				f := wsframe.AppendHeader(make([]byte, 0, wsframe.HeaderLen(ln)+ln), ws.OpText, ln)
				casts[0] = task{kind: taskBroadcast, channel: "bench", frame: protocol.AppendMessage(f, "bench", data)}
				s.broadcast(casts)
			}
		})
	}
}

// BenchmarkFanoutBatch hands 16 messages at once (a publish burst), which
// leave each connection in one writev.
func BenchmarkFanoutBatch(b *testing.B) {
	for _, n := range []int{100, 10000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			s := newBenchShard(b, n)
			casts := make([]task, 16)
			for i := range casts {
				casts[i] = task{kind: taskBroadcast, channel: "bench", frame: benchFrame(256)}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				s.broadcast(casts)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n*len(casts)), "ns/delivery")
		})
	}
}

// nopHistory answers every read with an empty page.
type nopHistory struct{}

func (nopHistory) Read(_ string, _ *Position, _ int, done func(HistoryPage, error)) {
	done(HistoryPage{Epoch: "e"}, nil)
}

// BenchmarkFanoutHistory is BenchmarkFanout with history off and on, in
// one run: with history on, frames carry offsets and the shard tracks each
// channel's latest offset, but an ordinary subscriber costs the same per
// delivery (no recovery is in flight).
func BenchmarkFanoutHistory(b *testing.B) {
	data := []byte(fmt.Sprintf("%q", strings.Repeat("x", 254)))
	for _, n := range []int{100, 10000} {
		for _, on := range []bool{false, true} {
			b.Run(fmt.Sprintf("subscribers=%d/history=%v", n, on), func(b *testing.B) {
				s := newBenchShard(b, n)
				cast := task{kind: taskBroadcast, channel: "bench", frame: benchFrame(256)}
				if on {
					s.opts.History = nopHistory{}
					ln := protocol.MessageAtLen("bench", 1<<20, data)
					f := wsframe.AppendHeader(make([]byte, 0, wsframe.HeaderLen(ln)+ln), ws.OpText, ln)
					cast.frame = protocol.AppendMessageAt(f, "bench", 1<<20, data)
				}
				casts := []task{cast}
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					casts[0].offset++
					s.broadcast(casts)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
			})
		}
	}
}
