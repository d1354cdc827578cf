package shard

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestFailedLargeFrameWithInputBehindItClosesWithoutOverrunningTheReadBuffer:
// a frame large enough to be read into its own pooled buffer, read in two
// parts, fails once whole (bad UTF-8: 1007) while more input fills the
// rest of that buffer. The connection is closed with 1007 and the shard
// goes on serving a witness. Before the fix the failed buffer was kept as
// input and copied in front of the next read, past the shard's read
// buffer: a panic that took the process down.
func TestFailedLargeFrameWithInputBehindItClosesWithoutOverrunningTheReadBuffer(t *testing.T) {
	received := prometheus.NewCounter(prometheus.CounterOpts{Name: "received"})
	s := newTestShard(t, func(o *Options) { o.Metrics.BytesReceived = received })
	witness := attachPeer(t, s)
	p := attachPeer(t, s)

	// MaxMessageBytes (4096) of text ending in a byte that is not UTF-8:
	// the frame is complete before its payload is found bad.
	frame := clientFragment(ws.OpText, true, strings.Repeat("a", 4095)+"\xff")
	head := 100
	p.write(frame[:head])
	// The shard has read the head (its own buffer now holds it) once the
	// bytes are counted.
	deadline := time.Now().Add(10 * time.Second)
	for counted(t, received) < float64(head) {
		if time.Now().After(deadline) {
			t.Fatalf("the shard read %v bytes of the head, want %d", counted(t, received), head)
		}
		time.Sleep(time.Millisecond)
	}
	// The rest of the frame and, behind it, more than its buffer can hold.
	rest := append(bytes.Clone(frame[head:]), bytes.Repeat(clientFragment(ws.OpText, true, "x"), 4096)...)
	p.write(rest)
	p.expectCloseFrame(ws.StatusInvalidFramePayloadData, "invalid UTF-8 in text message")

	witness.send(ws.OpPing, "alive")
	if op, b := witness.next(); op != ws.OpPong || string(b) != "alive" {
		t.Fatalf("witness got %v %q, want pong alive", op, b)
	}
}

func counted(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
