package shard

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// BenchmarkTrickledMessage sends one text message to a shard in 64-byte
// pieces, each read by the shard before the next is written (the
// slowloris of frames), for messages of 256 KiB and 1 MiB. The shard's own
// time (reads, decoding, the reply) is reported as server-ns/op and
// server-ns/byte: linear cost keeps server-ns/byte flat across sizes (4
// times the bytes in the same pieces must cost at most 5 times the CPU).
// Before reads went straight into a buffer sized for the frame, what had
// arrived was copied again on every read: quadratic, 8.5-9.9 times the
// cost for 4 times the bytes.
//
// The shard is driven on the benchmark's goroutine (readFrom is called
// directly), like BenchmarkFanout, so the client's writes are not counted.
func BenchmarkTrickledMessage(b *testing.B) {
	const piece = 64
	for _, size := range []int{256 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("bytes=%d/piece=%d", size, piece), func(b *testing.B) {
			s, c, client := newTrickleShard(b, size)
			frame := maskedText(bytes.Repeat([]byte("x"), size))
			drain := make([]byte, 4096)
			var server time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				for off := 0; off < len(frame); off += piece {
					if _, err := unix.Write(client, frame[off:min(off+piece, len(frame))]); err != nil {
						b.Fatalf("write: %v", err)
					}
					start := time.Now()
					s.readFrom(c)
					server += time.Since(start)
				}
				if c.state != stateOpen {
					b.Fatalf("connection closed by the shard (state %d)", c.state)
				}
				for { // the bad_json reply to each message
					if n, _ := unix.Read(client, drain); n <= 0 {
						break
					}
				}
			}
			b.ReportMetric(float64(server.Nanoseconds())/float64(b.N), "server-ns/op")
			b.ReportMetric(float64(server.Nanoseconds())/float64(b.N)/float64(size), "server-ns/byte")
		})
	}
}

// newTrickleShard returns a shard, its one connection (the server end of
// a socketpair, attached without the shard goroutine's help) and the
// client end.
func newTrickleShard(b *testing.B, maxMessage int) (*Shard, *conn, int) {
	b.Helper()
	s, err := New(Options{MaxMessageBytes: maxMessage, SendQueueBytes: 1 << 20, Metrics: NopMetrics(), Publisher: nopPublisher{}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { unix.Close(fds[1]) })
	c := &conn{fd: int32(fds[0]), idx: -1}
	s.conns.Add(1)
	s.addConn(c)
	return s, c, fds[1]
}

func maskedText(payload []byte) []byte {
	var buf bytes.Buffer
	if err := ws.WriteFrame(&buf, ws.MaskFrame(ws.NewTextFrame(payload))); err != nil {
		panic(err)
	}
	return buf.Bytes()
}
