package poller

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Waker lets other goroutines wake a poller's wait goroutine, so that work
// they queued runs there. A compare-and-swap on a pending flag makes many
// Wake calls between two runs cost one eventfd write.
type Waker struct {
	fd      int
	pending atomic.Bool
	run     func()
	// mu is held for reading while fd is used and for writing while it is
	// closed: Wake may come from any goroutine after Close (the gateway's
	// clock ticks a stopped acceptor for the whole drain; a push can race
	// Shard.Close), and a write to a closed eventfd's number lands in
	// whatever the process opened next under it (a client socket, an admin
	// HTTP connection). Only the Wake that wins the pending flag takes it.
	mu     sync.RWMutex
	closed bool
}

// NewWaker creates an eventfd, registers it with p, and calls run on p's
// wait goroutine after Wake. run must drain everything queued: the pending
// flag is cleared before run is called, so work queued while run is busy
// causes one more wake-up rather than being lost.
func NewWaker(p *Poller, run func()) (*Waker, error) {
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("poller: eventfd: %w", os.NewSyscallError("eventfd", err))
	}
	w := &Waker{fd: fd, run: run}
	if err := p.Add(fd, LevelRead, w.onEvent); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return w, nil
}

var one = [8]byte{1}

// Wake schedules run on the wait goroutine. Safe from any goroutine.
func (w *Waker) Wake() {
	if !w.pending.CompareAndSwap(false, true) {
		return
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return
	}
	for {
		_, err := unix.Write(w.fd, one[:])
		if err == unix.EINTR {
			continue
		}
		// EAGAIN means the counter is saturated: a wake-up is pending anyway.
		return
	}
}

func (w *Waker) onEvent(ev Event) {
	if ev&EventClosed != 0 {
		return
	}
	// A callback collected before Close's Del may run after it: never read
	// a number that may belong to someone else by now.
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return
	}
	var buf [8]byte
	for {
		_, err := unix.Read(w.fd, buf[:])
		if err == unix.EINTR {
			continue
		}
		break
	}
	w.mu.RUnlock()
	w.pending.Store(false)
	w.run()
}

// Close unregisters and closes the eventfd. Later Wake calls do nothing; a
// second Close returns ErrClosed and closes nothing.
func (w *Waker) Close(p *Poller) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	w.closed = true
	delErr := p.Del(w.fd)
	if errors.Is(delErr, ErrClosed) {
		delErr = nil
	}
	return errors.Join(delErr, unix.Close(w.fd))
}
