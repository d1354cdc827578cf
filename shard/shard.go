package shard

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/shardgate/shardgate/bufpool"
	"github.com/shardgate/shardgate/poller"
	"github.com/shardgate/shardgate/shard/pmce"
	"github.com/shardgate/shardgate/shard/tlsfd"
	"github.com/shardgate/shardgate/shard/wsframe"
	"golang.org/x/sys/unix"
)

// Errors returned by a Shard.
var (
	ErrClosed     = errors.New("shard: closed")
	ErrOverloaded = errors.New("shard: inbox full")
)

// Grants says what an authenticated connection may do. A nil Grants
// allows everything (the gateway runs without an auth secret).
type Grants interface {
	CanSubscribe(channel string) bool
	CanPublish(channel string) bool
	// Sub is the token's subject, matched by Disconnect.
	Sub() string
	// Expiry is when the token stops being in force, in Unix seconds;
	// 0 means never.
	Expiry() int64
}

// Publisher takes messages published by clients. It is called on the
// shard's goroutine and must not block; data is valid only during the call.
// done is called exactly once, on any goroutine and possibly before
// PublishFromClient returns, with nil when the message was accepted or an
// error, reported to the client as "unavailable".
type Publisher interface {
	PublishFromClient(channel string, data json.RawMessage, done func(error))
}

// Options configures a shard. Zero durations disable the matching timer.
type Options struct {
	ID               int
	MaxMessageBytes  int           // one client message, across fragments
	MaxSubscriptions int           // per connection
	PingInterval     time.Duration // heartbeat ping period
	IdleTimeout      time.Duration // close after this long without input
	WriteTimeout     time.Duration // close a queue that made no progress this long
	CloseTimeout     time.Duration // how long a closing connection may take to answer our close frame
	SendQueueBytes   int           // per-connection outbound cap
	ClientRate       float64       // requests per second per connection (0 = unlimited)
	ClientBurst      float64       // token-bucket depth
	InboxLimit       int           // broadcasts waiting in the inbox before ErrOverloaded

	Publisher Publisher
	Metrics   Metrics
	Log       *slog.Logger

	// OnChannel is called on the shard goroutine when a channel gains its
	// first (active=true) or loses its last (active=false) subscriber on
	// this shard. It must not block. When active, ready must be called
	// exactly once, on any goroutine, once messages published after it
	// will reach this shard (nil), or with the error that prevents it:
	// until then subscribers of the channel get no "subscribed" reply.
	// Nil OnChannel: every channel is ready at once.
	OnChannel func(channel string, active bool, ready func(error))
	// OnRelease is called once per connection, with the tag it was
	// attached with, when its socket is closed.
	OnRelease func(tag uint32)
	// Refresh verifies the token of a client's refresh request and
	// returns its grants (non-nil when err is nil). It is called on the
	// shard goroutine, so it must be quick and must not block: a local
	// signature check, no network. Nil when the gateway has no auth: a
	// refresh is then a bad_request. See session.go.
	Refresh func(token string) (Grants, error)
	// History, when set, gives subscribes the channel's epoch and offset
	// and lets them recover what they missed (recovery.go); broadcasts
	// then come with their offsets (BroadcastAt). Nil: no history.
	History History
	// RecoverMax is the most messages one recovery replays.
	RecoverMax int

	// Echo makes the shard an echo server, for conformance tests (the
	// Autobahn suite, test/autobahn): every complete data message goes
	// back to its sender as it came, text as text and binary as binary,
	// instead of being read as a request, and binary messages are accepted
	// rather than closed with 1003. Everything else is the production
	// path: the loop, the frame decoder and its limits, reassembly, UTF-8
	// checks, control frames, pongs, heartbeats, the close handshake and
	// the outbound queue. The gateway never sets it; it is read once, in
	// New, so the production path pays nothing for it (see echo.go).
	Echo bool
}

