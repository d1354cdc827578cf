package jshistory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shardgate/shardgate/gateway/broker"
)

// Errors. Those a caller acts on wrap broker.ErrUnavailable or
// broker.ErrClosed as well, so the gateway's 503 mapping holds.
var (
	ErrBadChannel   = errors.New("jshistory: bad channel name")
	ErrStreamConfig = errors.New("jshistory: stream config cannot be made to match")
	ErrEpochChanged = errors.New("jshistory: history epoch changed (stream recreated)")
	ErrLost         = errors.New("jshistory: messages the node needs are no longer in the stream")
	ErrFollowing    = errors.New("jshistory: channel already followed")
	errClosed       = fmt.Errorf("jshistory: %w", broker.ErrClosed)
	errDisconnected = fmt.Errorf("jshistory: not connected to NATS: %w", broker.ErrUnavailable)
)

// epochKey is the stream metadata key holding the epoch.
const epochKey = "shardgate_epoch"

// Config says which stream holds history and how the node talks to NATS.
// Size, TTL, Replicas and MaxBytes are the -history-* flags.
type Config struct {
	// Prefix is the subject prefix (-broker's, "shardgate" if empty).
	Prefix string
	// Stream is the stream's name ("SHARDGATE_HISTORY" if empty). One
	// per Prefix: two streams cannot capture the same subjects.
	Stream string
	// Size is how many messages are kept per channel (MaxMsgsPerSubject).
	Size int64
	// TTL is how long a message is kept (MaxAge).
	TTL time.Duration
	// Replicas is the stream's replication factor (1 if 0).
	Replicas int
	// MaxBytes caps the whole stream; the oldest messages go first
	// (DiscardOld). 0: 1 GiB.
	MaxBytes int64
	// Name is the connection name NATS monitoring shows.
	Name string
	// PublishTimeout bounds the wait for a publish's acknowledgement
	// (2s). ReadTimeout bounds each stream read of Follow (5s).
	PublishTimeout time.Duration
	ReadTimeout    time.Duration
	// ReconnectWait, ConnectTimeout and PingInterval as in natsbroker
	// (250ms, 2s, 5s); WriteTimeout is nats.go's FlusherTimeout
	// (PublishTimeout/2).
	ReconnectWait  time.Duration
	ConnectTimeout time.Duration
	PingInterval   time.Duration
	WriteTimeout   time.Duration
	// LiveQueue is how many republished messages may wait for routing
	// (65536); past it NATS drops them for this node and Follow catches
	// up from the stream.
	LiveQueue int
	// Log receives events. Nil: slog.Default().
	Log *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = "shardgate"
	}
	if c.Stream == "" {
		c.Stream = "SHARDGATE_HISTORY"
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 1 << 30
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = 2 * time.Second
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 5 * time.Second
	}
	if c.ReconnectWait <= 0 {
		c.ReconnectWait = 250 * time.Millisecond
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 2 * time.Second
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 5 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = c.PublishTimeout / 2
	}
	if c.LiveQueue <= 0 {
		c.LiveQueue = 65536
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return c
}

// Position is a place in a channel's history: Offset is the stream
// sequence of a message of the channel (0: before any), meaningful only
// with its Epoch.
type Position struct {
	Epoch  string
	Offset uint64
}

// Message is one stored message of a channel.
type Message struct {
	Offset uint64
	Data   []byte
}

// History is one node's view of the cluster's history stream. It is safe
// for concurrent use.
type History struct {
	cfg  Config
	subj subjects
	nc   *nats.Conn
	js   jetstream.JetStream
	log  *slog.Logger

	epoch atomic.Pointer[string]
	// gen counts connections: bumped by every (re)connect. checkedGen is
	// the generation whose stream was last checked (epochMu); a publish
	// on a newer one checks first, so no offset of a recreated stream is
	// handed out with the old epoch.
	gen        atomic.Uint64
	epochMu    sync.Mutex
	forced     atomic.Uint64 // the last generation reset after a publish timeout
	checkedGen uint64        // epochMu

	fmu       sync.Mutex
	followers map[string]*Follower // token → follower; fmu
	closed    bool                 // fmu

	live      chan *nats.Msg
	resync    chan struct{} // capacity 1: a reconnect or a drop; check the stream, then resyncAll
	resyncAll chan struct{} // capacity 1: the router must make every follower catch up
	catchSem  chan struct{} // bounds the catch-ups reading the stream at once
	stop      chan struct{}
	// base is cancelled by Close, ending the stream reads of catch-ups
	// and resync at once rather than after ReadTimeout.
	base       context.Context
	cancelBase context.CancelFunc
	ncClosed   chan struct{}
	wg         sync.WaitGroup
}

