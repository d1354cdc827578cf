package gateway

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shardgate/shardgate/bufpool"
	"github.com/shardgate/shardgate/poller"
	"github.com/shardgate/shardgate/shard"
	"golang.org/x/sys/unix"
)

const (
	// handshakeBufSize is the first buffer a handshake reads into; it
	// grows once, to maxHandshakeBytes, for requests with large headers.
	handshakeBufSize  = 2048
	maxHandshakeBytes = 16 << 10
	// acceptsPerEvent bounds one pass over the listener so that handshakes
	// in progress are served between bursts of new connections.
	acceptsPerEvent = 256
)

// acceptor owns the listening socket and every connection that has not
// finished its handshake. It runs on its own poller's goroutine; other
// goroutines reach it only through atomic flags and a wake-up.
//
// A handshake costs no goroutine: the request is read on readiness into a
// pooled buffer until its header is complete, a sweep on each clock tick
// drops clients that take longer than -handshake-timeout (slowloris), and
// the upgrade itself runs gobwas/ws over the buffered bytes.
type acceptor struct {
	log     *slog.Logger
	ln      *net.TCPListener // kept referenced: it owns lfd
	lfd     int
	poll    *poller.Poller
	waker   *poller.Waker
	pool    *bufpool.Pool
	hs      *handshaker
	shards  []*shard.Shard
	timeout time.Duration
	// maxPending is -max-handshakes: past it a new TCP connection is
	// closed at once, so stalled clients cannot hold every fd.
	maxPending int
	perIP      *ipLimiter // nil without -max-conns-per-ip
	epoch      time.Time
	spare      int // reserve fd, given up to shed a connection under EMFILE
	// unwoken[i]: shard i was handed connections it has not been woken
	// for yet (see wakeShards).
	unwoken []bool
	next    atomic.Uint32 // round-robin start for shard selection

	// tls is set when the listener speaks TLS only (tlsserve.go): its
	// handshakes run on goroutines, which tlsWG counts for Stop, each
	// with a handshaker of its own from hsPool.
	tls    *tlsHandshakes
	tlsWG  sync.WaitGroup
	hsPool sync.Pool

	// proxyProtocol: each connection starts with a PROXY header (proxy.go).
	proxyProtocol bool

	tick     atomic.Bool
	stop     atomic.Bool
	lastPass atomic.Int64  // Unix nanoseconds of the last wake-up or listener pass: the health check's pulse
	done     chan struct{} // closed when the listener and all pending handshakes are gone

	pending map[int]*pendingConn // owned by the poller goroutine
	stopped bool
	once    sync.Once
}

// pendingConn is a connection still in its handshake.
type pendingConn struct {
	fd         int
	buf        *[]byte
	n          int
	deadline   int64
	tag        uint32 // the ipLimiter's, 0 when untracked
	done       bool
	registered bool // in the acceptor's poller and pending map
	// proxied: its PROXY header is parsed and gone from buf; client is
	// the address it named, or the socket's peer (proxy.go).
	proxied bool
	client  netip.Addr
}

// acceptorLimits are the acceptor's bounds on clients in their handshake.
type acceptorLimits struct {
	timeout       time.Duration // -handshake-timeout
	maxHandshakes int           // -max-handshakes
	perIP         *ipLimiter    // -max-conns-per-ip; nil: none
	proxyProtocol bool          // -proxy-protocol
	tls           *tls.Config   // -tls-cert: the listener speaks TLS only; nil: plain TCP
}