// Shard owns connections. See the package doc for the threading model.
type Shard struct {
	opts  Options
	log   *slog.Logger
	poll  *poller.Poller
	waker *poller.Waker
	pool  *bufpool.Pool
	epoch time.Time    // monotonic origin of the int64 clocks in conn
	conns atomic.Int64 // attached and not yet released: read by the acceptor for balancing
	// deflating counts the conns that negotiated permessage-deflate, from
	// their hand-over to their release: the dispatcher compresses a
	// broadcast only while some shard has one (DeflateConns).
	deflating atomic.Int64
	closed    atomic.Bool
	lastPass  atomic.Int64 // Unix nanoseconds at the end of the last inbox pass: the health check's pulse

	mu         sync.Mutex // guards inbox, inboxCasts; see the lock order in doc.go
	inbox      []task
	inboxCasts int

	// Everything below is owned by the shard goroutine.
	work          []task // the inbox swapped out for one pass
	all           []*conn
	channels      map[string]*channel
	readBuf       []byte
	batch         []delivery
	dirty         []*conn
	iov           []unix.Iovec
	again         []*conn       // connections whose input was cut short to bound a pass
	links         []*tlsfd.Conn // links[i] is the TLS layer of all[i] (see tls.go); nil until a TLS connection comes
	sealBuf       []byte        // plaintext gathered into one TLS record
	draining      bool
	drainDeadline int64 // shard clock at which draining connections are cut off
	stats         stats
	overflowed    []*conn                                 // recovering connections over the cap in this batch (recovery.go)
	cur           *conn                                   // the connection being decoded
	onFrame       func(op ws.OpCode, payload []byte) bool // s.handleFrame (s.echoFrame with Options.Echo), bound once
	rules         wsframe.Rules                           // what the decoder accepts, from Options
	deflateRules  wsframe.Rules                           // rules for connections with permessage-deflate: rules and the shard's inflater
	inflater      pmce.Inflater                           // decompressors for this shard's client messages, pooled
	deflater      *pmce.Deflater                          // echo mode's compressor (Options.Echo); nil otherwise
	pingFrame     []byte                                  // shared, read-only
}

type taskKind uint8

const (
	taskAttach taskKind = iota
	taskBroadcast
	taskTick
	taskDrain
	taskKick   // close the connections of a token subject
	taskLose   // close a channel's subscribers: its history lost its place
	taskResult // an asynchronous call completed
)

type task struct {
	kind    taskKind
	conn    *conn         // attach
	link    *tlsfd.Conn   // attach: the connection's TLS layer, nil for plain TCP
	channel string        // broadcast: "" means every connection; kick: the subject
	frame   []byte        // broadcast: encoded once, shared, read-only
	deflate []byte        // broadcast: the same message compressed (RSV1), or nil; shared, read-only
	offset  uint64        // broadcast: the message's offset in its channel (history only)
	timeout time.Duration // drain
	result  *asyncResult  // result
}

// New creates a shard with its own poller and wait goroutine.
func New(opts Options) (*Shard, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.MaxMessageBytes <= 0 {
		return nil, fmt.Errorf("shard %d: MaxMessageBytes must be positive", opts.ID)
	}
	if opts.InboxLimit <= 0 {
		opts.InboxLimit = 1 << 16
	}
	if opts.CloseTimeout <= 0 {
		opts.CloseTimeout = 5 * time.Second
	}
	s := &Shard{
		opts:     opts,
		log:      opts.Log.With("shard", opts.ID),
		pool:     bufpool.New(),
		epoch:    time.Now(),
		channels: make(map[string]*channel),
		// Room for the largest partial frame kept between reads plus one
		// read's worth of fresh bytes.
		readBuf:   make([]byte, opts.MaxMessageBytes+maxFrameHeader+readChunk),
		iov:       make([]unix.Iovec, 0, maxIovecs),
		sealBuf:   make([]byte, sealChunk),
		pingFrame: wsframe.AppendFrame(nil, ws.OpPing, nil),
	}
	s.lastPass.Store(time.Now().UnixNano())
	s.onFrame = s.handleFrame
	s.rules = wsframe.Rules{MaxMessage: opts.MaxMessageBytes}
	if opts.Echo {
		s.onFrame = s.echoFrame
		s.rules.Binary = true
		s.deflater = pmce.NewDeflater(pmce.DefaultLevel)
	}
	s.deflateRules = s.rules
	s.deflateRules.Inflater = &s.inflater
	p, err := poller.New(s.log)
	if err != nil {
		return nil, fmt.Errorf("shard %d: %w", opts.ID, err)
	}
	s.poll = p
	w, err := poller.NewWaker(p, s.runInbox)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("shard %d: %w", opts.ID, err)
	}
	s.waker = w
	return s, nil
}

// ID returns the shard's index.
func (s *Shard) ID() int { return s.opts.ID }

// Conns returns the number of connections the shard holds (including those
// still closing). Safe from any goroutine.
func (s *Shard) Conns() int64 { return s.conns.Load() }

// DeflateConns returns how many of Conns negotiated permessage-deflate.
// Safe from any goroutine.
func (s *Shard) DeflateConns() int64 { return s.deflating.Load() }

// Attach hands an upgraded, non-blocking socket to the shard, which owns it
// from now on (and closes it). pending holds bytes the client sent after its
// handshake; it is copied. grants may be nil. tag is handed back to
// Options.OnRelease when the socket is closed. deflate is the
// permessage-deflate agreement of the upgrade (zero: none): the connection
// then takes compressed messages and gets compressed broadcasts (see
// BroadcastFrames).
func (s *Shard) Attach(fd int, pending []byte, grants Grants, tag uint32, deflate pmce.Params) error {
	if err := s.AttachLater(fd, pending, grants, tag, deflate); err != nil {
		return err
	}
	s.waker.Wake()
	return nil
}

