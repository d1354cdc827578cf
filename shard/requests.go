package shard

import (
	"encoding/json"

	"github.com/gobwas/ws"
	"github.com/shardgate/shardgate/shard/protocol"
	"github.com/shardgate/shardgate/shard/wsframe"
)

// replyHeadroom is reserved in front of a reply's JSON so that the frame
// header can be written in place once the payload length is known.
const replyHeadroom = maxFrameHeader

// handleRequest runs one client request. Failures are answered with an
// error message; the connection stays open.
func (s *Shard) handleRequest(c *conn, msg []byte) {
	req, perr := protocol.ParseRequest(msg)
	if !s.allowRequest(c) {
		s.replyError(c, req.ID, &protocol.Error{Code: protocol.CodeRateLimited, Message: "request rate exceeded"})
		return
	}
	if perr != nil {
		s.replyError(c, req.ID, perr)
		return
	}
	switch req.Type {
	case protocol.TypeSubscribe:
		if c.grants != nil && !c.grants.CanSubscribe(req.Channel) {
			s.replyError(c, req.ID, &protocol.Error{Code: protocol.CodeForbidden, Message: "not allowed to subscribe to this channel"})
			return
		}
		if !s.subscribe(c, req.Channel) {
			s.replyError(c, req.ID, &protocol.Error{Code: protocol.CodeTooManySubscriptions, Message: "subscription limit reached"})
			return
		}
	case protocol.TypeUnsubscribe:
		s.unsubscribe(c, req.Channel)
	case protocol.TypePublish:
		if c.grants != nil && !c.grants.CanPublish(req.Channel) {
			s.replyError(c, req.ID, &protocol.Error{Code: protocol.CodeForbidden, Message: "not allowed to publish to this channel"})
			return
		}
		if s.draining {
			s.replyError(c, req.ID, &protocol.Error{Code: protocol.CodeUnavailable, Message: "gateway is draining"})
			return
		}
		if err := s.opts.Publisher.PublishFromClient(req.Channel, req.Data); err != nil {
			s.replyError(c, req.ID, &protocol.Error{Code: protocol.CodeUnavailable, Message: "publish failed: broker unavailable"})
			return
		}
	}
	b := s.pool.Get(replyHeadroom)
	*b = protocol.AppendAck(*b, req.Type, req.Channel, req.ID)
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
