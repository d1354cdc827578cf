package jshistory

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Publish stores data as the channel's next message and returns its
// position: Offset is the stream sequence from JetStream's
// acknowledgement (it grows within a channel but skips, as the sequence
// is shared by all channels). The message reaches every node following
// the channel, this one included, through the stream's republish.
//
// It returns within PublishTimeout (or ctx's deadline, if sooner) plus
// what nats.go may block for while its write lock is held by a stalled
// write (WriteTimeout) or a reconnect attempt (ConnectTimeout): against a
// frozen server, at most about PublishTimeout + WriteTimeout +
// ConnectTimeout. Errors wrap broker.ErrUnavailable (or ErrClosed).
//
// What an error means. JetStream answers after storing, so a publish
// whose answer does not come in time may be stored or not. This package
// does what can be done so that an error means "not stored, never
// delivered":
//
//   - nats.go buffers nothing while reconnecting (ReconnectBufSize -1):
//     a publish refused then is never sent later.
//   - On a timeout the connection is reset (forceReconnect; every close
//     is abortive, SO_LINGER 0): what the server had not read yet, in its
//     socket buffer or a frozen proxy's, is discarded by the kernel, not
//     read before the FIN. This is the frozen-server case, and it holds
//     there (TestPublishFrozenServer).
//   - Every publish carries a unique Nats-Msg-Id: nats.go's retries after
//     "no responders" (a stream leader election) and any resend of the
//     same message within the duplicate window are stored once.
//
// What does not hold: a message the server had already read when the
// timeout fired (a live server whose JetStream is slower than
// PublishTimeout, a disk stall) is still stored and delivered after the
// caller got the error. No client can prevent that; JetStream has no
// "store only before" header. Keep PublishTimeout well above the
// stream's store latency; the gateway's error answer (503) tells the
// client the outcome is unknown, and a client that retries may then see
// its message twice.
func (h *History) Publish(ctx context.Context, channel string, data []byte) (Position, error) {
	tok, ok := token(channel)
	if !ok {
		return Position{}, fmt.Errorf("%w: %q", ErrBadChannel, channel)
	}
	if h.isClosed() {
		return Position{}, errClosed
	}
	if !h.nc.IsConnected() {
		return Position{}, errDisconnected
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.PublishTimeout)
	defer cancel()
	if err := h.ensureCurrent(ctx); err != nil {
		return Position{}, err
	}
	gen := h.gen.Load()
	m := &nats.Msg{Subject: h.subj.stored(tok), Data: data, Header: nats.Header{}}
	ack, err := h.js.PublishMsg(ctx, m,
		jetstream.WithMsgID(nuid.Next()),
		jetstream.WithExpectStream(h.cfg.Stream))
	if err != nil {
		switch {
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
			h.forceReconnect(gen)
		case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
			h.staleEpoch()
		}
		return Position{}, h.unavailable("publish to "+channel, err)
	}
	if h.gen.Load() != gen {
		// The answer came over a new connection, maybe from a stream
		// recreated meanwhile: take its epoch before giving the offset.
		if err := h.ensureCurrent(ctx); err != nil {
			return Position{}, err
		}
	}
	return Position{Epoch: h.Epoch(), Offset: ack.Sequence}, nil
}

// forceReconnect resets the connection of generation gen after a publish
// on it timed out; once per connection, however many publishes timed out
// on it. The followers catch up once nats.go has reconnected.
func (h *History) forceReconnect(gen uint64) {
	for {
		f := h.forced.Load()
		if f >= gen {
			return
		}
		if h.forced.CompareAndSwap(f, gen) {
			break
		}
	}
	h.log.Warn("jshistory: publish not acknowledged in time; resetting the NATS connection")
	if err := h.nc.ForceReconnect(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		h.log.Error("jshistory: reconnect after a publish timeout", "err", err)
	}
}

func (h *History) isClosed() bool {
	h.fmu.Lock()
	defer h.fmu.Unlock()
	return h.closed
}
