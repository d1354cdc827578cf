package shard

import (
	"errors"

	"github.com/gobwas/ws"
	"github.com/shardgate/shardgate/poller"
	"github.com/shardgate/shardgate/shard/wsframe"
	"golang.org/x/sys/unix"
)

// This file is the whole life of a connection after its upgrade: one state
// machine, and the only code that changes conn.state.
//
//	            close(d)                      peer's close frame
//	 open ───────────────────► closing ─────────────────────────┐
//	  │                          │  flushed: shutdown(SHUT_WR)   │
//	  │ peer's close frame       │  EOF, error, deadline         ▼
//	  ├──────────────────► answering ── echo flushed, deadline ► closed
//	  │                                                          ▲
//	  └── EOF, socket error, poller refused (abort) ─────────────┘
//
// Leaving open is counted once, under the Disconnect's reason, and ends the
// connection's subscriptions at once; closed releases the socket and every
// buffer. A connection in closing or answering only writes what is queued
// and reads until the peer answers, so unread input never turns our close
// into a reset that destroys the close frame in flight.

type connState uint8

const (
	stateOpen      connState = iota
	stateClosing             // our close frame is queued or sent; waiting for the peer
	stateAnswering           // the peer sent close; our echo is queued or being written
	stateClosed              // socket closed; late poller events are ignored
)

// Disconnect is why a connection ends: the close code and text the client
// gets, and the reason it is counted under. It is a value, so every path
// that ends a connection names all three at once.
type Disconnect struct {
	Code   ws.StatusCode
	Text   string
	Reason Reason
}

// Close codes of the spec's session section.
const (
	StatusTokenExpired      ws.StatusCode = 4001
	StatusDisconnected      ws.StatusCode = 4003
	StatusInsufficientState ws.StatusCode = 4010
)

// The disconnects the shard decides on itself. Protocol errors carry the
// code and text of the decoder's wsframe.CloseError instead.
var (
	disconnectIdle         = Disconnect{ws.StatusGoingAway, "idle timeout", ReasonIdleTimeout}
	disconnectSlowConsumer = Disconnect{ws.StatusPolicyViolation, "slow consumer", ReasonSlowConsumer}
	disconnectWriteTimeout = Disconnect{ws.StatusPolicyViolation, "write timeout", ReasonSlowConsumer}
	disconnectShutdown     = Disconnect{ws.StatusGoingAway, "shutdown", ReasonShutdown}
	disconnectRateLimit    = Disconnect{ws.StatusPolicyViolation, "rate limit", ReasonRateLimit}
	disconnectKicked       = Disconnect{StatusDisconnected, "disconnected", ReasonKicked}
	disconnectInsufficient = Disconnect{StatusInsufficientState, "insufficient state", ReasonInsufficientState}
)

func protocolDisconnect(err error) Disconnect {
	d := Disconnect{ws.StatusProtocolError, "protocol error", ReasonProtocolError}
	var ce *wsframe.CloseError
	if errors.As(err, &ce) {
		d.Code, d.Text = ce.Code, ce.Reason
	}
	return d
}

// close starts closing an open connection: it is counted, leaves every
// subscription, and gets a close frame after whatever it already has
// queued (a slow consumer's backlog is dropped first). The socket is
// released when the peer answers, hangs up, or CloseTimeout passes.
func (s *Shard) close(c *conn, d Disconnect) {
	if c.state != stateOpen {
		return
	}
	s.leaveOpen(c, d.Reason)
	c.state = stateClosing
	c.deadline = s.now() + int64(s.opts.CloseTimeout)
	if d.Reason == ReasonSlowConsumer && c.out != nil {
		s.dropBacklog(c)
	}
	frame := s.pool.Get(0)
	*frame = wsframe.AppendClose(*frame, d.Code, d.Text)
	s.send(c, *frame, frame, true)
	if c.state != stateClosed && s.drained(c) {
		s.flushed(c)
	}
}

// peerClose handles the peer's close frame. If we started the close, this
// is the answer we waited for: the socket is released. Otherwise we echo
// the code and release once the echo is written.
func (s *Shard) peerClose(c *conn, payload []byte) {
	if c.state != stateOpen {
		s.release(c)
		return
	}
	code, _ := wsframe.ParseClose(payload)
	s.leaveOpen(c, ReasonClientClose)
	c.state = stateAnswering
	c.deadline = s.now() + int64(s.opts.CloseTimeout)
	b := s.pool.Get(0)
	if code == ws.StatusNoStatusRcvd {
		*b = wsframe.AppendFrame(*b, ws.OpClose, nil)
	} else {
		*b = wsframe.AppendClose(*b, code, "")
	}
	s.send(c, *b, b, true)
	if c.state != stateClosed && s.drained(c) {
		s.flushed(c)
	}
}

// flushed runs when a closing or answering connection's queue is empty:
// our close frame is on the wire. Closing half-closes (the peer sees EOF
// after our frame; we keep reading for its answer); answering is done.
func (s *Shard) flushed(c *conn) {
	switch c.state {
	case stateClosing:
		_ = unix.Shutdown(int(c.fd), unix.SHUT_WR)
	case stateAnswering:
		s.release(c)
	}
}

// abort ends c without a close frame (the socket is broken or gone, or
// the poller refused it).
func (s *Shard) abort(c *conn, why Reason) {
	if c.state == stateOpen {
		s.leaveOpen(c, why)
	}
	s.release(c)
}

// expireIfLate releases a closing or answering connection whose peer did
// not answer by its deadline.
func (s *Shard) expireIfLate(c *conn, now int64) {
	if (c.state == stateClosing || c.state == stateAnswering) && now > c.deadline {
		s.release(c)
	}
}

// leaveOpen records why a connection ended and removes it from the
// channel index. It runs exactly once per connection, when it stops being
// open.
func (s *Shard) leaveOpen(c *conn, why Reason) {
	s.opts.Metrics.Disconnects[why].Inc()
	s.opts.Metrics.Connections.Dec()
	s.unsubscribeAll(c)
}

// release closes the socket and frees everything c holds. Safe to call on
// a connection that was never registered with the poller.
func (s *Shard) release(c *conn) {
	if c.state == stateClosed {
		return
	}
	c.state = stateClosed
	if c.idx >= 0 {
		if err := s.poll.Del(int(c.fd)); err != nil && !errors.Is(err, poller.ErrNotRegistered) && !errors.Is(err, poller.ErrClosed) {
			s.log.Debug("unregister connection", "err", err)
		}
		s.unlink(c.idx)
		last := s.all[len(s.all)-1]
		s.all[c.idx] = last
		last.idx = c.idx
		s.all[len(s.all)-1] = nil
		s.all = s.all[:len(s.all)-1]
		c.idx = -1
	}
	_ = unix.Close(int(c.fd))
	c.fd = -1
	if c.partial != nil {
		s.pool.Put(c.partial)
		c.partial = nil
	}
	c.dec.Reset(s.pool)
	if c.out != nil {
		s.freeQueue(c)
	}
	c.subs = nil
	s.conns.Add(-1)
	if c.deflate.On() {
		s.deflating.Add(-1)
	}
	if s.opts.OnRelease != nil {
		s.opts.OnRelease(c.tag)
	}
}
