package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/shardgate/shardgate/gateway/broker"
	"github.com/shardgate/shardgate/gateway/broker/jshistory"
	"github.com/shardgate/shardgate/gateway/broker/natsbroker"
)

// historyBroker is the broker of a cluster with history (-broker nats://
// and -history-size): channel messages go through the JetStream stream
// (jshistory), which gives each its offset, and reach every node through
// that node's followers; messages to everyone and disconnect requests stay
// on natsbroker. natsbroker is never asked to subscribe to a channel,
// or a node would deliver each message twice.
//
// Publishing. Publish and PublishReceipt must not block (a shard calls
// Publish for its clients), and a JetStream publish waits for the
// stream's acknowledgement. So a publish is queued on one of
// publishWorkers workers, chosen by its channel, each publishing one
// message at a time: messages of one channel from one goroutine keep
// their order (they keep it in the stream too, since one worker sends
// them one after the other); messages to different channels may be
// stored in another order than they were published. A publish waits in
// its queue at most its timeout: past it, it is answered unavailable and
// never sent.
//
// Interest. The first local subscriber of a channel (Interest true) reads
// its Latest position and starts a Follower from it, on a goroutine of
// its own; ready is answered once the follower runs, so the shard's own
// read of Latest, made after ready, is at or past where the follower
// started and every message after it reaches the shard. The last one
// leaving stops the follower, also off the caller's goroutine (Stop
// unsubscribes, which may wait for nats.go's lock during a reconnect);
// a new follower of the channel waits until the old one has stopped.
//
// Loss. A follower that lost its place (ErrLost, ErrEpochChanged), or
// whose message the node could not take (every shard's inbox must accept
// it, or a subscriber would miss it), ends its session: nothing more of it
// reaches the dispatcher, and lost (Gateway.channelLost) closes the
// channel's subscribers with 4010 and registers the interest anew, which
// starts a new follower from Latest after those closes are queued.
//
// Locks: historyBroker.mu guards follows and halting; session.mu is held
// across a delivery to the dispatcher (session.mu → dispatcher.mu), so
// that once a session has ended none of its messages reaches a shard.
type historyBroker struct {
	nats    *natsbroker.Broker
	h       *jshistory.History
	deliver func(channel string, offset uint64, data json.RawMessage) error
	lost    func(channel string)
	reject  func(reason string)
	log     *slog.Logger

	maxMessageBytes int
	publishTimeout  time.Duration
	readTimeout     time.Duration

	queues []chan pubJob
	stop   chan struct{}
	ctx    context.Context // cancelled by Close: ends reads and publishes under way
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	follows map[string]*follow  // channel → the node's following of it
	halting map[string]*session // channel → a session whose Stop still runs
}

// publishWorkers is how many JetStream publishes a node has in flight at
// once; publishQueueLen how many may wait for each worker.
const (
	publishWorkers  = 8
	publishQueueLen = 1024
)

// pubJob is one queued channel publish.
type pubJob struct {
	channel  string
	data     []byte // a copy
	deadline time.Time
	done     func(broker.Receipt, error)
}

// follow is the node's following of one channel. Guarded by
// historyBroker.mu.
type follow struct {
	want     bool          // the node has subscribers (the last Interest said so)
	starting bool          // a starter goroutine reads Latest and starts a follower
	ready    []broker.Done // answered by the starter
	sess     *session      // the running follower; nil while starting
}

// session is one Follower's life. Its deliveries and its end are
// serialized by mu.
type session struct {
	mu    sync.Mutex
	f     *jshistory.Follower // mu; set by the starter once Follow returned
	ended bool                // mu; nothing more is delivered
	// settled is closed once what ending the session entails is done
	// (the lost handler ran, or Stop returned): a new follower of the
	// channel starts only after it.
	settled chan struct{}
}

func newHistoryBroker(nb *natsbroker.Broker, h *jshistory.History, cfg Config, log *slog.Logger,
	deliver func(string, uint64, json.RawMessage) error, lost func(string), reject func(string)) *historyBroker {
	b := &historyBroker{
		nats: nb, h: h, deliver: deliver, lost: lost, reject: reject, log: log,
		maxMessageBytes: cfg.MaxMessageBytes,
		publishTimeout:  2 * time.Second,
		readTimeout:     5 * time.Second,
		stop:            make(chan struct{}),
		follows:         make(map[string]*follow),
		halting:         make(map[string]*session),
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.queues = make([]chan pubJob, publishWorkers)
	for i := range b.queues {
		b.queues[i] = make(chan pubJob, publishQueueLen)
		b.wg.Add(1)
		go b.publishLoop(b.queues[i])
	}
	return b
}

var (
	_ broker.Broker           = (*historyBroker)(nil)
	_ broker.ReceiptPublisher = (*historyBroker)(nil)
)

// Publish implements broker.Broker.
func (b *historyBroker) Publish(channel string, data json.RawMessage, done broker.Done) {
	b.PublishReceipt(channel, data, func(_ broker.Receipt, err error) { done(err) })
}

// PublishReceipt queues a channel message for JetStream; done gets the
// offset from the acknowledgement. A message to everyone goes through
// natsbroker and has no receipt.
func (b *historyBroker) PublishReceipt(channel string, data json.RawMessage, done func(broker.Receipt, error)) {
	if channel == "" {
		b.nats.Publish(channel, data, func(err error) { done(broker.Receipt{}, err) })
		return
	}
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		done(broker.Receipt{}, broker.ErrClosed)
		return
	}
	if !b.h.Connected() {
		done(broker.Receipt{}, fmt.Errorf("gateway: history stream: %w", broker.ErrUnavailable))
		return
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(channel))
	job := pubJob{channel: channel, data: append([]byte(nil), data...), deadline: time.Now().Add(b.publishTimeout), done: done}
	select {
	case b.queues[h.Sum32()%publishWorkers] <- job:
	default:
		done(broker.Receipt{}, fmt.Errorf("gateway: history publish queue full: %w", broker.ErrUnavailable))
	}
}

