package shard

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

// fakeHistory hands every Read to the test, which answers it when it
// chooses: the history is as slow as the test wants.
type fakeHistory struct {
	reads chan fakeRead
}

type fakeRead struct {
	channel string
	from    *Position
	limit   int
	done    func(HistoryPage, error)
}

func (h *fakeHistory) Read(channel string, from *Position, limit int, done func(HistoryPage, error)) {
	h.reads <- fakeRead{channel, from, limit, done}
}

func newHistoryShard(t *testing.T, mutate func(*Options)) (*Shard, *fakeHistory) {
	t.Helper()
	h := &fakeHistory{reads: make(chan fakeRead, 16)}
	s := newTestShard(t, func(o *Options) {
		o.History = h
		o.RecoverMax = 100
		if mutate != nil {
			mutate(o)
		}
	})
	return s, h
}

// msgFrame is a small text frame standing for the message at offset.
func msgFrame(offset uint64) []byte {
	p := fmt.Sprintf("m%d", offset)
	return append([]byte{0x81, byte(len(p))}, p...)
}

func framesAt(offsets ...uint64) []OffsetFrame {
	var out []OffsetFrame
	for _, o := range offsets {
		out = append(out, OffsetFrame{Offset: o, Frame: msgFrame(o)})
	}
	return out
}

func broadcastAt(t *testing.T, s *Shard, channel string, offsets ...uint64) {
	t.Helper()
	for _, o := range offsets {
		if err := s.BroadcastAt(channel, o, msgFrame(o)); err != nil {
			t.Fatal(err)
		}
	}
}

func (p *peer) expectMessages(offsets ...uint64) {
	p.t.Helper()
	for _, o := range offsets {
		p.expectText(fmt.Sprintf("m%d", o))
	}
}

// sync makes sure everything sent before has been handled: the shard
// answers a ping only after what it read before.
func (p *peer) sync() {
	p.t.Helper()
	p.send(ws.OpPing, "sync")
	if op, b := p.next(); op != ws.OpPong || string(b) != "sync" {
		p.t.Fatalf("got %v %q, want the sync pong", op, b)
	}
}

func TestRecoveryMergesReplayAndLiveFramesByOffsetOnce(t *testing.T) {
	s, h := newHistoryShard(t, nil)
	p := attachPeer(t, s)
	p.send(ws.OpText, `{"type":"subscribe","channel":"c","id":1,"recover":{"epoch":"e1","offset":2}}`)
	r := <-h.reads
	if r.channel != "c" || r.from == nil || *r.from != (Position{"e1", 2}) || r.limit != 100 {
		t.Fatalf("read %+v", r)
	}
	// Live messages arrive while the history is read; 5 is both in the
	// page and live.
	broadcastAt(t, s, "c", 5, 6, 7)
	r.done(HistoryPage{Epoch: "e1", Latest: 5, Frames: framesAt(3, 4, 5), Complete: true}, nil)
	p.expectText(`{"type":"subscribed","channel":"c","id":1,"epoch":"e1","offset":5,"recovered":true}`)
	p.expectMessages(3, 4, 5, 6, 7)
	broadcastAt(t, s, "c", 8)
	p.expectMessages(8)
	p.sync()
}

func TestSubscribedOffsetHidesOlderLiveFrames(t *testing.T) {
	s, h := newHistoryShard(t, nil)
	p := attachPeer(t, s)
	p.send(ws.OpText, `{"type":"subscribe","channel":"c"}`)
	r := <-h.reads
	if r.from != nil {
		t.Fatalf("a plain subscribe read from %+v", r.from)
	}
	r.done(HistoryPage{Epoch: "e1", Latest: 4}, nil)
	p.expectText(`{"type":"subscribed","channel":"c","epoch":"e1","offset":4}`)
	// 3 and 4 were taken by the store before the read, and reach the
	// shard only now: the client must not get them.
	broadcastAt(t, s, "c", 3, 4, 5, 6)
	p.expectMessages(5, 6)
	p.sync()
}

func TestIncompleteHistoryIsRecoveredFalseWithOnlyNewMessages(t *testing.T) {
	s, h := newHistoryShard(t, nil)
	p := attachPeer(t, s)
	p.send(ws.OpText, `{"type":"subscribe","channel":"c","recover":{"epoch":"old","offset":2}}`)
	r := <-h.reads
	broadcastAt(t, s, "c", 10, 11)
	r.done(HistoryPage{Epoch: "e2", Latest: 10, Frames: framesAt(9, 10)}, nil)
	p.expectText(`{"type":"subscribed","channel":"c","epoch":"e2","offset":10,"recovered":false}`)
	p.expectMessages(11)
	p.sync()
}

