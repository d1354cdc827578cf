package jshistory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Reads use JetStream's direct get ($JS.API.DIRECT.GET.<stream>), not a
// consumer: one request and no server state. A batch request is served
// under the stream's read lock (nats-server v2.15 stream.go,
// getDirectRequest, isolateMu), so one batch is a snapshot: nothing is
// stored or evicted between its messages, and its end (EOB) says how many
// of the channel's messages are left after it (Nats-Num-Pending).

// directReq is nats-server's JSApiMsgGetRequest, the fields used here.
type directReq struct {
	Seq     uint64 `json:"seq,omitempty"`
	LastFor string `json:"last_by_subj,omitempty"`
	NextFor string `json:"next_by_subj,omitempty"`
	Batch   int    `json:"batch,omitempty"`
}

// batch is what one direct batch get returned.
type batch struct {
	msgs    []Message // ascending stream sequence
	pending uint64    // the channel's messages after the last one returned
}

// readBatch returns up to n messages of the channel with token tok whose
// sequence is at least from (from 0: from the oldest), as one snapshot.
func (h *History) readBatch(ctx context.Context, tok string, from uint64, n int) (batch, error) {
	req := directReq{Seq: from, NextFor: h.subj.stored(tok), Batch: n}
	var b batch
	err := h.direct(ctx, req, func(m *nats.Msg) (bool, error) {
		switch m.Header.Get("Status") {
		case "":
		case "204": // EOB
			p, err := strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
			if err != nil {
				return false, fmt.Errorf("jshistory: bad end of batch: %w", err)
			}
			b.pending = p
			return false, nil
		case "404": // nothing at or after from
			return false, nil
		default:
			return false, fmt.Errorf("jshistory: direct get: %s %s", m.Header.Get("Status"), m.Header.Get("Description"))
		}
		seq, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
		if err != nil {
			return false, fmt.Errorf("jshistory: direct get without sequence: %w", err)
		}
		b.msgs = append(b.msgs, Message{Offset: seq, Data: m.Data})
		return true, nil
	})
	return b, err
}

// lastSeq is the sequence of the channel's newest held message, 0 if it
// holds none.
func (h *History) lastSeq(ctx context.Context, tok string) (uint64, error) {
	var seq uint64
	err := h.direct(ctx, directReq{LastFor: h.subj.stored(tok)}, func(m *nats.Msg) (bool, error) {
		switch m.Header.Get("Status") {
		case "":
		case "404":
			return false, nil
		default:
			return false, fmt.Errorf("jshistory: direct get: %s %s", m.Header.Get("Status"), m.Header.Get("Description"))
		}
		var err error
		seq, err = strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
		if err != nil {
			return false, fmt.Errorf("jshistory: direct get without sequence: %w", err)
		}
		return false, nil
	})
	return seq, err
}

// direct sends req and hands each reply to each until it returns false.
// An empty reply inbox of our own per request, so a batch's messages are
// read in order without mixing with another request's.
func (h *History) direct(ctx context.Context, req directReq, each func(*nats.Msg) (bool, error)) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	inbox := h.nc.NewInbox()
	sub, err := h.nc.SubscribeSync(inbox)
	if err != nil {
		return h.unavailable("direct get", err)
	}
	defer sub.Unsubscribe()
	if err := h.nc.PublishRequest("$JS.API.DIRECT.GET."+h.cfg.Stream, inbox, body); err != nil {
		return h.unavailable("direct get", err)
	}
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			if errors.Is(err, nats.ErrNoResponders) {
				h.staleEpoch() // no stream: check it on the next answer
			}
			return h.unavailable("direct get", err)
		}
		if m.Header.Get("Status") == "503" { // no responders
			h.staleEpoch()
			return h.unavailable("direct get", nats.ErrNoResponders)
		}
		more, err := each(m)
		if err != nil || !more {
			return err
		}
	}
}

// streamState is the stream's state now (one STREAM.INFO request).
func (h *History) streamState(ctx context.Context) (jetstream.StreamState, error) {
	s, err := h.js.Stream(ctx, h.cfg.Stream)
	if err != nil {
		return jetstream.StreamState{}, h.unavailable("stream info", err)
	}
	return s.CachedInfo().State, nil
}

// firstSeq is the stream's oldest held sequence.
func (h *History) firstSeq(ctx context.Context) (uint64, error) {
	st, err := h.streamState(ctx)
	return st.FirstSeq, err
}

