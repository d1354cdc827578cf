package shardgate

import "errors"

// Error codes. The gateway's (SPEC "Client protocol") come in its error
// replies; CodeDisconnected and CodeTimeout are the client's own.
const (
	CodeBadJSON              = "bad_json"
	CodeBadRequest           = "bad_request"
	CodeBadChannel           = "bad_channel"
	CodeForbidden            = "forbidden"
	CodeTooManySubscriptions = "too_many_subscriptions"
	CodeRateLimited          = "rate_limited"
	CodeUnavailable          = "unavailable"
	CodeBadToken             = "bad_token"

	// CodeDisconnected: the request was not sent because the client was
	// not connected, or its connection was lost before the answer (the
	// message may or may not have been delivered; it is never resent).
	CodeDisconnected = "disconnected"
	// CodeTimeout: no answer within Options.PublishTimeout (the message
	// may or may not have been delivered; it is never resent).
	CodeTimeout = "timeout"
)

// Error is a request's failure: the gateway's error reply, or one of the
// client-side codes. Compare codes with errors.Is against ErrDisconnected
// and ErrTimeout, or read Code.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "shardgate: " + e.Code
	}
	return "shardgate: " + e.Code + ": " + e.Message
}

// Is reports whether target is an *Error with the same code, so that
// errors.Is(err, ErrDisconnected) holds whatever the message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

var (
	// ErrDisconnected matches (errors.Is) every error with code
	// CodeDisconnected.
	ErrDisconnected = &Error{Code: CodeDisconnected, Message: "not connected"}
	// ErrTimeout matches every error with code CodeTimeout.
	ErrTimeout = &Error{Code: CodeTimeout, Message: "no answer in time"}

	// ErrNoToken is what Options.GetToken returns to say "no token, stop":
	// the client goes to Disconnected and does not reconnect until
	// Connect is called again.
	ErrNoToken = errors.New("shardgate: no token")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("shardgate: client closed")
	// ErrAlreadySubscribed: the client has a subscription to the channel
	// already; one subscription per channel.
	ErrAlreadySubscribed = errors.New("shardgate: already subscribed")
)