func TestUnsubscribeWhileReadingIgnoresTheLateResult(t *testing.T) {
	s, h := newHistoryShard(t, nil)
	p := attachPeer(t, s)
	p.send(ws.OpText, `{"type":"subscribe","channel":"c","id":1}`)
	r := <-h.reads
	broadcastAt(t, s, "c", 1)
	p.send(ws.OpText, `{"type":"unsubscribe","channel":"c","id":2}`)
	p.expectText(`{"type":"unsubscribed","channel":"c","id":2}`)
	r.done(HistoryPage{Epoch: "e", Latest: 1}, nil)
	broadcastAt(t, s, "c", 2)
	p.sync() // neither a subscribed reply nor a message came first
	if len(s.channels) != 0 {
		t.Fatalf("channels left: %v", s.channels)
	}
}

func TestHistoryErrorUndoesTheSubscription(t *testing.T) {
	s, h := newHistoryShard(t, nil)
	p := attachPeer(t, s)
	p.send(ws.OpText, `{"type":"subscribe","channel":"c","id":7}`)
	(<-h.reads).done(HistoryPage{}, errors.New("stream gone"))
	p.expectText(`{"type":"error","id":7,"code":"unavailable","message":"subscribe failed: history unavailable"}`)
	broadcastAt(t, s, "c", 1)
	p.sync()
	// The place under -max-subscriptions is free again.
	for i := range 4 {
		p.send(ws.OpText, fmt.Sprintf(`{"type":"subscribe","channel":"x%d"}`, i))
		(<-h.reads).done(HistoryPage{Epoch: "e"}, nil)
		p.expectText(fmt.Sprintf(`{"type":"subscribed","channel":"x%d","epoch":"e","offset":0}`, i))
	}
}

func TestRepeatedSubscribeWhileReadingIsAnsweredAfterTheFirst(t *testing.T) {
	s, h := newHistoryShard(t, nil)
	p := attachPeer(t, s)
	p.send(ws.OpText, `{"type":"subscribe","channel":"c","id":1,"recover":{"epoch":"e","offset":0}}`)
	r := <-h.reads
	p.send(ws.OpText, `{"type":"subscribe","channel":"c","id":2}`)
	p.sync()
	r.done(HistoryPage{Epoch: "e", Latest: 1, Frames: framesAt(1), Complete: true}, nil)
	p.expectText(`{"type":"subscribed","channel":"c","id":1,"epoch":"e","offset":1,"recovered":true}`)
	p.expectText(`{"type":"subscribed","channel":"c","id":2,"epoch":"e","offset":1}`)
	p.expectMessages(1)
	broadcastAt(t, s, "c", 2)
	p.expectMessages(2)
	p.send(ws.OpText, `{"type":"subscribe","channel":"c","id":3}`)
	p.expectText(`{"type":"subscribed","channel":"c","id":3,"epoch":"e","offset":2}`)
	select {
	case r := <-h.reads:
		t.Fatalf("a repeated subscribe read the history again: %+v", r)
	default:
	}
}

func TestLiveFramesKeptWhileReadingCountAgainstTheSendQueue(t *testing.T) {
	s, h := newHistoryShard(t, func(o *Options) { o.SendQueueBytes = 1024 })
	p := attachPeer(t, s)
	p.send(ws.OpText, `{"type":"subscribe","channel":"c"}`)
	r := <-h.reads
	big := append([]byte{0x81, 126, 0x01, 0xf4}, strings.Repeat("x", 500)...)
	for o := uint64(1); o <= 3; o++ {
		if err := s.BroadcastAt("c", o, big); err != nil {
			t.Fatal(err)
		}
	}
	p.expectCloseFrame(ws.StatusPolicyViolation, "slow consumer")
	r.done(HistoryPage{Epoch: "e"}, nil) // too late: nothing more is sent
}

