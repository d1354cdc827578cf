package gateway

import (
	"encoding/json"
	"errors"
	"sync"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/shardgate/shardgate/gateway/broker"
	"github.com/shardgate/shardgate/gateway/history"
	"github.com/shardgate/shardgate/shard"
	"github.com/shardgate/shardgate/shard/pmce"
	"github.com/shardgate/shardgate/shard/protocol"
	"github.com/shardgate/shardgate/shard/wsframe"
)

// errOverloaded: a shard's inbox is full; the message was not queued
// anywhere.
var errOverloaded = errors.New("gateway: overloaded")

// errDraining: the gateway is shutting down and takes no new messages.
var errDraining = errors.New("gateway: draining")

// dispatcher turns a message into one WebSocket frame and hands that same
// frame to every shard. It is the Handler of the node's broker.
//
// With history in memory (hist not nil) the dispatcher is the offsets'
// one authority: under mu, which already orders every publish of the
// node, the store assigns the next offset, the frame is encoded once with
// it, kept in the store, and only then queued on the shards. A shard thus
// never delivers an offset the store does not hold yet, which is what
// lets a recovering subscription drop what its read already counted
// (shard/recovery.go).
//
// dispatcher.mu is taken before Shard.mu (inside Shard.Broadcast) and
// before history.Memory.mu (inside Append): see the lock order in
// gateway.go.
type dispatcher struct {
	mu       sync.Mutex
	shards   []*shard.Shard
	draining bool            // set under mu: nothing is queued after the drain tasks
	hist     *history.Memory // nil: history off

	// Compression (-compression): deflate is nil when off. Set before
	// the first message, read-only after.
	deflate      *pmce.Deflater
	deflateMin   int                // payloads shorter than this go plain (-compression-min-bytes)
	compressions prometheus.Counter // messages compressed: once per message, never per shard
}

// deliver encodes the message once and queues it on every shard, or on
// none when any shard is overloaded.
func (d *dispatcher) deliver(channel string, data json.RawMessage) error {
	_, err := d.deliverReceipt(channel, data)
	return err
}

// deliverReceipt is deliver that also says where the message landed in
// its channel's history (zero without history). It is the memory broker's
// handler.
func (d *dispatcher) deliverReceipt(channel string, data json.RawMessage) (broker.Receipt, error) {
	if d.hist != nil && channel != "" {
		return d.deliverWithHistory(channel, data)
	}
	frames := d.frames(encodeMessage(channel, data))

	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.admitLocked(); err != nil {
		return broker.Receipt{}, err
	}
	for _, s := range d.shards {
		// Cannot fail for a full inbox: we hold mu, so nobody else queues
		// broadcasts, and the shard only ever shortens its inbox meanwhile.
		// ErrClosed cannot happen either: shards close only after
		// startDrain has set draining under mu (Gateway.Shutdown).
		_ = s.BroadcastFrames(channel, 0, frames)
	}
	return broker.Receipt{}, nil
}

// frames adds to a message's plain frame its compressed variant, when
// someone may take it: compression is on, the payload is at least
// -compression-min-bytes, some connection of the node negotiated
// permessage-deflate, and compression makes the frame smaller. This is
// the only place a broadcast is compressed, once per message whatever
// the number of shards and subscribers; each shard then hands every
// deflate subscriber the same compressed bytes (shard.Frames).
//
// Which connections negotiated is counted per node, not per channel: a
// count per channel would cost every subscribe and unsubscribe, and a
// message compressed for nobody costs one compression, not one per
// subscriber.
func (d *dispatcher) frames(plain []byte) shard.Frames {
	f := shard.Frames{Plain: plain}
	if d.deflate == nil {
		return f
	}
	payload := plain[frameHeaderLen(plain):]
	if len(payload) < d.deflateMin || !d.anyDeflate() {
		return f
	}
	f.Deflated = d.deflate.Frame(ws.OpText, payload)
	d.compressions.Inc()
	return f
}

// anyDeflate reports whether any connection of the node negotiated
// permessage-deflate.
func (d *dispatcher) anyDeflate() bool {
	for _, s := range d.shards {
		if s.DeflateConns() > 0 {
			return true
		}
	}
	return false
}

// frameHeaderLen returns the header length of a server frame (unmasked).
func frameHeaderLen(frame []byte) int {
	switch frame[1] & 0x7f {
	case 126:
		return 4
	case 127:
		return 10
	default:
		return 2
	}
}

