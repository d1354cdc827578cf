// Package natsbroker is the cluster broker of shardgate: it carries
// published messages, and requests to disconnect a user, between gateway
// nodes over a NATS server.
//
// Every node publishes to NATS and delivers only what comes back from
// NATS, its own publishes included, so a subscriber receives each message
// once whichever node took it, and one publisher's messages keep their
// order (one queue and one NATS connection per node keep publish order,
// and NATS keeps the order of one connection's messages to each
// subscriber).
//
// Use:
//
//	b, err := natsbroker.New("nats://127.0.0.1:4222", dispatch, natsbroker.Options{
//		OnStateChange: func(up bool) { gauge.Set(boolToFloat(up)) },
//		OnDisconnect:  closeConnectionsOf, // a sub named by any node's Disconnect
//		OnRejected:    rejected.Inc,       // a message from NATS that was not UTF-8 JSON
//	})
//	b.Interest("news", true, ready)  // first local subscriber; ready(nil): reply "subscribed"
//	b.Publish("news", data, done)    // never blocks; done(ErrUnavailable) while NATS is away
//	b.Interest("news", false, nil)   // the last one left: unsubscribe
//	err = b.Disconnect("alice")      // blocks up to about FlushTimeout: not from a shard
//	b.Close()                        // every ready and done still pending is answered
//
// Callbacks (done, ready, the Handler, OnDisconnect, OnRejected,
// OnStateChange) run on the broker's goroutines or nats.go's, or on the
// caller's own when the answer is immediate. None may block; done and
// ready may call Publish and Interest, no callback may call Close.
//
// The node keeps one NATS subscription per channel with local subscribers,
// one for messages to everyone and one for disconnect requests (see
// subjects). Messages from all of them go through one buffered queue to
// one goroutine that validates them and calls the Handler, so a node costs
// NATS one connection and costs Go four goroutines of its own, not one per
// channel:
//
//	deliverLoop   received messages → validation → Handler / OnDisconnect
//	publishLoop   the publish queue → nc.Publish, one message at a time
//	expireLoop    answers publishes that waited PublishTimeout in the queue
//	interestLoop  SUB/UNSUB, the flush that confirms them (ready), and the
//	              forced reconnect after a write to NATS failed
//
// plus nats.go's (reader, flusher, callback dispatcher, and a reconnect
// goroutine while reconnecting).
//
// Bounds. nats.go writes to its socket synchronously, under its
// connection lock, both from its flusher and from nc.Publish once its
// write buffer (32 KiB) is full; and it holds that lock while it dials a
// server during a reconnect, for up to ConnectTimeout. So nothing a shard
// calls touches nats.go: Publish copies the message into a bounded queue
// (PublishQueueLen messages, PublishQueueBytes bytes) and Connected reads
// atomics; Interest records the change for the interest worker.
//
//   - Publish returns after a copy and a short lock, whatever NATS does.
//   - done is called at once when the publish is refused (bad channel,
//     closed, disconnected, queue full). Otherwise the message waits in
//     the queue for at most PublishTimeout (default 2s): past it the
//     expirer answers ErrUnavailable (within PublishTimeout/64 more) and
//     drops it, so it is never handed to NATS later. A message that left
//     the queue in time is answered when its nc.Publish call returns.
//   - Every write nats.go makes has a deadline, WriteTimeout (nats.go's
//     FlusherTimeout; default PublishTimeout/2, 1s). So one nc.Publish
//     lasts at most WriteTimeout for its own write, after waiting for
//     nats.go's lock, which another write holds for at most WriteTimeout
//     and a reconnect attempt for at most ConnectTimeout. Against a
//     server that stops reading, every done comes within PublishTimeout
//     plus about one WriteTimeout (measured; the worst case adds another
//     WriteTimeout and a ConnectTimeout, the tests allow that).
//   - The first write that fails (stall) takes the connection out of use:
//     Connected turns false, queued publishes get ErrUnavailable, later
//     ones get it at once, and nats.go is made to reconnect (by the
//     interest worker, after any flush it is waiting for). A failed write
//     in nats.go's flusher makes it reconnect by itself
//     (ReconnectOnFlusherError); a server that goes silent while nothing
//     is written is noticed by pings, within about 3 PingIntervals.
//   - ready is called within FlushTimeout (default 2s) of the worker's
//     pass that takes it; a pass already flushing delays it by one more.
//     nil means the server this node is connected to has its
//     subscription: a node publishing through the same server reaches it.
//     In a NATS cluster, servers learn of interest from each other
//     asynchronously (milliseconds), which no client can wait for.
//   - Disconnect blocks for at most about WriteTimeout + FlushTimeout.
//   - Close takes what the queued publishes take (nothing when NATS is
//     healthy or known to be down) plus at most two WriteTimeouts.
//
// Delivery is NATS core's, at most once: nil from done means nats.go took
// the message on a live connection, and a message in nats.go's buffer or
// in flight when that connection is lost is lost with it. A message
// answered with an error is never delivered: nats.go buffers nothing
// while reconnecting (ReconnectBufSize -1), discards its buffer when a
// write fails, and a write cut short leaves the last message incomplete,
// which the server discards.
//
// Outages. New succeeds while NATS is down and keeps trying (every
// ReconnectWait, forever); so does a node that loses NATS later. Meanwhile
// Connected is false, publishes fail fast with broker.ErrUnavailable, and
// Interest keeps recording: nats.go keeps subscriptions made or removed
// while disconnected and sends the whole set again when it reconnects
// (nats.go v1.55.0, Conn.resendSubscriptions under Conn.mu, before the
// connection is marked usable); readies get ErrUnavailable meanwhile.
//
// Locks: Broker.subMu, Broker.mu, Broker.stateMu and pubQueue.mu, in the
// node's one lock order, written in package gateway.
//
// done, ready, the Handler, OnDisconnect and OnRejected run under no lock
// of ours; OnStateChange runs under stateMu, so it must not call back.
package natsbroker

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/shardgate/shardgate/gateway/broker"
)

