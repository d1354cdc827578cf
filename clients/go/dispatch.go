package shardgate

import "sync"

// dispatcher runs the application's handlers, one at a time and in the
// order they were posted, on its own goroutine, so that the client's loop
// never waits for application code: a handler that blocks holds up the
// handlers after it, never the connection. The queue is unbounded for the
// same reason (the loop must not block on it); a handler slower than the
// message rate makes it grow.
type dispatcher struct {
	mu      sync.Mutex
	queue   []func()
	stopped bool          // no more posts; run returns once the queue is empty
	wake    chan struct{} // capacity 1: something was posted, or stop
	done    chan struct{} // closed when run returns
}

func newDispatcher() *dispatcher {
	return &dispatcher{wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// post queues f. It never blocks; after stop it does nothing.
func (d *dispatcher) post(f func()) {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return
	}
	d.queue = append(d.queue, f)
	d.mu.Unlock()
	d.signal()
}

func (d *dispatcher) signal() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// stop lets run return once it has run what was posted before.
func (d *dispatcher) stop() {
	d.mu.Lock()
	d.stopped = true
	d.mu.Unlock()
	d.signal()
}

// run runs posted functions until stop, then returns.
func (d *dispatcher) run() {
	defer close(d.done)
	var batch []func()
	for {
		d.mu.Lock()
		batch, d.queue = d.queue, batch[:0]
		stopped := d.stopped
		d.mu.Unlock()
		if len(batch) == 0 {
			if stopped {
				return
			}
			<-d.wake
			continue
		}
		for i, f := range batch {
			f()
			batch[i] = nil // let what f held go
		}
	}
}
