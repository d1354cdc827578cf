package shardgate

import (
	"time"
)

// Requests and their replies on the current connection: subscriptions,
// messages, publishes, errors.

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
		l.refreshAnswered(r)
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
		l.refreshRefused(e)
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
