package shard

import (
	"time"
)

// delivery is one frame for one connection within a broadcast batch: the
// index of its task in the batch's casts. The deliveries of a connection
// form a singly linked list through next, so a batch needs no
// per-connection allocation: Shard.batch and Shard.dirty are reused from
// pass to pass.
type delivery struct {
	cast int32
	next int32
}

// maxBatchDeliveries bounds the deliveries linked before they are
// written, so one pass's fan-out holds bounded memory whatever the burst
// (a pass takes up to maxTasksPerPass broadcasts): at 8 bytes a delivery,
// 512 KiB. A single broadcast to more connections than that is linked
// whole (its list is one delivery per subscriber).
const maxBatchDeliveries = 64 << 10

// broadcast fans a run of consecutive broadcast tasks out to their
// subscribers, in chunks of at most maxBatchDeliveries deliveries.
func (s *Shard) broadcast(casts []task) {
	start := time.Now()
	reached := 0 // casts with at least one subscriber here
	first := 0   // first cast of the chunk being linked
	for i := range casts {
		n := len(s.targets(&casts[i]))
		if n == 0 && !s.recovering(&casts[i]) {
			continue
		}
		reached++
		if len(s.batch) > 0 && len(s.batch)+n > maxBatchDeliveries {
			s.writeBatch(casts[first:i])
			first = i
		}
		// Looked up again: writing may have released connections, which
		// reorders the sets.
		s.link(int32(i-first), s.targets(&casts[i]))
		if s.opts.History != nil && casts[i].channel != "" {
			if ch := s.channels[casts[i].channel]; ch != nil {
				ch.last = max(ch.last, casts[i].offset)
				if ch.recovering != nil {
					s.feedRecovering(int32(i-first), ch, casts[i].offset, casts[i].frame)
				}
			}
		}
	}
	s.writeBatch(casts[first:])
	if len(s.overflowed) > 0 {
		s.closeOverflowed()
	}
	if cap(s.batch) > maxBatchDeliveries {
		s.batch = nil // a burst to a huge shard: do not keep its array
	}

	// A message no subscriber of this shard wanted is not a broadcast
	// here: observing its ~0 s would only dilute the histogram.
	elapsed := time.Since(start).Seconds()
	for range reached {
		s.opts.Metrics.BroadcastDuration.Observe(elapsed)
	}
	s.flushStats()
}

// targets returns the connections a broadcast task is for.
func (s *Shard) targets(t *task) []*conn {
	if t.channel == "" {
		return s.all
	}
	if ch := s.channels[t.channel]; ch != nil {
		return ch.subs
	}
	return nil
}

// recovering reports whether t's channel has subscriptions still on
// their way in (recovery.go), which want the frame even when the channel
// has no ordinary subscriber here yet.
func (s *Shard) recovering(t *task) bool {
	if t.channel == "" || s.opts.History == nil {
		return false
	}
	ch := s.channels[t.channel]
	return ch != nil && ch.recovering != nil
}

// link appends one delivery of cast to every open target. It does no I/O,
// so no connection can leave the sets being iterated.
func (s *Shard) link(cast int32, targets []*conn) {
	for _, c := range targets {
		if c.state != stateOpen {
			continue
		}
		idx := int32(len(s.batch))
		s.batch = append(s.batch, delivery{cast: cast, next: -1})
		if c.batchHead < 0 {
			c.batchHead = idx
			s.dirty = append(s.dirty, c)
		} else {
			s.batch[c.batchTail].next = idx
		}
		c.batchTail = idx
	}
}

// writeBatch writes the linked deliveries of casts, each connection's in
// one write or writev, and empties the batch.
func (s *Shard) writeBatch(casts []task) {
	for _, c := range s.dirty {
		s.deliverBatch(c, casts)
		c.batchHead, c.batchTail = -1, -1
	}
	clear(s.dirty)
	s.dirty = s.dirty[:0]
	s.batch = s.batch[:0]
}

// deliverBatch writes c's deliveries of the current batch. A connection
// with a backlog gets them queued behind it (its socket is full; EPOLLOUT
// resumes it); otherwise they go out in one system call and only the
// remainder is queued.
func (s *Shard) deliverBatch(c *conn, casts []task) {
	if c.state != stateOpen {
		return
	}
	deflate := c.deflate
	frame := func(d int32) []byte {
		t := &casts[s.batch[d].cast]
		if t.deflate != nil && deflate.On() && deflate.FitsFrame(t.frame) {
			return t.deflate
		}
		return t.frame
	}
	d := c.batchHead
	for i := d; i >= 0; i = s.batch[i].next {
		s.stats.sentMsgs++
		if deflate.On() {
			if f, plain := frame(i), casts[s.batch[i].cast].frame; len(f) < len(plain) {
				s.stats.deflatedMsgs++
				s.stats.savedBytes += len(plain) - len(f)
			}
		}
	}
	if c.out == nil {
		iov := s.iov[:0]
		for i := d; i >= 0 && len(iov) < maxIovecs; i = s.batch[i].next {
			iov = append(iov, iovec(frame(i)))
		}
		var n int
		var ok bool
		if len(iov) == 1 {
			n, ok = s.write(c, frame(d))
		} else {
			n, ok = s.writev(c, iov)
		}
		clear(iov)
		if !ok {
			return
		}
		// Skip what the socket took; queue the rest.
		for ; d >= 0 && n >= len(frame(d)); d = s.batch[d].next {
			n -= len(frame(d))
		}
		if d >= 0 && n > 0 {
			s.enqueueRest(c, frame(d)[n:], nil)
			d = s.batch[d].next
		}
	}
	for ; d >= 0 && c.state == stateOpen; d = s.batch[d].next {
		s.enqueue(c, frame(d), nil, false)
	}
}
