package shardgate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// loop is the client's state machine (clients/README.md, "States"). It
// runs on one goroutine and owns everything below: the connection, the
// subscriptions, the pending requests, the token and every timer. Other
// goroutines reach it through two channels: the API's commands, and the
// events of the goroutines it starts (attempts, token fetches, each
// connection's reader). It never blocks on them or on the application:
// dials and token fetches run on their own goroutines, frames leave
// through the connection's writer, handlers run on the dispatcher.
type loop struct {
	c      *Client
	o      *Options
	log    *slog.Logger
	events chan any       // from the loop's goroutines
	quit   chan struct{}  // closed when the loop stops: its goroutines stop posting
	wg     sync.WaitGroup // the loop's goroutines

	phase    phase
	urlIndex int // the URL the next attempt dials
	failures int // consecutive failed attempts (reset when a connection opens)
	att      *attempt
	conn     *connection
	retryAt  time.Time // phase waiting: when the next attempt starts

	// tok is the token the next connection uses (zero: none yet, or no
	// auth); fresh asks the next attempt to get a new one first.
	tok   token
	fresh bool
	// tokCtx is GetToken's context: it ends with Disconnect and Close.
	tokCtx    context.Context
	tokCancel context.CancelFunc
	refresh   refreshState

	subs      map[string]*Subscription // by channel
	subByID   map[uint64]*Subscription // subscribes in flight on the current connection
	retrying  map[*Subscription]struct{}
	publishes map[uint64]*pendingPublish // in flight on the current connection

	timer   *time.Timer
	timerAt time.Time // the deadline timer is armed for; zero: stopped
}

// phase is the loop's own view of the state: Connecting is either
// waiting for the next attempt or dialing.
type phase uint8

const (
	phaseIdle    phase = iota // Disconnected
	phaseWaiting              // Connecting: the backoff delay runs
	phaseDialing              // Connecting: an attempt is under way
	phaseOpen                 // Connected
)

// refreshState is the in-place token refresh of the current connection.
type refreshState struct {
	at       time.Time // when to fetch a new token; zero: not armed
	fetching context.CancelFunc
	gen      uint64 // tells a fetch for an older connection from the current one
	reqID    uint64 // the refresh request in flight
	sent     token  // the token it carries, adopted once "refreshed" comes
	failures int
}

func newLoop(c *Client, early map[string]*Subscription) *loop {
	t := time.NewTimer(time.Hour)
	t.Stop()
	subs := make(map[string]*Subscription, len(early))
	for ch, s := range early {
		subs[ch] = s
	}
	return &loop{
		c: c, o: &c.opts, log: c.opts.Logger,
		events: make(chan any), quit: make(chan struct{}),
		subs: subs, subByID: make(map[uint64]*Subscription),
		retrying:  make(map[*Subscription]struct{}),
		publishes: make(map[uint64]*pendingPublish),
		tok:       newToken(c.opts.Token, time.Now()),
		timer:     t,
		tokCtx:    context.Background(), tokCancel: func() {},
	}
}

// run is the loop's goroutine.
func (l *loop) run() {
	defer close(l.c.loopDone)
	for {
		l.armTimer()
		select {
		case cmd := <-l.c.cmds:
			if _, ok := cmd.(cmdClose); ok {
				l.shutdown()
				return
			}
			l.command(cmd)
		case ev := <-l.events:
			l.event(ev)
		case now := <-l.timer.C:
			l.timerAt = time.Time{}
			l.due(now)
		}
	}
}

// shutdown stops everything for Close and waits for the loop's
// goroutines; the dispatcher ends after the handlers queued so far.
func (l *loop) shutdown() {
	l.disconnect(StateChange{Code: 1000, Reason: "close"})
	close(l.quit)
	l.wg.Wait()
	l.timer.Stop()
	l.c.handlers.stop()
}

// post is how the loop's goroutines report to it; false when the loop no
// longer listens (it stopped, or gone is closed).
func (l *loop) post(ev any, gone <-chan struct{}) bool {
	select {
	case l.events <- ev:
		return true
	case <-gone:
		return false
	case <-l.quit:
		return false
	}
}

