package gateway

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/shardgate/shardgate/internal/wstest"
)

// TestSlowConsumerIsClosedOthersUnaffected: a subscriber that stops
// reading is closed with 1008 once its queue passes -send-queue-bytes,
// while a reading subscriber of the same channel receives every message,
// in order.
func TestSlowConsumerIsClosedOthersUnaffected(t *testing.T) {
	g := startGateway(t, func(c *Config) { c.SendQueueBytes = 256 << 10 })
	slow := wstest.Dial(t, g.wsURL(), nil)
	fast := wstest.Dial(t, g.wsURL(), nil)
	slow.Subscribe("ticks")
	fast.Subscribe("ticks")

	// The fast reader runs on its own goroutine and reports sequence
	// numbers; failures travel back as errors, never as t.Fatal.
	type got struct {
		seq int
		err error
	}
	seqs := make(chan got, 1024)
	go func() {
		defer close(seqs)
		for {
			h, p, err := fast.ReadFrame(30 * time.Second)
			if err != nil {
				seqs <- got{err: err}
				return
			}
			if h.OpCode != ws.OpText {
				continue
			}
			var m struct {
				Data struct{ Seq int } `json:"data"`
			}
			if err := json.Unmarshal(p, &m); err != nil {
				seqs <- got{err: fmt.Errorf("bad message %q: %w", p, err)}
				return
			}
			seqs <- got{seq: m.Data.Seq}
			if m.Data.Seq < 0 {
				return
			}
		}
	}()

	pad := strings.Repeat("x", 16<<10)
	next := 0
	received := 0
	expect := func(upTo int) {
		t.Helper()
		for received < upTo {
			r, ok := <-seqs
			if !ok || r.err != nil {
				t.Fatalf("fast subscriber after %d messages: %v", received, r.err)
			}
			if r.seq != received {
				t.Fatalf("fast subscriber got seq %d, want %d", r.seq, received)
			}
			received++
		}
	}
	publish := func() {
		g.mustPublish("ticks", fmt.Sprintf(`{"seq":%d,"pad":%q}`, next, pad))
		next++
	}
	// Publish until the slow one is cut off (bounded: ~64 MiB at most).
	for g.metricSum("shardgate_disconnects_total", "reason", "slow_consumer") == 0 {
		if next >= 4000 {
			t.Fatalf("no slow_consumer disconnect after %d messages", next)
		}
		for range 20 {
			publish()
		}
		expect(next)
	}
	// Delivery to the healthy subscriber goes on after the cut.
	for range 50 {
		publish()
	}
	expect(next)
	g.mustPublish("ticks", `{"seq":-1}`)

	// The slow client, reading at last, finds the backlog the kernel held
	// and then the close frame.
	slow.ExpectClose(ws.StatusPolicyViolation)
	if v := g.metricSum("shardgate_disconnects_total", "reason", "slow_consumer"); v != 1 {
		t.Fatalf("slow_consumer disconnects = %v, want 1", v)
	}
}
