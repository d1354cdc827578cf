// Package hub is the WebSocket broadcast server most Go projects write
// first, written well: github.com/gorilla/websocket, one hub goroutine
// that owns the set of clients and serialises register, unregister and
// broadcast, and two goroutines per connection (a reader and a writer)
// with a bounded send queue between the hub and the writer. shardbench
// measures it next to shardgate as the design users would otherwise pick.
//
// It speaks the part of shardgate's client protocol a benchmark needs:
// subscribe, unsubscribe and publish requests, the message envelope, and
// POST /api/publish on the admin listener, so shardbench drives both
// servers unchanged.
//
// # Goroutines and locks
//
//   - The hub goroutine (Hub.run) owns clients: it alone adds, removes and
//     closes them, and fans broadcasts out.
//   - Hub.mu (RWMutex) guards channels and every client's subs: reader
//     goroutines take it to write on subscribe and unsubscribe, the hub
//     takes it to read during a fan-out and to write on removal.
//   - client.mu guards the client's send channel against being closed while
//     someone sends on it: the hub closes it, readers queue replies on it.
//
// Lock order: Hub.mu → client.mu. Nothing blocks while holding either: sends
// on a send channel never wait (a full queue makes the client a slow
// consumer, closed without delaying anyone else).
package hub

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Hub. Zero fields take the defaults in brackets.
type Options struct {
	Path            string        // WebSocket path ["/ws"]
	SendQueue       int           // messages queued per client before it is dropped [256]
	MaxMessageBytes int64         // largest client message [65536]
	PingInterval    time.Duration // heartbeat [30s]
	PongWait        time.Duration // a client silent this long is dropped [90s]
	WriteWait       time.Duration // one write may take this long [10s]
	// Compression accepts permessage-deflate offers (gorilla answers
	// server_no_context_takeover and client_no_context_takeover) and
	// compresses every message to clients that negotiated it, at
	// compress/flate level 1. A broadcast is compressed once: a
	// PreparedMessage keeps one frame per kind of connection. [false]
	Compression bool
	// Registerer receives the hub's metrics [prometheus.DefaultRegisterer].
	Registerer prometheus.Registerer
	Log        *slog.Logger
}

