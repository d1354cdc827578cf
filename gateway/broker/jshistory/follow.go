package jshistory

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// catchUpParallel bounds the followers reading the stream at once (after
// a reconnect every follower catches up); catchUpBatch is the messages
// read per request.
const (
	catchUpParallel = 16
	catchUpBatch    = 1000
)

// Follower delivers one channel's messages to this node, in order and
// each once, from a position on. Make one with History.Follow.
//
// How. Live messages come over a plain core NATS subscription to the
// stream's republish of the channel (<prefix>.live.<channel>), one per
// followed channel, like natsbroker's today: the server keeps no consumer
// per channel. Each republished message carries its sequence and the
// sequence of the channel's message before it (Nats-Last-Sequence, read
// by the server when it stored the message). A message whose predecessor
// is at or before the last one delivered is the next one, and is
// delivered; anything else is a gap (a lost link, a message NATS dropped
// for a slow node, a route blip in a NATS cluster). Then, and after every
// reconnect, the follower catches up: it reads the channel from the
// stream (direct get, from the last delivered offset), delivers what it
// missed, and only then takes live messages again, dropping those it has
// already delivered. The one invariant: a message is delivered only when
// everything of its channel between it and the last delivered one was.
//
// Loss. If the stream no longer holds what the follower needs (evicted
// by -history-size or -history-ttl while the link was down), or the
// stream was recreated, lost is called once with ErrLost or
// ErrEpochChanged and the follower ends; the gateway closes the channel's
// subscribers with 4010 (their clients recover through Since) and follows
// again from Latest for subscribers that come back.
//
// State. last, syncing and the rest are under mu. Delivery is serialized
// without a lock held across deliver: the router goroutine delivers only
// while !syncing, a catch-up only while syncing, and only the router
// turns syncing on (so no router delivery is in flight when a catch-up
// starts) and only the catch-up turns it off (after its last delivery).
type Follower struct {
	h       *History
	channel string
	tok     string
	deliver func(offset uint64, data []byte)
	lost    func(error)
	sub     *nats.Subscription // set once in Follow before the follower is shared

	mu      sync.Mutex
	last    uint64 // offset of the last message delivered (or the start); mu
	syncing bool   // a catch-up owns delivery; mu
	running bool   // a catch-up goroutine exists; mu
	again   bool   // the running catch-up must start over (a new connection); mu
	seen    uint64 // highest live sequence dropped while syncing; mu
	done    bool   // stopped or lost: nothing more is delivered; mu
}

// Follow starts delivering the channel's messages after position after
// (from Latest, or the last message a recovery gave) to deliver, and
// returns at once; deliver may be called before Follow has returned.
//
// deliver gets offset and data of each message in ascending order, once,
// one call at a time, from the package's goroutines; data is not reused.
// It must not block: the router that hands every followed channel its
// live messages calls it. lost is called at most once, then nothing more
// is delivered. Neither may block; both may call Stop.
//
// Because the follower reads the stream from after, nothing published
// after that position is missed, whenever NATS registers the
// subscription: the gateway may reply "subscribed" with after's offset as
// soon as Follow returns.
//
// Errors: ErrBadChannel, ErrFollowing (one follower per channel and
// node), ErrEpochChanged (after is of another epoch: read Latest again),
// broker.ErrClosed.
func (h *History) Follow(channel string, after Position, deliver func(offset uint64, data []byte), lost func(error)) (*Follower, error) {
	tok, ok := token(channel)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrBadChannel, channel)
	}
	if after.Epoch != h.Epoch() {
		return nil, fmt.Errorf("%w: position of epoch %q, history is %q", ErrEpochChanged, after.Epoch, h.Epoch())
	}
	f := &Follower{h: h, channel: channel, tok: tok, deliver: deliver, lost: lost, last: after.Offset}
	h.fmu.Lock()
	defer h.fmu.Unlock()
	if h.closed {
		return nil, errClosed
	}
	if _, dup := h.followers[tok]; dup {
		return nil, fmt.Errorf("%w: %q", ErrFollowing, channel)
	}
	// nats.go keeps the subscription while disconnected and sends it on
	// every reconnect.
	sub, err := h.nc.ChanSubscribe(h.subj.live(tok), h.live)
	if err != nil {
		return nil, h.unavailable("subscribe "+channel, err)
	}
	f.sub = sub
	h.followers[tok] = f
	f.mu.Lock()
	f.syncing = true
	f.startLocked()
	f.mu.Unlock()
	return f, nil
}

