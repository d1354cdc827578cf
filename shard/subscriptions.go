package shard

import (
	"encoding/json"
	"strings"

	"github.com/shardgate/shardgate/shard/protocol"
)

// channel is the set of this shard's subscribers of one channel name.
// subs is a slice (fast to iterate on every broadcast); each subscriber
// remembers its position there (subRef.pos) so that leaving is O(1) plus a
// scan of one connection's own subscriptions, never of the channel.
//
// A channel is ready once the node's interest in it is registered with
// the broker (Options.OnChannel); until then its subscribers wait for
// their "subscribed" reply in waiting.
//
// With history (recovery.go), a new subscription first waits in
// recovering, and epoch and last say where the channel stands here: the
// history's epoch as last read, and the highest offset broadcast to this
// shard's subscribers.
type channel struct {
	name       string
	subs       []*conn
	ready      bool
	waiting    []waiter
	recovering []*recovery // nil unless a subscription is on its way in
	epoch      string
	last       uint64
}

// waiter is a subscribe request answered when its channel becomes ready.
type waiter struct {
	c  *conn
	id json.RawMessage // a copy
}

// subRef is one of a connection's subscriptions: its channel and its
// index in the channel's subs, or, while it recovers, -1 minus its index
// in the channel's recovering list.
type subRef struct {
	ch  *channel
	pos int32
}

// subscribe adds c to name and returns the channel. Subscribing twice is
// not an error. It returns nil when c is at its subscription limit.
func (s *Shard) subscribe(c *conn, name string) *channel {
	for _, r := range c.subs {
		if r.ch.name == name {
			return r.ch
		}
	}
	if s.opts.MaxSubscriptions > 0 && len(c.subs) >= s.opts.MaxSubscriptions {
		return nil
	}
	ch := s.channels[name]
	if ch == nil {
		ch = s.openChannel(name)
	}
	c.subs = append(c.subs, subRef{ch: ch, pos: int32(len(ch.subs))})
	ch.subs = append(ch.subs, c)
	s.opts.Metrics.Subscriptions.Inc()
	return ch
}

// openChannel creates a channel and registers the shard's interest in it.
func (s *Shard) openChannel(name string) *channel {
	ch := &channel{name: strings.Clone(name), ready: s.opts.OnChannel == nil}
	s.channels[ch.name] = ch
	if s.opts.OnChannel == nil {
		return ch
	}
	r := &asyncResult{kind: resultInterest, channel: ch.name, ch: ch}
	s.opts.OnChannel(ch.name, true, s.done(r))
	if r.returned() {
		if r.err == nil {
			ch.ready = true
		} else {
			// Refused during the call: answer through the inbox, once the
			// subscriber that opened the channel is waiting.
			_ = s.push(task{kind: taskResult, result: r}, false)
		}
	}
	return ch
}

// channelReady answers the subscribers that waited for ch's interest: with
// "subscribed", or, when the interest could not be registered, with an
// "unavailable" error and the subscription undone.
func (s *Shard) channelReady(r *asyncResult) {
	ch := r.ch
	if s.channels[ch.name] != ch {
		return // every subscriber left meanwhile; a new channel has its own result
	}
	waiting := ch.waiting
	ch.waiting = nil
	if r.err == nil {
		ch.ready = true
	}
	for _, w := range waiting {
		if w.c.state != stateOpen {
			continue
		}
		if r.err == nil {
			s.replyAck(w.c, protocol.TypeSubscribe, ch.name, w.id)
			continue
		}
		s.unsubscribe(w.c, ch.name)
		s.replyError(w.c, w.id, errNoInterest)
	}
	s.startReads(ch, r.err) // subscriptions with history wait in recovering
	s.flushStats()
}

// unsubscribe removes c from name; not being subscribed is not an error.
func (s *Shard) unsubscribe(c *conn, name string) {
	for i, r := range c.subs {
		if r.ch.name == name {
			s.removeSub(c, i)
			return
		}
	}
}

