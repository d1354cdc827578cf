// Package natsbroker is the cluster broker of shardgate: it carries
// published messages between gateway nodes over a NATS server.
//
// Every node publishes to NATS and delivers only what comes back from
// NATS, its own publishes included, so a subscriber receives each message
// once whichever node took it, and one publisher's messages keep their
// order (one NATS connection per node keeps publish order, and NATS keeps
// the order of one connection's messages to each subscriber).
//
// Use:
//
//	b, err := natsbroker.New("nats://127.0.0.1:4222", dispatch, natsbroker.Options{
//		OnStateChange: func(up bool) { gauge.Set(boolToFloat(up)) },
//	})
//	b.Interest("news", true)  // a first local subscriber: subscribe in NATS
//	b.Publish("news", data)   // broker.ErrUnavailable while NATS is away
//	b.Interest("news", false) // the last one left: unsubscribe
//	b.Close()
//
// The node keeps one NATS subscription per channel with local subscribers
// and one for messages to everyone (see subjects). Messages from all of
// them go through one buffered queue to one goroutine that calls the
// Handler, so a node costs NATS one connection and costs Go two
// goroutines of its own (and nats.go's few per connection), not one per
// channel.
//
// Outages. New succeeds while NATS is down and keeps trying (every
// ReconnectWait, forever); so does a node that loses NATS later. Meanwhile
// Connected is false, Publish fails fast with broker.ErrUnavailable
// instead of buffering (a publisher told "accepted" must not lose the
// message in a client-side buffer that may never be sent), and Interest
// keeps working: nats.go keeps subscriptions made or removed while
// disconnected and sends the whole set again when it reconnects
// (nats.go v1.55.0, Conn.resendSubscriptions under Conn.mu, before the
// connection is marked usable).
//
// Lock order:
//
//	Broker.subMu → Broker.mu → nats.Conn's locks
//	Broker.stateMu → nats.Conn's locks
//
// Traps: nats.go holds its connection lock while it dials a server during
// a reconnect, for up to ConnectTimeout. So nothing a shard goroutine
// calls may wait for that lock while NATS is away: Publish and Connected
// read an atomic, and Interest hands its work to a reconciler goroutine
// whenever the broker is not connected.
package natsbroker

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/shardgate/shardgate/gateway/broker"
)

// ErrBadChannel is returned by Publish for a name that is not a channel.
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
	// MaxMessageBytes, when set, is the gateway's largest message; a
	// server whose max_payload is smaller is logged as misconfigured.
	MaxMessageBytes int
	// OnStateChange is called with the new state whenever the connection
	// comes up or goes down, and once at start with the first state.
	// Calls are serialized; it must not call back into the Broker.
	OnStateChange func(connected bool)
	// Log receives connection events. Nil: slog.Default().
	Log *slog.Logger
}

// Broker is a broker.Broker over one NATS connection.
type Broker struct {
	nc      *nats.Conn
	subj    subjects
	handler broker.Handler
	log     *slog.Logger
	opts    Options

	connected atomic.Bool
	closing   atomic.Bool // set by Close before it closes the connection

	stateMu  sync.Mutex // serializes state refreshes and OnStateChange
	reported int8       // last state given to OnStateChange: -1 none, 0, 1; stateMu

	subMu sync.Mutex                    // serializes changes to NATS subscriptions
	subs  map[string]*nats.Subscription // channel → subscription; subMu

	mu      sync.Mutex
	desired map[string]struct{} // channels with local interest; mu
	dirty   map[string]struct{} // channels the reconciler must look at; mu
	closed  bool                // mu

	msgs     chan *nats.Msg // every subscription's messages, in arrival order
	wake     chan struct{}  // the reconciler has work (capacity 1)
	stop     chan struct{}  // closed by Close
	ncClosed chan struct{}  // closed when nats.go reports the connection closed
	wg       sync.WaitGroup
}

// Interface check.
var _ broker.Broker = (*Broker)(nil)

