package protocol

// Error codes sent in {"type":"error"} replies. They are part of the public
// contract: clients switch on them, so they never change spelling.
const (
	// CodeBadJSON: the message is not one JSON object (or not UTF-8).
	CodeBadJSON = "bad_json"
	// CodeBadRequest: unknown type, missing or mistyped field.
	CodeBadRequest = "bad_request"
	// CodeBadChannel: the channel is not a valid channel name.
	CodeBadChannel = "bad_channel"
	// CodeForbidden: the connection's token does not grant the channel.
	CodeForbidden = "forbidden"
	// CodeTooManySubscriptions: the connection is at -max-subscriptions.
	CodeTooManySubscriptions = "too_many_subscriptions"
	// CodeRateLimited: the connection exceeded -client-rate.
	CodeRateLimited = "rate_limited"
	// CodeUnavailable: the broker is unreachable or the gateway is draining.
	CodeUnavailable = "unavailable"
	// CodeBadToken: a refresh whose token was refused; the token in force
	// stays in force.
	CodeBadToken = "bad_token"
)

// Error is a request failure reported to the client. The connection stays
// open after it; Code is one of the Code constants and Message is free text
// for humans (AppendError escapes it, so it may hold anything).
type Error struct {
	Code    string
	Message string
}

// Error implements error so that a failed request can travel through ordinary
// error returns inside the gateway before it is encoded.
func (e *Error) Error() string {
	return "protocol: " + e.Code + ": " + e.Message
}
