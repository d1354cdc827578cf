// Package history keeps what was published to channels, so that a client
// that reconnects can be given what it missed (SPEC "History and
// recovery").
//
// The gateway reads history only through Source, whose calls answer
// through a callback: a source may be in memory (Memory, one node) or
// across the network (JetStream in a cluster). A shard that asks must
// never wait, so every answer may come later, on another goroutine.
//
// # Positions
//
// A message's place in its channel is an offset: it grows with every
// message of the channel (not necessarily by one) and is assigned once, by
// one authority (the node's Memory store, or the cluster's stream). The
// epoch names one life of the history: when history is lost (a node
// restarts, a stream is recreated) the epoch changes, so an old offset is
// never taken for a new one. A channel with no message yet is at offset 0.
package history

import (
	"encoding/json"
	"errors"
)

// ErrUnavailable: the history could not be read now (a networked source
// is unreachable). The caller may try again later.
var ErrUnavailable = errors.New("history: unavailable")

// Position is a place in a channel's history.
type Position struct {
	Epoch  string
	Offset uint64
}

// Message is one stored message. Its slices are shared and read-only:
// they stay valid for as long as the caller holds them, whatever the
// store evicts meanwhile.
type Message struct {
	Offset uint64
	// Data is the published JSON value.
	Data json.RawMessage
	// Frame is the message's encoded WebSocket frame, offset included,
	// exactly as it was broadcast; a replay writes it as is. A source
	// that keeps only data (JetStream) leaves it nil and the gateway
	// encodes the frame.
	Frame []byte
}

// Page is the answer to a read.
type Page struct {
	// Epoch is the history's epoch now.
	Epoch string
	// Latest is the channel's latest offset at the time of the read (0:
	// no message yet).
	Latest uint64
	// Messages are in ascending offset order.
	Messages []Message
	// Complete (Since only) reports that Messages hold every message of
	// the channel after the position asked for: its epoch is the
	// current one, nothing after it was evicted or expired, and no more
	// than the limit followed it. A recovery is possible exactly when a
	// page is complete.
	Complete bool
}

// Done receives the outcome of a read. It is called exactly once, on any
// goroutine, possibly before the call that took it returns, and must not
// block. The Page is the callee's no more: the caller owns it.
type Done func(Page, error)

// Source is the history the gateway reads from.
type Source interface {
	// Latest reads the channel's latest offset (Page.Messages empty).
	Latest(channel string, done Done)
	// Since reads the first limit messages after from.Offset (which is
	// excluded). An empty from.Epoch matches any epoch (the admin API's
	// since=N); another epoch than the current one gives an incomplete
	// page without messages.
	Since(channel string, from Position, limit int, done Done)
	// Last reads the channel's latest n messages.
	Last(channel string, n int, done Done)
}
