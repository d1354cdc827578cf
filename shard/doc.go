// Package shard owns a set of WebSocket connections: their sockets, their
// subscriptions, their outbound queues, their heartbeats and the fan-out of
// broadcast frames to them.
//
// # Ownership and goroutines
//
// A Shard runs on exactly one goroutine: the wait goroutine of its own
// poller. Socket readiness callbacks, the fan-out of broadcasts, heartbeat
// sweeps and closing connections all happen there, so connection state
// needs no lock at all. Other goroutines (the acceptor handing over an
// upgraded socket, the dispatcher handing over a broadcast frame, the clock
// ticking, the gateway draining) reach the shard only through its inbox: a
// slice guarded by Shard.mu, plus one eventfd wake-up (poller.Waker).
//
// Goroutines therefore scale with shards, never with connections: an idle
// connection is a 144-byte struct, an entry in the poller's callback map
// and a kernel socket.
//
// # Lock order
//
// There is one lock per shard, Shard.mu, and it guards only the inbox: a
// leaf, never held while calling out of the package, doing I/O or taking
// another lock. The node's lock order is written once, in package gateway.
//
// # Outbound
//
// A broadcast frame is encoded once by the caller and shared, read-only, by
// every subscriber; so is its permessage-deflate variant (Frames), which
// the caller compresses once, for every shard, and which goes to the
// connections that negotiated the extension (conn.deflate, one byte: a
// connection holds no compression state between messages, and client
// messages are inflated one at a time by the shard's pooled inflater).
// Each connection writes it directly when its queue is
// empty; only what the socket does not take is queued (as a reference, or a
// pooled copy for frames owned by that connection). Frames for the same
// connection that arrive in one inbox pass leave in one writev. A queue
// over Options.SendQueueBytes makes the connection a slow consumer: it is
// closed with 1008 and never delays anyone else.
package shard
