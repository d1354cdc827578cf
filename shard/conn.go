package shard

import (
	"github.com/shardgate/shardgate/shard/pmce"
	"github.com/shardgate/shardgate/shard/tlsfd"
	"github.com/shardgate/shardgate/shard/wsframe"
)

// conn is one WebSocket connection. It is owned by its shard's goroutine;
// nothing else reads or writes it. Idle connections are numerous, so the
// struct carries pointers to state that exists only while in use (partial
// input, outbound queue) rather than the state itself, and its fields are
// ordered so that none is padded.
type conn struct {
	fd  int32  // the socket, owned: closed by release
	idx int32  // position in Shard.all; -1 while not attached
	tag uint32 // the acceptor's tag, handed back to Options.OnRelease

	batchHead, batchTail int32 // this conn's deliveries in Shard.batch, -1 when none

	tokens  float32 // rate limiter bucket
	refused uint32  // requests refused in a row by the rate limiter

	state   connState
	dirty   bool        // listed in Shard.dirty for the current broadcast batch
	again   bool        // listed in Shard.again
	deflate pmce.Params // permessage-deflate as negotiated at upgrade; zero: not in use

	partial *[]byte // incomplete frame bytes kept between reads (pooled)
	dec     wsframe.Decoder
	out     *outQueue // nil while nothing is queued

	lastRead   int64 // shard clock of the last input, for the idle timeout
	nextPing   int64 // shard clock of the next heartbeat ping
	deadline   int64 // closing: give up waiting for the peer at this clock
	stallSince int64 // shard clock when the queue last stopped making progress

	tokensAt int64 // shard clock of the last refill of tokens

	subs   []subRef
	grants Grants
}

// attach registers a connection handed over by the acceptor, with its
// TLS layer if it has one.
func (s *Shard) attach(c *conn, link *tlsfd.Conn) {
	s.addConn(c)
	s.setLink(c, link)
	if err := s.poll.Add(int(c.fd), pollInterest, func(ev pollEvent) { s.onEvent(c, ev) }); err != nil {
		s.log.Warn("register connection", "err", err)
		s.abort(c, ReasonIOError)
		return
	}
	if s.draining {
		// Raced with drain: the client gets the same goodbye as everyone.
		s.close(c, disconnectShutdown)
		c.deadline = s.drainDeadline
		return
	}
	// Bytes pipelined behind the handshake are input like any other.
	if c.partial != nil {
		s.consumePipelined(c)
	}
	// Records that arrived with the TLS handshake's last flight may wait
	// decrypted or buffered inside crypto/tls, where epoll cannot see
	// them.
	if link != nil && c.state == stateOpen {
		s.readFrom(c)
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
