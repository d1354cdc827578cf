// Package target adapts the load generator to the servers it measures: how
// a client of each one says hello, subscribes and publishes, what its
// messages look like, and how its HTTP API publishes and serves metrics.
//
// The client engine (bench/client) moves WebSocket messages; the scenarios
// (bench/loadgen) decide what to send when. Everything specific to one
// server's protocol is here, behind Target, so a new server is one more
// file and one more case in New, with no change to the engine or the
// scenarios.
//
// A Target is shared by every connection of a worker and holds no
// per-connection state: the scenarios track each connection's progress from
// the events Parse reports.
package target

import (
	"fmt"
	"net/http"
	"strings"
)

// Options are credentials a target may need.
type Options struct {
	// Token authenticates clients: shardgate and gorillahub send it as
	// "Authorization: Bearer" on the upgrade.
	Token string
	// APIKey authenticates publishes: shardgate's -admin-token.
	APIKey string
}

// Kind classifies a server message.
type Kind uint8

// Kinds of Event.
const (
	KindIgnore     Kind = iota // nothing the benchmark needs
	KindReady                  // the session is established (the answer to Hello)
	KindSubscribed             // a subscribe succeeded
	KindPublished              // a client publish was accepted
	KindMessage                // a message published to a channel
	KindError                  // a request failed; Code says why
	KindReply                  // the server expects Reply sent back (an application-level ping)
)

// Event is one thing a server message says. Its slices point into the
// message: they are valid until the next Parse.
type Event struct {
	Kind    Kind
	ID      int64  // the request id echoed by a reply; 0 when none
	Channel []byte // KindMessage, KindSubscribed
	Data    []byte // KindMessage: the raw JSON value published
	Code    string // KindError
	Reply   []byte // KindReply
	// History (shardgate with -history-size): Offset of a KindMessage, or
	// the channel's latest of a KindSubscribed; Epoch and Recovered
	// ("true", "false", or nil when the subscribe did not ask to recover)
	// of a KindSubscribed.
	Offset    uint64
	HasOffset bool
	Epoch     []byte
	Recovered []byte
}

// Target is one server's client protocol and HTTP API.
type Target interface {
	// Name is how the -target flag calls it.
	Name() string
	// DefaultURL is the WebSocket URL of a server started by the
	// project's scripts with their defaults (always on loopback).
	DefaultURL() string
	// DefaultAdminURL is the base URL of its HTTP API, likewise.
	DefaultAdminURL() string
	// HandshakeHeader holds extra headers for the upgrade request.
	HandshakeHeader() http.Header
	// AppendHello appends the message a client sends right after the
	// upgrade, if any. ready reports that the session needs no answer to
	// it; otherwise Parse reports KindReady when the answer arrives.
	AppendHello(dst []byte) (out []byte, ready bool)
	// AppendSubscribe appends a request to subscribe to channel.
	AppendSubscribe(dst []byte, channel string, id int64) []byte
	// AppendPublish appends a client request to publish data (a JSON
	// value) to channel.
	AppendPublish(dst []byte, channel string, data []byte, id int64) []byte
	// Parse appends to evs the events in one text message from the server.
	Parse(msg []byte, evs []Event) ([]Event, error)
	// NewPublishRequest builds the HTTP request that publishes data (a
	// JSON value) to channel through the server's API at adminURL.
	NewPublishRequest(adminURL, channel string, data []byte) (*http.Request, error)
	// MetricsURL is where the server serves Prometheus metrics.
	MetricsURL(adminURL string) string
}

// Names lists the targets New knows.
func Names() []string { return []string{"shardgate", "gorillahub", "centrifugo"} }

// New returns the target called name.
func New(name string, opts Options) (Target, error) {
	switch name {
	case "shardgate":
		return &envelope{name: name, url: "ws://127.0.0.1:8080/ws", admin: "http://127.0.0.1:9090", opts: opts}, nil
	case "gorillahub":
		// bench/peers/gorillahub speaks shardgate's protocol subset, on the
		// ports of scripts/bench-gorillahub.sh.
		return &envelope{name: name, url: "ws://127.0.0.1:8090/ws", admin: "http://127.0.0.1:9190", opts: opts}, nil
	case "centrifugo":
		// Centrifugo v6 as scripts/bench-centrifugo.sh starts it.
		return newCentrifugo(opts)
	}
	return nil, fmt.Errorf("target: unknown target %q (known: %s)", name, strings.Join(Names(), ", "))
}
