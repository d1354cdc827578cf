package poller

import (
	"errors"
	"fmt"
	"os"
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
	var buf [8]byte
	for {
		_, err := unix.Read(w.fd, buf[:])
		if err == unix.EINTR {
			continue
		}
		break
	}
	w.pending.Store(false)
	w.run()
}

// Close unregisters and closes the eventfd.
func (w *Waker) Close(p *Poller) error {
	delErr := p.Del(w.fd)
	if errors.Is(delErr, ErrClosed) {
		delErr = nil
	}
	return errors.Join(delErr, unix.Close(w.fd))
}