// New connects to the NATS server at url (a comma list is a server pool)
// and hands every message received for this node to h. It returns without
// waiting for the server: a node starts while NATS is down and connects
// when it appears. Errors are for an unusable url or options only.
func New(url string, h broker.Handler, o Options) (*Broker, error) {
	if o.SubjectPrefix == "" {
		o.SubjectPrefix = "shardgate"
	}
	if !validPrefix(o.SubjectPrefix) {
		return nil, fmt.Errorf("natsbroker: bad subject prefix %q", o.SubjectPrefix)
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
	if o.Log == nil {
		o.Log = slog.Default()
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
	// Messages to everyone are always wanted. ChanSubscribe works while
	// disconnected: the subscription is sent once connected.
	if _, err := nc.ChanSubscribe(b.subj.all, b.msgs); err != nil {
		nc.Close()
		return nil, fmt.Errorf("natsbroker: subscribe %s: %w", b.subj.all, err)
	}
	b.refreshState(nc)
	if !b.connected.Load() {
		b.log.Warn("NATS not reachable yet; retrying", "url", url, "every", o.ReconnectWait)
	}
	b.wg.Add(2)
	go b.deliverLoop()
	go b.reconcileLoop()
	return b, nil
}

// Publish sends data to every node subscribed to channel ("" for every
// connection). It does not wait for NATS to acknowledge: nil means the
// message is queued on a live connection, in order behind this node's
// earlier publishes. While disconnected it returns broker.ErrUnavailable.
//
// Delivery is NATS core's, at most once: a message queued just before a
// connection loss that nobody has noticed yet (at worst about three
// PingIntervals) may be lost, and a node that is away misses what was
// published meanwhile; nothing is replayed.
func (b *Broker) Publish(channel string, data json.RawMessage) error {
	subject, ok := b.subj.channel(channel)
	if !ok {
		return ErrBadChannel
	}
	if !b.connected.Load() {
		return broker.ErrUnavailable
	}
	switch err := b.nc.Publish(subject, data); {
	case err == nil:
		return nil
	case errors.Is(err, nats.ErrConnectionClosed):
		return broker.ErrClosed
	case errors.Is(err, nats.ErrReconnectBufExceeded):
		// Disconnected before the callback flipped connected.
		return broker.ErrUnavailable
	default:
		return fmt.Errorf("%w: %w", broker.ErrUnavailable, err)
	}
}

// Interest subscribes to channel's subject when active and unsubscribes
// otherwise. While connected the change is made before Interest returns,
// so a publish this node makes afterwards reaches NATS after the
// subscription and comes back here. While disconnected the reconciler
// makes it, so the caller (a shard goroutine) never waits for a dial.
func (b *Broker) Interest(channel string, active bool) {
	if _, ok := b.subj.channel(channel); !ok || channel == "" {
		b.log.Warn("natsbroker: interest in a bad channel name ignored", "channel", channel)
		return
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	if active {
		b.desired[channel] = struct{}{}
	} else {
		delete(b.desired, channel)
	}
	if !b.connected.Load() {
		b.dirty[channel] = struct{}{}
		b.mu.Unlock()
		b.kick()
		return
	}
	b.mu.Unlock()

	b.subMu.Lock()
	defer b.subMu.Unlock()
	b.apply(channel)
}

// apply makes channel's NATS subscription match the desired set. It reads
// the desired state at the time of the call, so whichever apply runs last
// leaves the right state behind, however calls interleave.
// b.subMu must be held.
func (b *Broker) apply(channel string) {
	b.mu.Lock()
	_, want := b.desired[channel]
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return
	}
	sub, have := b.subs[channel]
	switch {
	case want && !have:
		subject, _ := b.subj.channel(channel)
		s, err := b.nc.ChanSubscribe(subject, b.msgs)
		if err != nil {
			b.log.Error("natsbroker: subscribe failed", "channel", channel, "err", err)
			return
		}
		b.subs[channel] = s
	case !want && have:
		if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			b.log.Error("natsbroker: unsubscribe failed", "channel", channel, "err", err)
		}
		delete(b.subs, channel)
	}
}

func (b *Broker) kick() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// reconcileLoop applies the interest changes recorded while disconnected.
func (b *Broker) reconcileLoop() {
	defer b.wg.Done()
	for {
		select {
		case <-b.stop:
			return
		case <-b.wake:
		}
		b.mu.Lock()
		dirty := b.dirty
		b.dirty = make(map[string]struct{})
		b.mu.Unlock()
		b.subMu.Lock()
		for ch := range dirty {
			b.apply(ch)
		}
		b.subMu.Unlock()
	}
}

// deliverLoop hands received messages to the handler, one at a time and
// in arrival order. The handler does not block (the dispatcher refuses a
// message rather than wait for a full shard), so neither does this loop.
func (b *Broker) deliverLoop() {
	defer b.wg.Done()
	var (
		dropped  int
		lastWarn time.Time
	)
	for {
		var m *nats.Msg
		select {
		case <-b.stop:
			return
		case m = <-b.msgs:
		}
		channel, ok := b.subj.parse(m.Subject)
		if !ok {
			continue
		}
		if err := b.handler(channel, m.Data); err != nil {
			dropped++
			if now := time.Now(); now.Sub(lastWarn) >= 10*time.Second {
				b.log.Warn("natsbroker: node could not take messages; dropped", "count", dropped, "err", err)
				dropped, lastWarn = 0, now
			}
		}
	}
}

// Connected reports whether the NATS connection is up. It never blocks.
func (b *Broker) Connected() bool { return b.connected.Load() }

// Close closes the NATS connection, after writing out publishes already
// accepted, and stops the broker's goroutines. Messages received but not
// yet handed to the Handler are dropped.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return broker.ErrClosed
	}
	b.closed = true
	b.mu.Unlock()

	b.closing.Store(true)
	b.nc.Close() // flushes the outbound buffer when connected
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
// this, so the last refresh always sees the final state.
func (b *Broker) refreshState(nc *nats.Conn) {
	b.stateMu.Lock()
	defer b.stateMu.Unlock()
	up := nc.IsConnected()
	b.connected.Store(up)
	var now int8
	if up {
		now = 1
	}
	if now == b.reported {
		return
	}
	b.reported = now
	if up {
		b.log.Info("NATS connected", "server", nc.ConnectedUrlRedacted())
		if max := b.opts.MaxMessageBytes; max > 0 && nc.MaxPayload() < int64(max) {
			b.log.Warn("NATS max_payload is below -max-message-bytes; larger publishes will fail",
				"max_payload", nc.MaxPayload(), "max_message_bytes", max)
		}
	} else if b.closing.Load() {
		b.log.Info("NATS connection closed")
	} else {
		b.log.Warn("NATS disconnected; publishes fail until it returns")
	}
	if b.opts.OnStateChange != nil {
		b.opts.OnStateChange(up)
	}
}

func (b *Broker) onConnect(nc *nats.Conn) {
	b.refreshState(nc)
	// Interest recorded while disconnected may still be queued; the
	// reconciler would apply it anyway, this only makes it prompt.
	b.kick()
}

func (b *Broker) onDisconnect(nc *nats.Conn, err error) {
	if err != nil {
		b.log.Debug("NATS connection lost", "err", err)
	}
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