func newAcceptor(log *slog.Logger, ln *net.TCPListener, hs *handshaker, shards []*shard.Shard, lim acceptorLimits) (*acceptor, error) {
	a := &acceptor{
		log:        log,
		ln:         ln,
		pool:       bufpool.New(),
		hs:         hs,
		shards:     shards,
		timeout:    lim.timeout,
		maxPending: lim.maxHandshakes,
		perIP:      lim.perIP,
		epoch:      time.Now(),
		pending:    make(map[int]*pendingConn),
		done:       make(chan struct{}),
		spare:      -1,
		unwoken:    make([]bool, len(shards)),
	}
	a.proxyProtocol = lim.proxyProtocol
	if lim.tls != nil {
		a.tls = newTLSHandshakes(lim.tls)
		a.hsPool.New = func() any { return hs.clone() }
	}
	a.lastPass.Store(time.Now().UnixNano())
	raw, err := ln.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("acceptor: listener fd: %w", err)
	}
	if err := raw.Control(func(fd uintptr) { a.lfd = int(fd) }); err != nil {
		return nil, fmt.Errorf("acceptor: listener fd: %w", err)
	}
	// Accepted sockets inherit TCP_NODELAY from the listener (the kernel
	// clones the listening socket), which saves a setsockopt per
	// connection: small frames must not wait for Nagle's algorithm.
	if err := unix.SetsockoptInt(a.lfd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		return nil, fmt.Errorf("acceptor: TCP_NODELAY: %w", os.NewSyscallError("setsockopt", err))
	}
	p, err := poller.New(log)
	if err != nil {
		return nil, fmt.Errorf("acceptor: %w", err)
	}
	a.poll = p
	if a.waker, err = poller.NewWaker(p, a.onWake); err != nil {
		p.Close()
		return nil, fmt.Errorf("acceptor: %w", err)
	}
	if err := p.Add(a.lfd, poller.LevelRead, a.onListener); err != nil {
		p.Close()
		a.waker.Close(p)
		return nil, fmt.Errorf("acceptor: %w", err)
	}
	// Opened last so that no failure above can leak it.
	if fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
		a.spare = fd
	}
	if a.tls != nil {
		a.tls.start()
	}
	return a, nil
}

// Tick asks for a handshake-timeout sweep. Safe from any goroutine.
func (a *acceptor) Tick() {
	a.tick.Store(true)
	a.waker.Wake()
}

// Stop closes the listener and drops every unfinished handshake, and waits
// until that is done. Safe from any goroutine, more than once.
func (a *acceptor) Stop() {
	a.once.Do(func() {
		a.stop.Store(true)
		a.waker.Wake()
		<-a.done
		if a.tls != nil {
			a.tls.stop()
			a.tlsWG.Wait()
			a.tls.wait()
		}
		_ = a.waker.Close(a.poll)
		_ = a.poll.Close()
		if a.spare >= 0 {
			unix.Close(a.spare)
		}
	})
}

func (a *acceptor) now() int64 { return int64(time.Since(a.epoch)) }

// LastPass is when the acceptor's loop last ran; the clock wakes it at
// least once a second.
func (a *acceptor) LastPass() time.Time { return time.Unix(0, a.lastPass.Load()) }

func (a *acceptor) onWake() {
	if a.stopped {
		return
	}
	defer a.lastPass.Store(time.Now().UnixNano())
	if a.stop.Load() {
		a.stopped = true
		_ = a.poll.Del(a.lfd)
		if err := a.ln.Close(); err != nil {
			a.log.Warn("close listener", "err", err)
		}
		for _, p := range a.pending {
			a.drop(p)
		}
		close(a.done)
		return
	}
	if a.tick.Swap(false) {
		now := a.now()
		for _, p := range a.pending {
			if now > p.deadline {
				a.hs.count(upgradeTimeout)
				a.drop(p)
			}
		}
	}
}

// onListener accepts connections with raw accept4, so each one is a bare
// non-blocking fd: no net.Conn, no registration in Go's own poller, no dup.
func (a *acceptor) onListener(ev poller.Event) {
	if a.stopped || ev&poller.EventClosed != 0 {
		return
	}
	defer a.wakeShards()
	for i := 0; i < acceptsPerEvent; i++ {
		fd, tag, errno := a.accept()
		switch errno {
		case 0:
			a.start(fd, tag)
		case unix.EAGAIN:
			return
		case unix.EINTR, unix.ECONNABORTED:
			continue
		case unix.EMFILE, unix.ENFILE:
			a.shed()
			return
		default:
			a.log.Warn("accept failed", "err", os.NewSyscallError("accept4", errno))
			return
		}
	}
}

