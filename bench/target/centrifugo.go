package target

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/shardgate/shardgate/bench/internal/jsonscan"
)

// Credentials of the Centrifugo started by scripts/bench-centrifugo.sh: they
// must match bench/peers/centrifugo/config.json (client.token.hmac_secret_key
// and http_api.key), which a test checks.
const (
	centrifugoHMACSecret = "shardbench-centrifugo-hmac-secret"
	centrifugoAPIKey     = "bench-api-key"
	// centrifugoUser is the "sub" of the connection JWT: every benchmark
	// connection is the same user, as Centrifugo allows by default.
	centrifugoUser = "bench"
	// centrifugoTokenTTL keeps the token valid past any benchmark run.
	// centrifuge caps a connection's life at a year anyway
	// (maxTTLSeconds: the connect reply says "ttl":31536000), after which
	// it would expect a refresh command no run lives to send.
	centrifugoTokenTTL = 10 * 365 * 24 * time.Hour
)

// centrifugo is Centrifugo's bidirectional client protocol, version 2, in
// its JSON encoding over WebSocket (the default for /connection/websocket),
// and its HTTP server API. The wire format is defined by
// github.com/centrifugal/protocol (client.proto); the behaviour quoted
// below is github.com/centrifugal/centrifuge's.
//
//   - A client sends one Command per line: {"id":N,"connect":{…}},
//     {"id":N,"subscribe":{"channel":…}}, {"id":N,"publish":{"channel":…,"data":…}}.
//     The first must be connect; anything else is answered by a disconnect.
//   - The server answers each with a Reply carrying the same id and a field
//     named like the command ({"id":N,"subscribe":{}}), or with
//     {"id":N,"error":{"code":103,"message":"permission denied"}}. A
//     subscribe reply does not name its channel: KindSubscribed comes with
//     Channel nil, to be matched by ID.
//   - Publications arrive as pushes, replies without an id:
//     {"push":{"channel":"c","pub":{"data":…,"offset":…}}}.
//   - A server ping is the empty reply {}; the client must answer with the
//     empty command {} before the pong timeout (8 s after a ping sent every
//     25 s by default) or be disconnected. An id of 0 is how the server
//     tells a pong from a command, so commands never use it.
//   - The server may put several replies in one WebSocket frame, separated
//     by exactly one "\n"; a reply itself never contains a raw newline
//     (protocol.Raw strips them from the data it embeds).
//
// A connect carries an HS256 JWT signed with the config's HMAC secret,
// generated once in newCentrifugo, unless Options.Token supplies one.
type centrifugo struct {
	url, admin string
	apiKey     string
	hello      []byte // the connect command, token included
	pong       []byte // the answer to a server ping
}

// newCentrifugo returns the target for a Centrifugo started by
// scripts/bench-centrifugo.sh. opts.Token, when set, is sent as the
// connection token instead of one signed with the script's secret;
// opts.APIKey replaces the script's API key.
//
// It returns the interface, not *centrifugo, so that New can pass its
// result on without turning a nil pointer into a non-nil Target.
func newCentrifugo(opts Options) (Target, error) {
	token := opts.Token
	if token == "" {
		var err error
		token, err = centrifugoToken(centrifugoHMACSecret, time.Now().Add(centrifugoTokenTTL))
		if err != nil {
			return nil, fmt.Errorf("target centrifugo: connection token: %w", err)
		}
	}
	apiKey := opts.APIKey
	if apiKey == "" {
		apiKey = centrifugoAPIKey
	}
	hello := append([]byte(nil), `{"id":1,"connect":{"token":`...)
	hello = appendString(hello, token)
	hello = append(hello, `,"name":"shardbench"}}`...)
	return &centrifugo{
		url:    "ws://127.0.0.1:8000/connection/websocket",
		admin:  "http://127.0.0.1:9000",
		apiKey: apiKey,
		hello:  hello,
		pong:   []byte(`{}`),
	}, nil
}