// Position is the last delivered message's position (or the start): a
// node's new subscriber of a followed channel gets every message after it.
func (f *Follower) Position() Position {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Position{Epoch: f.h.Epoch(), Offset: f.last}
}

// Stop ends the follower and releases its subscription. It does not
// wait: a deliver call already under way may finish after Stop returns,
// none starts after. Stopping twice, or after lost, is harmless.
func (f *Follower) Stop() {
	f.h.fmu.Lock()
	if f.h.followers[f.tok] == f {
		delete(f.h.followers, f.tok)
	}
	f.h.fmu.Unlock()
	f.halt()
}

// halt marks f done and unsubscribes. The caller has removed f from the
// registry (or is closing it).
func (f *Follower) halt() bool {
	f.mu.Lock()
	was := f.done
	f.done = true
	f.mu.Unlock()
	if !was {
		_ = f.sub.Unsubscribe()
	}
	return !was
}

// fail ends f and reports err to lost, once.
func (f *Follower) fail(err error) {
	f.h.fmu.Lock()
	if f.h.followers[f.tok] == f {
		delete(f.h.followers, f.tok)
	}
	f.h.fmu.Unlock()
	if f.halt() {
		f.h.log.Warn("jshistory: follower lost its place", "channel", f.channel, "err", err)
		if f.lost != nil {
			f.lost(err)
		}
	}
}

// loseAll ends every follower with err.
func (h *History) loseAll(err error) {
	h.fmu.Lock()
	fs := make([]*Follower, 0, len(h.followers))
	for _, f := range h.followers {
		fs = append(fs, f)
	}
	h.fmu.Unlock()
	for _, f := range fs {
		f.fail(err)
	}
}

// routeLoop is the router: it hands each republished message to its
// channel's follower and, after a reconnect, makes every follower catch
// up. The catch-ups start here so that no delivery of this goroutine is
// in flight when one starts.
func (h *History) routeLoop() {
	defer h.wg.Done()
	for {
		select {
		case <-h.stop:
			return
		case m := <-h.live:
			tok, ok := h.subj.liveTok(m.Subject)
			if !ok {
				continue
			}
			h.fmu.Lock()
			f := h.followers[tok]
			h.fmu.Unlock()
			if f != nil {
				f.onLive(m)
			}
		case <-h.resyncAll:
			h.fmu.Lock()
			for _, f := range h.followers {
				f.mu.Lock()
				f.syncing = true
				f.startLocked()
				f.mu.Unlock()
			}
			h.fmu.Unlock()
		}
	}
}

// onLive takes one republished message of f's channel. Router only.
func (f *Follower) onLive(m *nats.Msg) {
	seq, err1 := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
	prev, err2 := strconv.ParseUint(m.Header.Get("Nats-Last-Sequence"), 10, 64)
	f.mu.Lock()
	switch {
	case f.done || (err1 == nil && seq <= f.last):
		f.mu.Unlock() // already delivered
		return
	case err1 != nil || err2 != nil:
		// Not a republish (someone published on our subject): read the
		// stream instead.
		f.syncing = true
		f.startLocked()
		f.mu.Unlock()
		return
	case f.syncing:
		f.seen = max(f.seen, seq)
		f.mu.Unlock()
		return
	case prev > f.last:
		// A gap: some message of the channel after last never came.
		f.syncing = true
		f.seen = seq
		f.startLocked()
		f.mu.Unlock()
		return
	}
	f.last = seq
	f.mu.Unlock()
	f.deliver(seq, m.Data)
}

// startLocked makes sure a catch-up runs (or starts over). f.mu held,
// f.syncing set.
func (f *Follower) startLocked() {
	if f.done {
		return
	}
	if f.running {
		f.again = true
		return
	}
	f.running = true
	f.h.wg.Add(1)
	go f.catchUp()
}

