package shardgate

import (
	"encoding/json"
	"sync/atomic"
	"time"
)

// Handlers are a subscription's callbacks; any may be nil. They run on
// the client's handler goroutine, one at a time, in the order of the
// frames that caused them (see Client).
type Handlers struct {
	// OnMessage receives the channel's messages, each once and in order.
	OnMessage func(Message)
	// OnSubscribed is called each time the subscription takes effect: at
	// first, and again after every reconnect.
	OnSubscribed func(Subscribed)
	// OnUnsubscribed is called when the gateway ended the subscription on
	// its own (a refreshed token that no longer allows the channel:
	// reason "forbidden"). Not called for Unsubscribe.
	OnUnsubscribed func(reason string)
	// OnError is called when the gateway refused the subscribe with a
	// code that ends it (forbidden, bad_request, too_many_subscriptions,
	// ...). rate_limited and unavailable are retried instead, and not
	// reported.
	OnError func(*Error)
}

// Message is a channel message.
type Message struct {
	Channel string
	// Data is the message's JSON, as published. It is the handler's to
	// keep.
	Data json.RawMessage
	// Offset is the message's place in the channel's history when the
	// gateway keeps history (HasOffset); it grows within a channel, not
	// necessarily by one.
	Offset    uint64
	HasOffset bool
}

// Subscribed is what OnSubscribed receives.
type Subscribed struct {
	// Epoch and Offset are the channel's history position when the
	// subscription took effect (empty and 0 with history off).
	Epoch  string
	Offset uint64
	// Recovering: this subscribe asked the gateway to recover from the
	// last message handed to the application (a resubscribe after a
	// reconnect, with history on). Recovered is the answer: true means
	// the missed messages follow, in order, before newer ones; false
	// means messages may have been missed and are not coming (history no
	// longer holds them, or the epoch changed): reload the state the
	// channel feeds from its source.
	Recovering bool
	Recovered  bool
}

// Subscription is one channel's subscription, made by Client.Subscribe.
// It stays in force across reconnects until Unsubscribe, or until the
// gateway ends it (OnError, OnUnsubscribed).
type Subscription struct {
	c       *Client
	channel string
	h       Handlers
	// cancelled is set by Unsubscribe: from then on none of the
	// subscription's handlers runs, even those already queued.
	cancelled atomic.Bool

	// The rest belongs to the client's loop goroutine.
	phase subPhase
	reqID uint64 // of the subscribe in flight (phase subSent)
	// epoch and offset are where the application stands: the last
	// message handed to it, or the "subscribed" reply's position when
	// none came after it. A resubscribe recovers from them (when epoch is
	// known) and a message at or below offset is a duplicate (when seen).
	epoch   string
	offset  uint64
	seen    bool
	retries int       // consecutive rate_limited / unavailable answers
	retryAt time.Time // phase subPending after such an answer: when to send again
}

// subPhase is where a subscription stands on the current connection.
type subPhase uint8

const (
	subPending subPhase = iota // to be sent (no connection yet, or waiting for a retry)
	subSent                    // subscribe sent, no answer yet
	subActive                  // "subscribed" received: messages are handed over
	subEnded                   // unsubscribed or ended by the gateway
)

// Channel is the subscription's channel name.
func (s *Subscription) Channel() string { return s.channel }

// Unsubscribe ends the subscription. Once it returns, none of the
// subscription's handlers is called again (one running at that moment
// finishes). Calling it more than once, or after the gateway ended the
// subscription, does nothing.
func (s *Subscription) Unsubscribe() {
	if s.cancelled.Swap(true) {
		return
	}
	s.c.unsubscribe(s)
}

// subscribeRequest is the subscribe to send now, recovering from where
// the application stands when the channel's epoch is known.
func (s *Subscription) subscribeRequest(id uint64) request {
	r := request{Type: "subscribe", Channel: s.channel, ID: id}
	if s.epoch != "" {
		r.Recover = &position{Epoch: s.epoch, Offset: s.offset}
	}
	return r
}

// subscribed applies a "subscribed" reply and returns what the handler
// gets. On a recovery the position stays where the application stands:
// the replay that follows starts after it (the reply's offset is the
// channel's latest, past the replay). Otherwise the reply's position is
// the new start: nothing at or below it will come.
func (s *Subscription) subscribed(r reply) Subscribed {
	ev := Subscribed{Epoch: r.Epoch, Recovering: r.Recovered != nil}
	ev.Recovered = ev.Recovering && *r.Recovered
	if r.Offset != nil {
		ev.Offset = *r.Offset
	}
	switch {
	case r.Offset == nil: // history off: nothing to recover or dedupe
		s.epoch, s.offset, s.seen = "", 0, false
	case ev.Recovered && r.Epoch == s.epoch:
	default:
		s.epoch, s.offset, s.seen = r.Epoch, ev.Offset, true
	}
	return ev
}

// accept decides whether a message is handed over: once and in order,
// so one whose offset is not past the last handed over is a duplicate
// (a replay overlapping what had arrived). Messages without an offset
// come as they come.
func (s *Subscription) accept(r reply) (Message, bool) {
	m := Message{Channel: s.channel, Data: r.Data}
	if r.Offset == nil {
		return m, true
	}
	m.Offset, m.HasOffset = *r.Offset, true
	if s.seen && m.Offset <= s.offset {
		return m, false
	}
	s.offset, s.seen = m.Offset, true
	return m, true
}
