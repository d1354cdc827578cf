package shard

import (
	"errors"
	"io"
	"unsafe"

	"github.com/shardgate/shardgate/shard/pmce"
	"github.com/shardgate/shardgate/shard/tlsfd"
	"golang.org/x/sys/unix"
)

// TLS connections are served by the same loop as plain ones. Their socket
// I/O goes through a tlsfd.Conn, which never blocks: reads decrypt the
// whole records that have arrived (a partial record waits inside crypto/tls
// until epoll reports more), writes encrypt and keep the ciphertext the
// socket did not take. A connection with kept ciphertext takes no more
// plaintext (its frames wait in its queue, charged as usual) until
// EPOLLOUT lets the ciphertext out, so it holds at most one record batch
// of ciphertext besides its queue.
//
// The TLS layer of all[i] is links[i]. It lives beside the connection, not
// in it, so a plain connection is exactly as big as before TLS existed:
// links stays nil on a shard that never had a TLS connection.

// sealChunk is the plaintext handed to crypto/tls at once: one full TLS
// record, so a batch of small frames costs one record, not one each.
const sealChunk = 16 << 10

// AttachTLSLater is AttachLater for a connection whose TLS handshake and
// upgrade are done: link is its detached TLS layer (the shard owns it from
// now on), pending the plaintext the client sent after its upgrade
// request.
func (s *Shard) AttachTLSLater(fd int, link *tlsfd.Conn, pending []byte, grants Grants, tag uint32, deflate pmce.Params) error {
	c := s.newConn(fd, pending, grants, tag, deflate)
	if err := s.queueTask(task{kind: taskAttach, conn: c, link: link}, false); err != nil {
		s.dropConn(c)
		link.Release()
		return err
	}
	return nil
}

// setLink records c's TLS layer at its index.
func (s *Shard) setLink(c *conn, l *tlsfd.Conn) {
	if l == nil && s.links == nil {
		return
	}
	for len(s.links) < len(s.all) {
		s.links = append(s.links, nil)
	}
	s.links[c.idx] = l
}

// tlsOf returns c's TLS layer, nil for a plain connection.
func (s *Shard) tlsOf(c *conn) *tlsfd.Conn {
	if s.links == nil || c.idx < 0 {
		return nil
	}
	return s.links[c.idx]
}

// unlink forgets the TLS layer of the connection at idx, moving the last
// one's into its place as release does with Shard.all.
func (s *Shard) unlink(idx int32) {
	if s.links == nil {
		return
	}
	last := len(s.links) - 1
	if l := s.links[idx]; l != nil {
		l.Release()
	}
	s.links[idx] = s.links[last]
	s.links[last] = nil
	s.links = s.links[:last]
}

// drained reports whether everything queued for c is on the wire (or in
// the kernel): nothing queued, and no ciphertext kept.
func (s *Shard) drained(c *conn) bool {
	if c.out != nil {
		return false
	}
	l := s.tlsOf(c)
	return l == nil || l.Buffered() == 0
}

// recv reads c's input into p, with the conventions of read(2): n > 0
// bytes, or 0 and EAGAIN, or 0 and nil at end of stream, or 0 and another
// error. For a TLS connection n is plaintext; a full p means more may be
// waiting (in the socket or decrypted), as with a full plain read.
func (s *Shard) recv(c *conn, p []byte) (int, error) {
	l := s.tlsOf(c)
	if l == nil {
		return unix.Read(int(c.fd), p)
	}
	n := 0
	for n < len(p) {
		m, err := l.Read(p[n:])
		n += m
		if err == nil {
			continue
		}
		if tlsfd.IsWouldBlock(err) {
			// The socket is dry: what crypto/tls kept of this input
			// is not needed until the next record.
			l.Trim()
		}
		if n > 0 {
			// Hand over what came; the condition recurs on the next
			// read (crypto/tls keeps EOF and errors sticky).
			break
		}
		switch {
		case tlsfd.IsWouldBlock(err):
			return 0, unix.EAGAIN
		case errors.Is(err, io.EOF):
			return 0, nil
		default:
			s.log.Debug("tls read", "err", err)
			return 0, unix.EPROTO
		}
	}
	// A record crypto/tls decrypted may have made it answer (a key
	// update): that ciphertext may be waiting for EPOLLOUT already.
	return n, nil
}

// writevTLS encrypts the bytes iov points at, in records of up to
// sealChunk bytes, while the socket takes the ciphertext. It returns how
// many plaintext bytes it consumed: all of them, or fewer when the socket
// filled up (the rest stays queued; the ciphertext of the last record is
// kept by the link). ok is false when the connection was released.
func (s *Shard) writevTLS(c *conn, l *tlsfd.Conn, iov []unix.Iovec) (n int, ok bool) {
	if l.Buffered() > 0 {
		return 0, true
	}
	buf := s.sealBuf[:0]
	seal := func(p []byte) bool {
		if _, err := l.Write(p); err != nil {
			s.log.Debug("tls write", "err", err)
			s.abort(c, ReasonIOError)
			return false
		}
		n += len(p)
		s.stats.sentBytes += len(p)
		return true
	}
	for _, v := range iov {
		b := unsafe.Slice(v.Base, int(v.Len))
		for len(b) > 0 {
			if len(buf) == 0 && len(b) >= sealChunk {
				// A big frame is sealed in place, without a copy.
				if !seal(b[:sealChunk]) {
					return n, false
				}
				b = b[sealChunk:]
			} else {
				k := copy(buf[len(buf):sealChunk], b)
				buf = buf[:len(buf)+k]
				b = b[k:]
				if len(buf) < sealChunk {
					continue
				}
				if !seal(buf) {
					return n, false
				}
				buf = buf[:0]
			}
			if l.Buffered() > 0 {
				s.keptCiphertext(c)
				return n, true
			}
		}
	}
	if len(buf) > 0 {
		if !seal(buf) {
			return n, false
		}
		if l.Buffered() > 0 {
			s.keptCiphertext(c)
		}
	}
	return n, true
}

// keptCiphertext starts the write-timeout clock of a connection whose
// socket refused ciphertext while nothing else was queued.
func (s *Shard) keptCiphertext(c *conn) {
	if c.out == nil {
		c.stallSince = s.now()
	}
}

// flushTLS writes c's kept ciphertext. It reports whether the socket took
// all of it; false also when c was released.
func (s *Shard) flushTLS(c *conn, l *tlsfd.Conn) bool {
	if l.Buffered() == 0 {
		return true
	}
	err := l.Flush()
	switch {
	case err == nil:
		c.stallSince = s.now()
		return true
	case tlsfd.IsWouldBlock(err):
		return false
	default:
		s.abort(c, ReasonIOError)
		return false
	}
}