// publishLoop publishes one queue's messages one at a time. What waited
// past its deadline is answered unavailable and never sent; on Close what
// is left is answered closed.
func (b *historyBroker) publishLoop(q chan pubJob) {
	defer b.wg.Done()
	for {
		select {
		case <-b.stop:
			for {
				select {
				case job := <-q:
					job.done(broker.Receipt{}, broker.ErrClosed)
				default:
					return
				}
			}
		case job := <-q:
			if !time.Now().Before(job.deadline) {
				job.done(broker.Receipt{}, fmt.Errorf("gateway: history publish waited too long: %w", broker.ErrUnavailable))
				continue
			}
			ctx, cancel := context.WithDeadline(b.ctx, job.deadline)
			pos, err := b.h.Publish(ctx, job.channel, job.data)
			cancel()
			job.done(broker.Receipt{Offset: pos.Offset, Epoch: pos.Epoch}, err)
		}
	}
}

// Interest implements broker.Broker: the first local subscriber starts
// following the channel, the last one leaving stops it (see the type).
// It never blocks.
func (b *historyBroker) Interest(channel string, active bool, ready broker.Done) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		if active {
			ready(broker.ErrClosed)
		}
		return
	}
	fo := b.follows[channel]
	if !active {
		if fo == nil {
			b.mu.Unlock()
			return
		}
		fo.want = false
		if !fo.starting {
			delete(b.follows, channel)
			if fo.sess != nil {
				b.haltLocked(channel, fo.sess)
			}
		}
		b.mu.Unlock()
		return
	}
	if fo == nil {
		fo = &follow{}
		b.follows[channel] = fo
	}
	fo.want = true
	if fo.sess != nil && !fo.starting {
		b.mu.Unlock()
		ready(nil)
		return
	}
	fo.ready = append(fo.ready, ready)
	if !fo.starting {
		fo.starting = true
		b.wg.Add(1)
		go b.start(channel, fo)
	}
	b.mu.Unlock()
}

// start reads the channel's Latest and follows it from there, then
// answers the readies that waited. A session that ended before its
// Follow returned is stopped and started over.
func (b *historyBroker) start(channel string, fo *follow) {
	defer b.wg.Done()
	var (
		s   *session
		err error
	)
	for {
		b.mu.Lock()
		prev := b.halting[channel]
		b.mu.Unlock()
		if prev != nil {
			select {
			case <-prev.settled:
			case <-b.stop:
			}
		}
		if b.ctx.Err() != nil {
			err = broker.ErrClosed
			break
		}
		s, err = b.follow(channel)
		if err != nil || s.register() {
			break
		}
		// Lost or overloaded during Follow: once that is handled (the
		// channel's subscribers closed), follow again.
		select {
		case <-s.settled:
		case <-b.stop:
		}
		s = nil
	}
	b.mu.Lock()
	fo.starting = false
	readies := fo.ready
	fo.ready = nil
	switch {
	case b.closed:
		err = broker.ErrClosed
		b.stopSessionLocked(channel, fo, s)
	case err != nil:
		if !fo.want && b.follows[channel] == fo {
			delete(b.follows, channel)
		}
	case !fo.want:
		// Withdrawn meanwhile: the readies still get their one answer.
		b.stopSessionLocked(channel, fo, s)
	default:
		fo.sess = s
	}
	b.mu.Unlock()
	for _, r := range readies {
		r(err)
	}
}

// stopSessionLocked halts s (if any) and forgets fo. b.mu must be held.
func (b *historyBroker) stopSessionLocked(channel string, fo *follow, s *session) {
	if b.follows[channel] == fo {
		delete(b.follows, channel)
	}
	if s != nil {
		b.haltLocked(channel, s)
	}
}

