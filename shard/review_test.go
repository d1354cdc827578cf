package shard

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/gobwas/ws"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sys/unix"
)

// readToEOF reads everything the shard sends until it shuts its side down.
func (p *peer) readToEOF() []byte {
	p.t.Helper()
	out := append([]byte(nil), p.in...)
	p.in = nil
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(p.fd, buf)
		if err == unix.EINTR {
			continue // the runtime's preemption signal, not the peer
		}
		if err != nil {
			p.t.Fatalf("read: %v (after %d bytes)", err, len(out))
		}
		if n == 0 {
			return out
		}
		out = append(out, buf[:n]...)
	}
}

func textFrame(payload []byte) []byte {
	var b bytes.Buffer
	ws.WriteFrame(&b, ws.NewTextFrame(payload))
	return b.Bytes()
}

// TestSlowConsumerCloseNeverInsidePartialFrame: a frame the socket took
// only part of must be finished before the slow consumer's close frame,
// even when its unwritten tail alone is over -send-queue-bytes (a valid
// configuration: -send-queue-bytes 1024 with -max-message-bytes 65536).
// Before the fix the tail was refused by the cap, the empty queue was
// dropped, and the close frame went out right behind half a text frame:
// the client parsed the close frame as text payload.
func TestSlowConsumerCloseNeverInsidePartialFrame(t *testing.T) {
	t.Run("deliverBatch", func(t *testing.T) {
		s := newTestShard(t, func(o *Options) { o.SendQueueBytes = 1024 })
		p := attachPeerSndbuf(t, s, 4096)
		frame := textFrame(bytes.Repeat([]byte("x"), 60000))
		if err := s.Broadcast("", frame); err != nil {
			t.Fatal(err)
		}
		got := p.readToEOF()
		if len(got) < len(frame) || !bytes.Equal(got[:len(frame)], frame) {
			t.Fatalf("the partly written frame was not finished: got %d bytes, want the %d-byte frame first", len(got), len(frame))
		}
		rest := got[len(frame):]
		expectClose(p, &rest, ws.StatusPolicyViolation)
	})
	t.Run("send", func(t *testing.T) {
		// An owned frame (a reply) goes through send: an error reply that
		// echoes a 30 KB id.
		s := newTestShard(t, func(o *Options) { o.SendQueueBytes = 1024; o.MaxMessageBytes = 1 << 16 })
		p := attachPeerSndbuf(t, s, 4096)
		id := bytes.Repeat([]byte("i"), 30000)
		p.send(ws.OpText, `{"type":"nope","id":"`+string(id)+`"}`)
		got := p.readToEOF()
		op, pl := p.nextFrom(&got)
		if op != ws.OpText || !bytes.Contains(pl, id) || !bytes.Contains(pl, []byte(`"error"`)) {
			t.Fatalf("first frame: op %v, %d bytes: want the whole error reply", op, len(pl))
		}
		expectClose(p, &got, ws.StatusPolicyViolation)
	})
}

func expectClose(p *peer, b *[]byte, code ws.StatusCode) {
	p.t.Helper()
	op, pl := p.nextFrom(b)
	if op != ws.OpClose || len(pl) < 2 || ws.StatusCode(binary.BigEndian.Uint16(pl)) != code {
		p.t.Fatalf("got op %v payload %q, want close %d", op, pl, code)
	}
	if len(*b) != 0 {
		p.t.Fatalf("%d bytes after the close frame", len(*b))
	}
}

// nextFrom parses one unmasked server frame off *b.
func (p *peer) nextFrom(b *[]byte) (ws.OpCode, []byte) {
	p.t.Helper()
	in := *b
	if len(in) < 2 {
		p.t.Fatalf("short frame: %q", in)
	}
	n, h := int(in[1]&0x7f), 2
	switch n {
	case 126:
		n, h = int(binary.BigEndian.Uint16(in[2:])), 4
	case 127:
		n, h = int(binary.BigEndian.Uint64(in[2:])), 10
	}
	if len(in) < h+n {
		p.t.Fatalf("truncated frame: header says %d bytes, have %d", n, len(in)-h)
	}
	*b = in[h+n:]
	return ws.OpCode(in[0] & 0x0f), in[h : h+n]
}