// spawn runs f on a goroutine the loop waits for when it stops.
func (l *loop) spawn(f func()) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		f()
	}()
}

func (l *loop) setState(s State) { l.c.state.Store(int32(s)) }

// emit queues an OnState call.
func (l *loop) emit(ch StateChange) {
	if f := l.o.OnState; f != nil {
		l.c.handlers.post(func() { f(ch) })
	}
}

// reportError queues an OnError call.
func (l *loop) reportError(err error) {
	if f := l.o.OnError; f != nil {
		l.c.handlers.post(func() { f(err) })
	}
}

func (l *loop) command(cmd any) {
	switch cmd := cmd.(type) {
	case cmdConnect:
		l.connect()
	case cmdDisconnect:
		l.disconnect(StateChange{Code: 1000, Reason: "disconnect"})
		close(cmd.done)
	case cmdSubscribe:
		cmd.result <- l.subscribe(cmd.s)
	case cmdUnsubscribe:
		l.unsubscribe(cmd.s)
	case cmdPublish:
		l.publish(cmd.p)
	case cmdForget:
		if l.publishes[cmd.p.id] == cmd.p {
			delete(l.publishes, cmd.p.id)
		}
	}
}

func (l *loop) event(ev any) {
	switch ev := ev.(type) {
	case attemptResult:
		l.attempted(ev)
	case frameEvent:
		if ev.conn != l.conn {
			return // a connection the loop let go of
		}
		if ev.err != nil {
			l.reportError(ev.err)
			return
		}
		l.frame(ev.r)
	case lostEvent:
		if ev.conn == l.conn {
			l.lost(ev)
		}
	case tokenEvent:
		l.refreshed(ev)
	}
}

// armTimer points the timer at the earliest deadline: the next attempt,
// the next refresh, subscribes to retry.
func (l *loop) armTimer() {
	var next time.Time
	earlier := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if l.phase == phaseWaiting {
		earlier(l.retryAt)
	}
	if l.phase == phaseOpen && l.refresh.fetching == nil && l.refresh.reqID == 0 {
		earlier(l.refresh.at)
	}
	for s := range l.retrying {
		earlier(s.retryAt)
	}
	switch {
	case next.Equal(l.timerAt):
	case next.IsZero():
		l.timer.Stop()
		l.timerAt = next
	default:
		l.timer.Reset(time.Until(next))
		l.timerAt = next
	}
}

// due runs what the timer was armed for, and whatever else is due.
func (l *loop) due(now time.Time) {
	if l.phase == phaseWaiting && !now.Before(l.retryAt) {
		l.attempt()
	}
	if l.phase == phaseOpen && l.refresh.fetching == nil && l.refresh.reqID == 0 &&
		!l.refresh.at.IsZero() && !now.Before(l.refresh.at) {
		l.startRefresh()
	}
	for s := range l.retrying {
		if !now.Before(s.retryAt) {
			delete(l.retrying, s)
			s.retryAt = time.Time{}
			if l.phase == phaseOpen {
				l.sendSubscribe(s)
			}
		}
	}
}

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

func (l *loop) nextID() uint64 { return l.c.ids.Add(1) }

// frame handles one frame of the current connection.
func (l *loop) frame(r reply) {
	switch r.Type {
	case "message":
		l.message(r)
	case "subscribed":
		s := l.subByID[r.ID]
		if s == nil {
			return // a subscribe the application has since withdrawn
		}
		delete(l.subByID, r.ID)
		s.phase, s.retries, s.reqID = subActive, 0, 0
		ev := s.subscribed(r)
		if f := s.h.OnSubscribed; f != nil {
			l.c.handlers.post(func() {
				if !s.cancelled.Load() {
					f(ev)
				}
			})
		}
	case "unsubscribed":
		if r.ID != 0 {
			return // the answer to an Unsubscribe: the subscription is gone already
		}
		if s := l.subs[r.Channel]; s != nil && s.phase != subPending {
			l.end(s)
			if f := s.h.OnUnsubscribed; f != nil {
				reason := r.Reason
				l.c.handlers.post(func() {
					if !s.cancelled.Load() {
						f(reason)
					}
				})
			}
		}
	case "published":
		if p := l.publishes[r.ID]; p != nil {
			delete(l.publishes, r.ID)
			p.result <- nil
		}
	case "refreshed":
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
	case "error":
		l.errorReply(r)
	}
}

