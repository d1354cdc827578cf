package shard

import (
	"bytes"
	"encoding/json"

	"github.com/shardgate/shardgate/shard/protocol"
)

// History and recovery (SPEC "History and recovery").
//
// With Options.History set, every channel message carries an offset
// (inside its frame, encoded once by the gateway) and a subscribe is
// answered only once the channel's history has been read: "subscribed"
// carries the epoch and the latest offset, and a subscribe that asked to
// recover gets the messages it missed right after it.
//
// The read is asynchronous (the history may be across the network) and
// races with live delivery. A subscription therefore starts out in its
// channel's recovering list instead of its subscriber list:
//
//	reading ──result──► settling ──first live frame past the floor──► subscriber
//
//   - reading: live frames of the channel for this connection are kept,
//     with their offsets, charged against -send-queue-bytes like queued
//     frames (over it: slow consumer).
//   - the result is applied on the shard goroutine: "subscribed", the
//     replay (offsets after the client's), then the kept live frames whose
//     offsets are past both: merged by offset, duplicates dropped.
//   - settling: the floor is the highest offset the client has been sent
//     or told of. A live frame at or below it was queued before the read
//     saw it (the node's store takes a message before the shards do) and
//     is dropped; the first one past it makes the connection an ordinary
//     subscriber, since live frames of a channel arrive in offset order.
//
//   - a read must answer at least as far as the channel's last offset on
//     the shard when the subscription arrived (what was delivered before
//     it joined, neither in a page that stops short nor kept). A
//     networked history may answer from a replica behind its leader;
//     such a read is made again (a few times at most), the kept frames
//     staying.
//
// So a recovering client gets every message after its offset once, in
// order, and never an old one after a newer one. The plain path pays
// nothing: an ordinary subscriber is in the subscriber list as before, a
// connection carries no field for history, and a broadcast looks at the
// recovering list only when it is not empty. The recovering list is
// indexed from subRef.pos as -1-pos, so leaving stays O(1).

// Position is a place in a channel's history: its epoch and an offset.
type Position struct {
	Epoch  string
	Offset uint64
}

// OffsetFrame is a channel message's encoded frame with its offset. The
// frame is shared and read-only, like a broadcast's.
type OffsetFrame struct {
	Offset uint64
	Frame  []byte
}

// HistoryPage is the answer to History.Read.
type HistoryPage struct {
	Epoch  string // the history's epoch now
	Latest uint64 // the channel's latest offset at the time of the read
	// Frames are the messages after the position asked for, ascending;
	// Complete says that they are all of them (at most the limit), so
	// the client can recover.
	Frames   []OffsetFrame
	Complete bool
}

// History reads channel history for subscribes. Read reads the latest
// offset of channel, and, when from is not nil, the messages after it
// (at most limit: more makes the page incomplete). done is called
// exactly once, on any goroutine, possibly before Read returns, and must
// not block. Read itself is called on the shard goroutine and must not
// block either: a networked history answers later.
type History interface {
	Read(channel string, from *Position, limit int, done func(HistoryPage, error))
}

// maxRereads bounds the reads of one subscription whose answer was older
// than what the shard had delivered (see recovered); past it the last
// answer is taken.
const maxRereads = 5

// errNoHistory answers a subscribe whose channel history could not be
// read; the subscription is undone.
var errNoHistory = &protocol.Error{Code: protocol.CodeUnavailable, Message: "subscribe failed: history unavailable"}

// recovery is one subscription on its way in (see the file comment).
// It exists only until the connection joins the channel's subscribers.
type recovery struct {
	c    *conn
	ch   *channel
	id   json.RawMessage // the subscribe's id (a copy)
	from *Position       // the client's recover position; nil for a plain subscribe
	// more are the ids of repeated subscribes that arrived while reading:
	// each gets its own "subscribed" once the first is answered.
	more []json.RawMessage

	started bool // the read was asked for (the channel is ready)
	settled bool // the result was applied; floor is set
	done    bool // left the recovering list: a late result is ignored
	over    bool // the kept frames went over the send-queue cap

	// seen is the channel's last offset on this shard when the
	// subscription arrived: what was delivered before it joined, so a
	// read must answer at least that far (see recovered).
	seen    uint64
	rereads uint8
	kept    []OffsetFrame // reading: live frames, in arrival (= offset) order
	charged int           // what kept costs, as queued frames would
	floor   uint64        // settling: the highest offset the client has

	page HistoryPage // written by the read's callback, read after the inbox hands it over
	err  error
}

