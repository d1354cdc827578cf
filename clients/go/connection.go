package shardgate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

const (
	// writeTimeout bounds one frame's write: a connection whose socket
	// takes no data for this long is dead to the client.
	writeTimeout = 10 * time.Second
	// closeWait is how long a client-initiated close waits for the
	// gateway's close frame before dropping the socket.
	closeWait = time.Second
	// closeAbnormal is the code reported for a connection that ended
	// without a close frame (RFC 6455 §7.1.5).
	closeAbnormal = websocket.CloseAbnormalClosure
)

// attempt is one connection attempt: a token fetch if needed, then the
// dial, on a goroutine of its own so that the loop stays responsive.
type attempt struct {
	url    string
	fetch  bool // get a fresh token first
	cancel context.CancelFunc

	mu      sync.Mutex
	nc      net.Conn // the TCP connection once dialed, so abort can cut a handshake short
	aborted bool
}

// attemptResult is what an attempt reports to the loop.
type attemptResult struct {
	a       *attempt
	ws      *websocket.Conn // nil on failure
	tok     token           // the fetched token, when fetched
	fetched bool
	status  int // HTTP status of a refused handshake
	err     error
}

// run fetches a token when asked to, then dials. tok is the token to
// use otherwise.
func (a *attempt) run(ctx context.Context, o *Options, tok token) attemptResult {
	res := attemptResult{a: a}
	if a.fetch {
		raw, err := o.GetToken(ctx)
		if err != nil {
			res.err = fmt.Errorf("shardgate: GetToken: %w", err)
			return res
		}
		tok = newToken(raw, time.Now())
		res.tok, res.fetched = tok, true
	}
	header := o.Header.Clone()
	if header == nil {
		header = make(http.Header)
	}
	if tok.raw != "" {
		header.Set("Authorization", "Bearer "+tok.raw)
	}
	d := websocket.Dialer{
		Proxy:            http.ProxyFromEnvironment,
		HandshakeTimeout: o.HandshakeTimeout,
		TLSClientConfig:  o.TLSConfig,
		NetDialContext:   a.dial,
	}
	ws, resp, err := d.DialContext(ctx, a.url, header)
	if err != nil {
		if resp != nil {
			res.status = resp.StatusCode
			res.err = fmt.Errorf("shardgate: dial %s: handshake refused with HTTP %d: %w", a.url, resp.StatusCode, err)
		} else {
			res.err = fmt.Errorf("shardgate: dial %s: %w", a.url, err)
		}
		return res
	}
	res.ws = ws
	return res
}

// dial opens the TCP connection and keeps it, so that abort can close it:
// gorilla/websocket honours a context's cancellation only while dialing,
// not during the HTTP handshake.
func (a *attempt) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.aborted {
		nc.Close()
		return nil, context.Canceled
	}
	a.nc = nc
	return nc, nil
}

// abort ends the attempt early: its result, when it comes, is ignored.
func (a *attempt) abort() {
	a.cancel()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.aborted = true
	if a.nc != nil {
		a.nc.Close()
	}
}

// connection is an open WebSocket with its reader and writer goroutines.
// The loop owns it: it sends through send and lets go of it with close;
// the reader reports frames and the end to the loop.
type connection struct {
	ws  *websocket.Conn
	url string
	// done is closed by close: the loop no longer listens, the writer
	// stops (after a close handshake when graceful).
	done       chan struct{}
	readerDone chan struct{}
	graceful   bool // set before done closes

	mu   sync.Mutex
	out  [][]byte      // frames to write, in order
	wake chan struct{} // capacity 1: out has frames
}

// frameEvent is a frame the reader read (or could not decode).
type frameEvent struct {
	conn *connection
	r    reply
	err  error
}

// lostEvent reports the end of a connection: the close frame's code and
// reason, or closeAbnormal and the read error.
type lostEvent struct {
	conn   *connection
	code   int
	reason string
	err    error
}

func newConnection(ws *websocket.Conn, url string) *connection {
	return &connection{
		ws: ws, url: url,
		done: make(chan struct{}), readerDone: make(chan struct{}),
		wake: make(chan struct{}, 1),
	}
}

// send queues a frame for the writer; it never blocks.
func (c *connection) send(frame []byte) {
	c.mu.Lock()
	c.out = append(c.out, frame)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// close lets go of the connection. graceful: the writer writes what is
// queued, then a close frame (1000), and drops the socket once the
// gateway answered or after closeWait; otherwise the socket is dropped
// now (it is lost already). Called once, by the loop.
func (c *connection) close(graceful bool) {
	c.graceful = graceful
	close(c.done)
	if !graceful {
		c.ws.Close()
	}
}

// read reads frames until the connection fails, posting each to the loop
// (post returns false once the loop no longer listens). A connection
// from which nothing arrives for readTimeout (a ping included; negative:
// no limit) is taken as lost.
func (c *connection) read(post func(any, <-chan struct{}) bool, readTimeout time.Duration) {
	defer close(c.readerDone)
	extend := func() {
		if readTimeout > 0 {
			c.ws.SetReadDeadline(time.Now().Add(readTimeout))
		}
	}
	c.ws.SetPingHandler(func(data string) error {
		extend()
		err := c.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(writeTimeout))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		return err
	})
	for {
		extend()
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			ev := lostEvent{conn: c, code: closeAbnormal, err: err}
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				ev.code, ev.reason = ce.Code, ce.Text
				if ce.Code != closeAbnormal {
					ev.err = nil
				}
			}
			post(ev, c.done)
			return
		}
		r, err := parseReply(b)
		post(frameEvent{conn: c, r: r, err: err}, c.done)
	}
}

// write writes queued frames until the loop lets go of the connection
// or a write fails; a failed write drops the socket, so that the reader
// reports the loss.
func (c *connection) write() {
	for {
		select {
		case <-c.wake:
			if err := c.flush(); err != nil {
				c.ws.Close()
				return
			}
		case <-c.done:
			if c.graceful {
				c.closeHandshake()
			}
			return
		}
	}
}

// flush writes every queued frame.
func (c *connection) flush() error {
	c.mu.Lock()
	frames := c.out
	c.out = nil
	c.mu.Unlock()
	for _, f := range frames {
		c.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
		if err := c.ws.WriteMessage(websocket.TextMessage, f); err != nil {
			return err
		}
	}
	return nil
}

// closeHandshake writes what is queued and a close frame, waits for the
// gateway's answer (the reader ends on it) for up to closeWait, and
// drops the socket.
func (c *connection) closeHandshake() {
	defer c.ws.Close()
	if c.flush() != nil {
		return
	}
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	if c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeWait)) != nil {
		return
	}
	t := time.NewTimer(closeWait)
	defer t.Stop()
	select {
	case <-c.readerDone:
	case <-t.C:
	}
}
