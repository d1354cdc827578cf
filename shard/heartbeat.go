package shard

import "time"

// sweep runs on every clock tick: expired tokens (session.go), heartbeat
// pings, idle timeouts, stalled queues and closing connections whose peer
// never answered. It walks the connections backwards so that releasing the
// current one (which swaps the last into its place) neither skips nor
// repeats anyone.
func (s *Shard) sweep() {
	now := s.now()
	idle := int64(s.opts.IdleTimeout)
	stall := int64(s.opts.WriteTimeout)
	ping := int64(s.opts.PingInterval)
	// Token expiry is wall-clock (exp is a Unix time): read once per sweep.
	// Only connections with grants pay for the interface call.
	unixNow := time.Now().Unix()
	for i := len(s.all) - 1; i >= 0; i-- {
		if i >= len(s.all) {
			continue
		}
		c := s.all[i]
		switch c.state {
		case stateOpen:
			switch {
			case c.grants != nil && expired(c.grants, unixNow):
				s.close(c, disconnectTokenExpired)
			case idle > 0 && now-c.lastRead > idle:
				s.close(c, disconnectIdle)
			case stall > 0 && !s.drained(c) && now-c.stallSince > stall:
				s.close(c, disconnectWriteTimeout)
			case ping > 0 && now >= c.nextPing:
				c.nextPing = now + ping
				s.send(c, s.pingFrame, nil, false)
			}
		default:
			s.expireIfLate(c, now)
		}
	}
	s.flushStats()
}

// drain closes every connection with 1001 after what is already queued for
// it, and gives clients until timeout to answer.
func (s *Shard) drain(timeout time.Duration) {
	s.draining = true
	deadline := s.now() + int64(timeout)
	s.drainDeadline = deadline
	for i := len(s.all) - 1; i >= 0; i-- {
		if i >= len(s.all) {
			continue
		}
		c := s.all[i]
		s.close(c, disconnectShutdown)
		if c.state == stateClosing || c.state == stateAnswering {
			c.deadline = deadline
		}
	}
	s.flushStats()
}

// stats accumulates counters during one pass of the shard goroutine; they
// are added to the Prometheus instruments once per pass, not per frame.
type stats struct {
	recvMsgs, recvBytes, sentMsgs, sentBytes int
	deflatedMsgs, savedBytes                 int // broadcasts sent compressed, and the bytes that saved
}

func (s *Shard) flushStats() {
	st := &s.stats
	m := &s.opts.Metrics
	if st.recvMsgs > 0 {
		m.MessagesReceived.Add(float64(st.recvMsgs))
	}
	if st.recvBytes > 0 {
		m.BytesReceived.Add(float64(st.recvBytes))
	}
	if st.sentMsgs > 0 {
		m.MessagesSent.Add(float64(st.sentMsgs))
	}
	if st.sentBytes > 0 {
		m.BytesSent.Add(float64(st.sentBytes))
	}
	if st.deflatedMsgs > 0 {
		m.DeflatedSent.Add(float64(st.deflatedMsgs))
		m.DeflateSavedBytes.Add(float64(st.savedBytes))
	}
	*st = stats{}
}
