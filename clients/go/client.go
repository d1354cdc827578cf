package shardgate

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Client is a connection to a shardgate cluster that reconnects by
// itself, keeps its subscriptions across reconnects and recovers what
// they missed. Its methods are safe for concurrent use.
//
// Handlers (Options.OnState, OnMessage, OnError and each subscription's
// Handlers) run on one goroutine per client, one at a time, in the order
// of the events that caused them: a handler that blocks holds up every
// handler after it (never the connection, whose frames queue up
// meanwhile, without bound). Handlers may call any method of the client
// except Close, which waits for the handlers to finish: call Disconnect
// from a handler, or Close from another goroutine.
type Client struct {
	opts  Options
	ids   atomic.Uint64 // request ids, shared by the loop and Publish
	state atomic.Int32  // a State, written by the loop

	cmds     chan any      // API → loop
	loopDone chan struct{} // closed when the loop has stopped, every goroutine it started with it
	handlers *dispatcher

	mu        sync.Mutex // guards the lifecycle below
	started   bool
	closed    bool
	closeDone chan struct{} // closed when Close has finished
	// early holds the subscriptions made before the first Connect, handed
	// to the loop when it starts.
	early map[string]*Subscription
}

// New checks opts and returns a client in state Disconnected; it starts
// nothing until Connect.
func New(opts Options) (*Client, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Client{
		opts:      o,
		cmds:      make(chan any),
		loopDone:  make(chan struct{}),
		handlers:  newDispatcher(),
		closeDone: make(chan struct{}),
		early:     make(map[string]*Subscription),
	}, nil
}

// Commands from the API to the loop.
type (
	cmdConnect    struct{}
	cmdDisconnect struct{ done chan struct{} }
	cmdClose      struct{}
	cmdSubscribe  struct {
		s      *Subscription
		result chan error
	}
	cmdUnsubscribe struct{ s *Subscription }
	cmdPublish     struct{ p *pendingPublish }
	cmdForget      struct{ p *pendingPublish }
)

// pendingPublish is a publish waiting for its answer.
type pendingPublish struct {
	id     uint64
	frame  []byte
	result chan error // capacity 1: the loop never waits on it
}

// Connect starts connecting (the client's goroutines on the first call)
// and returns at once; OnState reports how it goes. Calling it while
// connecting or connected does nothing; after Disconnect, close code
// 4003 or ErrNoToken it starts again. It fails only after Close.
func (c *Client) Connect() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if !c.started {
		c.started = true
		l := newLoop(c, c.early)
		c.early = nil
		go l.run()
		go c.handlers.run()
	}
	c.mu.Unlock()
	return c.send(cmdConnect{})
}

// Disconnect closes the connection (code 1000) or stops the attempt under
// way, and goes to Disconnected; subscriptions stay, and a later Connect
// resubscribes and recovers them. Pending publishes fail with
// CodeDisconnected.
func (c *Client) Disconnect() {
	c.mu.Lock()
	started := c.started
	c.mu.Unlock()
	if !started {
		return
	}
	done := make(chan struct{})
	if c.send(cmdDisconnect{done}) == nil {
		<-done
	}
}

// Close disconnects and stops the client for good: once it returns, no
// goroutine of the client is left and no handler runs any more (the
// events queued before it, the final Disconnected included, have been
// handled). It must not be called from a handler, which it would wait
// for. A GetToken that ignores its context's end delays it. Closing
// twice is harmless.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.closeDone
		return nil
	}
	c.closed = true
	started := c.started
	c.mu.Unlock()
	if started {
		c.send(cmdClose{})
		<-c.loopDone
		<-c.handlers.done
	}
	close(c.closeDone)
	return nil
}

// State is the client's state now.
func (c *Client) State() State { return State(c.state.Load()) }

// Subscribe registers a subscription to channel and returns it at once;
// the subscribe goes out whenever the client is connected (now, or after
// every reconnect), recovering missed messages when the gateway keeps
// history. One subscription per channel: a second one fails with
// ErrAlreadySubscribed. An invalid channel name fails with an *Error of
// code bad_channel.
func (c *Client) Subscribe(channel string, h Handlers) (*Subscription, error) {
	if !validChannel(channel) {
		return nil, errBadChannel(channel)
	}
	s := &Subscription{c: c, channel: channel, h: h}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if !c.started {
		defer c.mu.Unlock()
		if c.early[channel] != nil {
			return nil, ErrAlreadySubscribed
		}
		c.early[channel] = s
		return s, nil
	}
	c.mu.Unlock()
	result := make(chan error, 1)
	if err := c.send(cmdSubscribe{s, result}); err != nil {
		return nil, err
	}
	if err := <-result; err != nil {
		return nil, err
	}
	return s, nil
}

func (c *Client) unsubscribe(s *Subscription) {
	c.mu.Lock()
	if !c.started {
		if c.early[s.channel] == s {
			delete(c.early, s.channel)
		}
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.send(cmdUnsubscribe{s})
}

// Publish sends data to channel and waits for the gateway's answer: nil
// once the gateway took the message, an *Error with the gateway's code
// otherwise (forbidden, rate_limited, unavailable, ...). It fails at once
// with CodeDisconnected when the client is not connected (nothing is
// queued), with CodeDisconnected when the connection is lost before the
// answer, and with CodeTimeout after Options.PublishTimeout; in those two
// cases the message may or may not have been delivered, and the client
// never sends it again. When ctx ends first, Publish returns its error
// (same uncertainty).
//
// data is encoded with encoding/json; pass a json.RawMessage to send JSON
// as it is. A message over the gateway's -max-message-bytes makes it
// close the connection (1009).
func (c *Client) Publish(ctx context.Context, channel string, data any) error {
	if !validChannel(channel) {
		return errBadChannel(channel)
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("shardgate: publish to %q: %w", channel, err)
	}
	if c.State() != Connected {
		return errNotConnected
	}
	p := &pendingPublish{id: c.ids.Add(1), result: make(chan error, 1)}
	p.frame, err = json.Marshal(request{Type: "publish", Channel: channel, ID: p.id, Data: raw})
	if err != nil {
		return fmt.Errorf("shardgate: publish to %q: %w", channel, err)
	}
	if err := c.send(cmdPublish{p}); err != nil {
		return errNotConnected
	}
	t := time.NewTimer(c.opts.PublishTimeout)
	defer t.Stop()
	select {
	case err := <-p.result:
		return err
	case <-t.C:
		c.send(cmdForget{p})
		return &Error{Code: CodeTimeout, Message: fmt.Sprintf("no answer to a publish to %q within %v", channel, c.opts.PublishTimeout)}
	case <-ctx.Done():
		c.send(cmdForget{p})
		return fmt.Errorf("shardgate: publish to %q: %w", channel, context.Cause(ctx))
	}
}

var (
	errNotConnected = &Error{Code: CodeDisconnected, Message: "not connected"}
	errLostAnswer   = &Error{Code: CodeDisconnected, Message: "connection lost before the answer"}
)

// send hands cmd to the loop; ErrClosed once the loop has stopped.
func (c *Client) send(cmd any) error {
	select {
	case c.cmds <- cmd:
		return nil
	case <-c.loopDone:
		return ErrClosed
	}
}
