// Package gateway assembles a shardgate node: the public listener and its
// epoll acceptor, the shards, the broker and its dispatcher, the admin
// HTTP API, and the node's lifecycle (start, drain, stop).
//
// # Lock order
//
// This is the one list of the node's locks, for every package in it (the
// others point here). A lock may be taken while holding the ones to its
// left, never the reverse:
//
//	broker.Memory.mu → dispatcher.mu → Shard.mu
//	dispatcher.mu → history.Memory.mu
//	Gateway.interestMu → natsbroker.Broker.mu
//	Gateway.interestMu → historyBroker.mu → session.mu → dispatcher.mu
//	Gateway.interestMu → Shard.mu (channelLost queues CloseChannel)
//	jshistory.History.fmu → jshistory.Follower.mu; jshistory.History.epochMu alone
//	natsbroker.Broker.subMu → natsbroker.Broker.mu → nats.Conn's locks
//	natsbroker.Broker.stateMu → nats.Conn's locks
//
// Leaves, under which nothing else is taken: Shard.mu (it guards only a
// shard's inbox), ipLimiter.mu, natsbroker's pubQueue.mu, poller.Waker.mu,
// history.Memory.mu (its reads call back after releasing it; a shard
// reads it from its own goroutine, holding nothing).
//
// No lock is held across socket I/O. Shard.mu is taken only to queue a
// task (a broadcast, an attach, a callback's outcome), so every callback a
// shard hands out (a publish's done, a channel's ready) may run under the
// broker's locks: it only queues. The broker calls the dispatcher, its
// done and ready callbacks and OnDisconnect under no lock of its own,
// with one exception: historyBroker holds a follower session's mu across
// its delivery to the dispatcher, so that no message of an ended session
// (lost, or stopped when the last subscriber left) reaches a shard after
// its end. Nothing there blocks: the dispatcher only queues. Follower
// Stop, which may wait for nats.go's lock during a reconnect, runs under
// none of these locks, on a goroutine of its own.
package gateway

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shardgate/shardgate/gateway/auth"
	"github.com/shardgate/shardgate/gateway/broker"
	"github.com/shardgate/shardgate/gateway/broker/jshistory"
	"github.com/shardgate/shardgate/gateway/history"
	"github.com/shardgate/shardgate/shard"
	"github.com/shardgate/shardgate/shard/pmce"
	"golang.org/x/sys/unix"
)

// fdReserve is kept free of connections under the default -max-conns, for
// the listener, the admin API, the broker, epoll instances and logs.
const fdReserve = 256

// Gateway is one running node.
type Gateway struct {
	cfg      Config
	log      *slog.Logger
	m        *metrics
	shards   []*shard.Shard
	disp     *dispatcher
	broker   broker.Broker
	acc      *acceptor
	admin    *http.Server
	adminLn  net.Listener
	publicLn *net.TCPListener
	maxConns int64

	open     atomic.Int64 // upgraded connections not yet released
	draining atomic.Bool
	gone     chan struct{} // signalled when open drops to zero while draining

	perIP *ipLimiter // nil without -max-conns-per-ip

	// verifier checks tokens at upgrade; nil without -auth-secret and
	// -auth-jwks. Its Reload re-reads -auth-jwks and may be called from
	// any goroutine while connections are verified.
	verifier *auth.Verifier

	certs *certStore // the public listener's TLS pair; nil without -tls-cert

	hist    *history.Memory    // the node's history in memory; nil without -history-size or in a cluster
	js      *jshistory.History // the cluster's history stream; nil without -history-size and -broker nats://
	histSrc history.Source     // whichever of the two is on; nil without history

	interestMu sync.Mutex
	interest   map[string]*interest // channel → the node's registration with the broker

	stopClock    chan struct{}
	clockDone    chan struct{}
	clockStarted bool // set by New once the clock goroutine runs; closeAll waits for it only then
	adminDone    chan struct{}
}