// deliverWithHistory gives a channel message its offset, keeps it and
// queues it; the frame is encoded once, under mu, since it carries the
// offset.
func (d *dispatcher) deliverWithHistory(channel string, data json.RawMessage) (broker.Receipt, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.admitLocked(); err != nil {
		return broker.Receipt{}, err
	}
	var frame []byte
	pos, err := d.hist.Append(channel, func(offset uint64) ([]byte, int) {
		frame = encodeMessageAt(channel, offset, data)
		return frame, dataStart(frame, data)
	})
	if err != nil {
		return broker.Receipt{}, err
	}
	// Compressed under mu, since the frame carries its offset: history
	// keeps only the plain frame (replays go plain).
	frames := d.frames(frame)
	for _, s := range d.shards {
		_ = s.BroadcastFrames(channel, pos.Offset, frames) // see deliverReceipt
	}
	return broker.Receipt{Offset: pos.Offset, Epoch: pos.Epoch}, nil
}

// deliverAt queues a channel message whose offset was assigned elsewhere
// (JetStream, in a cluster with history): its follower hands this node
// the channel's messages in offset order, one at a time, so they reach
// every shard in that order. The frame is encoded once, outside mu.
func (d *dispatcher) deliverAt(channel string, offset uint64, data json.RawMessage) error {
	frames := d.frames(encodeMessageAt(channel, offset, data))
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.admitLocked(); err != nil {
		return err
	}
	for _, s := range d.shards {
		_ = s.BroadcastFrames(channel, offset, frames) // see deliverReceipt
	}
	return nil
}

// admitLocked refuses a message while draining or when any shard's inbox
// is full, so that a message is queued on every shard or on none. d.mu
// must be held.
func (d *dispatcher) admitLocked() error {
	if d.draining {
		return errDraining
	}
	for _, s := range d.shards {
		if !s.CanBroadcast() {
			return errOverloaded
		}
	}
	return nil
}

// encodeMessage builds a message's frame in one allocation.
func encodeMessage(channel string, data json.RawMessage) []byte {
	n := protocol.MessageLen(channel, data)
	frame := make([]byte, 0, wsframe.HeaderLen(n)+n)
	frame = wsframe.AppendHeader(frame, ws.OpText, n)
	return protocol.AppendMessage(frame, channel, data)
}

// encodeMessageAt builds a channel message's frame with its offset, in
// one allocation.
func encodeMessageAt(channel string, offset uint64, data json.RawMessage) []byte {
	n := protocol.MessageAtLen(channel, offset, data)
	frame := make([]byte, 0, wsframe.HeaderLen(n)+n)
	frame = wsframe.AppendHeader(frame, ws.OpText, n)
	return protocol.AppendMessageAt(frame, channel, offset, data)
}

// dataStart is where data starts in a frame from encodeMessageAt: the data
// is the message object's last member (see protocol.AppendMessageAt).
func dataStart(frame []byte, data json.RawMessage) int {
	n := len(data)
	if n == 0 {
		n = len("null")
	}
	return len(frame) - 1 - n
}

// startDrain marks the dispatcher draining and posts drain tasks; every
// message accepted before stays ahead of them in each shard's inbox.
func (d *dispatcher) startDrain(drain func(*shard.Shard)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.draining = true
	for _, s := range d.shards {
		drain(s)
	}
}

// shardHistory lets shards read a history.Source (shard.History): the
// memory store answers during the call, a networked one later. Messages
// that come without their frame (a source that keeps only data) are
// encoded here, once per read.
type shardHistory struct {
	src history.Source
}

func (h shardHistory) Read(channel string, from *shard.Position, limit int, done func(shard.HistoryPage, error)) {
	answer := func(p history.Page, err error) {
		if err != nil {
			done(shard.HistoryPage{}, err)
			return
		}
		sp := shard.HistoryPage{Epoch: p.Epoch, Latest: p.Latest, Complete: p.Complete}
		if len(p.Messages) > 0 {
			sp.Frames = make([]shard.OffsetFrame, len(p.Messages))
			sp.Frames = sp.Frames[:0]
			for _, m := range p.Messages {
				f := m.Frame
				if f == nil {
					// A networked store holds what anyone allowed on its
					// subjects stored: checked like broker input (the
					// offset is skipped, as offsets may skip).
					if !utf8.Valid(m.Data) || !json.Valid(m.Data) {
						continue
					}
					f = encodeMessageAt(channel, m.Offset, m.Data)
				}
				sp.Frames = append(sp.Frames, shard.OffsetFrame{Offset: m.Offset, Frame: f})
			}
		}
		done(sp, nil)
	}
	if from == nil || from.Epoch == "" {
		// A client's empty epoch matches no history (history.Source takes
		// "" for "any epoch", which only the admin API may ask for).
		h.src.Latest(channel, func(p history.Page, err error) {
			p.Messages, p.Complete = nil, false
			answer(p, err)
		})
		return
	}
	h.src.Since(channel, history.Position{Epoch: from.Epoch, Offset: from.Offset}, limit, answer)
}