// catchUp reads the channel from the stream after f.last until it has
// delivered everything, then hands delivery back to the router. It
// retries on NATS errors (the next reconnect restarts it too).
func (f *Follower) catchUp() {
	defer f.h.wg.Done()
	wait := f.h.cfg.ReconnectWait
	for {
		err := f.catchUpOnce()
		if err == nil {
			return
		}
		f.h.log.Debug("jshistory: catch-up failed; retrying", "channel", f.channel, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-f.h.stop:
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// catchUpOnce is one attempt; nil when delivery is the router's again or
// f is done.
func (f *Follower) catchUpOnce() error {
	h := f.h
	select {
	case h.catchSem <- struct{}{}:
	case <-h.stop:
		return nil
	}
	defer func() { <-h.catchSem }()
	for {
		f.mu.Lock()
		f.again = false
		done := f.done
		f.mu.Unlock()
		if done {
			return nil
		}
		ctx, cancel := context.WithTimeout(h.base, h.cfg.ReadTimeout)
		err := f.readOn(ctx)
		cancel()
		if err != nil {
			return err
		}
		f.mu.Lock()
		switch {
		case f.done:
			f.running = false
			f.mu.Unlock()
			return nil
		case f.again || f.seen > f.last:
			// A new connection, or messages seen live after what was
			// read: read again.
			f.mu.Unlock()
			continue
		}
		f.syncing = false
		f.running = false
		f.mu.Unlock()
		return nil
	}
}

// readOn confirms the subscription with the server, then reads and
// delivers everything after f.last the stream holds now.
//
// The flush first: the server then has the live subscription, so any
// message stored after the reads below is republished to this node and
// seen live (and makes the caller read again if it comes before the
// catch-up ends).
func (f *Follower) readOn(ctx context.Context) error {
	h := f.h
	if err := h.nc.FlushWithContext(ctx); err != nil {
		return h.unavailable("flush", err)
	}
	for {
		f.mu.Lock()
		from, done := f.last, f.done
		f.mu.Unlock()
		if done {
			return nil
		}
		b, err := h.readBatch(ctx, f.tok, from, catchUpBatch+1)
		if err != nil {
			return err
		}
		msgs := b.msgs
		held := from > 0 && len(msgs) > 0 && msgs[0].Offset == from
		if held {
			msgs = msgs[1:]
		} else {
			// The message at from is gone (or from is not one of the
			// channel's): see readAfter for when nothing is missing.
			whole := uint64(len(msgs))+b.pending < uint64(h.cfg.Size)
			if whole {
				first, err := h.firstSeq(ctx)
				if err != nil {
					return err
				}
				whole = first <= from+1
			}
			if !whole {
				f.fail(fmt.Errorf("%w: channel %q after offset %d", ErrLost, f.channel, from))
				return nil
			}
		}
		for _, m := range msgs {
			f.mu.Lock()
			if f.done {
				f.mu.Unlock()
				return nil
			}
			f.last = m.Offset
			f.mu.Unlock()
			f.deliver(m.Offset, m.Data)
		}
		if b.pending == 0 {
			return nil
		}
	}
}

// resyncLoop runs after every reconnect (and NATS dropping live messages
// for this node): it checks the stream first (a NATS restarted without
// its store has lost it: it is recreated and the followers end with
// ErrEpochChanged), then has the router start every follower's catch-up.
func (h *History) resyncLoop() {
	defer h.wg.Done()
	for {
		select {
		case <-h.stop:
			return
		case <-h.resync:
		}
		wait := h.cfg.ReconnectWait
		for {
			ctx, cancel := context.WithTimeout(h.base, h.cfg.ReadTimeout)
			err := h.checkStream(ctx, false)
			cancel()
			if err == nil {
				break
			}
			h.log.Warn("jshistory: checking the history stream after reconnect", "err", err)
			t := time.NewTimer(wait)
			select {
			case <-h.stop:
				t.Stop()
				return
			case <-t.C:
			}
			wait = min(2*wait, 5*time.Second)
		}
		kick(h.resyncAll)
	}
}
