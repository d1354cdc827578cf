package shard

import (
	"bytes"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/shardgate/shardgate/bufpool"
	"github.com/shardgate/shardgate/shard/wsframe"
	"golang.org/x/sys/unix"
)

// TestCoalescedPongAnswersMostRecentPing: a client whose socket is full
// sends three pings; the one pong it gets, after the backlog, carries the
// last ping's payload (RFC 6455 §5.5.3 allows answering only the most
// recent ping). Before the fix the waiting pong kept the first payload.
func TestCoalescedPongAnswersMostRecentPing(t *testing.T) {
	s := newTestShard(t, nil)
	p := attachPeerSndbuf(t, s, 4096)
	// A frame far larger than what the socket pair buffers: most of it
	// stays queued until the peer reads.
	frame := textFrame(bytes.Repeat([]byte("x"), 512<<10))
	if err := s.Broadcast("", frame); err != nil {
		t.Fatal(err)
	}
	// Reading its first bytes proves the shard has written it, and so
	// queued the rest: the pings below find a backlog.
	head := make([]byte, 16)
	p.readFull(head)

	var pings []byte
	for _, payload := range []string{"first", "second", "third"} {
		pings = append(pings, clientFragment(ws.OpPing, true, payload)...)
	}
	p.write(pings) // one write: the shard reads all three at once

	rest := make([]byte, len(frame)-len(head))
	p.readFull(rest)
	if !bytes.Equal(append(head, rest...), frame) {
		t.Fatal("the broadcast frame came back altered")
	}
	if op, b := p.next(); op != ws.OpPong || string(b) != "third" {
		t.Fatalf("got %v %q, want one pong carrying the most recent ping's payload %q", op, b, "third")
	}
	// Exactly one pong: the next frame is the answer to our close.
	p.send(ws.OpClose, "\x03\xe8")
	if op, b := p.next(); op != ws.OpClose {
		t.Fatalf("got %v %q after the pong, want the close echo (one pong for three pings)", op, b)
	}
}

// TestPongPartlyWrittenIsNotRewritten drives the queue's state directly
// (no socket: every frame here is queued behind a backlog): a waiting pong
// takes each new ping's payload, keeps its index as written frames leave
// the queue, and once it is partly on the wire a later ping gets a fresh
// pong of its own. Pongs are charged once each, at their pooled buffer.
func TestPongPartlyWrittenIsNotRewritten(t *testing.T) {
	s := &Shard{
		opts:  Options{SendQueueBytes: 1 << 20, Metrics: NopMetrics()},
		pool:  bufpool.New(),
		epoch: time.Now(),
	}
	c := &conn{fd: -1}
	backlog := [][]byte{[]byte("\x81\x01a"), []byte("\x81\x01b")}
	for _, f := range backlog {
		s.enqueue(c, f, nil, false)
	}
	pongFrame := func(payload string) string {
		return string(wsframe.AppendFrame(nil, ws.OpPong, []byte(payload)))
	}
	check := func(what string, want ...string) {
		t.Helper()
		q := c.out
		var got []string
		charged := 0
		for _, f := range q.frames {
			got = append(got, string(f.b))
			charged += f.cost
		}
		if len(got) != len(want) {
			t.Fatalf("%s: queue holds %q, want %q", what, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: queue holds %q, want %q", what, got, want)
			}
		}
		if charged != q.charged {
			t.Fatalf("%s: charged %d, frames cost %d", what, q.charged, charged)
		}
	}

	s.pong(c, []byte("p1"))
	s.pong(c, []byte("p2"))
	check("two pings behind a backlog", "\x81\x01a", "\x81\x01b", pongFrame("p2"))

	// The socket takes the first frame: the pong moves to index 1.
	s.advance(c, len(backlog[0]))
	s.pong(c, []byte("p3"))
	check("after one frame left", "\x81\x01b", pongFrame("p3"))

	// The socket takes the second frame and 2 bytes of the pong.
	s.advance(c, len(backlog[1])+2)
	check("pong partly written", pongFrame("p3")[2:])
	s.pong(c, []byte("p4"))
	s.pong(c, []byte("p5"))
	check("pings after a partly written pong", pongFrame("p3")[2:], pongFrame("p5"))

	// The rest of the old pong leaves: the fresh one is the waiting one.
	s.advance(c, len(pongFrame("p3"))-2)
	s.pong(c, []byte("p6"))
	check("old pong gone", pongFrame("p6"))
	s.freeQueue(c)
}

// readFull reads exactly len(b) bytes (blocking, bounded by SO_RCVTIMEO).
func (p *peer) readFull(b []byte) {
	p.t.Helper()
	for n := 0; n < len(b); {
		m, err := unix.Read(p.fd, b[n:])
		if err == unix.EINTR {
			continue // the runtime's preemption signal, not the peer
		}
		if err != nil || m == 0 {
			p.t.Fatalf("read after %d of %d bytes: n=%d err=%v", n, len(b), m, err)
		}
		n += m
	}
}
