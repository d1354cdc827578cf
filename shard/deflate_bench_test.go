package shard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"testing"

	"github.com/gobwas/ws"
	"github.com/shardgate/shardgate/shard/pmce"
	"github.com/shardgate/shardgate/shard/protocol"
	"github.com/shardgate/shardgate/shard/wsframe"
	"golang.org/x/sys/unix"
)

// benchJSON is the data of about 1 KiB of JSON message that compresses
// like real traffic (an order book update: repeated keys, varied
// numbers), not like padding: 2.1x at BestSpeed.
func benchJSON() json.RawMessage {
	var b bytes.Buffer
	b.WriteString(`{"event":"book","symbol":"ACME.PA","ts":1732540000123456789,"seq":4817263,"bids":[`)
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
	b.WriteString(`],"last":{"px":101.87,"qty":300,"side":"buy","trade_id":"T-20261130-0001928374"},"venue":"XPAR","status":"open","currency":"EUR","meta":{"source":"feed-a","latency_us":183,"flags":["snapshot","consolidated"]}}`)
	return b.Bytes()
}

// BenchmarkBroadcastDeflate is one broadcast of 1 KiB of JSON to n
// subscribers of one shard, without compression and with it, in one run:
// each iteration does what the gateway does per message, the encoding
// (and the one compression, by the dispatcher) and the fan-out. With
// compression every subscriber negotiated permessage-deflate and gets the
// shared compressed frame.
//
// sink=devnull writes to /dev/null: the gateway's own CPU per delivery.
// sink=loopback writes to real TCP sockets on 127.0.0.1 whose peers are
// drained between iterations (not timed): the kernel's send path, which
// costs per byte as well as per call, is in the measure. ns/delivery is
// the shard goroutine's time per subscriber, wire-B/delivery the frame it
// wrote.
func BenchmarkBroadcastDeflate(b *testing.B) {
	data := benchJSON()
	for _, sink := range []string{"devnull", "loopback"} {
		for _, n := range []int{100, 1000, 10000} {
			if sink == "loopback" && n > 1000 {
				continue // 20,000 sockets: over a default open-file limit
			}
			for _, on := range []bool{false, true} {
				b.Run(fmt.Sprintf("sink=%s/subscribers=%d/compression=%v", sink, n, on), func(b *testing.B) {
					var drain func()
					var s *Shard
					if sink == "devnull" {
						s = newBenchShard(b, n)
					} else {
						s, drain = newLoopbackShard(b, n)
					}
					var d *pmce.Deflater
					if on {
						d = pmce.NewDeflater(pmce.DefaultLevel)
						for _, c := range s.all {
							c.deflate = pmce.Params(15)
						}
					}
					casts := make([]task, 1)
					wire := 0
					b.ReportAllocs()
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						ln := protocol.MessageLen("bench", data)
						f := wsframe.AppendHeader(make([]byte, 0, wsframe.HeaderLen(ln)+ln), ws.OpText, ln)
						f = protocol.AppendMessage(f, "bench", data)
						casts[0] = task{kind: taskBroadcast, channel: "bench", frame: f}
						if d != nil {
							casts[0].deflate = d.Frame(ws.OpText, f[wsframe.HeaderLen(ln):])
						}
						s.broadcast(casts)
						wire = len(f)
						if casts[0].deflate != nil {
							wire = len(casts[0].deflate)
						}
						if drain != nil {
							b.StopTimer()
							drain()
							b.StartTimer()
						}
					}
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
					b.ReportMetric(float64(wire), "wire-B/delivery")
				})
			}
		}
	}
}

// newLoopbackShard is newBenchShard over n TCP connections on loopback:
// the shard writes to the accepted sockets, the test holds the dialled
// ones, and drain reads what they received.
func newLoopbackShard(b *testing.B, n int) (*Shard, func()) {
	b.Helper()
	s, err := New(Options{MaxMessageBytes: 65536, SendQueueBytes: 1 << 20, Metrics: NopMetrics(), Publisher: nopPublisher{}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	peers := make([]int, 0, n)
	b.Cleanup(func() {
		for _, fd := range peers {
			unix.Close(fd)
		}
	})
	for range n {
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		server, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		peers = append(peers, dupNonblock(b, client))
		c := &conn{fd: int32(dupNonblock(b, server)), idx: -1}
		client.Close()
		server.Close()
		s.conns.Add(1)
		s.addConn(c)
		s.subscribe(c, "bench")
	}
	buf := make([]byte, 64<<10)
	drain := func() {
		for _, fd := range peers {
			for {
				if n, err := unix.Read(fd, buf); n <= 0 || err != nil {
					break
				}
			}
		}
	}
	return s, drain
}

// dupNonblock returns a non-blocking duplicate of c's socket.
func dupNonblock(b *testing.B, c net.Conn) int {
	b.Helper()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		b.Fatal(err)
	}
	fd := -1
	var dupErr error
	if err := raw.Control(func(s uintptr) { fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil || dupErr != nil {
		b.Fatal(err, dupErr)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		b.Fatal(err)
	}
	return fd
}
