package shard

import (
	"bytes"
	"encoding/json"

	"github.com/gobwas/ws"
	"github.com/shardgate/shardgate/shard/protocol"
	"github.com/shardgate/shardgate/shard/wsframe"
)

// replyHeadroom is reserved in front of a reply's JSON so that the frame
// header can be written in place once the payload length is known.
const replyHeadroom = maxFrameHeader

// rateLimitStrikes: a connection refused this many times its burst in a
// row is closed (1008, rate_limit) rather than answered forever.
const rateLimitStrikes = 10

var (
	errRateLimited = &protocol.Error{Code: protocol.CodeRateLimited, Message: "request rate exceeded"}
	errUnavailable = &protocol.Error{Code: protocol.CodeUnavailable, Message: "publish failed: broker unavailable"}
	errNoInterest  = &protocol.Error{Code: protocol.CodeUnavailable, Message: "subscribe failed: broker unavailable"}
	errDraining    = &protocol.Error{Code: protocol.CodeUnavailable, Message: "gateway is draining"}
	errTooMany     = &protocol.Error{Code: protocol.CodeTooManySubscriptions, Message: "subscription limit reached"}
	errNoSubscribe = &protocol.Error{Code: protocol.CodeForbidden, Message: "not allowed to subscribe to this channel"}
	errNoPublish   = &protocol.Error{Code: protocol.CodeForbidden, Message: "not allowed to publish to this channel"}
)

// handleRequest runs one client request. Failures are answered with an
// error message; the connection stays open.
func (s *Shard) handleRequest(c *conn, msg []byte) {
	req, perr := protocol.ParseRequest(msg)
	if !s.allowRequest(c) {
		if c.refused++; float64(c.refused) > rateLimitStrikes*s.opts.ClientBurst {
			s.close(c, disconnectRateLimit)
			return
		}
		s.replyError(c, req.ID, errRateLimited)
		return
	}
	c.refused = 0
	if perr != nil {
		s.replyError(c, req.ID, perr)
		return
	}
	switch req.Type {
	case protocol.TypeSubscribe:
		if c.grants != nil && !c.grants.CanSubscribe(req.Channel) {
			s.replyError(c, req.ID, errNoSubscribe)
			return
		}
		if s.opts.History != nil {
			s.subscribeWithHistory(c, req) // recovery.go; it answers itself
			return
		}
		ch := s.subscribe(c, req.Channel)
		switch {
		case ch == nil:
			s.replyError(c, req.ID, errTooMany)
			return
		case !ch.ready:
			// The reply waits until the node's interest is registered
			// (channelReady): a message published after it must arrive.
			ch.waiting = append(ch.waiting, waiter{c: c, id: bytes.Clone(req.ID)})
			return
		}
	case protocol.TypeUnsubscribe:
		s.answerWaiting(c, req.Channel)
		s.unsubscribe(c, req.Channel)
	case protocol.TypeRefresh:
		s.refresh(c, req) // session.go; it answers itself
		return
	case protocol.TypePublish:
		if c.grants != nil && !c.grants.CanPublish(req.Channel) {
			s.replyError(c, req.ID, errNoPublish)
			return
		}
		if s.draining {
			s.replyError(c, req.ID, errDraining)
			return
		}
		r := &asyncResult{kind: resultPublish, c: c, channel: req.Channel}
		s.opts.Publisher.PublishFromClient(req.Channel, req.Data, s.done(r))
		if !r.returned() {
			// The broker answers later; the id must outlive msg.
			r.id = bytes.Clone(req.ID)
			return
		}
		if r.err != nil {
			s.replyError(c, req.ID, errUnavailable)
			return
		}
	}
	s.replyAck(c, req.Type, req.Channel, req.ID)
}

// published answers a publish whose outcome came after the call.
func (s *Shard) published(r *asyncResult) {
	if r.c.state != stateOpen {
		return
	}
	if r.err != nil {
		s.replyError(r.c, r.id, errUnavailable)
	} else {
		s.replyAck(r.c, protocol.TypePublish, r.channel, r.id)
	}
	s.flushStats()
}

func (s *Shard) replyAck(c *conn, t protocol.Type, channel string, id json.RawMessage) {
	b := s.pool.Get(replyHeadroom)
	*b = protocol.AppendAck(*b, t, channel, id)
	s.sendText(c, b)
}

// replyRefreshed answers a successful refresh; expires is the new
// token's exp (0: none, and the member is left out).
func (s *Shard) replyRefreshed(c *conn, id json.RawMessage, expires int64) {
	b := s.pool.Get(replyHeadroom)
	*b = protocol.AppendRefreshed(*b, id, expires)
	s.sendText(c, b)
}

// replyUnsubscribed tells c that the gateway ended its subscription to
// channel on its own, and why.
func (s *Shard) replyUnsubscribed(c *conn, channel, reason string) {
	b := s.pool.Get(replyHeadroom)
	*b = protocol.AppendUnsubscribed(*b, channel, reason)
	s.sendText(c, b)
}

func (s *Shard) replyError(c *conn, id json.RawMessage, e *protocol.Error) {
	b := s.pool.Get(replyHeadroom)
	*b = protocol.AppendError(*b, id, e)
	s.sendText(c, b)
}

// sendText frames the JSON that follows replyHeadroom bytes in *b as a text
// frame, writing the header into the headroom, and sends it. b is owned by
// the connection from here on.
func (s *Shard) sendText(c *conn, b *[]byte) {
	payload := len(*b) - replyHeadroom
	h := wsframe.HeaderLen(payload)
	start := replyHeadroom - h
	wsframe.AppendHeader((*b)[start:start], ws.OpText, payload)
	s.stats.sentMsgs++
	s.send(c, (*b)[start:], b, false)
}

// allowRequest takes a token from c's bucket, refilled at ClientRate per
// second up to ClientBurst.
func (s *Shard) allowRequest(c *conn) bool {
	if s.opts.ClientRate <= 0 {
		return true
	}
	now := s.now()
	elapsed := float64(now-c.tokensAt) / 1e9
	c.tokensAt = now
	t := min(float64(c.tokens)+elapsed*s.opts.ClientRate, s.opts.ClientBurst)
	if t < 1 {
		c.tokens = float32(t)
		return false
	}
	c.tokens = float32(t - 1)
	return true
}
