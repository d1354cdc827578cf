package shardgate

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Refreshing the token in place (clients/README.md, "Tokens").

// refreshState is the in-place token refresh of the current connection.
type refreshState struct {
	at       time.Time // when to fetch a new token; zero: not armed
	fetching context.CancelFunc
	gen      uint64 // tells a fetch for an older connection from the current one
	reqID    uint64 // the refresh request in flight
	sent     token  // the token it carries, adopted once "refreshed" comes
	failures int
}

// tokenEvent is the result of a token fetch for a refresh.
type tokenEvent struct {
	gen uint64
	tok token
	err error
}

// startRefresh fetches a new token for the current connection.
func (l *loop) startRefresh() {
	ctx, cancel := context.WithCancel(l.tokCtx)
	l.refresh.fetching = cancel
	gen, getToken := l.refresh.gen, l.o.GetToken
	l.spawn(func() {
		defer cancel()
		raw, err := getToken(ctx)
		ev := tokenEvent{gen: gen, err: err}
		if err == nil {
			ev.tok = newToken(raw, time.Now())
		}
		l.post(ev, nil)
	})
}

// refreshed takes a fetched token and sends it to refresh the current
// connection in place.
func (l *loop) refreshed(ev tokenEvent) {
	if ev.gen != l.refresh.gen {
		// Fetched for a connection since lost. Unchecked by the gateway, it
		// is not kept: the next attempt gets its own if the cached one is
		// stale.
		return
	}
	l.refresh.fetching = nil
	if errors.Is(ev.err, ErrNoToken) {
		l.disconnect(StateChange{Code: 1000, Reason: "no token", Err: ErrNoToken})
		return
	}
	if ev.err != nil {
		l.refreshFailed(fmt.Errorf("shardgate: GetToken for a refresh: %w", ev.err))
		return
	}
	l.refresh.reqID, l.refresh.sent = l.nextID(), ev.tok
	l.conn.send(encode(request{Type: "refresh", Token: ev.tok.raw, ID: l.refresh.reqID}))
}

// refreshFailed reports a failed refresh and tries again after the
// backoff delay; if none succeeds before the token expires, the gateway
// closes with 4001 and the client reconnects with a fresh token.
func (l *loop) refreshFailed(err error) {
	l.log.Warn("shardgate: token refresh failed", "err", err)
	l.reportError(err)
	l.refresh.at = time.Now().Add(backoffDelay(l.refresh.failures, l.o.MinReconnectDelay, l.o.MaxReconnectDelay))
	l.refresh.failures++
}

// refreshAnswered takes the gateway's "refreshed".
func (l *loop) refreshAnswered(r reply) {
	if r.ID != 0 && r.ID == l.refresh.reqID {
		// The gateway took the token: it is the one in force now, and
		// the one the next connection starts with.
		l.tok = l.refresh.sent
		l.refresh.reqID, l.refresh.sent, l.refresh.failures = 0, token{}, 0
		l.refresh.at = time.Time{}
		if r.Expires > 0 {
			l.tok.setExpiry(time.Unix(r.Expires, 0), time.Now())
			l.refresh.at = l.tok.refreshAt
		}
	}
}

// refreshRefused takes the gateway's error answer to a refresh.
func (l *loop) refreshRefused(e *Error) {
	l.refresh.reqID, l.refresh.sent = 0, token{} // not to be used again
	if e.Code == CodeBadRequest {
		// A gateway without auth does not refresh: its connections never
		// expire either, so there is nothing to retry.
		l.reportError(e)
		l.refresh.at = time.Time{}
		return
	}
	l.refreshFailed(e)
}
