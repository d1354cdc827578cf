package client

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
)

// Reasons a connection ends, reported to Handler.OnClose.
var (
	// ErrHandshakeTimeout: connect plus upgrade took longer than
	// Options.HandshakeTimeout.
	ErrHandshakeTimeout = errors.New("client: handshake timeout")
	// ErrCloseTimeout: the server did not finish the closing handshake in
	// time; the socket was reset.
	ErrCloseTimeout = errors.New("client: close timeout")
	// ErrEOF: the server closed TCP without a close frame.
	ErrEOF = fmt.Errorf("client: connection closed by server without a close frame: %w", io.EOF)
	// ErrShutdown: the connection was still connecting when Shutdown ran.
	ErrShutdown = errors.New("client: loop shut down")
	// ErrNotOpen is returned by Conn.Send on a connection that is not open.
	ErrNotOpen = errors.New("client: connection not open")
	// ErrStopped is returned by Dial after Stop.
	ErrStopped = errors.New("client: loop stopped")
)

// DialError is a failure to set up the TCP connection.
type DialError struct {
	Op  string // "socket", "bind", "connect"
	Err error  // an *os.SyscallError
}

func (e *DialError) Error() string { return "client: " + e.Op + ": " + e.Err.Error() }
func (e *DialError) Unwrap() error { return e.Err }

// CloseError is a closing handshake the server started.
type CloseError struct {
	Code   uint16
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("client: closed by server: %d %s", e.Code, e.Reason)
}

// Reason names err in a few words fit for a metric label or a table row:
// "refused", "handshake_timeout", "http_503", "closed_1008",
// "tls_bad_certificate", ...
func Reason(err error) string {
	var (
		he *HandshakeError
		ce *CloseError
		de *DialError
		te *TLSError
		en syscall.Errno
	)
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrHandshakeTimeout):
		return "handshake_timeout"
	case errors.Is(err, ErrCloseTimeout):
		return "close_timeout"
	case errors.Is(err, ErrShutdown):
		return "shutdown"
	case errors.Is(err, ErrAborted):
		return "aborted"
	case errors.Is(err, ErrEOF):
		return "eof"
	case errors.Is(err, ErrProtocol):
		return "protocol_error"
	case errors.As(err, &he):
		if he.Status == 0 || he.Status == 101 {
			return "bad_handshake"
		}
		return fmt.Sprintf("http_%d", he.Status)
	case errors.As(err, &ce):
		return fmt.Sprintf("closed_%d", ce.Code)
	case errors.As(err, &te):
		return tlsReason(te.Err)
	case errors.As(err, &en):
		prefix := ""
		if errors.As(err, &de) && de.Op != "connect" {
			prefix = de.Op + "_"
		}
		switch en {
		case syscall.ECONNREFUSED:
			return prefix + "refused"
		case syscall.ECONNRESET:
			return prefix + "reset"
		case syscall.EADDRNOTAVAIL, syscall.EADDRINUSE:
			return prefix + "no_ports"
		case syscall.EMFILE, syscall.ENFILE:
			return prefix + "too_many_files"
		case syscall.ETIMEDOUT:
			return prefix + "timeout"
		}
		return prefix + strings.ReplaceAll(en.Error(), " ", "_")
	}
	return "error"
}
