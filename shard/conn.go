package shard

import (
	"errors"

	"github.com/gobwas/ws"
	"github.com/shardgate/shardgate/poller"
	"github.com/shardgate/shardgate/shard/wsframe"
	"golang.org/x/sys/unix"
)

type connState uint8

const (
	stateOpen    connState = iota
	stateClosing           // our close frame is queued or sent; waiting for the peer
	stateClosed            // socket closed; late poller events are ignored
)

// conn is one WebSocket connection. It is owned by its shard's goroutine;
// nothing else reads or writes it. Idle connections are numerous, so the
// struct carries pointers to state that exists only while in use (partial
// input, outbound queue) rather than the state itself.
type conn struct {
	fd    int
	idx   int32 // position in Shard.all; -1 while not attached
	state connState
	dirty bool // listed in Shard.dirty for the current broadcast batch
	again bool // listed in Shard.again
	// peerClosed: the peer sent its close frame; release once our answer
	// is written.
	peerClosed bool
	partial    *[]byte // incomplete frame bytes kept between reads (pooled)
	dec        wsframe.Decoder
	out        *outQueue // nil while nothing is queued

	batchHead, batchTail int32 // this conn's deliveries in Shard.batch, -1 when none

	lastRead   int64 // shard clock of the last input, for the idle timeout
	nextPing   int64 // shard clock of the next heartbeat ping
	deadline   int64 // closing: give up waiting for the peer at this clock
	stallSince int64 // shard clock when the queue last stopped making progress

	tokens   float32 // rate limiter bucket
	tokensAt int64

	subs   []subRef
	grants Grants
}

// attach registers a connection handed over by the acceptor.
func (s *Shard) attach(c *conn) {
	s.addConn(c)
	if err := s.poll.Add(c.fd, pollInterest, func(ev pollEvent) { s.onEvent(c, ev) }); err != nil {
		s.log.Warn("register connection", "err", err)
		s.countDisconnect(c, ReasonIOError)
		s.release(c)
		return
	}
	if s.draining {
		// Raced with drain: the client gets the same goodbye as everyone.
		s.closeConn(c, ws.StatusGoingAway, "shutdown", ReasonShutdown)
		c.deadline = s.drainDeadline
		return
	}
	// Bytes pipelined behind the handshake are input like any other.
	if c.partial != nil {
		s.consume(c, nil)
	}
}

func (s *Shard) addConn(c *conn) {
	now := s.now()
	c.idx = int32(len(s.all))
	c.batchHead, c.batchTail = -1, -1
	c.lastRead = now
	c.tokens = float32(s.opts.ClientBurst)
	c.tokensAt = now
	if s.opts.PingInterval > 0 {
		c.nextPing = now + int64(s.opts.PingInterval)
	}
	s.all = append(s.all, c)
	s.opts.Metrics.Connections.Inc()
}

// closeConn starts closing c: it leaves every subscription at once, is
// counted under why, and gets a close frame after whatever it already has
// queued (a slow consumer's backlog is dropped first). The socket is
// released when the peer answers, hangs up, or CloseTimeout passes.
func (s *Shard) closeConn(c *conn, code ws.StatusCode, reason string, why Reason) {
	if c.state != stateOpen {
		return
	}
	s.countDisconnect(c, why)
	c.state = stateClosing
	c.deadline = s.now() + int64(s.opts.CloseTimeout)
	if why == ReasonSlowConsumer && c.out != nil {
		s.dropBacklog(c)
	}
	frame := s.pool.Get(0)
	*frame = wsframe.AppendClose(*frame, code, reason)
	s.send(c, *frame, frame, true)
	if c.state == stateClosed {
		return
	}
	s.finishCloseIfFlushed(c)
}

// finishCloseIfFlushed half-closes a closing connection once its close
// frame is on the wire: the peer sees EOF after our close frame, and we
// keep reading until it answers so that unread input does not turn our
// close() into a reset that could destroy the close frame in flight.
func (s *Shard) finishCloseIfFlushed(c *conn) {
	if c.state == stateClosing && c.out == nil {
		_ = unix.Shutdown(c.fd, unix.SHUT_WR)
	}
}

// abort closes c without a close frame (the socket is broken or gone).
func (s *Shard) abort(c *conn, why Reason) {
	if c.state == stateOpen {
		s.countDisconnect(c, why)
	}
	s.release(c)
}

// countDisconnect records why a connection ended and removes it from the
// channel index. It runs exactly once per connection, when it stops being
// open.
func (s *Shard) countDisconnect(c *conn, why Reason) {
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
		if err := s.poll.Del(c.fd); err != nil && !errors.Is(err, poller.ErrNotRegistered) && !errors.Is(err, poller.ErrClosed) {
			s.log.Debug("unregister connection", "err", err)
		}
		last := s.all[len(s.all)-1]
		s.all[c.idx] = last
		last.idx = c.idx
		s.all[len(s.all)-1] = nil
		s.all = s.all[:len(s.all)-1]
		c.idx = -1
	}
	_ = unix.Close(c.fd)
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
	if s.opts.OnRelease != nil {
		s.opts.OnRelease()
	}
}
