// Package tlsfd runs crypto/tls over a raw non-blocking socket, so that an
// event loop can serve TLS connections without a goroutine per connection
// and without any cryptography of its own.
//
// A connection has two phases. The handshake is not resumable in
// crypto/tls (a "try again" in its middle fails it), so it runs on a
// goroutine of the caller's, which parks on Go's own poller through a
// duplicate of the descriptor until the handshake completes or its deadline
// passes; the caller may go on using that phase for a few blocking
// exchanges (an HTTP upgrade). Detach then closes the duplicate and the
// connection turns non-blocking: its owner reads when epoll says the socket
// is readable, and Read decrypts whatever whole records have arrived.
//
// The non-blocking phase relies on a documented-by-code property of
// crypto/tls: when its transport's Read returns a net.Error whose
// Temporary() is true, (*tls.Conn).Read returns that error without
// breaking the connection, and a later Read resumes where it stopped (the
// partial record stays in the tls.Conn's own input buffer). Every other
// transport error is sticky. TestTemporaryReadErrorLeavesConnUsable pins
// this, so a Go release that changes it fails our tests rather than
// breaking connections in production.
//
// Writes never block either: Write encrypts all it is given and writes
// what the socket takes; the ciphertext the socket did not take is kept
// (Buffered) and written by Flush when epoll says the socket is writable.
// While ciphertext is kept, Write refuses more (ErrWouldBlock), so a
// connection holds at most one write's worth of ciphertext.
package tlsfd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/shardgate/shardgate/bufpool"
	"golang.org/x/sys/unix"
)

// ErrWouldBlock is returned by Read, Write and Flush of a detached Conn
// when the socket has nothing to read or no room to write.
var ErrWouldBlock error = wouldBlock{}

// wouldBlock is a net.Error with Temporary() true: the one kind of
// transport error that crypto/tls does not make sticky.
type wouldBlock struct{}

func (wouldBlock) Error() string   { return "tlsfd: socket would block" }
func (wouldBlock) Timeout() bool   { return false }
func (wouldBlock) Temporary() bool { return true }

// Conn is a TLS connection over a socket descriptor it does not own: it
// never closes fd; the caller does, after dropping the Conn.
type Conn struct {
	tls *tls.Conn
	tr  *transport
}

// Server runs a server handshake on fd, a connected non-blocking socket.
// prefix holds bytes already read from fd that belong to the TLS stream
// (it is copied). The calling goroutine waits, parked on Go's poller, until
// the handshake completes or deadline passes. The Conn returned is still
// in its blocking phase: Read and Write wait for the socket until deadline.
//
// Cancelling ctx interrupts the blocking phase (a shutdown need not wait
// for slow clients' deadlines).
func Server(ctx context.Context, fd int, cfg *tls.Config, prefix []byte, deadline time.Time) (*Conn, error) {
	tr, err := newTransport(ctx, fd, prefix, deadline)
	if err != nil {
		return nil, err
	}
	c := &Conn{tls: tls.Server(tr, cfg), tr: tr}
	if err := c.handshake(); err != nil {
		return nil, err
	}
	return c, nil
}

// Client runs a client handshake on fd, like Server.
func Client(ctx context.Context, fd int, cfg *tls.Config, deadline time.Time) (*Conn, error) {
	tr, err := newTransport(ctx, fd, nil, deadline)
	if err != nil {
		return nil, err
	}
	c := &Conn{tls: tls.Client(tr, cfg), tr: tr}
	if err := c.handshake(); err != nil {
		return nil, err
	}
	return c, nil
}

// handshake runs under the duplicate's deadline. Not HandshakeContext: on
// cancellation it closes the transport from another goroutine, which
// would race with the Read in progress.
func (c *Conn) handshake() error {
	if err := c.tls.Handshake(); err != nil {
		c.tr.closeFile()
		return fmt.Errorf("tls handshake: %w", err)
	}
	return nil
}

