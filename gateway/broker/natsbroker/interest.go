package natsbroker

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/shardgate/shardgate/gateway/broker"
)

// readyWait is an Interest call waiting for its ready.
type readyWait struct {
	channel string
	ready   broker.Done
}

// Interest records whether this node has local subscribers of channel
// and returns at once; the interest worker makes NATS match. When active,
// ready gets, exactly once and from the worker (or at once from the
// caller's goroutine, for a bad name or after Close):
//
//   - nil once the server has acknowledged a flush sent after the
//     channel's SUB, so a message that any node publishes on the same
//     NATS server afterwards reaches this node;
//   - broker.ErrUnavailable (wrapped) while disconnected, when the flush
//     fails or takes longer than FlushTimeout, or when the interest was
//     withdrawn (Interest(channel, false, nil)) before it took effect;
//   - broker.ErrClosed (wrapped) after Close.
//
// Whatever ready gets, the desired state stands: a node that stays
// interested is subscribed as soon as NATS allows, and nats.go sends the
// subscription again after every reconnect. A caller that gives up after
// an error must still withdraw the interest when it no longer wants it.
//
// ready is nil when active is false.
func (b *Broker) Interest(channel string, active bool, ready broker.Done) {
	if _, ok := b.subj.channel(channel); !ok || channel == "" {
		b.log.Warn("natsbroker: interest in a bad channel name ignored", "channel", channel)
		if active && ready != nil {
			ready(fmt.Errorf("%w: %q", ErrBadChannel, channel))
		}
		return
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		if active && ready != nil {
			ready(errClosed)
		}
		return
	}
	if active {
		b.desired[channel] = struct{}{}
		if ready != nil {
			b.waiting = append(b.waiting, readyWait{channel, ready})
		}
	} else {
		delete(b.desired, channel)
	}
	b.dirty[channel] = struct{}{}
	b.mu.Unlock()
	kick(b.wake)
}

// interestLoop is the interest worker. Each pass takes every change and
// every ready recorded since the last one, so a burst of Interest calls
// costs one flush round trip, not one each. It also makes nats.go
// reconnect after a stalled write (stall), since that can wait for
// nats.go's connection lock.
func (b *Broker) interestLoop() {
	defer b.wg.Done()
	for {
		select {
		case <-b.stop:
			return
		case <-b.wake:
		}
		if b.forceReconnect.Swap(false) {
			b.reconnect()
		}
		b.reconcile()
	}
}

// reconnect reports the stalled connection as down and makes nats.go
// drop it and dial again. Unconditional on purpose: a (re)connect that
// cleared b.stalled may have been for the very connection that stalled
// (its callback can run after the failed write), and one extra reconnect
// is cheap next to publishing into a dead socket.
func (b *Broker) reconnect() {
	b.refreshState(b.nc)
	if err := b.nc.ForceReconnect(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		b.log.Error("natsbroker: reconnect after a failed write", "err", err)
	}
}

// reconcile applies the recorded interest changes and answers the
// readies recorded with them.
func (b *Broker) reconcile() {
	b.mu.Lock()
	dirty, waiting := b.dirty, b.waiting
	b.dirty, b.waiting = make(map[string]struct{}), nil
	b.mu.Unlock()

	// While disconnected no interest can be confirmed: answer before
	// touching nats.go, whose connection lock a reconnect attempt may hold
	// for a whole ConnectTimeout.
	if len(waiting) > 0 && !b.Connected() {
		for _, w := range waiting {
			w.ready(errDisconnected)
		}
		waiting = nil
	}

	b.subMu.Lock()
	var failed []string
	for ch := range dirty {
		if !b.apply(ch) {
			failed = append(failed, ch)
		}
	}
	// Which readies have their subscription in place now; the flush below
	// then confirms every SUB sent before it.
	subscribed := make([]bool, len(waiting))
	for i, w := range waiting {
		_, subscribed[i] = b.subs[w.channel]
	}
	b.subMu.Unlock()
	if len(failed) > 0 {
		// Retried on the next pass (the next Interest call or connect),
		// not at once: a refusal that lasts must not spin the worker.
		b.mu.Lock()
		for _, ch := range failed {
			b.dirty[ch] = struct{}{}
		}
		b.mu.Unlock()
	}

	if len(waiting) == 0 {
		return
	}
	// nats.go writes the SUBs of apply before this PING on the same
	// connection, and the server handles a connection's protocol in
	// order: the PONG means every SUB is in the server's interest graph.
	// If the connection is replaced meanwhile, nats.go sends all
	// subscriptions on the new one before any buffered PING, or fails the
	// flush; either way nil below is true.
	err := b.nc.FlushTimeout(b.opts.FlushTimeout)
	switch {
	case err == nil:
	case errors.Is(err, nats.ErrConnectionClosed) && b.closing.Load():
		err = errClosed
	default:
		err = fmt.Errorf("natsbroker: interest not confirmed by NATS: %w: %w", broker.ErrUnavailable, err)
	}
	for i, w := range waiting {
		switch {
		case err != nil:
			w.ready(err)
		case !subscribed[i]:
			w.ready(fmt.Errorf("natsbroker: interest in %q withdrawn or not subscribed: %w", w.channel, broker.ErrUnavailable))
		default:
			w.ready(nil)
		}
	}
}

// apply makes channel's NATS subscription match the desired set. It reads
// the desired state at the time of the call, so whichever apply runs last
// leaves the right state behind, however calls interleave. It works while
// disconnected too: nats.go keeps the subscription set and sends it on
// reconnect. It reports false when nats.go refused the change.
// b.subMu must be held.
func (b *Broker) apply(channel string) bool {
	b.mu.Lock()
	_, want := b.desired[channel]
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return true
	}
	sub, have := b.subs[channel]
	switch {
	case want && !have:
		subject, _ := b.subj.channel(channel)
		s, err := b.nc.ChanSubscribe(subject, b.msgs)
		if err != nil {
			b.log.Error("natsbroker: subscribe failed", "channel", channel, "err", err)
			return false
		}
		b.subs[channel] = s
	case !want && have:
		if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			b.log.Error("natsbroker: unsubscribe failed", "channel", channel, "err", err)
		}
		delete(b.subs, channel)
	}
	return true
}
