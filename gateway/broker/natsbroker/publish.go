package natsbroker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/shardgate/shardgate/gateway/broker"
)

// Errors given to done functions. Each wraps broker.ErrUnavailable or
// broker.ErrClosed (test with errors.Is) and says why; they are values so
// that refusing a burst of publishes allocates nothing.
var (
	errDisconnected = fmt.Errorf("natsbroker: not connected to NATS: %w", broker.ErrUnavailable)
	errQueueFull    = fmt.Errorf("natsbroker: publish queue full: %w", broker.ErrUnavailable)
	errExpired      = fmt.Errorf("natsbroker: publish not handed to NATS within PublishTimeout: %w", broker.ErrUnavailable)
	errClosed       = fmt.Errorf("natsbroker: %w", broker.ErrClosed)
)

// Publish queues data for NATS and returns at once: it copies data, takes
// the queue's lock (never held during I/O) and wakes the publisher. done
// gets nil once nats.go took the message on a live connection, or an
// error (never both, never twice):
//
//   - ErrBadChannel (wrapped) for a name that is not a channel, at once;
//   - broker.ErrClosed after Close, at once;
//   - broker.ErrUnavailable, at once, while disconnected or when the
//     queue is full; later, if the connection goes down while the message
//     waits, if it waited PublishTimeout without being handed over (it is
//     then dropped, never handed over later), or if the write that carried
//     it failed.
//
// done may run before Publish returns, on the caller's goroutine.
// Messages are handed over in the order Publish took them (one queue, one
// publisher), so one caller's messages keep their order.
//
// nil is NATS core's at-most-once: a message handed over just before the
// connection is lost may never reach the server (see the package doc).
func (b *Broker) Publish(channel string, data json.RawMessage, done broker.Done) {
	subject, ok := b.subj.channel(channel)
	switch {
	case !ok:
		done(fmt.Errorf("%w: %q", ErrBadChannel, channel))
		return
	case b.closing.Load():
		done(errClosed)
		return
	case !b.Connected():
		done(errDisconnected)
		return
	}
	it := pubItem{
		subject:  subject,
		data:     bytes.Clone(data),
		done:     done,
		deadline: time.Now().Add(b.opts.PublishTimeout),
	}
	first, err := b.pq.push(it)
	if err != nil {
		done(err)
		return
	}
	kick(b.pubWake)
	if first {
		kick(b.expWake)
	}
}

// kick leaves a wake-up in c (capacity 1) unless one is already there.
func kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// publishLoop is the publisher goroutine: the only caller of nc.Publish
// for messages (Disconnect makes its own calls). nc.Publish can block:
// it writes to the socket under nats.go's connection lock once the
// write buffer is full, and waits for that lock while another write or a
// reconnect attempt holds it. So the publisher takes one message at a
// time, leaving the rest queued where the expirer can still answer them.
// After Close it hands over what is left, then exits.
func (b *Broker) publishLoop() {
	defer close(b.pubDone)
	for {
		it, ok, closed := b.pq.pop()
		if !ok {
			if closed {
				return
			}
			<-b.pubWake
			continue
		}
		b.handOver(it)
	}
}

// handOver gives one message to nats.go and answers its done.
func (b *Broker) handOver(it pubItem) {
	switch {
	case !time.Now().Before(it.deadline):
		it.done(errExpired)
		return
	case !b.Connected():
		it.done(errDisconnected)
		return
	}
	err := b.nc.Publish(it.subject, it.data)
	it.done(b.publishError(err))
}

// publishError turns what nc.Publish returned into the error for done.
// A failed write is taken as a dead connection (see stall).
func (b *Broker) publishError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, nats.ErrConnectionClosed):
		return errClosed
	case errors.Is(err, nats.ErrReconnectBufExceeded):
		// nats.go is reconnecting and buffers nothing (ReconnectBufSize
		// -1); its disconnect callback has not run yet.
		return errDisconnected
	case errors.Is(err, nats.ErrMaxPayload), errors.Is(err, nats.ErrBadSubject):
		return fmt.Errorf("natsbroker: publish: %w: %w", broker.ErrUnavailable, err)
	default:
		// A write error: WriteTimeout expired on a server that stopped
		// reading, or the socket broke. nats.go dropped the message (a
		// partial write closes the connection; a write that wrote nothing
		// discards the buffer), so it never arrives later.
		b.stall(err)
		return fmt.Errorf("natsbroker: write to NATS: %w: %w", broker.ErrUnavailable, err)
	}
}

// stall takes the connection out of use after a write to it failed:
// Connected turns false at once, queued publishes get ErrUnavailable, and
// the interest worker makes nats.go reconnect (a write that timed out
// without writing anything leaves nats.go's connection open, and only
// missed pings would close it, after several PingIntervals). The next
// (re)connect clears the state. It never blocks.
func (b *Broker) stall(err error) {
	if !b.stalled.Swap(true) {
		b.log.Warn("natsbroker: write to NATS failed; treating the connection as down", "err", err)
	}
	b.failQueued(errDisconnected)
	b.forceReconnect.Store(true)
	kick(b.wake)
}

// failQueued answers every queued publish with err.
func (b *Broker) failQueued(err error) {
	answer(b.pq.drain(nil), err)
}

// expireLoop answers the publishes that waited PublishTimeout in the
// queue, even while the publisher is blocked inside nc.Publish. It
// sleeps until the head's deadline (plus PublishTimeout/64, so that a
// queue of messages a microsecond apart costs one wake-up per batch, not
// one each), or until a push into an empty queue. It stops when Close
// closes b.stop, after the publisher has exited.
func (b *Broker) expireLoop() {
	defer b.wg.Done()
	t := time.NewTimer(time.Hour)
	t.Stop()
	defer t.Stop()
	coalesce := b.opts.PublishTimeout / 64
	var buf []pubItem
	for {
		var next time.Time
		buf, next = b.pq.expire(time.Now(), buf[:0])
		answer(buf, errExpired)
		if next.IsZero() {
			select {
			case <-b.stop:
				return
			case <-b.expWake:
			}
			continue
		}
		t.Reset(time.Until(next) + coalesce)
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
	}
}
