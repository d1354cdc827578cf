package natsbroker

import (
	"sync"
	"time"

	"github.com/shardgate/shardgate/gateway/broker"
)

// pubItem is one publish waiting to be handed to nats.go. data is the
// broker's own copy; the caller's slice is not kept.
type pubItem struct {
	subject  string
	data     []byte
	done     broker.Done
	deadline time.Time // handed over only before this instant
}

// pubItemOverhead is what a queued publish costs besides its subject and
// data: the slot in the ring and the copy's allocation header, roughly.
const pubItemOverhead = 96

func (it *pubItem) cost() int { return len(it.subject) + len(it.data) + pubItemOverhead }

// pubQueue is the bounded FIFO between the callers of Publish and the
// publisher goroutine. It is bounded twice, by count and by bytes, so a
// burst of large messages against a stalled server holds at most maxBytes.
//
// Its lock is a leaf: nothing else is locked and no callback runs while it
// is held (the functions that remove items return them, and the caller
// calls their done functions after the lock is released).
//
// The ring grows by doubling up to maxLen and is dropped when the queue
// empties after a burst, so an idle broker holds no large ring.
type pubQueue struct {
	mu       sync.Mutex
	ring     []pubItem // slots [head, head+n) modulo len(ring); mu
	head     int       // mu
	n        int       // mu
	bytes    int       // cost of the queued items; mu
	closed   bool      // no more pushes; mu
	maxLen   int
	maxBytes int
}

// ringKeep is the largest ring kept while the queue is empty.
const ringKeep = 256

func newPubQueue(maxLen, maxBytes int) *pubQueue {
	return &pubQueue{maxLen: maxLen, maxBytes: maxBytes}
}

// push appends it. first reports that the queue was empty before (the
// expirer then has a new deadline to wait for). It fails with errClosed
// after close and errQueueFull past either bound; a single message larger
// than maxBytes is taken when the queue is empty, so that the byte bound
// never refuses a message forever.
func (q *pubQueue) push(it pubItem) (first bool, err error) {
	cost := it.cost()
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.closed:
		return false, errClosed
	case q.n >= q.maxLen, q.n > 0 && q.bytes+cost > q.maxBytes:
		return false, errQueueFull
	}
	if q.n == len(q.ring) {
		q.grow()
	}
	q.ring[(q.head+q.n)%len(q.ring)] = it
	q.n++
	q.bytes += cost
	return q.n == 1, nil
}

// grow doubles the ring (up to maxLen), keeping the items in order.
// q.mu must be held.
func (q *pubQueue) grow() {
	size := max(16, 2*len(q.ring))
	size = min(size, q.maxLen)
	ring := make([]pubItem, size)
	for i := range q.n {
		ring[i] = q.ring[(q.head+i)%len(q.ring)]
	}
	q.ring, q.head = ring, 0
}

// popLocked removes the head item. q.mu must be held and q.n > 0.
func (q *pubQueue) popLocked() pubItem {
	it := q.ring[q.head]
	q.ring[q.head] = pubItem{} // drop the references to data and done
	q.head = (q.head + 1) % len(q.ring)
	q.n--
	q.bytes -= it.cost()
	if q.n == 0 {
		q.head = 0
		if len(q.ring) > ringKeep {
			q.ring = nil
		}
	}
	return it
}

// pop removes the head item. ok is false when the queue is empty; closed
// then says whether more may still come.
func (q *pubQueue) pop() (it pubItem, ok, closed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return pubItem{}, false, q.closed
	}
	return q.popLocked(), true, q.closed
}

// expire removes the items whose deadline is not after now, appending
// them to buf, and returns the deadline of the new head (zero when the
// queue is empty). Deadlines grow along the queue (one timeout, FIFO), so
// only a prefix can have expired.
func (q *pubQueue) expire(now time.Time, buf []pubItem) ([]pubItem, time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.n > 0 && !q.ring[q.head].deadline.After(now) {
		buf = append(buf, q.popLocked())
	}
	if q.n == 0 {
		return buf, time.Time{}
	}
	return buf, q.ring[q.head].deadline
}

// drain removes every item, appending them to buf.
func (q *pubQueue) drain(buf []pubItem) []pubItem {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.n > 0 {
		buf = append(buf, q.popLocked())
	}
	return buf
}

// close refuses later pushes; the items queued stay for pop.
func (q *pubQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
}

// answer calls the done function of every item in items with err and
// clears the slice's references, so buf can be reused.
func answer(items []pubItem, err error) {
	for i := range items {
		items[i].done(err)
		items[i] = pubItem{}
	}
}