// AttachLater is Attach without the wake-up: the connection waits in the
// inbox until the caller calls Wake (or anything else wakes the shard). An
// acceptor that upgrades a burst of connections wakes each shard once per
// burst instead of once per connection.
func (s *Shard) AttachLater(fd int, pending []byte, grants Grants, tag uint32, deflate pmce.Params) error {
	c := s.newConn(fd, pending, grants, tag, deflate)
	if err := s.queueTask(task{kind: taskAttach, conn: c}, false); err != nil {
		s.dropConn(c)
		return err
	}
	return nil
}

// newConn makes the conn of a socket being handed over, and counts it.
func (s *Shard) newConn(fd int, pending []byte, grants Grants, tag uint32, deflate pmce.Params) *conn {
	c := &conn{fd: int32(fd), grants: grants, idx: -1, tag: tag, deflate: deflate}
	if len(pending) > 0 {
		b := s.pool.Get(len(pending))
		copy(*b, pending)
		c.partial = b
	}
	s.conns.Add(1)
	if deflate.On() {
		s.deflating.Add(1)
	}
	return c
}

// dropConn undoes newConn for a conn the inbox refused.
func (s *Shard) dropConn(c *conn) {
	s.conns.Add(-1)
	if c.deflate.On() {
		s.deflating.Add(-1)
	}
	if c.partial != nil {
		s.pool.Put(c.partial)
		c.partial = nil
	}
}

// Wake makes the shard run what is in its inbox. Safe from any goroutine.
func (s *Shard) Wake() { s.waker.Wake() }

// Broadcast queues frame for every subscriber of channel ("" = every
// connection). frame must be a complete encoded WebSocket frame; the shard
// keeps a reference until every subscriber has written it, so the caller
// must never modify it.
func (s *Shard) Broadcast(channel string, frame []byte) error {
	return s.BroadcastFrames(channel, 0, Frames{Plain: frame})
}

// BroadcastAt is Broadcast for a channel message with history: offset is
// its place in the channel, which frame carries too. Offsets of one
// channel must be handed to the shard in increasing order.
func (s *Shard) BroadcastAt(channel string, offset uint64, frame []byte) error {
	return s.BroadcastFrames(channel, offset, Frames{Plain: frame})
}

// Frames are the encodings of one broadcast message, each made once by
// the caller and shared, read-only, by every shard and subscriber.
type Frames struct {
	// Plain is the message's frame as every connection may get it.
	Plain []byte
	// Deflated, when not nil, is the same message compressed on its own
	// with permessage-deflate (RSV1 set, pmce.Deflater): what a
	// connection that negotiated the extension gets, unless the message
	// is longer than the window it allowed (pmce.Params.Fits), or it is
	// still recovering (recovery replays and what queues behind them go
	// plain).
	Deflated []byte
}

// BroadcastFrames is Broadcast (offset 0) or BroadcastAt with the
// compressed variant of the frame alongside the plain one.
func (s *Shard) BroadcastFrames(channel string, offset uint64, f Frames) error {
	return s.push(task{kind: taskBroadcast, channel: channel, frame: f.Plain, deflate: f.Deflated, offset: offset}, true)
}

// CanBroadcast reports whether a Broadcast would be accepted now. The
// dispatcher checks every shard before handing a message to any, so that a
// message is either queued on all shards or on none.
func (s *Shard) CanBroadcast() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.closed.Load() && s.inboxCasts < s.opts.InboxLimit
}

// Disconnect closes, with 4003, every connection whose token subject is
// sub. Safe from any goroutine.
func (s *Shard) Disconnect(sub string) {
	_ = s.push(task{kind: taskKick, channel: sub}, false)
}

// CloseChannel closes, with 4010 (insufficient_state), every connection
// subscribed to channel, recovering ones included: the node can no longer
// vouch for the channel's sequence (its history follower lost its place),
// so their clients must reconnect and recover. Safe from any goroutine;
// it is a control task, accepted even when broadcasts are refused, and
// runs after every broadcast queued before it.
func (s *Shard) CloseChannel(channel string) {
	_ = s.push(task{kind: taskLose, channel: channel}, false)
}

// LastPass is when the shard last finished a pass of its loop. The clock
// ticks every shard at least once a second, so a LastPass much older than
// that means the loop is stuck.
func (s *Shard) LastPass() time.Time { return time.Unix(0, s.lastPass.Load()) }

// Tick runs the heartbeat and timeout sweep.
func (s *Shard) Tick() {
	_ = s.push(task{kind: taskTick}, false)
}

// Drain sends close 1001 to every connection after whatever is already
// queued for it, refuses new connections, and lets clients answer; the
// shard releases each connection when it answers or timeout passes.
func (s *Shard) Drain(timeout time.Duration) {
	_ = s.push(task{kind: taskDrain, timeout: timeout}, false)
}