// ErrBadChannel is given to done and ready for a name that is not a
// channel.
var ErrBadChannel = errors.New("natsbroker: bad channel name")

// Options tune a Broker. The zero value is usable.
type Options struct {
	// Name is the connection name NATS monitoring shows (connz).
	Name string
	// SubjectPrefix is the first subject token, "shardgate" if empty.
	// Clusters sharing one NATS server need different prefixes.
	SubjectPrefix string
	// ReconnectWait is the pause between reconnect attempts (250ms).
	ReconnectWait time.Duration
	// ConnectTimeout bounds one dial and handshake (2s).
	ConnectTimeout time.Duration
	// PingInterval is how often the connection is probed (5s). A server
	// that vanishes without closing the connection (a crashed host, a
	// partition) is noticed after two unanswered pings, so within about
	// three intervals; nats.go's default of 2 minutes would leave the
	// node ready, and publishes lost, for several minutes.
	PingInterval time.Duration
	// QueueLen is how many received messages may wait for the Handler
	// (65536). Past it NATS drops messages for this node and the error
	// is logged as a slow consumer.
	QueueLen int
	// MaxMessageBytes, when set, is the gateway's largest message: a
	// message from NATS larger than that is rejected (OnRejected), and a
	// server whose max_payload is smaller is logged as misconfigured.
	MaxMessageBytes int
	// PublishTimeout is how long a publish may wait in the queue for the
	// publisher (2s); past it it is answered broker.ErrUnavailable and
	// dropped.
	PublishTimeout time.Duration
	// WriteTimeout is the deadline of every write nats.go makes to the
	// server (PublishTimeout/2). A write that misses it takes the
	// connection out of use until nats.go has reconnected.
	WriteTimeout time.Duration
	// PublishQueueLen (65536) and PublishQueueBytes (64 MiB) bound the
	// publishes waiting for the publisher; past either, Publish answers
	// broker.ErrUnavailable at once.
	PublishQueueLen   int
	PublishQueueBytes int
	// FlushTimeout is how long Interest's ready and Disconnect wait for
	// the server to acknowledge (2s).
	FlushTimeout time.Duration
	// OnStateChange is called with the new state whenever the connection
	// comes up or goes down, and once at start with the first state.
	// Calls are serialized; it must not call back into the Broker.
	OnStateChange func(connected bool)
	// OnDisconnect receives the sub of every disconnect request, from
	// any node (this one included), on the receive goroutine. Nil: the
	// requests are ignored.
	OnDisconnect broker.DisconnectHandler
	// OnRejected is called once for every message from NATS that is
	// dropped as invalid (not UTF-8 JSON, over MaxMessageBytes, or a
	// disconnect request with a bad sub), on the receive goroutine.
	OnRejected func()
	// Log receives connection events. Nil: slog.Default().
	Log *slog.Logger
}