// centrifugoToken signs a connection JWT for centrifugoUser that expires
// at exp.
func centrifugoToken(secret string, exp time.Time) (string, error) {
	claims := jwt.RegisteredClaims{Subject: centrifugoUser, ExpiresAt: jwt.NewNumericDate(exp)}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
}

func (c *centrifugo) Name() string                 { return "centrifugo" }
func (c *centrifugo) DefaultURL() string           { return c.url }
func (c *centrifugo) DefaultAdminURL() string      { return c.admin }
func (c *centrifugo) HandshakeHeader() http.Header { return nil }

// AppendHello appends the connect command; Parse reports KindReady when
// its reply arrives.
func (c *centrifugo) AppendHello(dst []byte) ([]byte, bool) { return append(dst, c.hello...), false }

func (c *centrifugo) AppendSubscribe(dst []byte, channel string, id int64) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendUint(dst, centrifugoID(id), 10)
	dst = append(dst, `,"subscribe":{"channel":`...)
	dst = appendString(dst, channel)
	return append(dst, `}}`...)
}

func (c *centrifugo) AppendPublish(dst []byte, channel string, data []byte, id int64) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendUint(dst, centrifugoID(id), 10)
	dst = append(dst, `,"publish":{"channel":`...)
	dst = appendString(dst, channel)
	dst = append(dst, `,"data":`...)
	dst = appendWithoutNewlines(dst, data)
	return append(dst, `}}`...)
}

// centrifugoID maps a request id onto Centrifugo's: a uint32 (the field's
// type in client.proto) other than 0 (which makes a command a pong). Ids
// 1 to 2³²-1 pass unchanged; others wrap into that range, and the reply
// carries the wrapped id.
func centrifugoID(id int64) uint64 {
	u := uint64(id)
	if u-1 < math.MaxUint32 {
		return u
	}
	return (u-1)%math.MaxUint32 + 1
}

// appendWithoutNewlines appends the JSON value data, dropping raw newlines,
// which in valid JSON are only whitespace but would split the command in
// two: Centrifugo reads one command per line.
func appendWithoutNewlines(dst, data []byte) []byte {
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return append(dst, data...)
		}
		dst = append(dst, data[:i]...)
		data = data[i+1:]
	}
}

// Parse splits msg into its replies, one per line, and appends one event
// for each. On error evs comes back as it was passed.
func (c *centrifugo) Parse(msg []byte, evs []Event) ([]Event, error) {
	n := len(evs)
	for len(msg) > 0 {
		line := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line, msg = msg[:i], msg[i+1:]
		} else {
			msg = nil
		}
		if len(line) == 0 {
			continue // a trailing newline
		}
		ev, ok := parsePublication(line)
		if ok {
			evs = append(evs, ev)
			continue
		}
		ev, err := c.parseReply(line)
		if err != nil {
			return evs[:n], fmt.Errorf("target centrifugo: %w", err)
		}
		evs = append(evs, ev)
	}
	return evs, nil
}

// parsePublication reads a publication push in the layout centrifuge
// encodes it, {"push":{"channel":"c","pub":{"data":…,…}}}, looking at the
// bytes once: publications are nearly all a benchmark receives, and the
// general path (parseReply) walks the data three times, once per level of
// nesting. ok is false for anything else, which parseReply then reads.
func parsePublication(line []byte) (ev Event, ok bool) {
	rest, ok := bytes.CutPrefix(line, []byte(`{"push":{"channel":"`))
	if !ok {
		return ev, false
	}
	i := bytes.IndexByte(rest, '"')
	if i < 0 || bytes.IndexByte(rest[:i], '\\') >= 0 {
		return ev, false
	}
	channel := rest[:i]
	if rest, ok = bytes.CutPrefix(rest[i:], []byte(`","pub":`)); !ok {
		return ev, false
	}
	data, err := publicationData(rest)
	if err != nil || data == nil {
		return ev, false
	}
	return Event{Kind: KindMessage, Channel: channel, Data: data}, true
}