// Abandon ends the blocking phase of a Conn that will not be used: it
// closes the duplicate descriptor (never fd itself).
func (c *Conn) Abandon() { c.tr.closeFile() }

// Detach ends the blocking phase: from now on Read, Write and Flush never
// wait. pool, if not nil, lends the buffer of ciphertext the socket did
// not take. Bytes already buffered inside the TLS layer (a record that
// arrived with the handshake's last flight) are returned by the next Read:
// the caller should Read once after Detach rather than wait for epoll.
func (c *Conn) Detach(pool *bufpool.Pool) {
	c.tr.pool = pool
	c.tr.closeFile()
	c.tr.stopWatch = nil
	trim(c.tls)
}

// Read decrypts into p. In the blocking phase it waits for a record; once
// detached it returns ErrWouldBlock when no whole record is there. io.EOF
// means the peer closed (TCP EOF, or a TLS close_notify).
func (c *Conn) Read(p []byte) (int, error) { return c.tls.Read(p) }

// Write encrypts all of p. Once detached, it writes what the socket takes
// and keeps the rest for Flush; while anything is kept it refuses new data
// with ErrWouldBlock (n = 0). Any other error means the connection is
// broken.
func (c *Conn) Write(p []byte) (int, error) {
	if c.tr.file == nil && c.tr.buffered() > 0 {
		return 0, ErrWouldBlock
	}
	return c.tls.Write(p)
}

// Buffered is the ciphertext Write kept because the socket was full.
func (c *Conn) Buffered() int { return c.tr.buffered() }

// Flush writes kept ciphertext. It returns nil once none is left,
// ErrWouldBlock when the socket is full again, or the socket's error.
func (c *Conn) Flush() error { return c.tr.flush() }

// Counts returns the bytes read from and written to the socket since the
// last call: the wire's bytes, records and all.
func (c *Conn) Counts() (read, written int) {
	read, written = c.tr.read, c.tr.written
	c.tr.read, c.tr.written = 0, 0
	return read, written
}

// ConnectionState reports the negotiated version, cipher suite and ALPN.
func (c *Conn) ConnectionState() tls.ConnectionState { return c.tls.ConnectionState() }

// Release returns kept ciphertext to the pool. The Conn must not be used
// afterwards.
func (c *Conn) Release() {
	c.tr.closeFile()
	c.tr.dropOut()
}

// transport is the net.Conn under the tls.Conn. In the blocking phase it
// reads and writes a duplicate of fd registered with Go's poller (os.File
// on a non-blocking descriptor parks the goroutine, not an OS thread, and
// honours deadlines); afterwards it uses fd directly and never waits.
type transport struct {
	fd int
	// file is the blocking phase's duplicate; nil once detached. It is
	// set and cleared on the goroutine that does the I/O; mu orders that
	// with interrupt, which runs on ctx's goroutine.
	file      *os.File
	mu        sync.Mutex
	stopWatch func() bool // stops the ctx watch that calls interrupt
	prefix    []byte      // bytes read before the handshake, delivered first

	pool   *bufpool.Pool
	out    *[]byte // ciphertext the socket did not take
	outOff int

	read, written int
}

func newTransport(ctx context.Context, fd int, prefix []byte, deadline time.Time) (*transport, error) {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("tlsfd: dup socket: %w", os.NewSyscallError("fcntl", err))
	}
	f := os.NewFile(uintptr(dup), "tls-handshake")
	if err := f.SetDeadline(deadline); err != nil {
		// Not in Go's poller: waiting on it would block an OS thread.
		f.Close()
		return nil, fmt.Errorf("tlsfd: socket not pollable: %w", err)
	}
	t := &transport{fd: fd, file: f}
	if len(prefix) > 0 {
		t.prefix = append([]byte(nil), prefix...)
	}
	t.stopWatch = context.AfterFunc(ctx, t.interrupt)
	return t, nil
}