// revokeForbidden ends each of c's subscriptions that its grants no
// longer allow (after a refresh), like an unsubscribe: the channel index,
// the gauge and the broker interest follow. A subscription the client has
// been told about ends with an unsubscribed notice, reason "forbidden"; a
// subscribe still waiting for its channel's interest is answered with the
// forbidden error instead, so that no "subscribed" follows later.
//
// Replies can make c a slow consumer, whose close empties c.subs: the
// loop stops as soon as c is no longer open.
func (s *Shard) revokeForbidden(c *conn) {
	// Backwards: removeSub moves the last subscription into the removed
	// one's place, and that one has been looked at already.
	for i := len(c.subs) - 1; i >= 0 && c.state == stateOpen; i-- {
		ch := c.subs[i].ch
		if c.grants.CanSubscribe(ch.name) {
			continue
		}
		waiting := takeWaiters(ch, c)
		if pos := c.subs[i].pos; pos < 0 {
			// Still recovering: answered with the error, never with
			// "subscribed", like a subscribe still waiting.
			if rec := ch.recovering[-1-pos]; !rec.settled {
				waiting = append(waiting, waiter{c: c, id: rec.id})
				for _, id := range rec.more {
					waiting = append(waiting, waiter{c: c, id: id})
				}
			}
		}
		s.removeSub(c, i)
		if len(waiting) == 0 {
			s.replyUnsubscribed(c, ch.name, protocol.ReasonForbidden)
		}
		for _, w := range waiting {
			if c.state == stateOpen {
				s.replyError(c, w.id, errNoSubscribe)
			}
		}
	}
}

// answerWaiting answers c's subscribes to name that still wait for the
// channel's interest, before the unsubscribe that ends them is answered:
// each request gets its reply, in the order sent, and no "subscribed"
// follows the "unsubscribed" once the interest is ready. A message
// published between the two replies may be missed, as the client asked.
// (Subscriptions with history wait in the recovering list instead; see
// recovery.go.)
func (s *Shard) answerWaiting(c *conn, name string) {
	ch := s.channels[name]
	if ch == nil || ch.ready {
		return
	}
	for _, w := range takeWaiters(ch, c) {
		s.replyAck(c, protocol.TypeSubscribe, ch.name, w.id)
	}
}

// takeWaiters removes and returns c's subscribe requests waiting on ch
// (a client may have sent several before the channel was ready).
func takeWaiters(ch *channel, c *conn) []waiter {
	var mine []waiter
	kept := ch.waiting[:0]
	for _, w := range ch.waiting {
		if w.c == c {
			mine = append(mine, w)
		} else {
			kept = append(kept, w)
		}
	}
	clear(ch.waiting[len(kept):])
	ch.waiting = kept
	return mine
}

func (s *Shard) unsubscribeAll(c *conn) {
	for len(c.subs) > 0 {
		s.removeSub(c, len(c.subs)-1)
	}
}

// removeSub removes c.subs[i], swapping the channel's last subscriber into
// c's place and fixing that subscriber's back-reference.
func (s *Shard) removeSub(c *conn, i int) {
	r := c.subs[i]
	ch := r.ch
	if r.pos < 0 {
		s.dropRecovering(ch.recovering[-1-r.pos])
		s.dropSubRef(c, i, ch)
		return
	}
	last := ch.subs[len(ch.subs)-1]
	ch.subs[r.pos] = last
	if last != c {
		for j := range last.subs {
			if last.subs[j].ch == ch {
				last.subs[j].pos = r.pos
				break
			}
		}
	}
	ch.subs[len(ch.subs)-1] = nil
	ch.subs = ch.subs[:len(ch.subs)-1]
	s.dropSubRef(c, i, ch)
}

// dropSubRef removes c.subs[i], of ch, whose connection has left ch's
// lists already, and lets the channel go with its last subscription.
func (s *Shard) dropSubRef(c *conn, i int, ch *channel) {
	n := len(c.subs) - 1
	c.subs[i] = c.subs[n]
	c.subs[n] = subRef{}
	c.subs = c.subs[:n]
	s.opts.Metrics.Subscriptions.Dec()

	if len(ch.subs) == 0 && len(ch.recovering) == 0 {
		delete(s.channels, ch.name)
		if s.opts.OnChannel != nil {
			s.opts.OnChannel(ch.name, false, nil)
		}
	}
}
