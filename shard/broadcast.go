package shard

import (
	"time"
)

// delivery is one frame for one connection within a broadcast batch. The
// deliveries of a connection form a singly linked list through next, so a
// batch needs no per-connection allocation: Shard.batch and Shard.dirty are
// reused from pass to pass.
type delivery struct {
	frame []byte
	next  int32
}

// broadcast fans a run of consecutive broadcast tasks out to their
// subscribers. The first loop only links deliveries (no I/O, so no
// connection can leave the sets being iterated); the second writes each
// connection's frames with one write or writev.
func (s *Shard) broadcast(casts []task) {
	start := time.Now()
	reached := 0 // casts with at least one subscriber here
	for i := range casts {
		t := &casts[i]
		targets := s.all
		if t.channel != "" {
			ch := s.channels[t.channel]
			if ch == nil {
				continue
			}
			targets = ch.subs
		}
		if len(targets) > 0 {
			reached++
		}
		for _, c := range targets {
			if c.state != stateOpen {
				continue
			}
			idx := int32(len(s.batch))
			s.batch = append(s.batch, delivery{frame: t.frame, next: -1})
			if c.batchHead < 0 {
				c.batchHead = idx
				s.dirty = append(s.dirty, c)
			} else {
				s.batch[c.batchTail].next = idx
			}
			c.batchTail = idx
		}
	}
	for _, c := range s.dirty {
		s.deliverBatch(c)
		c.batchHead, c.batchTail = -1, -1
	}
	clear(s.dirty)
	s.dirty = s.dirty[:0]
	clear(s.batch) // drop frame references so the GC can free them
	s.batch = s.batch[:0]

	// A message no subscriber of this shard wanted is not a broadcast
	// here: observing its ~0 s would only dilute the histogram.
	elapsed := time.Since(start).Seconds()
	for range reached {
		s.opts.Metrics.BroadcastDuration.Observe(elapsed)
	}
	s.flushStats()
}

// deliverBatch writes c's deliveries of the current batch. A connection
// with a backlog gets them queued behind it (its socket is full; EPOLLOUT
// resumes it); otherwise they go out in one system call and only the
// remainder is queued.
func (s *Shard) deliverBatch(c *conn) {
	if c.state != stateOpen {
		return
	}
	d := c.batchHead
	for i := d; i >= 0; i = s.batch[i].next {
		s.stats.sentMsgs++
	}
	if c.out == nil {
		iov := s.iov[:0]
		for i := d; i >= 0 && len(iov) < maxIovecs; i = s.batch[i].next {
			iov = append(iov, iovec(s.batch[i].frame))
		}
		var n int
		var ok bool
		if len(iov) == 1 {
			n, ok = s.write(c, s.batch[d].frame)
		} else {
			n, ok = s.writev(c, iov)
		}
		clear(iov)
		if !ok {
			return
		}
		// Skip what the socket took; queue the rest.
		for ; d >= 0 && n >= len(s.batch[d].frame); d = s.batch[d].next {
			n -= len(s.batch[d].frame)
		}
		if d >= 0 && n > 0 {
			s.enqueueRest(c, s.batch[d].frame[n:], nil)
			d = s.batch[d].next
		}
	}
	for ; d >= 0 && c.state == stateOpen; d = s.batch[d].next {
		s.enqueue(c, s.batch[d].frame, nil, false)
	}
}
