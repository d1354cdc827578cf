package shardgate

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"
)

// Defaults of the Options durations.
const (
	DefaultMinReconnectDelay = 500 * time.Millisecond
	DefaultMaxReconnectDelay = 20 * time.Second
	DefaultPublishTimeout    = 10 * time.Second
	// DefaultReadTimeout is two and a half times the gateway's default
	// -ping-interval (30 s): a path that died without a FIN or RST is
	// noticed after two missed pings.
	DefaultReadTimeout      = 75 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
)

// Options configure a Client. Only URLs is required.
type Options struct {
	// URLs are the gateway's WebSocket URLs (ws:// or wss://), nodes of
	// one cluster. The client starts with the first; each failed attempt,
	// and each reconnect after close 1001 or 4010, moves to the next,
	// round robin.
	URLs []string

	// Token is a bearer token sent at upgrade (Authorization: Bearer).
	// With GetToken as well, it is used for the first connection only.
	// A static Token cannot be refreshed: after close 4001 (expired) the
	// client goes to Disconnected.
	Token string
	// GetToken returns a token: before the first connection (unless Token
	// is set), before a connection when the cached token is within its
	// refresh margin, after close 4001, after a handshake refused with
	// 401, and to refresh in place (see the README). ctx ends with
	// Disconnect or Close. Returning ErrNoToken (or an error wrapping it)
	// stops the client: Disconnected, no reconnect. Other errors count as
	// a failed attempt (or a failed refresh) and are retried after the
	// backoff delay. It runs on a goroutine of the client; a call starts
	// while another is under way only if that one ignored its ctx.
	GetToken func(ctx context.Context) (string, error)

	// MinReconnectDelay and MaxReconnectDelay bound the backoff (defaults
	// 500 ms and 20 s): after the n-th consecutive failure the client
	// waits a delay drawn uniformly from
	// [MinReconnectDelay, min(MaxReconnectDelay, MinReconnectDelay·2ⁿ⁺¹)].
	MinReconnectDelay time.Duration
	MaxReconnectDelay time.Duration
	// PublishTimeout bounds the wait for a publish's answer (default
	// 10 s); past it Publish fails with code "timeout".
	PublishTimeout time.Duration
	// ReadTimeout: a connection from which nothing (a ping included)
	// arrives for this long is taken as lost (default 75 s; negative:
	// never). Keep it above the gateway's -ping-interval.
	ReadTimeout time.Duration
	// HandshakeTimeout bounds the TCP, TLS and WebSocket handshakes of
	// one attempt (default 10 s).
	HandshakeTimeout time.Duration
	// TLSConfig is used for wss:// URLs (nil: the system's roots).
	TLSConfig *tls.Config
	// Header is added to every upgrade request (the client sets
	// Authorization itself).
	Header http.Header
	// Logger receives the client's own log lines (lost connections,
	// failed attempts, refreshes) at debug and warn levels. Nil: none.
	Logger *slog.Logger

	// OnState is called on every state transition, and on every failed
	// attempt while Connecting (with its error and the delay before the
	// next one).
	OnState func(StateChange)
	// OnMessage is called with the data of each message sent to every
	// connection (published without a channel).
	OnMessage func(data json.RawMessage)
	// OnError is called with errors that belong to no request: a failed
	// refresh (an *Error with code "bad_token", or GetToken's error), an
	// error reply the client cannot match, a frame it cannot decode.
	OnError func(error)
}

// withDefaults checks o and fills in the defaults.
func (o Options) withDefaults() (Options, error) {
	if len(o.URLs) == 0 {
		return o, errors.New("shardgate: Options.URLs is empty")
	}
	o.URLs = append([]string(nil), o.URLs...)
	for _, s := range o.URLs {
		u, err := url.Parse(s)
		if err != nil {
			return o, fmt.Errorf("shardgate: Options.URLs: %w", err)
		}
		if u.Scheme != "ws" && u.Scheme != "wss" {
			return o, fmt.Errorf("shardgate: Options.URLs: %q is not a ws:// or wss:// URL", s)
		}
	}
	if o.MinReconnectDelay == 0 {
		o.MinReconnectDelay = DefaultMinReconnectDelay
	}
	if o.MaxReconnectDelay == 0 {
		o.MaxReconnectDelay = max(DefaultMaxReconnectDelay, o.MinReconnectDelay)
	}
	if o.MinReconnectDelay < 0 || o.MaxReconnectDelay < o.MinReconnectDelay {
		return o, fmt.Errorf("shardgate: reconnect delays [%v, %v]: want 0 < min <= max", o.MinReconnectDelay, o.MaxReconnectDelay)
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = DefaultPublishTimeout
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Header = o.Header.Clone()
	return o, nil
}