// message hands a channel message to its subscription, once and in
// order, or a message to everyone to OnMessage.
func (l *loop) message(r reply) {
	if r.Channel == "" {
		if f := l.o.OnMessage; f != nil {
			data := r.Data
			l.c.handlers.post(func() { f(data) })
		}
		return
	}
	s := l.subs[r.Channel]
	if s == nil || s.phase != subActive {
		return // not subscribed (any more) on this connection
	}
	m, ok := s.accept(r)
	if !ok {
		return // a duplicate
	}
	if f := s.h.OnMessage; f != nil {
		l.c.handlers.post(func() {
			if !s.cancelled.Load() {
				f(m)
			}
		})
	}
}

// errorReply matches an error to its request.
func (l *loop) errorReply(r reply) {
	e := &Error{Code: r.Code, Message: r.Message}
	if p := l.publishes[r.ID]; r.ID != 0 && p != nil {
		delete(l.publishes, r.ID)
		p.result <- e
		return
	}
	if s := l.subByID[r.ID]; r.ID != 0 && s != nil {
		delete(l.subByID, r.ID)
		l.subscribeFailed(s, e)
		return
	}
	if r.ID != 0 && r.ID == l.refresh.reqID {
		l.refresh.reqID, l.refresh.sent = 0, token{} // refused: not to be used again
		if e.Code == CodeBadRequest {
			// A gateway without auth does not refresh: the connection
			// never expires either, so there is nothing to retry.
			l.reportError(e)
			l.refresh.at = time.Time{}
			return
		}
		l.refreshFailed(e)
		return
	}
	l.reportError(e)
}

// subscribeFailed retries a subscribe refused for now (rate_limited,
// unavailable) after the backoff delay, on the same connection, and ends
// the subscription for any other code.
func (l *loop) subscribeFailed(s *Subscription, e *Error) {
	if e.Code == CodeRateLimited || e.Code == CodeUnavailable {
		s.phase, s.reqID = subPending, 0
		s.retryAt = time.Now().Add(backoffDelay(s.retries, l.o.MinReconnectDelay, l.o.MaxReconnectDelay))
		s.retries++
		l.retrying[s] = struct{}{}
		return
	}
	l.end(s)
	if f := s.h.OnError; f != nil {
		l.c.handlers.post(func() {
			if !s.cancelled.Load() {
				f(e)
			}
		})
	}
}

// end removes a subscription the gateway ended.
func (l *loop) end(s *Subscription) {
	delete(l.subs, s.channel)
	delete(l.retrying, s)
	if s.reqID != 0 {
		delete(l.subByID, s.reqID)
	}
	s.phase, s.reqID = subEnded, 0
}

func (l *loop) subscribe(s *Subscription) error {
	if l.subs[s.channel] != nil {
		return ErrAlreadySubscribed
	}
	l.subs[s.channel] = s
	if l.phase == phaseOpen {
		l.sendSubscribe(s)
	}
	return nil
}

func (l *loop) sendSubscribe(s *Subscription) {
	id := l.nextID()
	s.phase, s.reqID = subSent, id
	l.subByID[id] = s
	l.conn.send(encode(s.subscribeRequest(id)))
}

// unsubscribe ends a subscription for the application, telling the
// gateway when it has it or is about to.
func (l *loop) unsubscribe(s *Subscription) {
	if l.subs[s.channel] != s {
		return
	}
	sent := s.phase == subSent || s.phase == subActive
	l.end(s)
	if sent && l.phase == phaseOpen {
		l.conn.send(encode(request{Type: "unsubscribe", Channel: s.channel, ID: l.nextID()}))
	}
}

func (l *loop) publish(p *pendingPublish) {
	if l.phase != phaseOpen {
		p.result <- errNotConnected
		return
	}
	l.publishes[p.id] = p
	l.conn.send(p.frame)
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