// readAfter reads the channel's messages after offset from, up to n, and
// says whether they are all there is after from: whole is true when no
// message of the channel after from has been evicted and none is left
// beyond n.
//
// What the stream holds of a channel is a suffix of what was published
// to it (every limit removes the oldest first; see wantConfig). So:
//
//   - If the message at from is still held, nothing after it was
//     evicted. The batch starts at from itself to see it in the same
//     snapshot.
//   - Otherwise (from evicted, or 0): an evicted message after from
//     would have been removed either from the front of the stream (age,
//     bytes: then the stream's first sequence is past from+1) or by the
//     per-channel limit (then Size newer messages of the channel are
//     held, all after from). Neither true: nothing was evicted. Either
//     true: not whole; this is conservative, so a client whose last
//     message is older than the oldest in the stream gets recovered:false
//     even if its channel was quiet since, and one that missed exactly
//     Size messages does too.
func (h *History) readAfter(ctx context.Context, tok string, from uint64, n int) (msgs []Message, whole bool, err error) {
	b, err := h.readBatch(ctx, tok, from, n+1)
	if err != nil {
		return nil, false, err
	}
	held := from > 0 && len(b.msgs) > 0 && b.msgs[0].Offset == from
	msgs = b.msgs
	if held {
		msgs = msgs[1:]
	}
	if len(msgs) > n {
		return msgs[:n], false, nil
	}
	if b.pending > 0 {
		return msgs, false, nil
	}
	if held {
		return msgs, true, nil
	}
	if uint64(len(msgs)) >= uint64(h.cfg.Size) {
		return msgs, false, nil
	}
	first, err := h.firstSeq(ctx)
	if err != nil {
		return nil, false, err
	}
	return msgs, first <= from+1, nil
}

// Latest is the channel's position now: the offset of its newest held
// message; for a channel holding none, the stream's last sequence (every
// later message of the channel is after it, and a recovery from it is
// whole for as long as the stream holds messages that old; 0 would make
// every such recovery fail once the stream's first messages expired, see
// readAfter). Only a stream that never held a message answers 0.
//
// The stream's sequence is read before the channel is found empty, so a
// message stored in between is after the position returned.
func (h *History) Latest(ctx context.Context, channel string) (Position, error) {
	tok, ok := token(channel)
	if !ok {
		return Position{}, fmt.Errorf("%w: %q", ErrBadChannel, channel)
	}
	if err := h.ensureCurrent(ctx); err != nil {
		return Position{}, err
	}
	seq, err := h.lastSeq(ctx, tok)
	if err != nil || seq > 0 {
		return Position{Epoch: h.Epoch(), Offset: seq}, err
	}
	st, err := h.streamState(ctx)
	if err != nil {
		return Position{}, err
	}
	if seq, err = h.lastSeq(ctx, tok); err != nil || seq > 0 {
		return Position{Epoch: h.Epoch(), Offset: seq}, err
	}
	return Position{Epoch: h.Epoch(), Offset: st.LastSeq}, nil
}

// heldLatest is the offset of the newest message channel holds, 0 when
// it holds none (SPEC: a channel with no message has offset 0). Unlike
// Latest, it never answers the stream's position.
func (h *History) heldLatest(ctx context.Context, channel string) (Position, error) {
	tok, ok := token(channel)
	if !ok {
		return Position{}, fmt.Errorf("%w: %q", ErrBadChannel, channel)
	}
	if err := h.ensureCurrent(ctx); err != nil {
		return Position{}, err
	}
	seq, err := h.lastSeq(ctx, tok)
	return Position{Epoch: h.Epoch(), Offset: seq}, err
}

// Since returns the channel's messages after from.Offset in ascending
// order, at most limit of them, and whether they are complete: from's
// epoch is the current one, no message after from.Offset was evicted (see
// readAfter for when that is known) and there are no more than limit.
// Incomplete answers may carry messages; a recovering client must not be
// given them as a recovery. An empty from.Epoch matches the current one
// (the admin API's since=N).
func (h *History) Since(ctx context.Context, channel string, from Position, limit int) ([]Message, bool, error) {
	tok, ok := token(channel)
	if !ok {
		return nil, false, fmt.Errorf("%w: %q", ErrBadChannel, channel)
	}
	if err := h.ensureCurrent(ctx); err != nil {
		return nil, false, err
	}
	if from.Epoch == "" {
		from.Epoch = h.Epoch() // the admin API's since=N: any epoch
	}
	if from.Epoch != h.Epoch() || limit <= 0 {
		return nil, false, nil
	}
	msgs, whole, err := h.readAfter(ctx, tok, from.Offset, limit)
	if err != nil {
		return nil, false, err
	}
	// The epoch again: a stream recreated during the read would have
	// answered with another stream's messages.
	return msgs, whole && from.Epoch == h.Epoch(), nil
}

// Last returns the channel's newest n messages in ascending order, and
// its position (for GET /api/history).
func (h *History) Last(ctx context.Context, channel string, n int) ([]Message, Position, error) {
	tok, ok := token(channel)
	if !ok {
		return nil, Position{}, fmt.Errorf("%w: %q", ErrBadChannel, channel)
	}
	if err := h.ensureCurrent(ctx); err != nil {
		return nil, Position{}, err
	}
	epoch := h.Epoch()
	// A channel holds at most Size messages: read them all, keep the tail.
	var all []Message
	var last uint64
	from := uint64(0)
	for {
		b, err := h.readBatch(ctx, tok, from, int(min(h.cfg.Size, 10000)))
		if err != nil {
			return nil, Position{}, err
		}
		if len(b.msgs) > 0 {
			last = b.msgs[len(b.msgs)-1].Offset
		}
		all = append(all, b.msgs...)
		if len(all) > max(n, 0) {
			all = all[len(all)-max(n, 0):]
		}
		if b.pending == 0 || len(b.msgs) == 0 {
			break
		}
		from = b.msgs[len(b.msgs)-1].Offset + 1
	}
	return all, Position{Epoch: epoch, Offset: last}, nil
}
