package shard

import (
	"github.com/gobwas/ws"
	"github.com/shardgate/shardgate/poller"
	"github.com/shardgate/shardgate/shard/wsframe"
	"golang.org/x/sys/unix"
)

type pollEvent = poller.Event

const pollInterest = poller.EdgeReadWrite

// maxReadsPerEvent bounds the reads one readiness event may do (each of
// at most readChunk fresh bytes), so that a client streaming input cannot
// monopolise the shard goroutine; the rest of its input is read in a later
// pass (Shard.again), after everyone else's events and the inbox. 64 KiB
// of 6-byte pings is 11,000 frames: the most one pass gives one client.
const maxReadsPerEvent = 1

// onEvent is the poller callback of every connection of this shard.
func (s *Shard) onEvent(c *conn, ev pollEvent) {
	if c.state == stateClosed || ev&poller.EventClosed != 0 {
		return
	}
	if ev&poller.EventWrite != 0 && !s.drained(c) {
		s.flush(c)
	}
	if c.state != stateClosed && ev&(poller.EventRead|poller.EventRdHup|poller.EventHup|poller.EventErr) != 0 {
		s.readFrom(c)
	}
	s.flushStats()
}

// readFrom reads what c's socket holds and handles every complete frame.
//
// Input goes into the shard's shared read buffer, and only the tail of an
// incomplete frame is kept with the connection (c.partial). Once that
// tail's header tells the frame's size, the kept buffer is grown once to
// hold the whole frame and later reads land in it directly: a message
// trickled in small pieces is then copied once, not once per piece, so its
// CPU cost grows linearly with its size.
func (s *Shard) readFrom(c *conn) {
	for i := 0; i < maxReadsPerEvent; i++ {
		if c.partial != nil && s.growPartial(c) {
			if !s.readIntoPartial(c) {
				return
			}
			continue
		}
		buf := s.readBuf
		kept := 0
		if c.partial != nil {
			kept = copy(buf, *c.partial) // a header's few bytes
		}
		n, err := s.recv(c, buf[kept:kept+readChunk])
		switch {
		case n > 0:
			s.stats.recvBytes += n
			if c.partial != nil {
				s.pool.Put(c.partial)
				c.partial = nil
			}
			s.consume(c, buf[:kept+n])
			if c.state == stateClosed || n < readChunk {
				// A short read drained the socket: new input raises a
				// new edge.
				return
			}
		case err == unix.EAGAIN:
			return
		case err == unix.EINTR:
			i--
		case err == nil: // EOF
			s.abort(c, ReasonClientClose)
			return
		default:
			s.abort(c, ReasonIOError)
			return
		}
	}
	if !c.again {
		c.again = true
		s.again = append(s.again, c)
		s.waker.Wake()
	}
}

// directReadMin is the smallest frame read straight into its own buffer.
// Below it the kept bytes are copied in front of a full-sized shared read:
// a copy of at most this much per read is a constant factor, and one read
// then takes many small frames at once.
const directReadMin = 4 << 10

// growPartial makes c.partial's capacity hold the whole frame it starts,
// once its header is in and the frame is large. It reports false for a
// small frame or while the header is incomplete.
func (s *Shard) growPartial(c *conn) bool {
	p := *c.partial
	need := wsframe.Need(p)
	if need < directReadMin || need <= len(p) {
		return false
	}
	// Decode already refused a frame longer than the limits, so need is
	// bounded by MaxMessageBytes plus a header.
	if need > cap(p) {
		b := s.pool.Get(need)
		*b = append((*b)[:0], p...)
		s.pool.Put(c.partial)
		c.partial = b
	}
	return true
}

// readIntoPartial reads into the free room of c.partial and decodes when
// its frame is complete. It reports whether to keep reading.
func (s *Shard) readIntoPartial(c *conn) bool {
	p := *c.partial
	n, err := s.recv(c, p[len(p):min(cap(p), len(p)+readChunk)])
	switch {
	case n > 0:
		s.stats.recvBytes += n
		full := n == min(cap(p)-len(p), readChunk)
		*c.partial = p[:len(p)+n]
		c.lastRead = s.now()
		if len(*c.partial) >= wsframe.Need(*c.partial) {
			s.consumePartial(c)
		}
		return c.state != stateClosed && full
	case err == unix.EAGAIN:
		return false
	case err == unix.EINTR:
		return true
	case err == nil: // EOF
		s.abort(c, ReasonClientClose)
		return false
	default:
		s.abort(c, ReasonIOError)
		return false
	}
}

// resumeReads continues reading connections cut short by maxReadsPerEvent.
func (s *Shard) resumeReads() {
	if len(s.again) == 0 {
		return
	}
	again := s.again
	s.again = nil
	for _, c := range again {
		c.again = false
		if c.state != stateClosed {
			s.readFrom(c)
		}
	}
	clear(again)
	if s.again == nil {
		s.again = again[:0]
	}
	s.flushStats()
}

