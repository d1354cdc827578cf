package shard

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	maxIovecs      = 1024 // IOV_MAX on Linux
	maxFrameHeader = 14
	readChunk      = 64 << 10
)

// outFrame is one frame waiting for the socket. owned is non-nil when the
// bytes belong to this connection alone (a reply, a pong, a close) and go
// back to the pool once written; shared broadcast frames are only
// referenced.
type outFrame struct {
	b     []byte
	owned *[]byte
	cost  int // what the frame was charged against the queue cap
}

// outFrameSize is the queue's own memory for one frame.
const outFrameSize = int(unsafe.Sizeof(outFrame{}))

// frameCost is what queueing b holds in memory: the queue entry, and the
// whole pooled buffer of an owned frame (a 2-byte pong holds a 256-byte
// buffer) or the bytes of a shared one.
func frameCost(b []byte, owned *[]byte) int {
	if owned != nil {
		return outFrameSize + cap(*owned)
	}
	return outFrameSize + len(b)
}

// outQueue holds what the socket did not take. It exists only while
// non-empty: an idle connection carries a nil pointer.
type outQueue struct {
	frames      []outFrame
	charged     int     // sum of the frames' cost, held to Options.SendQueueBytes
	partialHead bool    // frames[0] is partly on the wire already
	pong        *[]byte // the waiting pong, if any: later pings rewrite it (see Shard.pong)
	pongAt      int     // pong's index in frames; kept by advance as frames shift
}

// send hands one frame to c: written at once when nothing is queued,
// otherwise (or for what the socket does not take) queued. force bypasses
// the send-queue cap, for close frames. owned, if not nil, is returned to
// the pool when the frame is written or dropped.
func (s *Shard) send(c *conn, b []byte, owned *[]byte, force bool) {
	if c.state == stateClosed {
		s.pool.Put(owned)
		return
	}
	if c.out == nil {
		n, ok := s.write(c, b)
		if !ok {
			s.pool.Put(owned)
			return
		}
		if n == len(b) {
			s.pool.Put(owned)
			return
		}
		if n > 0 {
			s.enqueueRest(c, b[n:], owned)
			return
		}
	}
	s.enqueue(c, b, owned, force)
}

// enqueue appends b to c's queue, or closes c as a slow consumer when the
// queue would exceed its cap.
func (s *Shard) enqueue(c *conn, b []byte, owned *[]byte, force bool) {
	if c.out == nil {
		c.out = &outQueue{}
		c.stallSince = s.now()
	}
	cost := frameCost(b, owned)
	if !force && c.out.charged+cost > s.opts.SendQueueBytes {
		s.pool.Put(owned)
		if c.out.frames == nil {
			c.out = nil
		}
		s.close(c, disconnectSlowConsumer)
		return
	}
	c.out.frames = append(c.out.frames, outFrame{b: b, owned: owned, cost: cost})
	c.out.charged += cost
}

// enqueueRest queues the unwritten tail of a frame whose head the socket
// has just taken, as the head of a fresh queue. The tail is queued whatever
// the cap says and marked partial before the cap is enforced: refused by
// the cap, it used to be dropped with the (then empty) backlog and the slow
// consumer's close frame went out right behind half a frame, which the
// client parses as payload. Over the cap, the connection is closed after
// the tail (dropBacklog keeps a partial head).
func (s *Shard) enqueueRest(c *conn, rest []byte, owned *[]byte) {
	s.enqueue(c, rest, owned, true)
	c.out.partialHead = true
	if c.state == stateOpen && c.out.charged > s.opts.SendQueueBytes {
		s.close(c, disconnectSlowConsumer)
	}
}

// write writes b once (retrying EINTR). It returns how much the socket
// took; ok is false when the connection was released because the socket
// failed.
func (s *Shard) write(c *conn, b []byte) (n int, ok bool) {
	if l := s.tlsOf(c); l != nil {
		one := [1]unix.Iovec{iovec(b)}
		return s.writevTLS(c, l, one[:])
	}
	for {
		n, err := unix.Write(int(c.fd), b)
		switch err {
		case nil:
			s.stats.sentBytes += n
			return n, true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, true
		default:
			s.abort(c, ReasonIOError)
			return 0, false
		}
	}
}

// writev writes iov with one system call. The caller keeps the memory the
// iovecs point into alive (it is referenced from the queue or the batch).
func (s *Shard) writev(c *conn, iov []unix.Iovec) (n int, ok bool) {
	if l := s.tlsOf(c); l != nil {
		return s.writevTLS(c, l, iov)
	}
	for {
		r, _, errno := unix.Syscall(unix.SYS_WRITEV, uintptr(c.fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		switch errno {
		case 0:
			s.stats.sentBytes += int(r)
			return int(r), true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, true
		default:
			s.abort(c, ReasonIOError)
			return 0, false
		}
	}
}

func iovec(b []byte) unix.Iovec {
	v := unix.Iovec{Base: &b[0]}
	v.SetLen(len(b))
	return v
}

// flush writes c's queue until it is empty or the socket is full. It runs
// on EPOLLOUT.
func (s *Shard) flush(c *conn) {
	if l := s.tlsOf(c); l != nil && !s.flushTLS(c, l) {
		return
	}
	for c.out != nil && c.state != stateClosed {
		q := c.out
		iov := s.iov[:0]
		for i := 0; i < len(q.frames) && i < maxIovecs; i++ {
			iov = append(iov, iovec(q.frames[i].b))
		}
		n, ok := s.writev(c, iov)
		clear(iov)
		if !ok {
			return
		}
		if n == 0 {
			return // EAGAIN: EPOLLOUT will call again
		}
		s.advance(c, n)
	}
	if c.state != stateClosed && s.drained(c) {
		s.flushed(c)
	}
}

// advance drops n written bytes from the head of c's queue.
func (s *Shard) advance(c *conn, n int) {
	q := c.out
	c.stallSince = s.now()
	i := 0
	for ; i < len(q.frames) && n >= len(q.frames[i].b); i++ {
		n -= len(q.frames[i].b)
		s.pop(q, i)
	}
	if n > 0 {
		q.frames[i].b = q.frames[i].b[n:]
	}
	q.partialHead = n > 0
	if q.pong != nil {
		q.pongAt -= i // pop cleared pong if it was among the i written
	}
	rest := copy(q.frames, q.frames[i:])
	clear(q.frames[rest:])
	q.frames = q.frames[:rest]
	if len(q.frames) == 0 {
		c.out = nil
	}
}

// pop releases frame i of q, which is written or dropped.
func (s *Shard) pop(q *outQueue, i int) {
	f := &q.frames[i]
	q.charged -= f.cost
	if f.owned != nil && f.owned == q.pong {
		q.pong = nil
	}
	s.pool.Put(f.owned)
	*f = outFrame{}
}

// dropBacklog discards queued frames a slow consumer will never get, but
// keeps a partially written head frame: cutting it would corrupt the
// stream before our close frame.
func (s *Shard) dropBacklog(c *conn) {
	q := c.out
	keep := 0
	if len(q.frames) > 0 && q.partialHead {
		keep = 1
	}
	for i := keep; i < len(q.frames); i++ {
		s.pop(q, i)
	}
	q.frames = q.frames[:keep]
	if keep == 0 {
		c.out = nil
	}
}

// freeQueue returns every owned buffer of c's queue to the pool.
func (s *Shard) freeQueue(c *conn) {
	for i := range c.out.frames {
		s.pool.Put(c.out.frames[i].owned)
	}
	c.out = nil
}