// follow reads Latest and starts a follower from it.
func (b *historyBroker) follow(channel string) (*session, error) {
	ctx, cancel := context.WithTimeout(b.ctx, b.readTimeout)
	pos, err := b.h.Latest(ctx, channel)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("gateway: follow %q: %w", channel, err)
	}
	s := &session{settled: make(chan struct{})}
	f, err := b.h.Follow(channel, pos,
		func(offset uint64, data []byte) { b.deliverLive(channel, s, offset, data) },
		func(err error) { b.end(channel, s, err) })
	if err != nil {
		return nil, fmt.Errorf("gateway: follow %q: %w", channel, err)
	}
	s.mu.Lock()
	s.f = f
	s.mu.Unlock()
	return s, nil
}

// register reports whether s is still running once its follower is known;
// one that ended meanwhile is stopped here (its ending could not).
func (s *session) register() (running bool) {
	s.mu.Lock()
	ended, f := s.ended, s.f
	s.mu.Unlock()
	if ended {
		f.Stop()
	}
	return !ended
}

// deliverLive hands one followed message to the dispatcher, unless the
// session ended. A message the node cannot take ends the session (see
// the type): its subscribers would otherwise miss it.
func (b *historyBroker) deliverLive(channel string, s *session, offset uint64, data []byte) {
	if why := b.checkPayload(data); why != "" {
		// Anyone who may publish on the stream's subjects can store
		// anything: validated like client input, and skipped (offsets
		// may skip).
		b.reject(why)
		b.log.Warn("history message rejected", "channel", channel, "offset", offset, "reason", why)
		return
	}
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	err := b.deliver(channel, offset, data)
	s.mu.Unlock()
	if errors.Is(err, errOverloaded) {
		b.log.Warn("node overloaded: closing a channel's subscribers so they recover", "channel", channel, "offset", offset)
		b.end(channel, s, err)
	}
}

// checkPayload is natsbroker's validation of broker input.
func (b *historyBroker) checkPayload(data []byte) string {
	switch {
	case b.maxMessageBytes > 0 && len(data) > b.maxMessageBytes:
		return "too large"
	case !utf8.Valid(data):
		return "not valid UTF-8"
	case !json.Valid(data):
		return "not valid JSON"
	}
	return ""
}

// end ends session s of channel after a loss: no more of its messages
// reach the shards, the channel's subscribers are closed and the
// interest registered anew (Gateway.channelLost), then settled lets a new
// follower start.
func (b *historyBroker) end(channel string, s *session, cause error) {
	s.mu.Lock()
	was, f := s.ended, s.f
	s.ended = true
	s.mu.Unlock()
	if was {
		return
	}
	b.mu.Lock()
	if fo := b.follows[channel]; fo != nil && fo.sess == s {
		delete(b.follows, channel)
	}
	prev := b.halting[channel]
	b.halting[channel] = s
	closed := b.closed
	b.mu.Unlock()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		waitSettled(prev)
		if f != nil {
			f.Stop() // harmless after lost; releases an overloaded one
		}
		if !closed {
			b.log.Warn("channel history lost: closing its subscribers with 4010", "channel", channel, "err", cause)
			b.lost(channel)
		}
		b.settle(channel, s)
	}()
}

// haltLocked ends s because the node stopped following its channel; Stop
// runs on its own goroutine. b.mu must be held.
func (b *historyBroker) haltLocked(channel string, s *session) {
	s.mu.Lock()
	was, f := s.ended, s.f
	s.ended = true
	s.mu.Unlock()
	if was {
		return
	}
	prev := b.halting[channel]
	b.halting[channel] = s
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		waitSettled(prev)
		if f != nil {
			f.Stop()
		}
		b.settle(channel, s)
	}()
}

// waitSettled waits until an earlier session of the same channel, if
// any, has settled: halting names only the newest one, so the newest
// settles last and a starter that waits for it waits for all.
func waitSettled(prev *session) {
	if prev != nil {
		<-prev.settled
	}
}

func (b *historyBroker) settle(channel string, s *session) {
	b.mu.Lock()
	if b.halting[channel] == s {
		delete(b.halting, channel)
	}
	b.mu.Unlock()
	close(s.settled)
}

// Disconnect implements broker.Broker through natsbroker.
func (b *historyBroker) Disconnect(sub string) error { return b.nats.Disconnect(sub) }

// Connected is true when both NATS connections are up.
func (b *historyBroker) Connected() bool { return b.nats.Connected() && b.h.Connected() }

// Close answers queued publishes and pending readies with ErrClosed, stops
// the followers and waits for the broker's goroutines; the History is
// closed by its owner, after this.
func (b *historyBroker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return broker.ErrClosed
	}
	b.closed = true
	for channel, fo := range b.follows {
		if fo.sess != nil {
			b.haltLocked(channel, fo.sess)
		}
	}
	clear(b.follows)
	b.mu.Unlock()
	close(b.stop)
	b.cancel()
	b.wg.Wait()
	return b.nats.Close()
}