// New binds the listeners and starts serving. Run waits for shutdown.
func New(cfg Config, log *slog.Logger) (_ *Gateway, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	g := &Gateway{
		cfg:       cfg,
		log:       log,
		m:         newMetrics(),
		disp:      &dispatcher{},
		gone:      make(chan struct{}, 1),
		interest:  make(map[string]*interest),
		stopClock: make(chan struct{}),
		clockDone: make(chan struct{}),
		adminDone: make(chan struct{}),
	}
	g.maxConns = int64(cfg.MaxConns)
	if g.maxConns == 0 {
		g.maxConns = defaultMaxConns()
	}

	switch {
	case cfg.AuthSecret != "" || cfg.AuthJWKS != "":
		g.verifier, err = auth.NewVerifier(auth.Keys{Secret: []byte(cfg.AuthSecret), JWKSFile: cfg.AuthJWKS,
			Issuer: cfg.AuthIssuer, Audience: cfg.AuthAudience})
		if err != nil {
			return nil, fmt.Errorf("gateway: -auth-jwks: %w", err)
		}
		if cfg.AuthJWKS != "" {
			log.Info("token key set loaded", "file", cfg.AuthJWKS, "kids", g.verifier.KeyIDs())
		}
	case cfg.AuthIssuer != "" || cfg.AuthAudience != "":
		// Checking iss/aud with no key to check signatures would be
		// auth in name only: refuse rather than start open.
		return nil, errors.New("gateway: -auth-issuer and -auth-audience need -auth-secret or -auth-jwks")
	default:
		log.Warn("no -auth-secret or -auth-jwks set: every client may subscribe and publish to every channel")
	}
	var origins *auth.OriginPolicy
	if cfg.AllowedOrigins != "" {
		if origins, err = auth.ParseOriginPolicy(cfg.AllowedOrigins); err != nil {
			return nil, fmt.Errorf("gateway: -allowed-origins: %w", err)
		}
	}
	adminTLS, err := g.adminTLSConfig()
	if err != nil {
		return nil, err
	}
	var publicTLS *tls.Config
	if cfg.TLSCert != "" {
		g.certs = &certStore{certFile: cfg.TLSCert, keyFile: cfg.TLSKey, expiry: g.m.tlsCertExpiry}
		if err := g.certs.load(); err != nil {
			return nil, fmt.Errorf("gateway: -tls-cert: %w", err)
		}
		g.m.enableTLS()
		publicTLS = g.certs.serverConfig(cfg.TLSMinVersion)
	}

	// Undo whatever was started if a later step fails. g is a local, not
	// the result: a failing "return nil, err" must not nil it first.
	defer func() {
		if err != nil {
			g.closeAll()
		}
	}()

	var refresh func(string) (shard.Grants, error) // nil without auth: a refresh is a bad_request
	if g.verifier != nil {
		refresh = g.refreshToken
	}
	var hist shard.History // nil: history off, and shards run as without it
	switch {
	case cfg.HistorySize == 0:
	case cfg.Broker != "memory":
		// The cluster's offsets come from one authority for every node,
		// JetStream, not from each node's own store.
		if err := g.openClusterHistory(); err != nil {
			return nil, err
		}
		hist = shardHistory{src: g.histSrc}
	default:
		g.hist, err = history.NewMemory(history.MemoryConfig{Size: cfg.HistorySize, TTL: cfg.HistoryTTL, MaxBytes: cfg.HistoryMaxBytes})
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		g.disp.hist = g.hist
		g.histSrc = g.hist
		hist = shardHistory{src: g.hist}
		log.Info("history in memory", "epoch", g.hist.Epoch(), "size", cfg.HistorySize, "ttl", cfg.HistoryTTL,
			"max_bytes", cfg.HistoryMaxBytes, "recover_max", cfg.RecoverMax)
	}
	for i := range cfg.Shards {
		s, err := shard.New(shard.Options{
			ID:               i,
			MaxMessageBytes:  cfg.MaxMessageBytes,
			MaxSubscriptions: cfg.MaxSubscriptions,
			PingInterval:     cfg.PingInterval,
			IdleTimeout:      cfg.IdleTimeout,
			WriteTimeout:     cfg.WriteTimeout,
			CloseTimeout:     5 * time.Second,
			SendQueueBytes:   cfg.SendQueueBytes,
			ClientRate:       cfg.ClientRate,
			ClientBurst:      2 * cfg.ClientRate,
			Publisher:        clientPublisher{g},
			Metrics:          g.m.forShard(i),
			Log:              log,
			OnChannel:        g.onChannel,
			OnRelease:        g.onRelease,
			Refresh:          refresh,
			History:          hist,
			RecoverMax:       cfg.RecoverMax,
		})
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		g.shards = append(g.shards, s)
	}
	g.disp.shards = g.shards
	g.disp.compressions = g.m.compressions
	if cfg.Compression {
		g.disp.deflate = pmce.NewDeflater(pmce.DefaultLevel)
		g.disp.deflateMin = cfg.CompressionMinBytes
	}
	g.m.watchDeflate(g.shards)

	// A networked broker may deliver as soon as it exists, so it comes
	// after the shards; nothing calls it before the listeners open.
	if g.broker, err = g.newBroker(); err != nil {
		return nil, err
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("gateway: listen %s: %w", cfg.Listen, err)
	}
	g.publicLn = ln.(*net.TCPListener)
	if g.adminLn, err = net.Listen("tcp", cfg.Admin); err != nil {
		return nil, fmt.Errorf("gateway: admin listen %s: %w", cfg.Admin, err)
	}

	hs := newHandshaker(cfg.Path, g.verifier, origins, g.maxConns, &g.open, g.m.upgrades, cfg.Compression)
	if cfg.MaxConnsPerIP > 0 {
		g.perIP = newIPLimiter(cfg.MaxConnsPerIP)
	}
	lim := acceptorLimits{timeout: cfg.HandshakeTimeout, maxHandshakes: cfg.MaxHandshakes, perIP: g.perIP, tls: publicTLS}
	lim.proxyProtocol = cfg.ProxyProtocol
	if g.acc, err = newAcceptor(log, g.publicLn, hs, g.shards, lim); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}

	g.admin = g.newAdminServer(adminTLS)
	go func() {
		defer close(g.adminDone)
		if err := g.serveAdmin(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin server failed", "err", err)
		}
	}()
	g.clockStarted = true
	go g.clock()
	log.Info("shardgate listening", "ws", g.publicLn.Addr().String()+cfg.Path, "tls", publicTLS != nil, "admin", g.adminLn.Addr().String(),
		"shards", cfg.Shards, "max_conns", g.maxConns, "broker", cfg.Broker)
	return g, nil
}

