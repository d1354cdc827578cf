package shard

import (
	"github.com/gobwas/ws"
	"github.com/shardgate/shardgate/poller"
	"github.com/shardgate/shardgate/shard/wsframe"
	"golang.org/x/sys/unix"
)

type pollEvent = poller.Event

const pollInterest = poller.EdgeReadWrite

// maxReadsPerEvent bounds the reads one readiness event may do, so that a
// client streaming input cannot monopolise the shard goroutine; the rest of
// its input is read in a later pass (Shard.again).
const maxReadsPerEvent = 8

// onEvent is the poller callback of every connection of this shard.
func (s *Shard) onEvent(c *conn, ev pollEvent) {
	if c.state == stateClosed || ev&poller.EventClosed != 0 {
		return
	}
	if ev&poller.EventWrite != 0 && c.out != nil {
		s.flush(c)
	}
	if c.state != stateClosed && ev&(poller.EventRead|poller.EventRdHup|poller.EventHup|poller.EventErr) != 0 {
		s.readFrom(c)
	}
	s.flushStats()
}

// readFrom reads what c's socket holds and handles every complete frame.
// A partial frame is kept in c.partial, prepended to the next read.
func (s *Shard) readFrom(c *conn) {
	for i := 0; i < maxReadsPerEvent; i++ {
		buf := s.readBuf
		kept := 0
		if c.partial != nil {
			kept = copy(buf, *c.partial)
		}
		n, err := unix.Read(c.fd, buf[kept:])
		switch {
		case n > 0:
			s.stats.recvBytes += n
			if c.partial != nil {
				s.pool.Put(c.partial)
				c.partial = nil
			}
			s.consume(c, buf[:kept+n])
			if c.state == stateClosed || n < len(buf)-kept {
				// A short read drained the socket: new input raises a
				// new edge.
				return
			}
		case err == unix.EAGAIN:
			return
		case err == unix.EINTR:
			i--
		case err == nil: // EOF
			s.peerGone(c, ReasonClientClose)
			return
		default:
			s.peerGone(c, ReasonIOError)
			return
		}
	}
	if !c.again {
		c.again = true
		s.again = append(s.again, c)
		s.waker.Wake()
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

// peerGone handles EOF or a socket error.
func (s *Shard) peerGone(c *conn, why Reason) {
	s.abort(c, why)
}

// consume decodes data (the kept partial frame followed by fresh bytes)
// and keeps its unconsumed tail.
func (s *Shard) consume(c *conn, data []byte) {
	if data == nil && c.partial != nil {
		// Bytes pipelined behind the handshake.
		data = s.readBuf[:copy(s.readBuf, *c.partial)]
		s.pool.Put(c.partial)
		c.partial = nil
		// The acceptor read them, but they are WebSocket input all the
		// same: count them like bytes read here.
		s.stats.recvBytes += len(data)
	}
	c.lastRead = s.now()
	s.cur = c
	n, err := c.dec.Decode(data, s.opts.MaxMessageBytes, s.pool, s.onFrame)
	s.cur = nil
	if c.state == stateClosed {
		return
	}
	if err != nil {
		if c.state != stateOpen {
			s.release(c)
			return
		}
		code, reason := ws.StatusProtocolError, "protocol error"
		if ce, ok := err.(*wsframe.CloseError); ok {
			code, reason = ce.Code, ce.Reason
		}
		s.closeConn(c, code, reason, ReasonProtocolError)
		return
	}
	if rest := data[n:]; len(rest) > 0 && c.state != stateClosed {
		b := s.pool.Get(len(rest))
		copy(*b, rest)
		c.partial = b
	}
}

// handleFrame is called by the decoder for each complete message or control
// frame of s.cur. It returns false to stop decoding.
func (s *Shard) handleFrame(op ws.OpCode, payload []byte) bool {
	c := s.cur
	switch op {
	case ws.OpClose:
		s.onClose(c, payload)
		return false
	case ws.OpPing:
		if c.state == stateOpen {
			s.sendControl(c, ws.OpPong, payload)
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

// onClose answers a close frame. If we started the close, this is the
// answer we waited for: the socket is released. Otherwise we echo the code
// and release once the echo is written.
func (s *Shard) onClose(c *conn, payload []byte) {
	if c.state != stateOpen {
		s.release(c)
		return
	}
	code, _ := wsframe.ParseClose(payload)
	s.countDisconnect(c, ReasonClientClose)
	c.state = stateClosing
	c.peerClosed = true
	c.deadline = s.now() + int64(s.opts.CloseTimeout)
	b := s.pool.Get(0)
	if code == ws.StatusNoStatusRcvd {
		*b = wsframe.AppendFrame(*b, ws.OpClose, nil)
	} else {
		*b = wsframe.AppendClose(*b, code, "")
	}
	s.send(c, *b, b, true)
	if c.state == stateClosing && c.out == nil {
		s.release(c)
	}
}

// sendControl sends a control frame with a copy of payload.
func (s *Shard) sendControl(c *conn, op ws.OpCode, payload []byte) {
	b := s.pool.Get(0)
	*b = wsframe.AppendFrame(*b, op, payload)
	s.send(c, *b, b, false)
}
