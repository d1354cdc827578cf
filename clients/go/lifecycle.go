package shardgate

import (
	"context"
	"errors"
	"time"
)

// The connection lifecycle: Disconnected → Connecting → Connected and
// back, by close code (clients/README.md, "States", "Reconnecting").

// connect leaves Disconnected.
func (l *loop) connect() {
	if l.phase != phaseIdle {
		return
	}
	l.failures = 0
	l.tokCtx, l.tokCancel = context.WithCancel(context.Background())
	l.emit(StateChange{State: Connecting, URL: l.o.URLs[l.urlIndex]})
	l.attempt()
}

// disconnect goes to Disconnected, closing the connection (gracefully:
// the client chose to) or abandoning the attempt under way, and says why.
func (l *loop) disconnect(why StateChange) {
	switch l.phase {
	case phaseIdle:
		return
	case phaseOpen:
		l.dropConnection(true)
	case phaseDialing:
		l.att.abort()
		l.att = nil
	}
	l.idle(why)
}

// idle enters Disconnected once no connection or attempt is left: token
// fetches end, and nothing reconnects until Connect.
func (l *loop) idle(why StateChange) {
	l.phase = phaseIdle
	l.tokCancel()
	l.setState(Disconnected)
	why.State = Disconnected
	l.emit(why)
}

// attempt starts a connection attempt to the current URL, getting a
// token first when the cached one will not do.
func (l *loop) attempt() {
	now := time.Now()
	fetch := l.o.GetToken != nil && (l.fresh || l.tok.raw == "" || l.tok.stale(now))
	ctx, cancel := context.WithCancel(l.tokCtx)
	a := &attempt{url: l.o.URLs[l.urlIndex], fetch: fetch, cancel: cancel}
	l.att, l.phase = a, phaseDialing
	l.setState(Connecting)
	tok := l.tok
	l.spawn(func() {
		res := a.run(ctx, l.o, tok)
		if !l.post(res, nil) && res.ws != nil {
			res.ws.Close()
		}
	})
}

// attempted takes an attempt's result.
func (l *loop) attempted(res attemptResult) {
	if res.a != l.att {
		if res.ws != nil {
			res.ws.Close() // abandoned
		}
		return
	}
	res.a.cancel()
	l.att = nil
	if res.fetched {
		l.tok, l.fresh = res.tok, false
	}
	if res.err == nil {
		l.open(newConnection(res.ws, res.a.url))
		return
	}
	if errors.Is(res.err, ErrNoToken) {
		l.idle(StateChange{Code: 1000, Reason: "no token", Err: ErrNoToken})
		return
	}
	l.log.Debug("shardgate: connection attempt failed", "url", res.a.url, "err", res.err)
	if res.status == 401 {
		l.fresh = true // the token was refused: get another
	}
	if !res.fetched && res.a.fetch {
		// GetToken failed: the URL is not at fault, the next try stays on it.
	} else {
		l.urlIndex = (l.urlIndex + 1) % len(l.o.URLs)
	}
	delay := backoffDelay(l.failures, l.o.MinReconnectDelay, l.o.MaxReconnectDelay)
	l.failures++
	l.wait(delay, StateChange{Err: res.err})
}

// wait reports Connecting with why the last connection or attempt ended,
// and starts the next attempt after delay (now, for zero).
func (l *loop) wait(delay time.Duration, why StateChange) {
	why.State, why.URL, why.Delay = Connecting, l.o.URLs[l.urlIndex], delay
	l.setState(Connecting)
	l.emit(why)
	if delay <= 0 {
		l.attempt()
		return
	}
	l.phase, l.retryAt = phaseWaiting, time.Now().Add(delay)
}

// open takes a connection that opened: Connected, every subscription
// sent (recovering where it can), the refresh armed.
func (l *loop) open(conn *connection) {
	l.conn, l.phase, l.failures = conn, phaseOpen, 0
	l.setState(Connected)
	l.spawn(func() { conn.read(l.post, l.o.ReadTimeout) })
	l.spawn(conn.write)
	l.log.Debug("shardgate: connected", "url", conn.url)
	l.emit(StateChange{State: Connected, URL: conn.url})
	for _, s := range l.subs {
		l.sendSubscribe(s)
	}
	l.refresh = refreshState{gen: l.refresh.gen + 1}
	if l.o.GetToken != nil && l.tok.expires() {
		l.refresh.at = l.tok.refreshAt
	}
}

// lost acts on the end of the connection by its close code
// (clients/README.md, "Close codes").
func (l *loop) lost(ev lostEvent) {
	l.dropConnection(false)
	l.log.Debug("shardgate: connection lost", "url", ev.conn.url, "code", ev.code, "reason", ev.reason, "err", ev.err)
	why := StateChange{Code: ev.code, Reason: ev.reason, Err: ev.err}
	switch ev.code {
	case 4003: // disconnected by the operator: do not come back
		l.idle(why)
	case 4001: // token expired
		if l.o.GetToken == nil {
			why.Err = errors.New("shardgate: token expired and no GetToken to get another")
			l.idle(why)
			return
		}
		l.fresh = true
		l.wait(0, why)
	case 1001, 4010: // going away, insufficient state: another node may answer
		l.urlIndex = (l.urlIndex + 1) % len(l.o.URLs)
		l.wait(0, why)
	default:
		// A node that crashed sends no close frame: the next attempt
		// goes to the next URL, as after a failed attempt.
		l.urlIndex = (l.urlIndex + 1) % len(l.o.URLs)
		delay := backoffDelay(l.failures, l.o.MinReconnectDelay, l.o.MaxReconnectDelay)
		l.failures++
		l.wait(delay, why)
	}
}

// dropConnection lets go of the connection: publishes in flight fail
// (the client never sends them again), subscriptions wait for the next
// connection, the refresh stops.
func (l *loop) dropConnection(graceful bool) {
	l.conn.close(graceful)
	l.conn = nil
	for id, p := range l.publishes {
		p.result <- errLostAnswer
		delete(l.publishes, id)
	}
	clear(l.subByID)
	clear(l.retrying)
	for _, s := range l.subs {
		s.phase, s.retries, s.retryAt, s.reqID = subPending, 0, time.Time{}, 0
	}
	if l.refresh.fetching != nil {
		l.refresh.fetching()
	}
	l.refresh = refreshState{gen: l.refresh.gen + 1}
}