// defaultMaxConns is the process's open-file limit less fdReserve.
func defaultMaxConns() int64 {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == unix.RLIM_INFINITY {
		return 1 << 20
	}
	return max(int64(lim.Cur)-fdReserve, 1)
}

// Addr is the public WebSocket listener's address.
func (g *Gateway) Addr() net.Addr { return g.publicLn.Addr() }

// AdminAddr is the admin listener's address.
func (g *Gateway) AdminAddr() net.Addr { return g.adminLn.Addr() }

// tickInterval is how often shards sweep heartbeats, timeouts and token
// expiry: fine enough for the shortest configured timer, never busier
// than 100 Hz, and at most 500 ms so that a connection is closed within a
// second of its token's exp (SPEC "Sessions").
func (g *Gateway) tickInterval() time.Duration {
	d := min(500*time.Millisecond, g.cfg.PingInterval/4, g.cfg.IdleTimeout/4, g.cfg.HandshakeTimeout/4)
	return max(d, 10*time.Millisecond)
}

// clock ticks every shard and the acceptor. One goroutine per node, not a
// timer per connection.
func (g *Gateway) clock() {
	defer close(g.clockDone)
	t := time.NewTicker(g.tickInterval())
	defer t.Stop()
	for {
		select {
		case <-g.stopClock:
			return
		case <-t.C:
			g.acc.Tick()
			for _, s := range g.shards {
				s.Tick()
			}
			if g.hist != nil {
				g.hist.Expire() // a quiet node gives expired history back too
			}
		}
	}
}

// Run serves until ctx is done, then drains: readiness turns 503, the
// listener closes, queued messages are delivered, every connection gets
// close 1001 and up to -drain-timeout to answer. It returns nil after a
// clean drain.
func (g *Gateway) Run(ctx context.Context) error {
	<-ctx.Done()
	return g.Shutdown()
}

