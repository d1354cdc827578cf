package shard

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// peer is the client end of a socketpair whose other end a shard owns.
type peer struct {
	t  *testing.T
	fd int
	in []byte
}

func attachPeer(t *testing.T, s *Shard) *peer { return attachPeerSndbuf(t, s, 0) }

// attachPeerSndbuf attaches the shard end of a socketpair; sndbuf > 0 cuts
// the shard side's send buffer to that many bytes, so that large frames are
// written partly.
func attachPeerSndbuf(t *testing.T, s *Shard, sndbuf int) *peer {
	t.Helper()
	return attachSocketpair(t, s, nil, sndbuf)
}

// attachSocketpair attaches the shard end of a socketpair whose connection
// holds grants g (nil: none), its send buffer cut to sndbuf when > 0.
func attachSocketpair(t *testing.T, s *Shard, g Grants, sndbuf int) *peer {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		t.Fatal(err)
	}
	if sndbuf > 0 {
		if err := unix.SetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_SNDBUF, sndbuf); err != nil {
			t.Fatal(err)
		}
	}
	tv := unix.NsecToTimeval(int64(5 * time.Second))
	unix.SetsockoptTimeval(fds[1], unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	t.Cleanup(func() { unix.Close(fds[1]) })
	if err := s.Attach(fds[0], nil, g, 0, 0); err != nil {
		t.Fatal(err)
	}
	return &peer{t: t, fd: fds[1]}
}

func (p *peer) send(op ws.OpCode, payload string) {
	p.t.Helper()
	var buf bytes.Buffer
	if err := ws.WriteFrame(&buf, ws.MaskFrame(ws.NewFrame(op, true, []byte(payload)))); err != nil {
		p.t.Fatal(err)
	}
	if _, err := unix.Write(p.fd, buf.Bytes()); err != nil {
		p.t.Fatal(err)
	}
}

// next reads the next server frame (blocking, bounded by SO_RCVTIMEO).
func (p *peer) next() (ws.OpCode, []byte) {
	p.t.Helper()
	for {
		if len(p.in) >= 2 {
			n := int(p.in[1] & 0x7f)
			h := 2
			switch n {
			case 126:
				if len(p.in) >= 4 {
					n, h = int(p.in[2])<<8|int(p.in[3]), 4
				} else {
					n = -1
				}
			case 127:
				p.t.Fatal("unexpected 64-bit frame")
			}
			if n >= 0 && len(p.in) >= h+n {
				op := ws.OpCode(p.in[0] & 0x0f)
				payload := append([]byte(nil), p.in[h:h+n]...)
				p.in = p.in[h+n:]
				return op, payload
			}
		}
		buf := make([]byte, 4096)
		n, err := unix.Read(p.fd, buf)
		if err == unix.EINTR {
			continue // the runtime's preemption signal, not the peer
		}
		if err != nil || n == 0 {
			p.t.Fatalf("read: n=%d err=%v", n, err)
		}
		p.in = append(p.in, buf[:n]...)
	}
}

func (p *peer) expectText(want string) {
	p.t.Helper()
	op, b := p.next()
	if op != ws.OpText || string(b) != want {
		p.t.Fatalf("got op %v %q, want text %q", op, b, want)
	}
}