func TestSubscriptionWaitingForInterestReadsOnceReady(t *testing.T) {
	var ready func(error)
	s, h := newHistoryShard(t, func(o *Options) {
		o.OnChannel = func(_ string, active bool, r func(error)) {
			if active {
				ready = r
			}
		}
	})
	p := attachPeer(t, s)
	p.send(ws.OpText, `{"type":"subscribe","channel":"c"}`)
	p.sync()
	select {
	case r := <-h.reads:
		t.Fatalf("read before the interest was registered: %+v", r)
	default:
	}
	ready(nil)
	(<-h.reads).done(HistoryPage{Epoch: "e", Latest: 3}, nil)
	p.expectText(`{"type":"subscribed","channel":"c","epoch":"e","offset":3}`)
}

func TestRefreshRevokingARecoveringSubscriptionAnswersForbidden(t *testing.T) {
	g := &testGrants{sub: "u", prefixes: []string{"c"}}
	s, h := newHistoryShard(t, func(o *Options) { o.Refresh = refreshWith(&testGrants{sub: "u", prefixes: []string{"d"}}) })
	p := attachGranted(t, s, g)
	p.send(ws.OpText, `{"type":"subscribe","channel":"c","id":1}`)
	r := <-h.reads
	p.send(ws.OpText, `{"type":"refresh","token":"t","id":2}`)
	p.expectText(`{"type":"error","id":1,"code":"forbidden","message":"not allowed to subscribe to this channel"}`)
	p.expectText(`{"type":"refreshed","id":2}`)
	r.done(HistoryPage{Epoch: "e"}, nil)
	broadcastAt(t, s, "c", 1)
	p.sync()
}

func TestCloseChannelClosesItsSubscribersAndRecoveringOnesWith4010(t *testing.T) {
	s, h := newHistoryShard(t, nil)
	settled := attachPeer(t, s)
	settled.send(ws.OpText, `{"type":"subscribe","channel":"c"}`)
	(<-h.reads).done(HistoryPage{Epoch: "e1", Latest: 4}, nil)
	settled.expectText(`{"type":"subscribed","channel":"c","epoch":"e1","offset":4}`)
	broadcastAt(t, s, "c", 5)
	settled.expectMessages(5)

	reading := attachPeer(t, s)
	reading.send(ws.OpText, `{"type":"subscribe","channel":"c","recover":{"epoch":"e1","offset":5}}`)
	late := <-h.reads

	other := attachPeer(t, s)
	other.send(ws.OpText, `{"type":"subscribe","channel":"d"}`)
	(<-h.reads).done(HistoryPage{Epoch: "e1", Latest: 4}, nil)
	other.expectText(`{"type":"subscribed","channel":"d","epoch":"e1","offset":4}`)

	s.CloseChannel("c")
	settled.expectCloseFrame(StatusInsufficientState, "insufficient state")
	reading.expectCloseFrame(StatusInsufficientState, "insufficient state")
	late.done(HistoryPage{Epoch: "e1", Latest: 6, Frames: framesAt(6), Complete: true}, nil) // ignored

	// Another channel's subscriber stays and still gets its messages.
	broadcastAt(t, s, "d", 7)
	other.expectMessages(7)
	other.sync()
}

func TestReadOlderThanWhatTheShardDeliveredIsReadAgain(t *testing.T) {
	s, h := newHistoryShard(t, nil)
	first := attachPeer(t, s)
	first.send(ws.OpText, `{"type":"subscribe","channel":"c"}`)
	(<-h.reads).done(HistoryPage{Epoch: "e1", Latest: 4}, nil)
	first.expectText(`{"type":"subscribed","channel":"c","epoch":"e1","offset":4}`)
	broadcastAt(t, s, "c", 5, 6)
	first.expectMessages(5, 6)

	// The next subscriber's read comes from a replica that has only 5:
	// 6 was delivered before it joined, so it would never get it.
	p := attachPeer(t, s)
	p.send(ws.OpText, `{"type":"subscribe","channel":"c","recover":{"epoch":"e1","offset":4}}`)
	(<-h.reads).done(HistoryPage{Epoch: "e1", Latest: 5, Frames: framesAt(5), Complete: true}, nil)
	again := <-h.reads
	if again.from == nil || *again.from != (Position{"e1", 4}) {
		t.Fatalf("read again from %+v", again.from)
	}
	broadcastAt(t, s, "c", 7) // kept across the second read
	again.done(HistoryPage{Epoch: "e1", Latest: 6, Frames: framesAt(5, 6), Complete: true}, nil)
	p.expectText(`{"type":"subscribed","channel":"c","epoch":"e1","offset":6,"recovered":true}`)
	p.expectMessages(5, 6, 7)
	p.sync()
}