// subscribeWithHistory runs a subscribe when the shard has history.
func (s *Shard) subscribeWithHistory(c *conn, req protocol.Request) {
	for _, r := range c.subs {
		if r.ch.name != req.Channel {
			continue
		}
		// Subscribing twice is not an error. The repeat is answered with
		// where the client stands; it does not recover again.
		offset := r.ch.last
		if r.pos < 0 {
			rec := r.ch.recovering[-1-r.pos]
			if !rec.settled {
				rec.more = append(rec.more, bytes.Clone(req.ID))
				return
			}
			offset = max(offset, rec.floor) // what the client was told
		}
		s.replySubscribed(c, r.ch.name, req.ID, r.ch.epoch, offset, nil, false)
		return
	}
	if s.opts.MaxSubscriptions > 0 && len(c.subs) >= s.opts.MaxSubscriptions {
		s.replyError(c, req.ID, errTooMany)
		return
	}
	ch := s.channels[req.Channel]
	if ch == nil {
		ch = s.openChannel(req.Channel)
	}
	rec := &recovery{c: c, ch: ch, id: bytes.Clone(req.ID), seen: ch.last}
	if req.Recover != nil {
		rec.from = &Position{Epoch: req.Recover.Epoch, Offset: req.Recover.Offset}
	}
	c.subs = append(c.subs, subRef{ch: ch, pos: int32(-1 - len(ch.recovering))})
	ch.recovering = append(ch.recovering, rec)
	s.opts.Metrics.Subscriptions.Inc()
	if ch.ready {
		s.startRead(rec)
	}
	// Otherwise channelReady starts it once the broker has the interest.
}

// startRead asks the history for rec's page. The answer always comes
// back through the inbox, even when it is known during the call: the
// broadcasts the store had taken when it answered are then already ahead
// of it in the inbox, so settling has less to drop.
func (s *Shard) startRead(rec *recovery) {
	rec.started = true
	r := &asyncResult{kind: resultRecovery, rec: rec}
	s.opts.History.Read(rec.ch.name, rec.from, s.opts.RecoverMax, func(p HistoryPage, err error) {
		rec.page, rec.err = p, err
		_ = s.push(task{kind: taskResult, result: r}, false)
	})
}

// startReads starts the reads of ch's subscriptions that waited for its
// interest, or undoes them when the interest failed.
func (s *Shard) startReads(ch *channel, err error) {
	// Backwards: removeSub moves the last recovery into the removed one's
	// place, and that one has been looked at already.
	for i := len(ch.recovering) - 1; i >= 0; i-- {
		if i >= len(ch.recovering) {
			continue
		}
		rec := ch.recovering[i]
		if rec.started {
			continue
		}
		if err == nil {
			s.startRead(rec)
			continue
		}
		s.leaveRecovering(rec)
		if rec.c.state == stateOpen {
			s.replyError(rec.c, rec.id, errNoInterest)
		}
	}
}

// recovered applies a read's result: the reply, the replay, then the live
// frames kept meanwhile, each only past what the client already has.
func (s *Shard) recovered(rec *recovery) {
	if rec.done {
		return // unsubscribed, closed or revoked meanwhile
	}
	c, ch := rec.c, rec.ch
	if rec.err != nil {
		s.leaveRecovering(rec)
		s.replyError(c, rec.id, errNoHistory)
		s.flushStats()
		return
	}
	p := rec.page
	if p.Latest < rec.seen && (ch.epoch == "" || p.Epoch == ch.epoch) && rec.rereads < maxRereads {
		// The read answered from before messages this shard had already
		// delivered when the subscription arrived: a replica behind its
		// leader (JetStream direct gets). Those messages are neither in
		// the page nor kept, so answering now would leave a gap: read
		// again; the kept frames stay.
		rec.rereads++
		s.startRead(rec)
		return
	}
	ok := rec.from != nil && p.Complete
	if p.Epoch != "" {
		ch.epoch = p.Epoch
	}
	s.replySubscribed(c, ch.name, rec.id, p.Epoch, p.Latest, rec.from, ok)
	for _, id := range rec.more {
		s.replySubscribed(c, ch.name, id, p.Epoch, p.Latest, nil, false)
	}
	floor := p.Latest
	if ok {
		for _, f := range p.Frames {
			if f.Offset <= rec.from.Offset || c.state != stateOpen {
				continue
			}
			s.stats.sentMsgs++
			s.send(c, f.Frame, nil, false)
			floor = max(floor, f.Offset)
		}
	}
	kept, over := rec.kept, rec.over
	rec.kept, rec.more, rec.page, rec.charged = nil, nil, HistoryPage{}, 0
	rec.settled, rec.floor = true, floor
	if over {
		s.close(c, disconnectSlowConsumer)
		s.flushStats()
		return
	}
	live := false
	for _, f := range kept {
		if f.Offset <= rec.floor || c.state != stateOpen {
			continue
		}
		s.stats.sentMsgs++
		s.send(c, f.Frame, nil, false)
		rec.floor, live = f.Offset, true
	}
	if live && !rec.done {
		// Live frames past the floor have arrived: every later one is
		// newer still.
		s.promote(rec)
	}
	s.flushStats()
}

