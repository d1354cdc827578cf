package client

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"time"
)

// This file holds what a well-behaved client never does and a soak test
// must: connections that stop reading, send bytes that are not valid
// frames, hang up without a closing handshake, or never finish their
// upgrade. The server's answers to them are what is being tested, so the
// engine does nothing clever here: each call does one thing to one socket.

// ErrAborted is reported to OnClose for a connection ended by Abort.
var ErrAborted = errors.New("client: aborted by this side")

// DialOptions vary one connection from its loop's Options.
type DialOptions struct {
	// Timeout replaces Options.HandshakeTimeout for this connection.
	Timeout time.Duration
	// RecvBuffer, when positive, sets the socket's receive buffer
	// (SO_RCVBUF; the kernel doubles it) before it connects, which also
	// fixes the TCP window it offers. A connection that stops reading then
	// holds little in its own kernel, and the server's send queue is what
	// fills.
	RecvBuffer int
	// Addr, when valid, is the server this connection goes to instead of
	// Options.Addr (a cluster's other node); Host then replaces the Host
	// header (default: Addr). A loop keeps one request template per
	// distinct Host.
	Addr netip.AddrPort
	Host string
	// Request, when not nil, is sent as given instead of the upgrade
	// request. Bytes that are not a whole request leave the connection
	// waiting for an answer the server should never give (a stalled
	// handshake): OnClose follows when the server hangs up (a
	// *HandshakeError with Status 0) or answers (one with its status), or
	// when Timeout passes (ErrHandshakeTimeout). OnOpen never does, since
	// no 101 can carry the accept value of a key this side did not send.
	Request []byte
}

// PauseReading leaves everything the server sends in the kernel: no
// message, pong or close is read, so the receive window closes and the
// server's queue for this connection grows. Writes go on. Loop goroutine
// only.
func (c *Conn) PauseReading() { c.paused = true }

// ResumeReading reads what arrived while paused, then goes on as usual.
// Handler methods (OnMessage, OnClose) may run before it returns. Loop
// goroutine only.
func (c *Conn) ResumeReading() {
	if !c.paused {
		return
	}
	c.paused = false
	if c.state == stateOpen || c.state == stateClosing {
		// Edge-triggered: no new event comes for data that is already
		// there, so read until the socket is empty, or its end.
		c.loop.readAll(c, true)
	}
}

// SendRaw writes b to the socket as it is: no framing, no masking. It
// returns ErrNotOpen unless the connection is open; b is copied before it
// returns. Loop goroutine only.
func (c *Conn) SendRaw(b []byte) error {
	if c.state != stateOpen {
		return ErrNotOpen
	}
	c.loop.write(c, b)
	return nil
}

// Abort closes the socket at once, without a close frame: with a TCP reset
// when reset is true (SO_LINGER 0), otherwise with a FIN (or a reset, if
// unread input is left, as the kernel does). OnClose follows before Abort
// returns, with ErrAborted. Loop goroutine only.
func (c *Conn) Abort(reset bool) {
	c.loop.finish(c, ErrAborted, reset)
}

// AppendFrame appends one frame to dst with first as its first byte, taken
// as it is (FIN, RSV bits and opcode: 0x81 is a final text frame), and
// payload masked with key when masked is true. Nothing is checked: this is
// how a test builds the frames a server must refuse.
func AppendFrame(dst []byte, first byte, payload []byte, masked bool, key uint32) []byte {
	var m byte
	if masked {
		m = maskBit
	}
	switch n := len(payload); {
	case n <= maxLen7:
		dst = append(dst, first, m|byte(n))
	case n <= 0xffff:
		dst = binary.BigEndian.AppendUint16(append(dst, first, m|lenCode16), uint16(n))
	default:
		dst = binary.BigEndian.AppendUint64(append(dst, first, m|lenCode64), uint64(n))
	}
	if !masked {
		return append(dst, payload...)
	}
	var k [4]byte
	binary.BigEndian.PutUint32(k[:], key)
	dst = append(dst, k[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	mask(dst[start:], k)
	return dst
}