// accept takes one connection from the listener. Its peer's address is
// asked for only when -max-conns-per-ip needs it, and counted there; with
// -proxy-protocol the peer is the proxy, and the header's address is
// counted instead (proxyHeader).
func (a *acceptor) accept() (fd int, tag uint32, errno unix.Errno) {
	if a.perIP == nil || a.proxyProtocol {
		r, _, errno := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(a.lfd), 0, 0, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
		return int(r), 0, errno
	}
	fd, sa, err := unix.Accept4(a.lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	if err != nil {
		errno, _ := err.(unix.Errno)
		return -1, 0, errno
	}
	var addr netip.Addr
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		addr = netip.AddrFrom4(sa.Addr)
	case *unix.SockaddrInet6:
		addr = netip.AddrFrom16(sa.Addr).Unmap()
	}
	return fd, a.perIP.add(addr), 0
}

// shed handles running out of file descriptors: the listener stays
// readable (it is level-triggered), so without this the acceptor would
// spin. Giving up the spare fd lets us accept one client and close it at
// once, which also tells it to go elsewhere.
func (a *acceptor) shed() {
	a.log.Warn("out of file descriptors: shedding a connection; raise the open-file limit or lower -max-conns")
	if a.spare < 0 {
		return
	}
	unix.Close(a.spare)
	a.spare = -1
	if r, _, errno := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(a.lfd), 0, 0, unix.SOCK_CLOEXEC, 0, 0); errno == 0 {
		unix.Close(int(r))
	}
	if fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
		a.spare = fd
	}
}

func (a *acceptor) start(fd int, tag uint32) {
	p := &pendingConn{fd: fd, tag: tag, deadline: a.now() + int64(a.timeout)}
	if a.handshakes() >= a.maxPending {
		// Past -max-handshakes: closed at once, before reading a byte.
		a.hs.count(upgradeOverCapacity)
		a.drop(p)
		return
	}
	// The request usually arrives with (or right behind) the connection:
	// reading it now, before any epoll registration, saves an epoll_ctl
	// pair and a wake-up per upgrade; EAGAIN costs one syscall.
	a.onReadable(p, poller.EventRead)
	if p.done {
		return
	}
	// Edge-triggered ADD reports data that arrived since the read above.
	if err := a.poll.Add(fd, poller.EdgeRead, func(ev poller.Event) {
		a.onReadable(p, ev)
		a.wakeShards()
	}); err != nil {
		a.log.Warn("register handshake", "err", err)
		a.drop(p)
		return
	}
	p.registered = true
	a.pending[fd] = p
}

// handshakes counts the connections in their handshake: on the acceptor's
// poller, and on TLS handshake goroutines.
func (a *acceptor) handshakes() int {
	n := len(a.pending)
	if a.tls != nil {
		n += int(a.tls.inFlight.Load())
	}
	return n
}

// onReadable reads the request until its header is complete. On a TLS
// listener the first bytes (the ClientHello) hand the connection to a
// handshake goroutine instead: a client that connects and stays silent
// costs no goroutine.
func (a *acceptor) onReadable(p *pendingConn, ev poller.Event) {
	if p.done || a.stopped || ev&poller.EventClosed != 0 {
		return
	}
	for {
		if p.buf == nil {
			p.buf = a.pool.Get(handshakeBufSize)
		}
		if p.n == len(*p.buf) {
			if len(*p.buf) >= maxHandshakeBytes {
				a.hs.count(upgradeBadRequest)
				a.reply(p, responseTooLarge)
				return
			}
			bigger := a.pool.Get(maxHandshakeBytes)
			copy(*bigger, (*p.buf)[:p.n])
			a.pool.Put(p.buf)
			p.buf = bigger
		}
		prev := p.n
		n, err := unix.Read(p.fd, (*p.buf)[p.n:])
		switch {
		case n > 0:
			p.n += n
			if a.proxyProtocol && !p.proxied {
				if !a.proxyHeader(p) {
					if p.done {
						return
					}
					continue
				}
				prev = 0 // the header's bytes are gone from p.buf
			}
			if a.tls != nil && p.n > 0 {
				a.handoffTLS(p, 0)
				return
			}
			from := max(0, prev-3)
			if i := bytes.Index((*p.buf)[from:p.n], headerEnd); i >= 0 {
				a.finish(p, from+i+len(headerEnd))
				return
			}
		case err == unix.EAGAIN:
			return
		case err == unix.EINTR:
		default:
			// EOF or reset before a complete request: a port probe or a
			// client that gave up. Not an upgrade attempt worth counting.
			a.drop(p)
			return
		}
	}
}