// withDefaults fills the zero fields of o.
func (o Options) withDefaults() Options {
	if o.SubjectPrefix == "" {
		o.SubjectPrefix = "shardgate"
	}
	if o.ReconnectWait <= 0 {
		o.ReconnectWait = 250 * time.Millisecond
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 2 * time.Second
	}
	if o.PingInterval <= 0 {
		o.PingInterval = 5 * time.Second
	}
	if o.QueueLen <= 0 {
		o.QueueLen = 65536
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = 2 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = o.PublishTimeout / 2
	}
	if o.PublishQueueLen <= 0 {
		o.PublishQueueLen = 65536
	}
	if o.PublishQueueBytes <= 0 {
		o.PublishQueueBytes = 64 << 20
	}
	if o.FlushTimeout <= 0 {
		o.FlushTimeout = 2 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return o
}

// Broker is a broker.Broker over one NATS connection.
type Broker struct {
	nc      *nats.Conn
	subj    subjects
	handler broker.Handler
	log     *slog.Logger
	opts    Options

	up             atomic.Bool // nats.go reports the connection usable (refreshState)
	stalled        atomic.Bool // a write to NATS failed; cleared by the next (re)connect
	forceReconnect atomic.Bool // set by stall: the interest worker must make nats.go reconnect
	closing        atomic.Bool // set first by Close: Publish and Disconnect refuse

	stateMu  sync.Mutex // serializes state refreshes and OnStateChange
	reported int8       // last state given to OnStateChange: -1 none, 0, 1; stateMu

	subMu sync.Mutex                    // serializes changes to NATS subscriptions
	subs  map[string]*nats.Subscription // channel → subscription; subMu

	mu      sync.Mutex
	desired map[string]struct{} // channels with local interest; mu
	dirty   map[string]struct{} // channels the interest worker must look at; mu
	waiting []readyWait         // readies for the interest worker's next pass; mu
	closed  bool                // mu

	pq      *pubQueue
	pubWake chan struct{} // the publisher has work or must stop (capacity 1)
	expWake chan struct{} // the queue was empty and has a new head (capacity 1)
	pubDone chan struct{} // closed when the publisher has exited

	msgs     chan *nats.Msg // every subscription's messages, in arrival order
	wake     chan struct{}  // the interest worker has work (capacity 1)
	stop     chan struct{}  // closed by Close once the publisher has exited
	ncClosed chan struct{}  // closed when nats.go reports the connection closed
	wg       sync.WaitGroup // deliverLoop, interestLoop, expireLoop
}

// Interface check.
var _ broker.Broker = (*Broker)(nil)

// New connects to the NATS server at url (a comma list is a server pool)
// and hands every valid message received for this node to h. It returns
// without waiting for the server: a node starts while NATS is down and
// connects when it appears. Errors are for an unusable url or options only.
func New(url string, h broker.Handler, o Options) (*Broker, error) {
	o = o.withDefaults()
	if !validPrefix(o.SubjectPrefix) {
		return nil, fmt.Errorf("natsbroker: bad subject prefix %q", o.SubjectPrefix)
	}
	b := &Broker{
		subj:     newSubjects(o.SubjectPrefix),
		handler:  h,
		log:      o.Log,
		opts:     o,
		reported: -1,
		subs:     make(map[string]*nats.Subscription),
		desired:  make(map[string]struct{}),
		dirty:    make(map[string]struct{}),
		pq:       newPubQueue(o.PublishQueueLen, o.PublishQueueBytes),
		pubWake:  make(chan struct{}, 1),
		expWake:  make(chan struct{}, 1),
		pubDone:  make(chan struct{}),
		msgs:     make(chan *nats.Msg, o.QueueLen),
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		ncClosed: make(chan struct{}),
	}
	nc, err := nats.Connect(url,
		nats.Name(o.Name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(o.ReconnectWait),
		nats.Timeout(o.ConnectTimeout),
		nats.PingInterval(o.PingInterval),
		nats.MaxPingsOutstanding(2),
		// No client-side buffer while disconnected: Publish fails
		// instead (nats.go refuses once pending >= -1, i.e. always).
		nats.ReconnectBufSize(-1),
		// A deadline on every socket write (nats.go's default is a
		// minute), and a reconnect when the flusher's write fails.
		nats.FlusherTimeout(o.WriteTimeout),
		nats.ReconnectOnFlusherError(),
		nats.ConnectHandler(b.onConnect),
		nats.ReconnectHandler(b.onConnect),
		nats.DisconnectErrHandler(b.onDisconnect),
		nats.ClosedHandler(b.onClosed),
		nats.ErrorHandler(b.onAsyncError),
	)
	if err != nil {
		return nil, fmt.Errorf("natsbroker: connect %s: %w", url, err)
	}
	b.nc = nc
	// Messages to everyone and disconnect requests are always wanted.
	// ChanSubscribe works while disconnected: the subscription is sent
	// once connected.
	for _, subject := range []string{b.subj.all, b.subj.disconnect} {
		if _, err := nc.ChanSubscribe(subject, b.msgs); err != nil {
			nc.Close()
			return nil, fmt.Errorf("natsbroker: subscribe %s: %w", subject, err)
		}
	}
	b.refreshState(nc)
	if !b.Connected() {
		b.log.Warn("NATS not reachable yet; retrying", "url", url, "every", o.ReconnectWait)
	}
	b.wg.Add(3)
	go b.deliverLoop()
	go b.interestLoop()
	go b.expireLoop()
	go b.publishLoop()
	return b, nil
}

// Connected reports whether the broker can take publishes now: nats.go
// is connected and no write to it has failed since. It never blocks.
func (b *Broker) Connected() bool { return b.up.Load() && !b.stalled.Load() }

// Close stops the broker. New publishes, interest and disconnect requests
// are refused with broker.ErrClosed from its start; readies still waiting
// get broker.ErrClosed (or their answer, for a flush already under way);
// publishes already queued are handed to NATS as usual, each within its
// PublishTimeout; then, when connected, Close waits up to WriteTimeout
// for the server to acknowledge them, closes the connection and stops the
// broker's goroutines. Messages received
// but not yet handed to the Handler are dropped. A second Close returns
// broker.ErrClosed.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return broker.ErrClosed
	}
	b.closed = true
	waiting := b.waiting
	b.waiting = nil
	b.mu.Unlock()
	b.closing.Store(true)
	for _, w := range waiting {
		w.ready(errClosed)
	}

	b.pq.close()
	kick(b.pubWake)
	<-b.pubDone
	// Wait for the server to have read everything handed over: closing
	// a socket that has unread input (messages for this node) sends a
	// reset, and a reset makes the server's kernel discard what the
	// server has not read yet, publishes included. Only for WriteTimeout:
	// a server that has not answered by then is the frozen kind, and
	// shutting down must not wait for it. (nc.IsConnected as well:
	// nats.go may be reconnecting already, and a flush would then wait in
	// vain.)
	if b.Connected() && b.nc.IsConnected() {
		if err := b.nc.FlushTimeout(b.opts.WriteTimeout); err != nil {
			b.log.Warn("natsbroker: last publishes not acknowledged before close", "err", err)
		}
	}
	b.nc.Close()
	close(b.stop)
	b.wg.Wait()
	// nats.go's callback goroutine ends after the closed callback; wait
	// for it so that no goroutine of ours outlives Close.
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-b.ncClosed:
	case <-t.C:
		b.log.Warn("natsbroker: connection did not report closing")
	}
	return nil
}

