package natsbroker

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/shardgate/shardgate/gateway/broker"
)

// MaxSubBytes is the longest sub a disconnect request may name.
const MaxSubBytes = 1024

// ErrBadSub is returned by Disconnect for a sub that is empty, longer
// than MaxSubBytes or not valid UTF-8.
var ErrBadSub = errors.New("natsbroker: bad sub")

// validSub reports whether sub may be named in a disconnect request.
func validSub(sub []byte) bool {
	return len(sub) > 0 && len(sub) <= MaxSubBytes && utf8.Valid(sub)
}

// Reasons a message from NATS is rejected (for the log).
const (
	rejectTooLarge = "larger than MaxMessageBytes"
	rejectUTF8     = "not valid UTF-8"
	rejectJSON     = "not valid JSON"
	rejectSub      = "bad sub in a disconnect request"
)

// checkPayload returns why a message for the Handler must be refused, or
// "" when it may go through. Anyone who can publish on the cluster's
// subjects can send anything: the gateway validates it as it validates
// client input, and shards never see bytes that are not UTF-8 JSON.
func (b *Broker) checkPayload(data []byte) string {
	switch {
	case b.opts.MaxMessageBytes > 0 && len(data) > b.opts.MaxMessageBytes:
		return rejectTooLarge
	case !utf8.Valid(data):
		return rejectUTF8
	case !json.Valid(data):
		return rejectJSON
	}
	return ""
}

// deliverLoop hands received messages to the handler, one at a time and
// in arrival order, after validating them, and turns disconnect requests
// into OnDisconnect calls. The handler does not block (the dispatcher
// refuses a message rather than wait for a full shard), so neither does
// this loop.
func (b *Broker) deliverLoop() {
	defer b.wg.Done()
	var refused, rejected logLimiter
	for {
		var m *nats.Msg
		select {
		case <-b.stop:
			return
		case m = <-b.msgs:
		}
		if m.Subject == b.subj.disconnect {
			b.receiveDisconnect(m.Data, &rejected)
			continue
		}
		channel, ok := b.subj.parse(m.Subject)
		if !ok {
			continue
		}
		if reason := b.checkPayload(m.Data); reason != "" {
			b.reject(&rejected, reason, m.Subject, len(m.Data))
			continue
		}
		if err := b.handler(channel, m.Data); err != nil {
			if n, ok := refused.note(); ok {
				b.log.Warn("natsbroker: node could not take messages; dropped", "count", n, "err", err)
			}
		}
	}
}

// receiveDisconnect validates a disconnect request and passes it on.
func (b *Broker) receiveDisconnect(data []byte, rejected *logLimiter) {
	if !validSub(data) {
		b.reject(rejected, rejectSub, b.subj.disconnect, len(data))
		return
	}
	if b.opts.OnDisconnect != nil {
		b.opts.OnDisconnect(string(data))
	}
}

// reject counts a refused message through OnRejected and logs it, at most
// once per logEvery.
func (b *Broker) reject(l *logLimiter, reason, subject string, size int) {
	if b.opts.OnRejected != nil {
		b.opts.OnRejected()
	}
	if n, ok := l.note(); ok {
		b.log.Warn("natsbroker: message from NATS rejected", "reason", reason, "subject", subject,
			"bytes", size, "count", n)
	}
}

// logEvery is the shortest interval between two warnings of one kind
// from the receive path, which a flood of bad messages must not turn into
// a flood of log lines.
const logEvery = 10 * time.Second

// logLimiter counts events and says when to log them. It belongs to one
// goroutine.
type logLimiter struct {
	count int
	last  time.Time
}

// note counts one event and, at most once per logEvery, returns the
// number counted since the last log and true.
func (l *logLimiter) note() (int, bool) {
	l.count++
	now := time.Now()
	if now.Sub(l.last) < logEvery {
		return 0, false
	}
	n := l.count
	l.count, l.last = 0, now
	return n, true
}

// Disconnect asks every node, this one included, to close the connections
// whose token names sub: it publishes the request on the control subject
// (see subjects) and waits up to FlushTimeout for the server to
// acknowledge it, so nil means NATS took the request and forwards it to
// every node subscribed (each then calls its OnDisconnect). It blocks, for
// at most about WriteTimeout + FlushTimeout (more while nats.go holds its
// lock for a reconnect attempt): call it from a request goroutine, not
// from a shard.
//
// Errors: ErrBadSub (wrapped); broker.ErrUnavailable (wrapped) while
// disconnected or when the server did not acknowledge in time (the request
// may still arrive); broker.ErrClosed (wrapped) after Close.
func (b *Broker) Disconnect(sub string) error {
	if !validSub([]byte(sub)) {
		return fmt.Errorf("%w (%d bytes)", ErrBadSub, len(sub))
	}
	if b.closing.Load() {
		return errClosed
	}
	if !b.Connected() {
		return errDisconnected
	}
	if err := b.publishError(b.nc.Publish(b.subj.disconnect, []byte(sub))); err != nil {
		return fmt.Errorf("natsbroker: disconnect: %w", err)
	}
	if err := b.nc.FlushTimeout(b.opts.FlushTimeout); err != nil {
		if errors.Is(err, nats.ErrConnectionClosed) && b.closing.Load() {
			return errClosed
		}
		return fmt.Errorf("natsbroker: disconnect not acknowledged by NATS: %w: %w", broker.ErrUnavailable, err)
	}
	return nil
}
