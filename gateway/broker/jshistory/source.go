package jshistory

import (
	"context"
	"fmt"
	"time"

	"github.com/shardgate/shardgate/gateway/history"
)

// Source adapts h to the gateway's history.Source: each read runs on a
// goroutine of its own, bounded by timeout, and answers through done, so
// a shard that asks never waits. Errors wrap history.ErrUnavailable.
// Data is the stored JSON; Frame is left nil (the gateway encodes it).
func (h *History) Source(timeout time.Duration) history.Source {
	return source{h: h, timeout: timeout}
}

type source struct {
	h       *History
	timeout time.Duration
}

var _ history.Source = source{}

func (s source) run(done history.Done, read func(ctx context.Context) (history.Page, error)) {
	go func() {
		ctx, cancel := context.WithTimeout(s.h.base, s.timeout)
		defer cancel()
		p, err := read(ctx)
		if err != nil {
			err = fmt.Errorf("%w: %w", history.ErrUnavailable, err)
		}
		done(p, err)
	}()
}

func page(epoch string, latest uint64, msgs []Message) history.Page {
	p := history.Page{Epoch: epoch, Latest: latest, Messages: make([]history.Message, len(msgs))}
	for i, m := range msgs {
		p.Messages[i] = history.Message{Offset: m.Offset, Data: m.Data}
	}
	return p
}

// The gateway's reads announce a channel's offset to clients, and the
// SPEC gives a channel with no message offset 0; History.Latest answers
// the stream's position there instead (what a Follow must start from), so
// the reads here use heldLatest: the last message the channel holds, or 0.
func (s source) Latest(channel string, done history.Done) {
	s.run(done, func(ctx context.Context) (history.Page, error) {
		pos, err := s.h.heldLatest(ctx, channel)
		return history.Page{Epoch: pos.Epoch, Latest: pos.Offset}, err
	})
}

func (s source) Since(channel string, from history.Position, limit int, done history.Done) {
	s.run(done, func(ctx context.Context) (history.Page, error) {
		// Latest first, then the messages: a message stored between the
		// two reads is then in the page (and the page's latest covers
		// it). The other order announced a latest past messages the page
		// did not hold, and the shard, which drops live frames at or
		// below what it announced, lost them: the chaos run caught it
		// (bench/results/2026-11-30-chaos.md).
		latest, err := s.h.heldLatest(ctx, channel)
		if err != nil {
			return history.Page{}, err
		}
		msgs, whole, err := s.h.Since(ctx, channel, Position(from), limit)
		if err != nil {
			return history.Page{}, err
		}
		if n := len(msgs); n > 0 && msgs[n-1].Offset > latest.Offset {
			latest.Offset = msgs[n-1].Offset
		}
		p := page(latest.Epoch, latest.Offset, msgs)
		p.Complete = whole && (from.Epoch == "" || from.Epoch == latest.Epoch)
		return p, nil
	})
}

func (s source) Last(channel string, n int, done history.Done) {
	s.run(done, func(ctx context.Context) (history.Page, error) {
		msgs, pos, err := s.h.Last(ctx, channel, n)
		if err != nil {
			return history.Page{}, err
		}
		return page(pos.Epoch, pos.Offset, msgs), nil
	})
}
