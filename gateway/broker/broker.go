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

// Receipt tells a publisher where its message landed: its offset in the
// channel's history and that history's epoch. It is zero when the channel
// has no history (history off, or a message to every connection).
type Receipt struct {
	Offset uint64
	Epoch  string
}

// ReceiptHandler is a Handler that also reports the message's receipt:
// the node that assigns offsets (memory mode) hands them back this way.
type ReceiptHandler func(channel string, data json.RawMessage) (Receipt, error)

// ReceiptPublisher is a Broker that tells a publisher the receipt of its
// message (SPEC: the publish API answers the offset and epoch).
type ReceiptPublisher interface {
	// PublishReceipt is Publish with the receipt: done gets it with a
	// nil error, under the same contract as Publish's done.
	PublishReceipt(channel string, data json.RawMessage, done func(Receipt, error))
}

// DisconnectHandler closes this node's connections whose token names sub.
// It must not block.
type DisconnectHandler func(sub string)

// Done receives the outcome of an asynchronous broker call. It is called
// exactly once, from any goroutine (possibly before the call that took it
// returns), and must not block.
type Done func(err error)

// Broker moves messages between publishers and nodes.
type Broker interface {
	// Publish sends a message to every node (this one included). done
	// gets nil once the message is accepted (it will be handed to every
	// node's Handler) or an error (ErrUnavailable, ErrClosed, ...), within
	// a bounded time; a message answered with an error is never delivered
	// later. data is copied if kept after Publish returns. Calls from one
	// goroutine keep their order.
	Publish(channel string, data json.RawMessage, done Done)
	// Interest tells the broker whether this node has local subscribers
	// of channel, so a networked broker subscribes only where needed.
	// When active, ready (never nil then) gets nil once a message
	// published on any node after that will reach this node, or an error
	// when the interest could not be registered; ready is nil when
	// active is false.
	Interest(channel string, active bool, ready Done)
	// Disconnect asks every node (this one included) to close the
	// connections whose token names sub.
	Disconnect(sub string) error
	// Connected reports whether the broker can take publishes now.
	Connected() bool
	// Close releases the broker's resources.
	Close() error
}

// Memory is the in-process broker of a single node: Publish calls the
// Handler directly, under a lock, so every subscriber sees messages in
// one global order.
type Memory struct {
	mu         sync.Mutex
	handler    ReceiptHandler
	disconnect DisconnectHandler
	closed     bool
}

// NewMemory returns a Memory broker delivering messages to h and
// disconnect requests to d.
func NewMemory(h Handler, d DisconnectHandler) *Memory {
	return NewMemoryReceipts(func(channel string, data json.RawMessage) (Receipt, error) {
		return Receipt{}, h(channel, data)
	}, d)
}

// NewMemoryReceipts returns a Memory broker whose handler reports each
// message's receipt, handed to PublishReceipt's callers.
func NewMemoryReceipts(h ReceiptHandler, d DisconnectHandler) *Memory {
	return &Memory{handler: h, disconnect: d}
}

// Publish hands the message to the handler and calls done before
// returning.
func (m *Memory) Publish(channel string, data json.RawMessage, done Done) {
	_, err := m.publish(channel, data)
	done(err)
}

// PublishReceipt implements ReceiptPublisher: done is called before it
// returns.
func (m *Memory) PublishReceipt(channel string, data json.RawMessage, done func(Receipt, error)) {
	done(m.publish(channel, data))
}

func (m *Memory) publish(channel string, data json.RawMessage) (Receipt, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Receipt{}, ErrClosed
	}
	return m.handler(channel, data)
}

// Interest has nothing to register: every message is local, so ready is
// called at once.
func (m *Memory) Interest(_ string, active bool, ready Done) {
	if active && ready != nil {
		ready(nil)
	}
}

// Disconnect calls the disconnect handler directly.
func (m *Memory) Disconnect(sub string) error {
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if m.disconnect != nil {
		m.disconnect(sub)
	}
	return nil
}

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