// feedRecovering hands one broadcast (cast, of ch, at offset) to ch's
// recovering subscriptions: kept while reading; while settling dropped
// when not past the floor, or else linked into the batch like any
// delivery, the connection becoming an ordinary subscriber. It does no
// I/O (see link): a connection whose kept frames go over the cap is
// closed by closeOverflowed after the batch is written.
func (s *Shard) feedRecovering(cast int32, ch *channel, offset uint64, frame []byte) {
	for i := 0; i < len(ch.recovering); {
		rec := ch.recovering[i]
		c := rec.c
		switch {
		case c.state != stateOpen:
		case !rec.settled:
			if rec.over {
				break
			}
			cost := frameCost(frame, nil)
			queued := 0
			if c.out != nil {
				queued = c.out.charged
			}
			if queued+rec.charged+cost > s.opts.SendQueueBytes {
				rec.over = true
				rec.kept, rec.charged = nil, 0
				s.overflowed = append(s.overflowed, c)
				break
			}
			rec.kept = append(rec.kept, OffsetFrame{Offset: offset, Frame: frame})
			rec.charged += cost
		case offset <= rec.floor:
			// Queued before the read saw it: the client has it already.
		default:
			s.linkOne(cast, c)
			s.promote(rec) // moves the last recovery into slot i
			continue
		}
		i++
	}
}

// closeOverflowed closes, as slow consumers, the connections whose kept
// frames went over the cap during the last batch.
func (s *Shard) closeOverflowed() {
	for _, c := range s.overflowed {
		s.close(c, disconnectSlowConsumer)
	}
	clear(s.overflowed)
	s.overflowed = s.overflowed[:0]
}

// promote moves rec's connection from its channel's recovering list to
// its subscribers.
func (s *Shard) promote(rec *recovery) {
	ch, c := rec.ch, rec.c
	i := s.dropRecovering(rec)
	c.subs[i].pos = int32(len(ch.subs))
	ch.subs = append(ch.subs, c)
}

// leaveRecovering ends a subscription that is still recovering, like an
// unsubscribe.
func (s *Shard) leaveRecovering(rec *recovery) {
	for i, r := range rec.c.subs {
		if r.ch == rec.ch {
			s.removeSub(rec.c, i)
			return
		}
	}
}

// dropRecovering takes rec out of its channel's recovering list (the
// last one takes its place) and returns the index of rec's subRef in its
// connection's subs.
func (s *Shard) dropRecovering(rec *recovery) int {
	ch := rec.ch
	at := -1
	for i, r := range rec.c.subs {
		if r.ch == ch {
			at = i
			break
		}
	}
	pos := -1 - rec.c.subs[at].pos
	last := len(ch.recovering) - 1
	moved := ch.recovering[last]
	ch.recovering[pos] = moved
	if moved != rec {
		for j := range moved.c.subs {
			if moved.c.subs[j].ch == ch {
				moved.c.subs[j].pos = -1 - pos
				break
			}
		}
	}
	ch.recovering[last] = nil
	ch.recovering = ch.recovering[:last]
	if last == 0 {
		ch.recovering = nil // the broadcast path tests for an empty list
	}
	rec.done = true
	rec.kept = nil
	return at
}

// replySubscribed answers a subscribe on a channel with history. from is
// the client's recover position (nil: it did not ask, and the reply has
// no "recovered").
func (s *Shard) replySubscribed(c *conn, channel string, id json.RawMessage, epoch string, offset uint64, from *Position, recovered bool) {
	if c.state != stateOpen {
		return
	}
	b := s.pool.Get(replyHeadroom)
	*b = protocol.AppendSubscribed(*b, channel, id, epoch, offset, from != nil, recovered)
	s.sendText(c, b)
}

// linkOne appends one delivery of cast to c (see link).
func (s *Shard) linkOne(cast int32, c *conn) {
	idx := int32(len(s.batch))
	s.batch = append(s.batch, delivery{cast: cast, next: -1})
	if c.batchHead < 0 {
		c.batchHead = idx
		s.dirty = append(s.dirty, c)
	} else {
		s.batch[c.batchTail].next = idx
	}
	c.batchTail = idx
}
