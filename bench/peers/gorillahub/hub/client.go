package hub

import (
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// client is one connection: a reader goroutine, a writer goroutine, and the
// send queue between the hub and the writer.
type client struct {
	hub  *Hub
	conn *websocket.Conn

	mu     sync.Mutex // guards send against close; see the package doc
	send   chan *websocket.PreparedMessage
	closed bool

	// subs is guarded by hub.mu.
	subs map[string]struct{}
}

// trySend queues m without waiting; false means the queue is full (or
// closed).
func (c *client) trySend(m *websocket.PreparedMessage) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return true // already on its way out; not a slow consumer
	}
	select {
	case c.send <- m:
		return true
	default:
		return false
	}
}

// closeSend closes the queue once; the writer then closes the connection.
func (c *client) closeSend() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		close(c.send)
	}
}

// ServeHTTP upgrades a request to a WebSocket client of the hub.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != h.opts.Path {
		http.NotFound(w, r)
		return
	}
	conn, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered with an HTTP error
	}
	c := &client{
		hub:  h,
		conn: conn,
		send: make(chan *websocket.PreparedMessage, h.opts.SendQueue),
		subs: make(map[string]struct{}),
	}
	select {
	case h.register <- c:
	case <-h.quit:
		conn.Close()
		return
	}
	h.pumps.Add(2)
	go c.writePump()
	go c.readPump()
}

// readPump reads requests until the connection fails, then unregisters.
func (c *client) readPump() {
	defer c.hub.pumps.Done()
	defer func() {
		select {
		case c.hub.unregister <- c:
		case <-c.hub.quit:
		}
		c.conn.Close()
	}()
	h := c.hub
	c.conn.SetReadLimit(h.opts.MaxMessageBytes)
	c.conn.SetReadDeadline(time.Now().Add(h.opts.PongWait))
	c.conn.SetPongHandler(func(string) error {
		return c.conn.SetReadDeadline(time.Now().Add(h.opts.PongWait))
	})
	for {
		op, msg, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		c.conn.SetReadDeadline(time.Now().Add(h.opts.PongWait))
		if op != websocket.TextMessage {
			c.conn.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseUnsupportedData, "text only"), time.Now().Add(h.opts.WriteWait))
			return
		}
		h.metrics.received.Inc()
		if reply := c.handle(msg); reply != nil {
			pm, err := websocket.NewPreparedMessage(websocket.TextMessage, reply)
			if err == nil && !c.trySend(pm) {
				return // too slow even for its own replies
			}
		}
	}
}

// handle runs one request and returns the reply.
func (c *client) handle(msg []byte) []byte {
	var req request
	if err := json.Unmarshal(msg, &req); err != nil {
		return encodeError(nil, "bad_json", "invalid JSON")
	}
	switch req.Type {
	case "subscribe", "unsubscribe", "publish":
	default:
		return encodeError(req.ID, "bad_request", "unknown type")
	}
	if !validChannel(req.Channel) {
		return encodeError(req.ID, "bad_channel", "bad channel name")
	}
	switch req.Type {
	case "subscribe":
		c.hub.subscribe(c, req.Channel)
		return encodeReply("subscribed", req.Channel, req.ID)
	case "unsubscribe":
		c.hub.unsubscribe(c, req.Channel)
		return encodeReply("unsubscribed", req.Channel, req.ID)
	default: // publish
		if req.Data == nil {
			return encodeError(req.ID, "bad_request", `missing "data"`)
		}
		if !c.hub.Publish(req.Channel, req.Data) {
			return encodeError(req.ID, "unavailable", "shutting down")
		}
		return encodeReply("published", req.Channel, req.ID)
	}
}

// writePump writes queued messages and pings; when the queue is closed it
// sends close 1001 and closes the connection, which ends readPump too.
func (c *client) writePump() {
	defer c.hub.pumps.Done()
	h := c.hub
	ticker := time.NewTicker(h.opts.PingInterval)
	defer func() {
		ticker.Stop()
		c.conn.Close()
	}()
	for {
		select {
		case m, ok := <-c.send:
			c.conn.SetWriteDeadline(time.Now().Add(h.opts.WriteWait))
			if !ok {
				c.conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, ""))
				return
			}
			if err := c.conn.WritePreparedMessage(m); err != nil {
				if !errors.Is(err, websocket.ErrCloseSent) {
					h.opts.Log.Debug("write failed", "err", err)
				}
				return
			}
			h.metrics.sent.Inc()
		case <-ticker.C:
			if err := c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(h.opts.WriteWait)); err != nil {
				return
			}
		}
	}
}