// Open connects to NATS at url, creates the history stream or checks the
// existing one against cfg (see ensureStream), and starts routing live
// messages. Unlike natsbroker it needs NATS at start: the stream's epoch
// is part of every answer. ctx bounds the start.
func Open(ctx context.Context, url string, cfg Config) (*History, error) {
	cfg = cfg.withDefaults()
	if !validPrefix(cfg.Prefix) {
		return nil, fmt.Errorf("jshistory: bad subject prefix %q", cfg.Prefix)
	}
	if cfg.Size <= 0 || cfg.TTL <= 0 {
		return nil, fmt.Errorf("jshistory: history size %d and ttl %v must be positive", cfg.Size, cfg.TTL)
	}
	h := &History{
		cfg:       cfg,
		subj:      newSubjects(cfg.Prefix),
		log:       cfg.Log,
		followers: make(map[string]*Follower),
		live:      make(chan *nats.Msg, cfg.LiveQueue),
		resync:    make(chan struct{}, 1),
		resyncAll: make(chan struct{}, 1),
		catchSem:  make(chan struct{}, catchUpParallel),
		stop:      make(chan struct{}),
		ncClosed:  make(chan struct{}),
	}
	h.base, h.cancelBase = context.WithCancel(context.Background())
	nc, err := nats.Connect(url,
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(cfg.ReconnectWait),
		nats.Timeout(cfg.ConnectTimeout),
		nats.PingInterval(cfg.PingInterval),
		nats.MaxPingsOutstanding(2),
		// Nothing is buffered while reconnecting, so a publish answered
		// with an error is never sent on the next connection.
		nats.ReconnectBufSize(-1),
		nats.FlusherTimeout(cfg.WriteTimeout),
		nats.ReconnectOnFlusherError(),
		// Every close is abortive (see abortiveDialer).
		nats.SetCustomDialer(abortiveDialer{timeout: cfg.ConnectTimeout}),
		nats.ReconnectHandler(h.onReconnect),
		nats.DisconnectErrHandler(h.onDisconnect),
		nats.ClosedHandler(func(*nats.Conn) { close(h.ncClosed) }),
		nats.ErrorHandler(h.onAsyncError),
	)
	if err != nil {
		h.cancelBase()
		return nil, fmt.Errorf("jshistory: connect %s: %w", url, err)
	}
	h.nc = nc
	h.gen.Store(1)
	js, err := jetstream.New(nc)
	if err != nil {
		h.closeConn()
		return nil, fmt.Errorf("jshistory: jetstream: %w", err)
	}
	h.js = js
	if err := h.checkStream(ctx, true); err != nil {
		h.closeConn()
		return nil, err
	}
	h.wg.Add(2)
	go h.routeLoop()
	go h.resyncLoop()
	return h, nil
}

// abortiveDialer dials with SO_LINGER 0, so closing the connection
// resets it: whatever the server (or a frozen server's kernel) has not
// read yet is discarded rather than read before the FIN. A publish that
// timed out and made nats.go drop the connection is then never stored
// later, unless the server had already read it (see Publish).
type abortiveDialer struct{ timeout time.Duration }

func (d abortiveDialer) Dial(network, address string) (net.Conn, error) {
	c, err := (&net.Dialer{Timeout: d.timeout}).Dial(network, address)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		if err := tc.SetLinger(0); err != nil {
			c.Close()
			return nil, fmt.Errorf("jshistory: set linger: %w", err)
		}
	}
	return c, nil
}

// Epoch is the history's current epoch.
func (h *History) Epoch() string { return *h.epoch.Load() }

// Connected reports whether NATS is reachable now. It never blocks.
func (h *History) Connected() bool { return h.nc.IsConnected() }

// Close stops every follower (their lost is not called), waits up to
// WriteTimeout for the server to have what was sent, and closes the
// connection. A second Close returns broker.ErrClosed.
func (h *History) Close() error {
	h.fmu.Lock()
	if h.closed {
		h.fmu.Unlock()
		return errClosed
	}
	h.closed = true
	fs := h.followers
	h.followers = map[string]*Follower{}
	h.fmu.Unlock()
	for _, f := range fs {
		f.halt()
	}
	close(h.stop)
	h.cancelBase()
	h.wg.Wait()
	if h.nc.IsConnected() {
		_ = h.nc.FlushTimeout(h.cfg.WriteTimeout)
	}
	h.closeConn()
	return nil
}

// closeConn closes nats.go's connection and waits for its callback
// goroutine to end, so no goroutine outlives Close.
func (h *History) closeConn() {
	h.cancelBase()
	h.nc.Close()
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-h.ncClosed:
	case <-t.C:
		h.log.Warn("jshistory: connection did not report closing")
	}
}

func (h *History) onReconnect(*nats.Conn) {
	h.gen.Add(1)
	h.log.Info("jshistory: NATS reconnected; followers catch up from the stream")
	kick(h.resync)
}

func (h *History) onDisconnect(_ *nats.Conn, err error) {
	if err != nil {
		h.log.Warn("jshistory: NATS connection lost", "err", err)
	}
}

func (h *History) onAsyncError(_ *nats.Conn, sub *nats.Subscription, err error) {
	if errors.Is(err, nats.ErrSlowConsumer) {
		// Live messages were dropped for this node: the followers notice
		// the gap on their next message, but a quiet channel would wait
		// for it; catch up now.
		h.log.Warn("jshistory: live queue full; NATS dropped messages, catching up from the stream")
		kick(h.resync)
		return
	}
	subject := ""
	if sub != nil {
		subject = sub.Subject
	}
	h.log.Error("jshistory: NATS error", "subject", subject, "err", err)
}

// kick leaves a wake-up in c (capacity 1) unless one is already there.
func kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// unavailable wraps err from NATS so that errors.Is(err,
// broker.ErrUnavailable) holds, keeping ErrClosed for a closed History.
func (h *History) unavailable(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, nats.ErrConnectionClosed):
		return fmt.Errorf("jshistory: %s: %w", what, broker.ErrClosed)
	default:
		return fmt.Errorf("jshistory: %s: %w: %w", what, broker.ErrUnavailable, err)
	}
}
