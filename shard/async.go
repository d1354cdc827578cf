package shard

import (
	"encoding/json"
	"sync/atomic"
)

// asyncResult carries the outcome of a call out of the shard (a client's
// publish, a channel's first interest) that completes either during the
// call, on the shard goroutine (the in-memory broker), or later on another
// goroutine (NATS). A late outcome comes back through the inbox, so the
// shard's state is still touched by the shard goroutine only.
type asyncResult struct {
	kind    resultKind
	c       *conn           // publish: who asked
	id      json.RawMessage // publish: the request id to echo (a copy)
	channel string
	ch      *channel  // interest: the channel that waited
	rec     *recovery // recovery: the subscription whose history was read
	err     error     // written before state moves, read after

	// state: resultCalling until the call returns or the outcome arrives,
	// whichever is first; the loser of that race delivers the outcome.
	state atomic.Uint32
}

type resultKind uint8

const (
	resultPublish resultKind = iota
	resultInterest
	resultRecovery
)

const (
	resultCalling  uint32 = iota
	resultReturned        // the call returned first: the outcome comes through the inbox
	resultEarly           // the outcome came during the call: the caller handles it
)

// done is the callback handed out of the shard. Safe from any goroutine.
func (s *Shard) done(r *asyncResult) func(error) {
	return func(err error) {
		r.err = err
		if r.state.CompareAndSwap(resultCalling, resultEarly) {
			return
		}
		_ = s.push(task{kind: taskResult, result: r}, false)
	}
}

// returned is called by the shard goroutine right after the call that
// took r's callback returns. It reports whether the outcome is already in
// (r.err is then valid).
func (r *asyncResult) returned() bool {
	return !r.state.CompareAndSwap(resultCalling, resultReturned)
}

// complete handles an outcome that arrived after its call returned.
func (s *Shard) complete(r *asyncResult) {
	switch r.kind {
	case resultPublish:
		s.published(r)
	case resultInterest:
		s.channelReady(r)
	case resultRecovery:
		s.recovered(r.rec)
	}
}