// Shutdown drains and stops the node (see Run).
func (g *Gateway) Shutdown() error {
	if g.draining.Swap(true) {
		return errDraining
	}
	g.log.Info("draining", "connections", g.open.Load(), "timeout", g.cfg.DrainTimeout)
	g.acc.Stop()
	g.disp.startDrain(func(s *shard.Shard) { s.Drain(g.cfg.DrainTimeout) })
	if g.open.Load() > 0 {
		t := time.NewTimer(g.cfg.DrainTimeout)
		select {
		case <-g.gone:
		case <-t.C:
			g.log.Warn("drain timeout: closing remaining connections", "connections", g.open.Load())
		}
		t.Stop()
	}
	g.closeAll()
	g.log.Info("stopped")
	return nil
}

// closeAll stops whatever has been started, in dependency order.
func (g *Gateway) closeAll() {
	if g.acc != nil {
		g.acc.Stop()
	} else if g.publicLn != nil {
		g.publicLn.Close()
	}
	if g.clockStarted {
		select {
		case <-g.stopClock:
		default:
			close(g.stopClock)
			<-g.clockDone
		}
	}
	for _, s := range g.shards {
		if err := s.Close(); err != nil && !errors.Is(err, shard.ErrClosed) {
			g.log.Warn("close shard", "shard", s.ID(), "err", err)
		}
	}
	if g.broker != nil {
		_ = g.broker.Close()
	}
	if g.js != nil {
		_ = g.js.Close() // after the broker, whose followers and publishes use it
	}
	if g.admin != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = g.admin.Shutdown(ctx)
		cancel()
		<-g.adminDone
	} else if g.adminLn != nil {
		g.adminLn.Close()
	}
}

func (g *Gateway) onRelease(tag uint32) {
	if g.perIP != nil {
		g.perIP.release(tag)
	}
	if g.open.Add(-1) == 0 && g.draining.Load() {
		select {
		case g.gone <- struct{}{}:
		default:
		}
	}
}

// refreshToken verifies the token of a client's refresh like an upgrade's
// (shard.Options.Refresh; the shard checks subject and expiry against the
// token in force). A failure returns a nil interface, not a nil *Grants.
func (g *Gateway) refreshToken(token string) (shard.Grants, error) {
	grants, err := g.verifier.Verify(token, time.Now())
	if err != nil {
		return nil, err
	}
	return grants, nil
}

// disconnectLocal closes this node's connections whose token subject is
// sub (the broker calls it for a disconnect made on any node).
func (g *Gateway) disconnectLocal(sub string) {
	for _, s := range g.shards {
		s.Disconnect(sub)
	}
}

// publish hands a message to the broker; done gets the outcome (see
// broker.Broker.Publish). source labels the metric.
func (g *Gateway) publish(channel string, data json.RawMessage, source string, done func(error)) {
	if g.draining.Load() {
		done(errDraining)
		return
	}
	counter := g.m.publishes.WithLabelValues(source)
	g.broker.Publish(channel, data, func(err error) {
		if err == nil {
			counter.Inc()
		}
		done(err)
	})
}

// publishWait publishes and waits for the broker's answer, which comes
// within the broker's bounded time, with the message's place in its
// channel's history (zero without history).
func (g *Gateway) publishWait(channel string, data json.RawMessage, source string) (broker.Receipt, error) {
	type outcome struct {
		r   broker.Receipt
		err error
	}
	out := make(chan outcome, 1)
	rp, ok := g.broker.(broker.ReceiptPublisher)
	switch {
	case g.draining.Load():
		return broker.Receipt{}, errDraining
	case !ok:
		g.publish(channel, data, source, func(err error) { out <- outcome{err: err} })
	default:
		counter := g.m.publishes.WithLabelValues(source)
		rp.PublishReceipt(channel, data, func(r broker.Receipt, err error) {
			if err == nil {
				counter.Inc()
			}
			out <- outcome{r, err}
		})
	}
	o := <-out
	return o.r, o.err
}

// clientPublisher lets shards publish on behalf of clients.
type clientPublisher struct{ g *Gateway }

func (p clientPublisher) PublishFromClient(channel string, data json.RawMessage, done func(error)) {
	p.g.publish(channel, data, sourceClient, done)
}
