package client

import (
	"time"

	"github.com/shardgate/shardgate/shard/tlsfd"
)

type connState uint8

const (
	stateConnecting  connState = iota // connect(2) in progress
	stateTLS                          // TLS handshake on its goroutine (Options.TLS)
	stateHandshaking                  // upgrade request sent, waiting for 101
	stateOpen
	stateClosing // a close frame went one way; waiting for the rest
	stateClosed  // socket closed; late events and calls are ignored
)

// Conn is one client connection. It belongs to its Loop's goroutine: every
// method must be called there (from a Handler method, a timer or a function
// given to Loop.Do).
//
// Idle connections are the bulk of a run, so a Conn holds slices only for
// state that is in use: partial input, a fragmented message, unsent output
// (and, over TLS, crypto/tls's own state: see tls.go).
type Conn struct {
	loop  *Loop
	fd    int
	gen   uint32 // tells this connection from a later one on the same fd
	state connState
	// fragOp is the opcode of the fragmented message in progress, or
	// OpContinuation (0) when there is none.
	fragOp OpCode
	// gotClose: the server's close frame has arrived.
	gotClose bool
	// paused: input is left in the kernel (PauseReading).
	paused bool
	// ownRequest: DialOptions.Request, queued in out, replaces the upgrade
	// request.
	ownRequest bool
	// tlsPending: a handshake goroutine holds fd (see tls.go); the loop
	// must not close it.
	tlsPending bool
	// reqIdx picks the upgrade request's template: 0 the loop's, i its
	// reqs[i-1] (DialOptions.Host).
	reqIdx uint16
	// ext: permessage-deflate state (deflate.go's ext bits), and the
	// server's window when it keeps its context. Both sit in what was
	// padding: a connection without the extension costs nothing more.
	ext        uint8
	windowBits uint8

	// Tag is the caller's: typically an index into its own per-connection
	// table. The engine never reads it.
	Tag int

	dialed   int64 // loop clock at Dial
	opened   int64 // loop clock at upgrade
	deadline int64 // loop clock at which connecting or closing gives up; 0: none

	in       []byte // incomplete response header or frame, kept between reads
	frag     []byte // fragmented message received so far
	out      []byte // bytes the socket did not take yet (TLS: plaintext not yet encrypted)
	closeErr error  // the server's close frame, reported to OnClose

	tls *tlsfd.Conn // wss://, after the TLS handshake; nil for ws://
}

// Compressed reports whether the upgrade negotiated permessage-deflate
// (Options.Compress and a server that accepted).
func (c *Conn) Compressed() bool { return c.ext&extDeflate != 0 }

// Open reports whether the upgrade is done and no close has started.
func (c *Conn) Open() bool { return c.state == stateOpen }

// HandshakeTime is the time from Dial to the end of the upgrade (0 before).
func (c *Conn) HandshakeTime() time.Duration {
	if c.opened == 0 {
		return 0
	}
	return time.Duration(c.opened - c.dialed)
}

// Send writes msg as one masked text frame. It returns ErrNotOpen unless
// the connection is open. Write errors end the connection (OnClose) rather
// than being returned. msg is copied before Send returns.
func (c *Conn) Send(msg []byte) error {
	if c.state != stateOpen {
		return ErrNotOpen
	}
	c.loop.sendFrame(c, OpText, msg)
	return nil
}

// Close starts the closing handshake (status 1000). OnClose follows when the
// server has answered and closed TCP, or after Options.CloseTimeout. A
// connection not open yet is dropped at once.
func (c *Conn) Close() {
	switch c.state {
	case stateOpen:
		c.loop.sendFrame(c, OpClose, appendClosePayload(nil, StatusNormalClosure, ""))
		c.loop.startClosing(c, c.loop.opts.CloseTimeout)
	case stateConnecting, stateTLS, stateHandshaking:
		c.loop.finish(c, ErrShutdown, true)
	}
}