// interrupt makes the blocking phase's pending and later I/O fail at once.
func (t *transport) interrupt() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.file != nil {
		_ = t.file.SetDeadline(time.Unix(1, 0))
	}
}

func (t *transport) closeFile() {
	if t.file == nil {
		return
	}
	t.stopWatch()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.file.Close()
	t.file = nil
}

func (t *transport) Read(p []byte) (int, error) {
	if len(t.prefix) > 0 {
		n := copy(p, t.prefix)
		t.prefix = t.prefix[n:]
		if len(t.prefix) == 0 {
			t.prefix = nil
		}
		return n, nil
	}
	if t.file != nil {
		n, err := t.file.Read(p)
		t.read += n
		return n, err
	}
	for {
		n, err := unix.Read(t.fd, p)
		switch {
		case n > 0:
			t.read += n
			return n, nil
		case err == unix.EAGAIN:
			return 0, ErrWouldBlock
		case err == unix.EINTR:
			continue
		case err == nil:
			return 0, io.EOF
		default:
			return 0, os.NewSyscallError("read", err)
		}
	}
}

func (t *transport) Write(p []byte) (int, error) {
	if t.file != nil {
		n, err := t.file.Write(p)
		t.written += n
		return n, err
	}
	total := len(p)
	if t.buffered() == 0 {
		n, err := t.writeSocket(p)
		if err != nil && err != ErrWouldBlock {
			return 0, err
		}
		p = p[n:]
	}
	if len(p) > 0 {
		t.keep(p)
	}
	return total, nil
}

// writeSocket writes once, retrying EINTR.
func (t *transport) writeSocket(p []byte) (int, error) {
	for {
		n, err := unix.Write(t.fd, p)
		switch err {
		case nil:
			t.written += n
			return n, nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, ErrWouldBlock
		default:
			return 0, os.NewSyscallError("write", err)
		}
	}
}

func (t *transport) buffered() int {
	if t.out == nil {
		return 0
	}
	return len(*t.out) - t.outOff
}

func (t *transport) keep(p []byte) {
	if t.out == nil {
		if t.pool != nil {
			t.out = t.pool.Get(len(p))
			*t.out = (*t.out)[:0]
		} else {
			b := make([]byte, 0, len(p))
			t.out = &b
		}
	}
	*t.out = append(*t.out, p...)
}

func (t *transport) flush() error {
	for t.buffered() > 0 {
		n, err := t.writeSocket((*t.out)[t.outOff:])
		if err != nil {
			return err
		}
		t.outOff += n
	}
	t.dropOut()
	return nil
}

func (t *transport) dropOut() {
	if t.out == nil {
		return
	}
	if t.pool != nil {
		t.pool.Put(t.out)
	}
	t.out, t.outOff = nil, 0
}

// The rest of net.Conn. Deadlines matter only in the blocking phase,
// where Server and Client set them on the duplicate.

func (t *transport) Close() error {
	t.closeFile()
	return nil
}

func (t *transport) LocalAddr() net.Addr  { return addr{} }
func (t *transport) RemoteAddr() net.Addr { return addr{} }

func (t *transport) SetDeadline(d time.Time) error {
	if t.file != nil {
		return t.file.SetDeadline(d)
	}
	return nil
}

func (t *transport) SetReadDeadline(d time.Time) error {
	if t.file != nil {
		return t.file.SetReadDeadline(d)
	}
	return nil
}

func (t *transport) SetWriteDeadline(d time.Time) error {
	if t.file != nil {
		return t.file.SetWriteDeadline(d)
	}
	return nil
}

// addr stands in for the socket's addresses, which crypto/tls only
// prints in errors.
type addr struct{}

func (addr) Network() string { return "tcp" }
func (addr) String() string  { return "socket" }

var _ net.Conn = (*transport)(nil)

// IsWouldBlock reports whether err says the socket would block.
func IsWouldBlock(err error) bool { return errors.Is(err, ErrWouldBlock) }