// publicationData returns the raw "data" of the Publication object that
// starts pub, scanning no further than its end; nil if it has none.
func publicationData(pub []byte) (data []byte, err error) {
	err = jsonscan.Fields(pub, func(key, value []byte) bool {
		if string(key) == "data" {
			data = value
			return false
		}
		return true
	})
	return data, err
}

// parseReply reads one Reply. Its kind follows from which field it has:
// none is a ping, "error" a failure, "push" something sent unasked, and
// otherwise the field named like the command answered.
func (c *centrifugo) parseReply(b []byte) (Event, error) {
	var (
		ev        Event
		fields    int
		errObj    []byte
		push      []byte
		replyKind = func(key, value []byte) bool {
			fields++
			switch string(key) {
			case "id":
				ev.ID, _ = jsonscan.Int(value)
			case "error":
				errObj = value
			case "push":
				push = value
			case "connect":
				ev.Kind = KindReady
			case "subscribe":
				ev.Kind = KindSubscribed
			case "publish":
				ev.Kind = KindPublished
			}
			return true
		}
	)
	if err := jsonscan.Fields(b, replyKind); err != nil {
		return ev, err
	}
	switch {
	case fields == 0:
		ev.Kind, ev.Reply = KindReply, c.pong
	case errObj != nil:
		ev.Kind = KindError
		var code []byte
		err := jsonscan.Fields(errObj, func(key, value []byte) bool {
			if string(key) == "code" {
				code = value
				return false
			}
			return true
		})
		if err != nil {
			return ev, err
		}
		ev.Code = centrifugoErrorName(code)
	case push != nil:
		return ev, parsePush(push, &ev)
	}
	return ev, nil
}

// parsePush fills ev from a Push: a publication becomes KindMessage; join,
// leave, unsubscribe, disconnect and the rest are of no interest.
func parsePush(b []byte, ev *Event) error {
	var pub []byte
	err := jsonscan.Fields(b, func(key, value []byte) bool {
		switch string(key) {
		case "channel":
			ev.Channel, _ = jsonscan.Unquote(value)
		case "pub":
			pub = value
		}
		return true
	})
	if err != nil || pub == nil {
		return err
	}
	ev.Kind = KindMessage
	ev.Data, err = publicationData(pub)
	return err
}

// centrifugoErrorName names the client protocol error codes of centrifuge's
// errors.go after their messages, so that shardbench reports
// "permission_denied" rather than 103. Other codes (a proxy's own, 400 and
// up) keep their number.
func centrifugoErrorName(code []byte) string {
	switch string(code) {
	case "100":
		return "internal"
	case "101":
		return "unauthorized"
	case "102":
		return "unknown_channel"
	case "103":
		return "permission_denied"
	case "104":
		return "method_not_found"
	case "105":
		return "already_subscribed"
	case "106":
		return "limit_exceeded"
	case "107":
		return "bad_request"
	case "108":
		return "not_available"
	case "109":
		return "token_expired"
	case "110":
		return "expired"
	case "111":
		return "too_many_requests"
	case "112":
		return "unrecoverable_position"
	case "":
		return ""
	}
	return "centrifugo_" + string(code)
}

// NewPublishRequest builds POST <admin>/api/publish. The error-mode header
// makes a refused publish an HTTP error status (400 bad request, 404
// unknown channel, 500 otherwise: apiproto.MapErrorToHTTPCode); without it
// Centrifugo answers 200 with the error in the body, which a load
// generator that checks the status would take for success.
func (c *centrifugo) NewPublishRequest(adminURL, channel string, data []byte) (*http.Request, error) {
	req, err := newPublishRequest(adminURL, channel, data)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-API-Key", c.apiKey)
	req.Header.Set("X-Centrifugo-Error-Mode", "transport")
	return req, nil
}

func (c *centrifugo) MetricsURL(adminURL string) string {
	return strings.TrimSuffix(adminURL, "/") + "/metrics"
}
