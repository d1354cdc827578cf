package shardgate

import (
	"context"
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