func (s *Shard) push(t task, cast bool) error {
	if err := s.queueTask(t, cast); err != nil {
		return err
	}
	s.waker.Wake()
	return nil
}

// queueTask adds t to the inbox without waking the shard.
func (s *Shard) queueTask(t task, cast bool) error {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return ErrClosed
	}
	if cast {
		if s.inboxCasts >= s.opts.InboxLimit {
			s.mu.Unlock()
			return ErrOverloaded
		}
		s.inboxCasts++
	}
	s.inbox = append(s.inbox, t)
	s.mu.Unlock()
	return nil
}

// maxIdleInbox is the largest inbox array kept once the inbox is empty.
const maxIdleInbox = 1024

// maxTasksPerPass bounds one inbox pass so socket events of this shard are
// served between passes even under a publish flood.
const maxTasksPerPass = 256

// runInbox runs on the shard goroutine after Wake.
func (s *Shard) runInbox() {
	s.mu.Lock()
	n := min(len(s.inbox), maxTasksPerPass)
	s.work = append(s.work[:0], s.inbox[:n]...)
	rest := copy(s.inbox, s.inbox[n:])
	clear(s.inbox[rest:])
	s.inbox = s.inbox[:rest]
	if rest == 0 && cap(s.inbox) > maxIdleInbox {
		s.inbox = nil // a burst of upgrades grew it: do not keep the array
	}
	for i := range s.work {
		if s.work[i].kind == taskBroadcast {
			s.inboxCasts--
		}
	}
	s.mu.Unlock()
	if rest > 0 {
		s.waker.Wake()
	}

	for i := 0; i < len(s.work); {
		t := &s.work[i]
		switch t.kind {
		case taskBroadcast:
			// Consecutive broadcasts form one batch: each connection
			// writes all of its frames of the batch in one writev.
			j := i + 1
			for j < len(s.work) && s.work[j].kind == taskBroadcast {
				j++
			}
			s.broadcast(s.work[i:j])
			i = j
			continue
		case taskAttach:
			s.attach(t.conn, t.link)
		case taskTick:
			s.sweep()
		case taskDrain:
			s.drain(t.timeout)
		case taskKick:
			s.kick(t.channel)
		case taskLose:
			s.lose(t.channel)
		case taskResult:
			s.complete(t.result)
		}
		i++
	}
	clear(s.work)
	s.work = s.work[:0]
	s.resumeReads()
	s.flushStats()
	s.lastPass.Store(time.Now().UnixNano())
}

// kick closes the open connections whose token subject is sub. A scan of
// the shard is cheaper, for a rare admin call, than an index every
// connection would pay for.
func (s *Shard) kick(sub string) {
	for i := len(s.all) - 1; i >= 0; i-- {
		if i >= len(s.all) {
			continue
		}
		c := s.all[i]
		if c.state == stateOpen && c.grants != nil && c.grants.Sub() == sub {
			s.close(c, disconnectKicked)
		}
	}
}

// lose closes the subscribers of channel (see CloseChannel). The
// connections are collected first: closing one takes it out of the lists.
func (s *Shard) lose(channel string) {
	ch := s.channels[channel]
	if ch == nil {
		return
	}
	conns := make([]*conn, 0, len(ch.subs)+len(ch.recovering)+len(ch.waiting))
	conns = append(conns, ch.subs...)
	for _, r := range ch.recovering {
		conns = append(conns, r.c)
	}
	for _, w := range ch.waiting {
		conns = append(conns, w.c)
	}
	for _, c := range conns {
		s.close(c, disconnectInsufficient)
	}
}

// now returns the shard clock in nanoseconds since epoch.
func (s *Shard) now() int64 { return int64(time.Since(s.epoch)) }

// Close stops the shard: its wait goroutine exits and every socket it
// still holds is closed without further ceremony. Use Drain first for a
// graceful shutdown.
func (s *Shard) Close() error {
	s.mu.Lock()
	if s.closed.Swap(true) {
		s.mu.Unlock()
		return ErrClosed
	}
	orphans := s.inbox
	s.inbox = nil
	s.mu.Unlock()
	for _, t := range orphans {
		if t.kind == taskAttach {
			if t.link != nil {
				t.link.Release()
			}
			s.release(t.conn) // never attached: release only closes the socket
		}
	}
	// After Close returns the wait goroutine has exited: this goroutine
	// now owns the shard's state.
	err := s.poll.Close()
	for len(s.all) > 0 {
		c := s.all[len(s.all)-1]
		s.abort(c, ReasonShutdown)
	}
	if werr := s.waker.Close(s.poll); werr != nil && !errors.Is(werr, poller.ErrClosed) {
		err = errors.Join(err, werr)
	}
	return err
}