func newTestShard(t *testing.T, mutate func(*Options)) *Shard {
	t.Helper()
	o := Options{MaxMessageBytes: 4096, MaxSubscriptions: 4, SendQueueBytes: 1 << 20, Metrics: NopMetrics(), Publisher: nopPublisher{}}
	if mutate != nil {
		mutate(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestShardSubscribeBroadcastClose(t *testing.T) {
	var channels []string
	events := make(chan string, 4)
	s := newTestShard(t, func(o *Options) {
		o.OnChannel = func(ch string, active bool, ready func(error)) {
			if active {
				ready(nil)
				events <- "+" + ch
			} else {
				events <- "-" + ch
			}
		}
	})
	p := attachPeer(t, s)
	p.send(ws.OpText, `{"type":"subscribe","channel":"c1","id":1}`)
	p.expectText(`{"type":"subscribed","channel":"c1","id":1}`)
	channels = append(channels, <-events)

	frame := []byte("\x81\x05hello")
	if err := s.Broadcast("c1", frame); err != nil {
		t.Fatal(err)
	}
	if err := s.Broadcast("other", []byte("\x81\x03bad")); err != nil {
		t.Fatal(err)
	}
	if err := s.Broadcast("", []byte("\x81\x03all")); err != nil {
		t.Fatal(err)
	}
	p.expectText("hello")
	p.expectText("all")

	p.send(ws.OpPing, "abc")
	if op, b := p.next(); op != ws.OpPong || string(b) != "abc" {
		t.Fatalf("got %v %q, want pong abc", op, b)
	}
	p.send(ws.OpText, `{"type":"unsubscribe","channel":"c1"}`)
	p.expectText(`{"type":"unsubscribed","channel":"c1"}`)
	channels = append(channels, <-events)
	if got, _ := json.Marshal(channels); string(got) != `["+c1","-c1"]` {
		t.Fatalf("OnChannel calls %s", got)
	}

	p.send(ws.OpClose, "\x03\xe8")
	if op, b := p.next(); op != ws.OpClose || string(b) != "\x03\xe8" {
		t.Fatalf("got %v %q, want close 1000", op, b)
	}
	buf := make([]byte, 1)
	n, err := unix.Read(p.fd, buf)
	for err == unix.EINTR { // the runtime's preemption signal, not the peer
		n, err = unix.Read(p.fd, buf)
	}
	if n != 0 {
		t.Fatalf("expected EOF after close, read %d bytes", n)
	}
	waitUntil(t, func() bool { return s.Conns() == 0 })
}

// TestShardInboxLimitRefusesBroadcastsWhileLoopBusy holds the shard
// goroutine inside a client's publish (a broker call that does not return),
// so the inbox fills for real: past InboxLimit broadcasts are refused with
// ErrOverloaded, and once the loop runs again the queued one is delivered.
func TestShardInboxLimitRefusesBroadcastsWhileLoopBusy(t *testing.T) {
	inside := make(chan struct{})
	release := make(chan struct{})
	s := newTestShard(t, func(o *Options) {
		o.InboxLimit = 1
		o.Publisher = publisherFunc(func(_ string, _ json.RawMessage, done func(error)) {
			close(inside)
			<-release
			done(nil)
		})
	})
	p := attachPeer(t, s)
	p.send(ws.OpText, `{"type":"subscribe","channel":"c"}`)
	p.expectText(`{"type":"subscribed","channel":"c"}`)
	p.send(ws.OpText, `{"type":"publish","channel":"c","data":1}`)
	<-inside // the shard goroutine is now blocked in the publisher

	if err := s.Broadcast("c", []byte("\x81\x05first")); err != nil {
		t.Fatalf("first broadcast: %v", err)
	}
	if s.CanBroadcast() {
		t.Fatal("CanBroadcast true with a full inbox")
	}
	if err := s.Broadcast("c", []byte("\x81\x06second")); err != ErrOverloaded {
		t.Fatalf("broadcast past the limit: %v, want ErrOverloaded", err)
	}
	close(release)
	p.expectText(`{"type":"published","channel":"c"}`)
	p.expectText("first")
	waitUntil(t, s.CanBroadcast)
}

type publisherFunc func(channel string, data json.RawMessage, done func(error))

func (f publisherFunc) PublishFromClient(channel string, data json.RawMessage, done func(error)) {
	f(channel, data, done)
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestUnsubscribeAnswersSubscribeStillWaitingFirst: a subscribe waiting
// for its channel's interest, then an unsubscribe of that channel, get
// "subscribed" then "unsubscribed", in the order sent; once the interest
// is ready nothing more comes for that subscribe.
func TestUnsubscribeAnswersSubscribeStillWaitingFirst(t *testing.T) {
	readies := make(chan func(error), 4)
	s := newTestShard(t, func(o *Options) {
		o.OnChannel = func(ch string, active bool, ready func(error)) {
			if active {
				readies <- ready
			}
		}
	})
	other := attachGranted(t, s, &testGrants{sub: "w", prefixes: []string{"late."}})
	p := attachGranted(t, s, &testGrants{sub: "u", prefixes: []string{"late."}})
	other.send(ws.OpText, `{"type":"subscribe","channel":"late.a","id":1}`)
	ready := <-readies
	p.send(ws.OpText, `{"type":"subscribe","channel":"late.a","id":7}`)
	p.send(ws.OpText, `{"type":"unsubscribe","channel":"late.a","id":8}`)
	p.expectText(`{"type":"subscribed","channel":"late.a","id":7}`)
	p.expectText(`{"type":"unsubscribed","channel":"late.a","id":8}`)

	ready(nil)
	other.expectText(`{"type":"subscribed","channel":"late.a","id":1}`)
	// Anything queued for p after the ready would come before this reply.
	p.send(ws.OpText, `{"type":"unsubscribe","channel":"x","id":9}`)
	p.expectText(`{"type":"unsubscribed","channel":"x","id":9}`)
}