// refreshState reads the connection's state and reports a change. Every
// nats.go state change is followed by one of its callbacks, which calls
// this, so the last refresh always sees the final state. When the
// connection is not usable, queued publishes are answered at once rather
// than left to expire.
func (b *Broker) refreshState(nc *nats.Conn) {
	b.stateMu.Lock()
	b.up.Store(nc.IsConnected())
	up := b.Connected()
	b.report(nc, up)
	b.stateMu.Unlock()
	if !up {
		b.failQueued(errDisconnected)
	}
}

// report logs a change of state and passes it to OnStateChange.
// b.stateMu must be held.
func (b *Broker) report(nc *nats.Conn, up bool) {
	var now int8
	if up {
		now = 1
	}
	if now == b.reported {
		return
	}
	b.reported = now
	switch {
	case up:
		b.log.Info("NATS connected", "server", nc.ConnectedUrlRedacted())
		if max := b.opts.MaxMessageBytes; max > 0 && nc.MaxPayload() < int64(max) {
			b.log.Warn("NATS max_payload is below -max-message-bytes; larger publishes will fail",
				"max_payload", nc.MaxPayload(), "max_message_bytes", max)
		}
	case b.closing.Load():
		b.log.Info("NATS connection closed")
	default:
		b.log.Warn("NATS disconnected; publishes fail until it returns")
	}
	if b.opts.OnStateChange != nil {
		b.opts.OnStateChange(up)
	}
}

func (b *Broker) onConnect(nc *nats.Conn) {
	// A fresh connection: whatever write failed was on an older one.
	b.stalled.Store(false)
	b.refreshState(nc)
	// Interest recorded while disconnected may still be queued; the
	// worker would apply it anyway, this only makes it prompt.
	kick(b.wake)
}

func (b *Broker) onDisconnect(nc *nats.Conn, err error) {
	if err != nil {
		b.log.Debug("NATS connection lost", "err", err)
	}
	// Down at once: refreshState below may wait for nats.go's lock,
	// which a reconnect attempt holds while it dials. A later connect
	// callback sets it again.
	b.up.Store(false)
	b.failQueued(errDisconnected)
	b.refreshState(nc)
}

func (b *Broker) onClosed(nc *nats.Conn) {
	b.refreshState(nc)
	close(b.ncClosed)
}

func (b *Broker) onAsyncError(_ *nats.Conn, sub *nats.Subscription, err error) {
	subject := ""
	if sub != nil {
		subject = sub.Subject
	}
	if errors.Is(err, nats.ErrSlowConsumer) {
		b.log.Warn("natsbroker: receive queue full; NATS drops messages for this node", "subject", subject)
		return
	}
	b.log.Error("natsbroker: NATS error", "subject", subject, "err", err)
}
