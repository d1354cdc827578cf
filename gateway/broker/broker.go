// Package broker carries published messages between the nodes of a
// gateway cluster. A Broker takes publishes from the node and hands every
// message that must be delivered locally to the node's Handler.
//
// Memory is the single-node broker used by default; a NATS broker (another
// package) implements the same interface for clusters. The gateway's
// shards never see the broker: they get frames from the node's dispatcher.
package broker

import (
	"encoding/json"
	"errors"
	"sync"
)

// Errors returned by brokers.
var (
	ErrUnavailable = errors.New("broker: unavailable")
	ErrClosed      = errors.New("broker: closed")
)

// Handler delivers one message to this node's subscribers. channel is ""
// for a message to every connection. data is valid only during the call.
// An error means the node could not take the message (it is overloaded).
type Handler func(channel string, data json.RawMessage) error

// Broker moves messages between publishers and nodes.
type Broker interface {
	// Publish sends a message to every node (this one included). When it
	// returns nil the message is accepted: it will be handed to every
	// node's Handler. Calls from one goroutine keep their order.
	Publish(channel string, data json.RawMessage) error
	// Interest tells the broker whether this node has local subscribers
	// of channel, so a networked broker subscribes only where needed.
	Interest(channel string, active bool)
	// Connected reports whether the broker can take publishes now.
	Connected() bool
	// Close releases the broker's resources.
	Close() error
}

// Memory is the in-process broker of a single node: Publish calls the
// Handler directly, under a lock, so every subscriber sees messages in
// one global order.
type Memory struct {
	mu      sync.Mutex
	handler Handler
	closed  bool
}

// NewMemory returns a Memory broker delivering to h.
func NewMemory(h Handler) *Memory { return &Memory{handler: h} }

// Publish hands the message to the handler before returning.
func (m *Memory) Publish(channel string, data json.RawMessage) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	return m.handler(channel, data)
}

// Interest is a no-op: every message is local.
func (m *Memory) Interest(string, bool) {}

// Connected is true until Close.
func (m *Memory) Connected() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return !m.closed
}

// Close makes later publishes fail with ErrClosed.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