// consumePipelined decodes bytes the client sent right behind its
// handshake, which the acceptor read and handed over in c.partial.
func (s *Shard) consumePipelined(c *conn) {
	data := s.readBuf[:copy(s.readBuf, *c.partial)]
	s.pool.Put(c.partial)
	c.partial = nil
	// The acceptor read them, but they are WebSocket input all the same:
	// count them like bytes read here.
	s.stats.recvBytes += len(data)
	s.consume(c, data)
}

// consume decodes data (fresh input in the shared read buffer) and keeps
// its unconsumed tail in a pooled buffer of c's own.
func (s *Shard) consume(c *conn, data []byte) {
	n, ok := s.decode(c, data)
	if !ok {
		return
	}
	if rest := data[n:]; len(rest) > 0 {
		b := s.pool.Get(len(rest))
		copy(*b, rest)
		c.partial = b
	}
}

// consumePartial decodes c.partial, which holds at least one complete
// frame, and keeps what follows its complete frames.
func (s *Shard) consumePartial(c *conn) {
	data := *c.partial
	n, ok := s.decode(c, data)
	if c.partial == nil {
		return // released with the connection
	}
	if !ok {
		// The frame failed and the close has started: its bytes, and
		// whatever came behind them, are not input any more. Kept, they
		// would be copied in front of the next read as "a header's few
		// bytes" and, up to the pooled buffer's capacity, run past the
		// shared read buffer.
		s.pool.Put(c.partial)
		c.partial = nil
		return
	}
	rest := data[n:]
	if len(rest) == 0 {
		s.pool.Put(c.partial)
		c.partial = nil
		return
	}
	// Re-home the tail in a buffer of its own size: the big one was for
	// the frame just decoded.
	b := s.pool.Get(len(rest))
	copy(*b, rest)
	s.pool.Put(c.partial)
	c.partial = b
}

// decode runs the frame decoder over data for c. ok is false when c is
// no longer reading (closed, or a protocol error started its close).
func (s *Shard) decode(c *conn, data []byte) (n int, ok bool) {
	c.lastRead = s.now()
	s.cur = c
	rules := s.rules
	if c.deflate.On() {
		rules = s.deflateRules
	}
	n, err := c.dec.Decode(data, rules, s.pool, s.onFrame)
	s.cur = nil
	if c.state == stateClosed {
		return n, false
	}
	if err != nil {
		if c.state != stateOpen {
			s.release(c)
			return n, false
		}
		s.close(c, protocolDisconnect(err))
		return n, false
	}
	return n, true
}

// handleFrame is called by the decoder for each complete message or control
// frame of s.cur. It returns false to stop decoding.
func (s *Shard) handleFrame(op ws.OpCode, payload []byte) bool {
	c := s.cur
	switch op {
	case ws.OpClose:
		s.peerClose(c, payload)
		return false
	case ws.OpPing:
		if c.state == stateOpen {
			s.pong(c, payload)
		}
	case ws.OpPong:
		// Any input (lastRead) proves liveness; nothing else to do.
	case ws.OpText:
		if c.state == stateOpen {
			s.stats.recvMsgs++
			s.handleRequest(c, payload)
		}
	}
	return c.state != stateClosed
}

// pong answers a ping. Pongs are coalesced (RFC 6455 §5.5.3): at most one
// pong waits in c's queue, so a client that floods pings and never reads
// holds one pong, not one per ping. A ping that finds a waiting pong
// rewrites it with its own payload: the RFC lets an endpoint answer only
// the most recently processed ping, not only the first. A pong already
// partly on the wire cannot change; a later ping then queues a fresh pong
// behind it, which becomes the waiting one.
func (s *Shard) pong(c *conn, payload []byte) {
	if q := c.out; q != nil && q.pong != nil && (q.pongAt > 0 || !q.partialHead) {
		// A pong frame is at most 127 bytes and its pooled buffer at
		// least bufpool.MinSize: the rewrite never grows the buffer, so
		// what the frame was charged still holds.
		*q.pong = wsframe.AppendFrame((*q.pong)[:0], ws.OpPong, payload)
		q.frames[q.pongAt].b = *q.pong
		return
	}
	b := s.pool.Get(0)
	*b = wsframe.AppendFrame(*b, ws.OpPong, payload)
	s.send(c, *b, b, false)
	// A pong the socket did not take whole is queued, as the first owned
	// frame of a fresh queue or behind an existing backlog: the last
	// frame either way.
	if c.out != nil && c.state == stateOpen {
		c.out.pong = b
		c.out.pongAt = len(c.out.frames) - 1
	}
}
