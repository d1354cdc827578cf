package shard

import (
	"github.com/shardgate/shardgate/shard/protocol"
)

// Sessions (SPEC "Sessions"): a connection's token has a life of its own.
// When its "exp" passes the connection is closed with 4001, unless the
// client sent a refresh with a token that lasts at least as long.
//
// Expiry needs no timer and no goroutine per connection, nor a byte more
// in conn: the shard's clock sweep (heartbeat.go), which already visits
// every connection on each tick, asks the grants of the connections that
// have any. The gateway ticks at least every 500 ms, so a connection is
// closed within a second of its exp. Expiry is wall-clock time (exp is a
// Unix time), not the shard's monotonic clock.

// disconnectTokenExpired ends a connection whose token's exp has passed.
// The client should reconnect with a fresh token.
var disconnectTokenExpired = Disconnect{StatusTokenExpired, "token expired", ReasonTokenExpired}

var (
	errRefreshNoAuth = &protocol.Error{Code: protocol.CodeBadRequest, Message: "refresh needs auth, and the gateway runs without tokens"}
	errRefreshSub    = &protocol.Error{Code: protocol.CodeBadToken, Message: "token names another subject; the token in force stays"}
	errRefreshSooner = &protocol.Error{Code: protocol.CodeBadToken, Message: "token expires before the one in force, which stays"}
)

// expired reports whether g's token has passed its exp at unixNow (Unix
// seconds). A token is in force strictly before its exp.
func expired(g Grants, unixNow int64) bool {
	exp := g.Expiry()
	return exp != 0 && unixNow >= exp
}

// outlives reports whether a token expiring at next lasts at least as long
// as one expiring at cur (0: never).
func outlives(next, cur int64) bool {
	switch {
	case next == 0:
		return true
	case cur == 0:
		return false
	}
	return next >= cur
}

// refresh runs a refresh request: the new token must verify, name the
// same subject and last at least as long as the one in force; otherwise
// the client gets bad_token and nothing changes. On success the new
// grants replace the old, the subscriptions they no longer allow end
// (each with an unsubscribed notice), and then "refreshed" answers: by
// the time the client reads it, its subscription set is settled.
//
// A refresh that arrives after the old exp but before the sweep has
// closed the connection is still honoured: the new token is valid on its
// own, and the client could have reconnected with it anyway.
func (s *Shard) refresh(c *conn, req protocol.Request) {
	if s.opts.Refresh == nil || c.grants == nil {
		s.replyError(c, req.ID, errRefreshNoAuth)
		return
	}
	g, err := s.opts.Refresh(req.Token)
	switch {
	case err != nil:
		s.replyError(c, req.ID, &protocol.Error{Code: protocol.CodeBadToken, Message: "token refused (" + err.Error() + "); the token in force stays"})
		return
	case g == nil:
		s.replyError(c, req.ID, &protocol.Error{Code: protocol.CodeBadToken, Message: "token refused; the token in force stays"})
		return
	case g.Sub() != c.grants.Sub():
		s.replyError(c, req.ID, errRefreshSub)
		return
	case !outlives(g.Expiry(), c.grants.Expiry()):
		s.replyError(c, req.ID, errRefreshSooner)
		return
	}
	c.grants = g
	s.revokeForbidden(c)
	if c.state != stateOpen {
		return // a notice made it a slow consumer
	}
	s.replyRefreshed(c, req.ID, g.Expiry())
}