// TestCloseCombinationsCountOnce drives the close paths into each other
// (a protocol error then garbage, a peer close then EOF, an idle timeout
// answered by the peer, a drain ended by EOF) and checks that each
// connection is counted once, under its own reason, and that gauges and
// the channel index end empty. Every step waits for the shard's answer;
// nothing sleeps.
func TestCloseCombinationsCountOnce(t *testing.T) {
	m := NopMetrics()
	s := newTestShard(t, func(o *Options) {
		o.Metrics = m
		// Every tick finds every open connection idle: the test decides
		// when an idle timeout happens by calling Tick.
		o.IdleTimeout = time.Nanosecond
	})
	sub := func(p *peer, ch string) {
		p.send(ws.OpText, `{"type":"subscribe","channel":"`+ch+`"}`)
		if op, b := p.next(); op != ws.OpText || !bytes.Contains(b, []byte(`"subscribed"`)) {
			t.Fatalf("subscribe %s: %v %q", ch, op, b)
		}
	}
	// 1: protocol error, then garbage while closing.
	p1 := attachPeer(t, s)
	sub(p1, "a")
	unix.Write(p1.fd, []byte{0x81, 0x01, 'x'}) // unmasked: 1002
	if op, _ := p1.next(); op != ws.OpClose {
		t.Fatalf("want close, got %v", op)
	}
	unix.Write(p1.fd, []byte{0xff, 0xff, 0xff})
	p1.readToEOF()
	// 2: peer close answered, then EOF.
	p2 := attachPeer(t, s)
	sub(p2, "a")
	sub(p2, "b")
	p2.send(ws.OpClose, "\x03\xe8")
	p2.readToEOF()
	// 3: idle timeout (the only open connection now), then the peer
	// answers with close and EOF.
	p3 := attachPeer(t, s)
	sub(p3, "b")
	s.Tick()
	if op, b := p3.next(); op != ws.OpClose || !bytes.Contains(b, []byte("idle timeout")) {
		t.Fatalf("want the idle close, got %v %q", op, b)
	}
	p3.send(ws.OpClose, "\x03\xe9")
	unix.Shutdown(p3.fd, unix.SHUT_WR)
	p3.readToEOF()
	// 4: drain, then EOF without close frame.
	p4 := attachPeer(t, s)
	sub(p4, "a")
	s.Drain(time.Second)
	if op, _ := p4.next(); op != ws.OpClose {
		t.Fatalf("want the drain close, got %v", op)
	}
	unix.Shutdown(p4.fd, unix.SHUT_WR)
	p4.readToEOF()
	waitUntil(t, func() bool { return s.Conns() == 0 })
	// A late tick over the empty shard must count nothing: a connection
	// attached after it is answered only once the tick has run (the inbox
	// is first in, first out), and drained at once like any latecomer.
	s.Tick()
	p5 := attachPeer(t, s)
	if op, _ := p5.next(); op != ws.OpClose {
		t.Fatalf("latecomer during drain: want close, got %v", op)
	}
	p5.send(ws.OpClose, "\x03\xe8")
	p5.readToEOF()
	waitUntil(t, func() bool { return s.Conns() == 0 })
	s.Close()

	if v := gaugeValue(m.Connections); v != 0 {
		t.Errorf("connections gauge %v, want 0", v)
	}
	if v := gaugeValue(m.Subscriptions); v != 0 {
		t.Errorf("subscriptions gauge %v, want 0", v)
	}
	want := map[Reason]float64{ReasonProtocolError: 1, ReasonClientClose: 1, ReasonIdleTimeout: 1, ReasonShutdown: 2}
	for _, r := range Reasons() {
		if got := counterValue(m.Disconnects[r]); got != want[r] {
			t.Errorf("%v disconnects counted as %s, want %v", got, r, want[r])
		}
	}
	if len(s.channels) != 0 {
		t.Errorf("channels left: %v", s.channels)
	}
}

func gaugeValue(g interface{ Write(*dto.Metric) error }) float64 {
	var d dto.Metric
	g.Write(&d)
	return d.GetGauge().GetValue()
}

func counterValue(c interface{ Write(*dto.Metric) error }) float64 {
	var d dto.Metric
	c.Write(&d)
	return d.GetCounter().GetValue()
}

// TestSubscriptionIndexRandom checks the back-references of the swap-remove
// index after random subscribes, unsubscribes and disconnects. The conns
// here are never attached, so the shard goroutine does not touch them.
func TestSubscriptionIndexRandom(t *testing.T) {
	s := newTestShard(t, func(o *Options) { o.MaxSubscriptions = 8 })
	conns := make([]*conn, 40)
	for i := range conns {
		conns[i] = &conn{idx: -1}
	}
	names := []string{"a", "b", "c", "d", "e", "f"}
	rnd := uint32(1)
	next := func(n int) int { rnd = rnd*1664525 + 1013904223; return int(rnd>>8) % n }
	subs := 0
	for step := 0; step < 20000; step++ {
		c := conns[next(len(conns))]
		switch next(10) {
		case 0:
			s.unsubscribeAll(c)
		case 1, 2, 3:
			s.unsubscribe(c, names[next(len(names))])
		default:
			s.subscribe(c, names[next(len(names))])
		}
		subs = 0
		for name, ch := range s.channels {
			if len(ch.subs) == 0 || ch.name != name {
				t.Fatalf("step %d: channel %q empty or misnamed", step, name)
			}
			for pos, sc := range ch.subs {
				found := 0
				for _, r := range sc.subs {
					if r.ch == ch {
						found++
						if int(r.pos) != pos {
							t.Fatalf("step %d: back-reference %d, at %d", step, r.pos, pos)
						}
					}
				}
				if found != 1 {
					t.Fatalf("step %d: conn listed in %q has %d refs", step, name, found)
				}
			}
			subs += len(ch.subs)
		}
		n := 0
		for _, c := range conns {
			n += len(c.subs)
		}
		if n != subs {
			t.Fatalf("step %d: %d refs, %d channel entries", step, n, subs)
		}
	}
}