var headerEnd = []byte("\r\n\r\n")

// finish runs the upgrade on a complete request header (the first end
// bytes of p.buf) and either hands the socket to a shard or answers the
// rejection and closes it.
func (a *acceptor) finish(p *pendingConn, end int) {
	req := (*p.buf)[:end]
	var res upgradeResult
	if p.tag != 0 && a.perIP.over(p.tag) {
		res = upgradeResult{result: upgradeTooManyPerIP, response: responseTooManyPerIP}
	} else {
		res = a.hs.upgrade(req)
	}
	written := a.writeAll(p.fd, res.response)
	if !written || res.result != upgradeOK {
		// A rejection counts as decided; an upgrade the client was gone
		// for (its 101 could not be written) is not an upgrade at all.
		if res.result != upgradeOK {
			a.hs.count(res.result)
		}
		a.drop(p)
		return
	}
	a.hs.count(upgradeOK)
	a.unregister(p)
	s := a.pick()
	a.hs.opened()
	var grants shard.Grants
	if res.grants != nil {
		grants = res.grants
	}
	if err := s.AttachLater(p.fd, (*p.buf)[end:p.n], grants, p.tag, res.deflate); err != nil {
		// The shard is closed: we are shutting down.
		a.hs.released()
		unix.Close(p.fd)
		if a.perIP != nil {
			a.perIP.release(p.tag)
		}
	} else {
		a.unwoken[s.ID()] = true
	}
	a.pool.Put(p.buf)
	p.buf = nil
}

// wakeShards wakes every shard that was handed connections since the last
// call: once per burst of upgrades, not once per connection.
func (a *acceptor) wakeShards() {
	for i, w := range a.unwoken {
		if w {
			a.unwoken[i] = false
			a.shards[i].Wake()
		}
	}
}

// pick returns the shard with the fewest connections, starting the scan
// at a rotating index so that ties spread round-robin.
func (a *acceptor) pick() *shard.Shard {
	n := uint32(len(a.shards))
	next := a.next.Add(1) % n
	best := a.shards[next]
	for i := uint32(1); i < n; i++ {
		s := a.shards[(next+i)%n]
		if s.Conns() < best.Conns() {
			best = s
		}
	}
	return best
}

// reply answers a request that will not be upgraded, then closes.
func (a *acceptor) reply(p *pendingConn, resp []byte) {
	a.writeAll(p.fd, resp)
	a.drop(p)
}

// writeAll writes a handshake response. A fresh socket's send buffer takes
// a few hundred bytes at once; a client whose buffer is already full is
// not one we wait for.
func (a *acceptor) writeAll(fd int, b []byte) bool {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil || n == 0:
			return false
		}
		b = b[n:]
	}
	return true
}

// unregister marks p done and takes it out of the poller and the pending
// set, if it was ever put there.
func (a *acceptor) unregister(p *pendingConn) {
	p.done = true
	if !p.registered {
		return
	}
	p.registered = false
	delete(a.pending, p.fd)
	if err := a.poll.Del(p.fd); err != nil && !errors.Is(err, poller.ErrClosed) {
		a.log.Debug("unregister handshake", "err", err)
	}
}

// drop closes a pending connection without upgrading it.
func (a *acceptor) drop(p *pendingConn) {
	if p.done {
		return
	}
	a.unregister(p)
	unix.Close(p.fd)
	if a.perIP != nil {
		a.perIP.release(p.tag)
	}
	if p.buf != nil {
		a.pool.Put(p.buf)
		p.buf = nil
	}
}