func (o *Options) setDefaults() {
	if o.Path == "" {
		o.Path = "/ws"
	}
	if o.SendQueue <= 0 {
		o.SendQueue = 256
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = 65536
	}
	if o.PingInterval <= 0 {
		o.PingInterval = 30 * time.Second
	}
	if o.PongWait <= 0 {
		o.PongWait = 90 * time.Second
	}
	if o.WriteWait <= 0 {
		o.WriteWait = 10 * time.Second
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.DefaultRegisterer
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
}

// broadcast is one message for the subscribers of channel, or for every
// client when all is set.
type broadcast struct {
	channel string
	all     bool
	msg     *websocket.PreparedMessage
}

// Hub is the set of clients and their subscriptions.
type Hub struct {
	opts     Options
	upgrader websocket.Upgrader
	metrics  *metrics

	register   chan *client
	unregister chan *client
	broadcast  chan broadcast
	quit       chan struct{} // closed by Close
	hubDone    chan struct{} // closed when run returns
	closeOnce  sync.Once
	pumps      sync.WaitGroup // every client's reader and writer

	// clients belongs to the hub goroutine.
	clients map[*client]struct{}

	mu       sync.RWMutex
	channels map[string]map[*client]struct{} // guarded by mu
}

// New creates a hub and starts its goroutine; Close stops it.
func New(opts Options) (*Hub, error) {
	opts.setDefaults()
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	h := &Hub{
		opts:    opts,
		metrics: m,
		upgrader: websocket.Upgrader{
			ReadBufferSize:  1024,
			WriteBufferSize: 1024,
			// Write buffers are pooled: an idle connection holds none.
			WriteBufferPool: &sync.Pool{},
			// A benchmark peer accepts any origin, like shardgate without
			// -allowed-origins.
			CheckOrigin:       func(*http.Request) bool { return true },
			EnableCompression: opts.Compression,
		},
		register:   make(chan *client),
		unregister: make(chan *client),
		broadcast:  make(chan broadcast, 256),
		quit:       make(chan struct{}),
		hubDone:    make(chan struct{}),
		clients:    make(map[*client]struct{}),
		channels:   make(map[string]map[*client]struct{}),
	}
	go h.run()
	return h, nil
}

// Close disconnects every client (close 1001) and waits for all of the
// hub's goroutines.
func (h *Hub) Close() {
	h.closeOnce.Do(func() { close(h.quit) })
	<-h.hubDone
	h.pumps.Wait()
}

// run is the hub goroutine.
func (h *Hub) run() {
	defer close(h.hubDone)
	for {
		select {
		case c := <-h.register:
			h.clients[c] = struct{}{}
			h.metrics.connections.Inc()
		case c := <-h.unregister:
			if _, ok := h.clients[c]; ok {
				h.remove(c)
			}
		case b := <-h.broadcast:
			h.fanout(b)
		case <-h.quit:
			for c := range h.clients {
				h.remove(c)
			}
			return
		}
	}
}

// remove forgets c and closes its send queue, which makes its writer say
// goodbye and close the connection. Hub goroutine only.
func (h *Hub) remove(c *client) {
	delete(h.clients, c)
	h.metrics.connections.Dec()
	h.mu.Lock()
	for ch := range c.subs {
		h.unsubscribeLocked(c, ch)
	}
	h.mu.Unlock()
	c.closeSend()
}

// fanout queues b to every subscriber without waiting: a client whose
// queue is full is removed as a slow consumer. Hub goroutine only.
func (h *Hub) fanout(b broadcast) {
	var slow []*client
	h.mu.RLock()
	if b.all {
		for c := range h.clients {
			if !c.trySend(b.msg) {
				slow = append(slow, c)
			}
		}
	} else {
		for c := range h.channels[b.channel] {
			if !c.trySend(b.msg) {
				slow = append(slow, c)
			}
		}
	}
	h.mu.RUnlock()
	for _, c := range slow {
		if _, ok := h.clients[c]; ok {
			h.remove(c)
			h.metrics.slowConsumers.Inc()
		}
	}
}

// subscribe adds c to channel. Called by c's reader.
func (h *Hub) subscribe(c *client, channel string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := c.subs[channel]; ok {
		return
	}
	set := h.channels[channel]
	if set == nil {
		set = make(map[*client]struct{})
		h.channels[channel] = set
	}
	set[c] = struct{}{}
	c.subs[channel] = struct{}{}
	h.metrics.subscriptions.Inc()
}

// unsubscribe removes c from channel. Called by c's reader.
func (h *Hub) unsubscribe(c *client, channel string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.unsubscribeLocked(c, channel)
}

// unsubscribeLocked: h.mu must be held for writing.
func (h *Hub) unsubscribeLocked(c *client, channel string) {
	if _, ok := c.subs[channel]; !ok {
		return
	}
	delete(c.subs, channel)
	set := h.channels[channel]
	delete(set, c)
	if len(set) == 0 {
		delete(h.channels, channel)
	}
	h.metrics.subscriptions.Dec()
}

// Publish hands data (a JSON value) to the hub for the subscribers of
// channel, or for everyone when channel is empty. It waits while the hub's
// queue is full (backpressure on publishers) and returns false once the hub
// is closed.
func (h *Hub) Publish(channel string, data json.RawMessage) bool {
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, encodeMessage(channel, data))
	if err != nil {
		return false
	}
	select {
	case h.broadcast <- broadcast{channel: channel, all: channel == "", msg: pm}:
		h.metrics.published.Inc()
		return true
	case <-h.quit:
		return false
	}
}
