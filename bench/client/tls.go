package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/shardgate/shardgate/shard/tlsfd"
	"golang.org/x/sys/unix"
)

// wss:// (Options.TLS). crypto/tls does the handshake and the records
// through shard/tlsfd; this file only decides who owns the socket when.
//
// A TLS handshake cannot be resumed after "would block", so each one runs
// on a goroutine of its own, parked on Go's poller through a duplicate of
// the socket (tlsfd.Client); the loop goroutine ignores the socket's
// events meanwhile. The number of such goroutines is the number of
// connections in their handshake, which the caller bounds (shardbench:
// -inflight). Once the handshake is done the loop takes the connection back
// (Detach) and the upgrade, frames and close go through the TLS connection
// as they go through the socket for ws://; an open connection holds no
// goroutine.
//
// Ownership of the descriptor during a handshake: the handshake goroutine
// holds it, and nothing else closes it. A connection that ends meanwhile
// (handshake timeout, Shutdown, Stop) is reported and forgotten by the
// loop at once, and its socket is shut down so the handshake fails
// quickly; its descriptor is closed when the goroutine's result comes
// back. The number therefore cannot be reused under the goroutine.

// TLSError is a failed TLS handshake.
type TLSError struct {
	Err error
}

func (e *TLSError) Error() string { return "client: " + e.Err.Error() }
func (e *TLSError) Unwrap() error { return e.Err }

// tlsReason names a failed TLS handshake for Reason.
func tlsReason(err error) string {
	var (
		unknownCA  x509.UnknownAuthorityError
		hostname   x509.HostnameError
		invalid    x509.CertificateInvalidError
		verify     *tls.CertificateVerificationError
		alert      tls.AlertError
		recordHead tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &unknownCA), errors.As(err, &hostname), errors.As(err, &invalid), errors.As(err, &verify):
		return "tls_bad_certificate"
	case errors.As(err, &recordHead):
		return "tls_not_tls" // the server answered in plain text
	case errors.As(err, &alert):
		return "tls_alert"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, unix.ECONNRESET):
		return "tls_closed"
	}
	return "tls_error"
}

// tlsResult is a handshake goroutine's outcome, handed to the loop.
type tlsResult struct {
	c   *Conn
	tc  *tlsfd.Conn // nil when err is set
	err error
}

// release drops a result nobody will use: the TLS state and the socket.
func (r tlsResult) release() {
	if r.tc != nil {
		r.tc.Release()
	}
	unix.Close(r.c.fd)
}

// startTLS hands c's connected socket to a handshake goroutine.
func (l *Loop) startTLS(c *Conn) {
	c.state = stateTLS
	c.tlsPending = true
	fd, cfg := c.fd, l.opts.TLS
	deadline := l.base.Add(time.Duration(c.deadline))
	go func() {
		tc, err := tlsfd.Client(context.Background(), fd, cfg, deadline)
		l.handOver(tlsResult{c: c, tc: tc, err: err})
	}()
}

// handOver queues a handshake result for the loop goroutine, or releases
// it when the loop has stopped. Any goroutine.
func (l *Loop) handOver(r tlsResult) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		r.release()
		return
	}
	l.tlsDone = append(l.tlsDone, r)
	wake := l.pending.CompareAndSwap(false, true)
	l.mu.Unlock()
	if wake {
		l.wake()
	}
}

// onTLS takes a connection back from its handshake goroutine and sends
// the upgrade request over TLS.
func (l *Loop) onTLS(r tlsResult) {
	c := r.c
	c.tlsPending = false
	switch {
	case c.state != stateTLS: // ended meanwhile; OnClose has run
		r.release()
		return
	case errors.Is(r.err, os.ErrDeadlineExceeded):
		// The handshake ran into the connection's deadline, which the
		// sweep would have reported the same way.
		l.finish(c, ErrHandshakeTimeout, true)
		return
	case r.err != nil:
		l.finish(c, &TLSError{Err: r.err}, true)
		return
	}
	r.tc.Detach(nil)
	c.tls = r.tc
	if l.tlsState == nil {
		st := r.tc.ConnectionState()
		l.tlsState = &st
	}
	c.state = stateHandshaking
	if c.ownRequest {
		l.flush(c) // DialOptions.Request, queued at Dial
	} else {
		key := handshakeKey(l.opts.Seed ^ uint64(c.gen))
		l.wbuf = l.request(c).appendRequest(l.wbuf[:0], &key)
		l.write(c, l.wbuf)
	}
	// The socket's readiness edges passed while the handshake goroutine
	// had it, and a record may already sit inside the TLS layer: read now.
	if c.state != stateClosed {
		l.readAll(c, true)
	}
}

// TLSState is the connection state of the loop's first TLS handshake
// (version, cipher suite, key exchange group, ALPN), or nil before one has
// completed or without Options.TLS. Loop goroutine only.
func (l *Loop) TLSState() *tls.ConnectionState { return l.tlsState }

// readTLS decrypts what has arrived for c, until the socket is empty.
func (l *Loop) readTLS(c *Conn) {
	for c.state != stateClosed && !c.paused {
		n, err := c.tls.Read(l.rbuf)
		if n > 0 {
			l.counters.BytesRead += int64(n)
			l.input(c, l.rbuf[:n])
			if c.state == stateClosed {
				return
			}
		}
		switch {
		case err == nil:
		case tlsfd.IsWouldBlock(err):
			return
		case errors.Is(err, io.EOF):
			l.onEOF(c)
			return
		default:
			l.finish(c, &DialError{Op: "read", Err: fmt.Errorf("tls: %w", err)}, true)
			return
		}
	}
}

// writeTLS is writeSome for a TLS connection: b goes whole or not at all
// (tlsfd keeps the ciphertext the socket did not take, and refuses more
// until it is flushed).
func (l *Loop) writeTLS(c *Conn, b []byte) (n int, ok bool) {
	if c.tls.Buffered() > 0 {
		switch err := c.tls.Flush(); {
		case tlsfd.IsWouldBlock(err):
			return 0, true
		case err != nil:
			l.finish(c, &DialError{Op: "write", Err: err}, true)
			return 0, false
		}
	}
	if len(b) == 0 {
		return 0, true
	}
	switch _, err := c.tls.Write(b); {
	case err == nil:
		return len(b), true
	case tlsfd.IsWouldBlock(err):
		return 0, true
	default:
		l.finish(c, &DialError{Op: "write", Err: err}, true)
		return 0, false
	}
}
