package shard

import "strings"

// channel is the set of this shard's subscribers of one channel name.
// subs is a slice (fast to iterate on every broadcast); each subscriber
// remembers its position there (subRef.pos) so that leaving is O(1) plus a
// scan of one connection's own subscriptions, never of the channel.
type channel struct {
	name string
	subs []*conn
}

type subRef struct {
	ch  *channel
	pos int32
}

// subscribe adds c to name. Subscribing twice is not an error. It returns
// false when c is at its subscription limit.
func (s *Shard) subscribe(c *conn, name string) bool {
	for _, r := range c.subs {
		if r.ch.name == name {
			return true
		}
	}
	if s.opts.MaxSubscriptions > 0 && len(c.subs) >= s.opts.MaxSubscriptions {
		return false
	}
	ch := s.channels[name]
	if ch == nil {
		ch = &channel{name: strings.Clone(name)}
		s.channels[ch.name] = ch
		if s.opts.OnChannel != nil {
			s.opts.OnChannel(ch.name, true)
		}
	}
	c.subs = append(c.subs, subRef{ch: ch, pos: int32(len(ch.subs))})
	ch.subs = append(ch.subs, c)
	s.opts.Metrics.Subscriptions.Inc()
	return true
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

	n := len(c.subs) - 1
	c.subs[i] = c.subs[n]
	c.subs[n] = subRef{}
	c.subs = c.subs[:n]
	s.opts.Metrics.Subscriptions.Dec()

	if len(ch.subs) == 0 {
		delete(s.channels, ch.name)
		if s.opts.OnChannel != nil {
			s.opts.OnChannel(ch.name, false)
		}
	}
}
