package gateway

import (
	"encoding/json"
	"errors"
	"sync"

	"github.com/gobwas/ws"
	"github.com/shardgate/shardgate/shard"
	"github.com/shardgate/shardgate/shard/protocol"
	"github.com/shardgate/shardgate/shard/wsframe"
)

// errOverloaded: a shard's inbox is full; the message was not queued
// anywhere.
var errOverloaded = errors.New("gateway: overloaded")

// errDraining: the gateway is shutting down and takes no new messages.
var errDraining = errors.New("gateway: draining")

// dispatcher turns a message into one WebSocket frame and hands that same
// frame to every shard. It is the Handler of the node's broker.
//
// dispatcher.mu is taken before Shard.mu (inside Shard.Broadcast): see the
// lock order in gateway.go.
type dispatcher struct {
	mu       sync.Mutex
	shards   []*shard.Shard
	draining bool // set under mu: nothing is queued after the drain tasks
}

// deliver encodes the message once and queues it on every shard, or on
// none when any shard is overloaded.
func (d *dispatcher) deliver(channel string, data json.RawMessage) error {
	n := protocol.MessageLen(channel, data)
	frame := make([]byte, 0, wsframe.HeaderLen(n)+n)
	frame = wsframe.AppendHeader(frame, ws.OpText, n)
	frame = protocol.AppendMessage(frame, channel, data)

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.draining {
		return errDraining
	}
	for _, s := range d.shards {
		if !s.CanBroadcast() {
			return errOverloaded
		}
	}
	for _, s := range d.shards {
		// Cannot fail for a full inbox: we hold mu, so nobody else queues
		// broadcasts, and the shard only ever shortens its inbox meanwhile.
		// ErrClosed cannot happen either: shards close only after
		// startDrain has set draining under mu (Gateway.Shutdown).
		_ = s.Broadcast(channel, frame)
	}
	return nil
}

// startDrain marks the dispatcher draining and posts drain tasks; every
// message accepted before stays ahead of them in each shard's inbox.
func (d *dispatcher) startDrain(drain func(*shard.Shard)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.draining = true
	for _, s := range d.shards {
		drain(s)
	}
}
