// Package poller reports readiness of file descriptors through epoll.
//
// It deals in file descriptors and callbacks only, never in connections.
// It sits on the lower layer of github.com/mailru/easygo/netpoll
// (EpollCreate and (*Epoll).Add/Del), which takes plain int descriptors:
// easygo's Handle/NewDesc layer is avoided because it dups every descriptor
// through os.File (two fds per connection), flips it to blocking mode, and
// closes it from a finalizer.
//
// Usage:
//
//	p, _ := poller.New(nil)
//	p.Add(fd, poller.EdgeReadWrite, func(ev poller.Event) { ... })
//	...
//	p.Del(fd) // before closing fd
//	p.Close() // stops the wait goroutine
//
// Every callback runs on the poller's single wait goroutine, one after the
// other: a slow callback delays every other descriptor of this poller. The
// owner of a poller (a shard, the acceptor) therefore does only bounded,
// non-blocking work in them.
//
// Traps:
//   - A callback may still run once after Del returns for the same fd (events
//     of one wait are collected under a lock and run outside it). Keep
//     per-descriptor state and ignore events for something already closed.
//   - Edge-triggered registrations report a change once: read until EAGAIN
//     or a short read, or the rest never wakes you.
//   - Close calls every registered callback with EventClosed, on the
//     goroutine that calls Close.
package poller

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/mailru/easygo/netpoll"
	"golang.org/x/sys/unix"
)

// Event is a bit set of readiness conditions.
type Event uint32

// Readiness bits reported to callbacks.
const (
	EventRead   = Event(netpoll.EPOLLIN)
	EventWrite  = Event(netpoll.EPOLLOUT)
	EventRdHup  = Event(netpoll.EPOLLRDHUP)
	EventHup    = Event(netpoll.EPOLLHUP)
	EventErr    = Event(netpoll.EPOLLERR)
	EventClosed = Event(0x20) // the poller itself was closed (easygo's _EPOLLCLOSED)
)

// Interest is the set of conditions a descriptor is registered for.
type Interest netpoll.EpollEvent

// Registrations used by the gateway.
const (
	// EdgeReadWrite is for connections: one registration for the whole
	// life of the descriptor, no epoll_ctl(MOD) per write.
	EdgeReadWrite = Interest(netpoll.EPOLLIN | netpoll.EPOLLOUT | netpoll.EPOLLRDHUP | netpoll.EPOLLET)
	// EdgeRead is for connections that are only read (handshakes).
	EdgeRead = Interest(netpoll.EPOLLIN | netpoll.EPOLLRDHUP | netpoll.EPOLLET)
	// LevelRead is for listeners and eventfds, which are drained in bounded
	// passes and must keep reporting while work remains.
	LevelRead = Interest(netpoll.EPOLLIN)
)

// Errors returned by a Poller.
var (
	ErrClosed        = errors.New("poller: closed")
	ErrNotRegistered = errors.New("poller: fd not registered")
	ErrRegistered    = errors.New("poller: fd already registered")
)

// Poller is one epoll instance with one wait goroutine.
type Poller struct {
	ep *netpoll.Epoll
}

// New creates an epoll instance and starts its wait goroutine. Errors of
// epoll_wait itself (not of descriptors) are logged to log.
func New(log *slog.Logger) (*Poller, error) {
	if log == nil {
		log = slog.Default()
	}
	ep, err := netpoll.EpollCreate(&netpoll.EpollConfig{
		OnWaitError: func(err error) { log.Error("epoll wait failed", "err", err) },
	})
	if err != nil {
		return nil, fmt.Errorf("poller: create epoll: %w", err)
	}
	return &Poller{ep: ep}, nil
}

// Add registers fd for the given interest. cb runs on the wait goroutine
// for every event until Del. The poller does not own fd: the caller closes
// it, after Del. An Add that fails registers nothing: the same fd number
// can be added again once it names something pollable. (An Add refused
// with ErrRegistered leaves the earlier registration as it was.)
func (p *Poller) Add(fd int, in Interest, cb func(Event)) error {
	err := p.ep.Add(fd, netpoll.EpollEvent(in), func(ev netpoll.EpollEvent) { cb(Event(ev)) })
	if err != nil {
		if !errors.Is(err, netpoll.ErrRegistered) && !errors.Is(err, netpoll.ErrClosed) {
			// easygo stores cb in its map before epoll_ctl(ADD), and keeps
			// it when epoll_ctl fails (EPERM, ENOSPC, ENOMEM, EBADF...):
			// every later Add of this fd number would then return
			// ErrRegistered, refusing whatever connection gets the number
			// next. Del drops the entry; its own epoll_ctl(DEL) normally
			// fails (nothing was added) and that error says nothing new.
			_ = p.ep.Del(fd)
		}
		return fmt.Errorf("poller: add fd %d: %w", fd, mapErr(err))
	}
	return nil
}

// Del removes fd from the set. Call it before closing fd so that a reused
// descriptor number never reaches the old callback's registration.
func (p *Poller) Del(fd int) error {
	if err := p.ep.Del(fd); err != nil {
		return fmt.Errorf("poller: del fd %d: %w", fd, mapErr(err))
	}
	return nil
}

// Close stops the wait goroutine and waits for it to exit; then it calls
// every still-registered callback with EventClosed on the calling goroutine.
func (p *Poller) Close() error {
	if err := p.ep.Close(); err != nil {
		return fmt.Errorf("poller: close: %w", mapErr(err))
	}
	return nil
}

func mapErr(err error) error {
	if errors.Is(err, netpoll.ErrClosed) {
		return ErrClosed
	}
	if errors.Is(err, netpoll.ErrNotRegistered) {
		return ErrNotRegistered
	}
	if errors.Is(err, netpoll.ErrRegistered) {
		return ErrRegistered
	}
	if errno, ok := err.(unix.Errno); ok {
		return errno
	}
	return err
}
