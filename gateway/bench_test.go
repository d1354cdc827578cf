package gateway

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"
)

const benchUpgradeRequest = "GET /ws HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: https://app.example.com\r\n\r\n"

// BenchmarkHandshake runs the upgrade of one buffered request, as the
// acceptor does once the header is complete (no socket I/O).
func BenchmarkHandshake(b *testing.B) {
	var open atomic.Int64
	upgrades := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "u"}, []string{"result"})
	h := newHandshaker("/ws", nil, nil, 1<<30, &open, upgrades, true)
	req := []byte(benchUpgradeRequest)
	b.ReportAllocs()
	for b.Loop() {
		if r := h.upgrade(req); r.result != upgradeOK {
			b.Fatalf("upgrade: %s", r.result)
		}
	}
}

// BenchmarkUpgradeLoopback dials, upgrades and closes real connections
// against a running gateway from 32 concurrent clients. The clients share
// the machine's two cores with the gateway, so upgrades/s is a lower bound.
func BenchmarkUpgradeLoopback(b *testing.B) {
	g := startGateway(b, func(c *Config) { c.MaxConns = 1 << 20 })
	url := "ws://" + g.Addr().String() + "/ws"
	b.ReportAllocs()
	b.SetParallelism(16)
	var failed atomic.Value
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			conn, _, _, err := ws.Dial(context.Background(), url)
			if err != nil {
				failed.Store(err)
				return
			}
			conn.Close()
		}
	})
	if err := failed.Load(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "upgrades/s")
}

// BenchmarkEncodeMessage encodes one 256-byte message into its frame, as
// the dispatcher does once per published message.
func BenchmarkEncodeMessage(b *testing.B) {
	data := []byte(fmt.Sprintf("%q", strings.Repeat("x", 254)))
	d := &dispatcher{}
	b.ReportAllocs()
	for b.Loop() {
		if err := d.deliver("news", data); err != nil {
			b.Fatal(err)
		}
	}
}
