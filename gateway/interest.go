package gateway

import "sync/atomic"

// interest is the node's registration of one channel with the broker: how
// many shards have subscribers of it, and the shards waiting to hear that
// the broker has it (their subscribers' "subscribed" replies wait too).
// Guarded by Gateway.interestMu.
type interest struct {
	shards  int
	ready   bool          // the broker confirmed the registration
	pending bool          // a broker.Interest call is outstanding
	waiters []func(error) // shards' ready callbacks
}

// settle records the outcome of the outstanding call and returns the
// callbacks to notify (outside the lock). After an error the next shard
// that subscribes asks the broker again.
func (e *interest) settle(err error) []func(error) {
	e.pending = false
	e.ready = err == nil
	w := e.waiters
	e.waiters = nil
	return w
}

// onChannel keeps the node-wide count of shards interested in each
// channel and tells the broker when the node gains or loses interest.
// Broker calls are made under interestMu so that they reach the broker in
// the order the counts changed (a last unsubscribe on one shard racing a
// first subscribe on another must leave the broker subscribed).
func (g *Gateway) onChannel(channel string, active bool, ready func(error)) {
	g.interestMu.Lock()
	e := g.interest[channel]
	if !active {
		if e != nil {
			if e.shards--; e.shards <= 0 {
				delete(g.interest, channel)
				g.broker.Interest(channel, false, nil)
			}
		}
		g.interestMu.Unlock()
		return
	}
	if e == nil {
		e = &interest{}
		g.interest[channel] = e
	}
	e.shards++
	if e.ready {
		g.interestMu.Unlock()
		ready(nil)
		return
	}
	e.waiters = append(e.waiters, ready)
	var notify []func(error)
	var outcome error
	if !e.pending {
		notify, outcome = g.registerLocked(channel, e)
	}
	g.interestMu.Unlock()
	for _, w := range notify {
		w(outcome)
	}
}

// registerLocked asks the broker for channel's interest on behalf of e.
// When the broker answered during the call, it returns the waiters to
// notify with the outcome (outside the lock); otherwise the answer settles
// e later. interestMu must be held.
func (g *Gateway) registerLocked(channel string, e *interest) (notify []func(error), outcome error) {
	e.pending = true
	call := &callOutcome{}
	g.broker.Interest(channel, true, func(err error) {
		if call.early(err) {
			return // answered during the call, under interestMu
		}
		g.interestMu.Lock()
		notify := e.settle(err)
		g.interestMu.Unlock()
		for _, w := range notify {
			w(err)
		}
	})
	if err, ok := call.returned(); ok {
		return e.settle(err), err
	}
	return nil, nil
}

// callOutcome tells a callback that ran during the call that took it
// (maybe on the caller's goroutine, under the caller's locks) from one that
// ran later, elsewhere. Whichever of the callback and the call's return
// comes second handles the outcome.
type callOutcome struct {
	state atomic.Uint32 // 0 calling, 1 returned, 2 answered during the call
	err   error         // written before state moves to 2
}

// early is called by the callback; true means the caller handles err.
func (c *callOutcome) early(err error) bool {
	c.err = err
	return c.state.CompareAndSwap(0, 2)
}

// returned is called right after the call; ok means the callback already
// ran and err is its outcome.
func (c *callOutcome) returned() (err error, ok bool) {
	if c.state.CompareAndSwap(0, 1) {
		return nil, false
	}
	return c.err, true
}
