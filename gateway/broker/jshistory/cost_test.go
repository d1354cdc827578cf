package jshistory

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shardgate/shardgate/internal/natstest"
)

// TestCostPerChannel measures what following 1,000 channels costs, the
// way this package does it (one core subscription per channel to the
// stream's republish) and with one nats.go ordered consumer per channel.
// Server and client share this process, so the heap and goroutines are
// both sides'; the server's own counts (subscriptions, consumers) are
// read from it. Run with JSHISTORY_COST=1 (go test -run Cost -v).
func TestCostPerChannel(t *testing.T) {
	if os.Getenv("JSHISTORY_COST") == "" {
		t.Skip("set JSHISTORY_COST=1 to measure")
	}
	const channels = 1000
	for _, mode := range []string{"follow", "ordered"} {
		t.Run(mode, func(t *testing.T) {
			s := startJS(t, -1, "")
			proxy := natstest.NewProxy(t, s.Addr().String())
			h := open(t, proxy.URL(), testConfig())
			pub := open(t, natstest.URL(s), testConfig())
			ctx := context.Background()
			before := sample(s)
			var delivered atomic.Int64
			t0 := time.Now()
			var stops []func()
			for i := range channels {
				ch := fmt.Sprintf("c%d", i)
				switch mode {
				case "follow":
					p, err := h.Latest(ctx, ch)
					if err != nil {
						t.Fatal(err)
					}
					f, err := h.Follow(ch, p, func(uint64, []byte) { delivered.Add(1) }, nil)
					if err != nil {
						t.Fatal(err)
					}
					stops = append(stops, f.Stop)
				case "ordered":
					st, err := h.js.Stream(ctx, h.cfg.Stream)
					if err != nil {
						t.Fatal(err)
					}
					c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
						FilterSubjects: []string{h.subj.stored(ch)},
						DeliverPolicy:  jetstream.DeliverNewPolicy,
					})
					if err != nil {
						t.Fatal(err)
					}
					cc, err := c.Consume(func(jetstream.Msg) { delivered.Add(1) })
					if err != nil {
						t.Fatal(err)
					}
					stops = append(stops, cc.Stop)
				}
			}
			setup := time.Since(t0)
			// Measure the steady state: every catch-up over, every
			// consumer made.
			waitFor(t, "settled", func() bool {
				if mode == "ordered" {
					return sample(s).consumers == channels
				}
				return idle(h)
			})
			after := sample(s)
			t1 := time.Now()
			for i := range channels {
				if _, err := h.Publish(ctx, fmt.Sprintf("c%d", i), []byte(`1`)); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, "one message per channel", func() bool { return delivered.Load() >= channels })
			fanout := time.Since(t1)
			t.Logf("%s, %d channels: setup %v; heap +%.1f MiB (%.1f KiB/channel), goroutines +%d, server subscriptions +%d, consumers %d; 1 message per channel published and delivered in %v",
				mode, channels, setup.Round(time.Millisecond),
				float64(after.heap-before.heap)/(1<<20), float64(after.heap-before.heap)/1024/channels,
				after.goroutines-before.goroutines, int(after.subs)-int(before.subs), after.consumers, fanout.Round(time.Millisecond))
			// A link blip: one message per channel published while the
			// node is cut off, then the time until it has them all.
			proxy.SetMode(natstest.Dropping)
			proxy.Cut()
			waitFor(t, "disconnected", func() bool { return !h.Connected() })
			for i := range channels {
				if _, err := pub.Publish(ctx, fmt.Sprintf("c%d", i), []byte(`2`)); err != nil {
					t.Fatal(err)
				}
			}
			proxy.SetMode(natstest.Flowing)
			t2 := time.Now()
			waitFor(t, "caught up", func() bool { return delivered.Load() >= 2*channels })
			t.Logf("%s: after the link came back, the %d messages missed (one per channel) delivered in %v",
				mode, channels, time.Since(t2).Round(time.Millisecond))
			for _, stop := range stops {
				stop()
			}
		})
	}
}

type costSample struct {
	heap       int64
	goroutines int
	subs       uint32
	consumers  int
}

func sample(s *server.Server) costSample {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	jsz, _ := s.Jsz(&server.JSzOptions{})
	n := 0
	if jsz != nil {
		n = jsz.Consumers
	}
	return costSample{heap: int64(ms.HeapInuse), goroutines: runtime.NumGoroutine(), subs: s.NumSubscriptions(), consumers: n}
}

// idle reports whether no follower of h is catching up.
func idle(h *History) bool {
	h.fmu.Lock()
	defer h.fmu.Unlock()
	for _, f := range h.followers {
		f.mu.Lock()
		busy := f.syncing
		f.mu.Unlock()
		if busy {
			return false
		}
	}
	return true
}
