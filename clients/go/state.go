package shardgate

import "time"

// State is where the client stands (clients/README.md, "States").
type State int32

const (
	// Disconnected: not connected and not trying to. The state before
	// Connect, and after Disconnect, Close, close code 4003, or a
	// GetToken that returned ErrNoToken: nothing reconnects until Connect.
	Disconnected State = iota
	// Connecting: an attempt is under way, or waiting for its delay.
	Connecting
	// Connected: the WebSocket is open.
	Connected
)

func (s State) String() string {
	switch s {
	case Disconnected:
		return "disconnected"
	case Connecting:
		return "connecting"
	case Connected:
		return "connected"
	}
	return "unknown"
}

// StateChange is what Options.OnState receives on every transition, and
// on every failed attempt while Connecting.
type StateChange struct {
	State State
	// URL: for Connected, the URL that answered; for Connecting, the URL
	// the next attempt dials.
	URL string
	// Code and Reason: for Connecting, the close code and reason of the
	// connection that was lost (1006 when it ended without a close frame,
	// as on a dead path), zero after Connect and after a failed attempt;
	// for Disconnected, why the client stopped: 4003 "disconnected" (the
	// operator), 4001 with a static token, 1000 "disconnect", "close" or
	// "no token".
	Code   int
	Reason string
	// Err is why the previous connection or attempt ended, when there is
	// more to say than the close code: a dial error (with the HTTP status
	// of a refused handshake), a read error, ErrNoToken.
	Err error
	// Delay is how long the client waits before its next attempt
	// (Connecting only; zero for "at once").
	Delay time.Duration
}
