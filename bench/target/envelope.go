package target

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/shardgate/shardgate/bench/internal/jsonscan"
)

// envelope is shardgate's client protocol: one JSON object per text frame
// with a "type" field (see the Client protocol section of SPEC.md), and
// POST /api/publish {"channel","data"} on the admin listener.
type envelope struct {
	name, url, admin string
	opts             Options
}

func (e *envelope) Name() string            { return e.name }
func (e *envelope) DefaultURL() string      { return e.url }
func (e *envelope) DefaultAdminURL() string { return e.admin }

func (e *envelope) HandshakeHeader() http.Header {
	if e.opts.Token == "" {
		return nil
	}
	return http.Header{"Authorization": {"Bearer " + e.opts.Token}}
}

// AppendHello: the gateway needs no hello and sends nothing unasked.
func (e *envelope) AppendHello(dst []byte) ([]byte, bool) { return dst, true }

func (e *envelope) AppendSubscribe(dst []byte, channel string, id int64) []byte {
	dst = append(dst, `{"type":"subscribe","channel":`...)
	dst = appendString(dst, channel)
	dst = append(dst, `,"id":`...)
	dst = strconv.AppendInt(dst, id, 10)
	return append(dst, '}')
}

// AppendSubscribeRecover appends shardgate's subscribe that asks to
// recover what was missed after offset in epoch (SPEC "History and
// recovery"):
// {"type":"subscribe","channel":"news","id":1,"recover":{"epoch":"e","offset":7}}.
func AppendSubscribeRecover(dst []byte, channel string, id int64, epoch string, offset uint64) []byte {
	dst = append(dst, `{"type":"subscribe","channel":`...)
	dst = appendString(dst, channel)
	dst = append(dst, `,"id":`...)
	dst = strconv.AppendInt(dst, id, 10)
	dst = append(dst, `,"recover":{"epoch":`...)
	dst = appendString(dst, epoch)
	dst = append(dst, `,"offset":`...)
	dst = strconv.AppendUint(dst, offset, 10)
	return append(dst, `}}`...)
}

func (e *envelope) AppendPublish(dst []byte, channel string, data []byte, id int64) []byte {
	dst = append(dst, `{"type":"publish","channel":`...)
	dst = appendString(dst, channel)
	dst = append(dst, `,"data":`...)
	dst = append(dst, data...)
	dst = append(dst, `,"id":`...)
	dst = strconv.AppendInt(dst, id, 10)
	return append(dst, '}')
}

func (e *envelope) Parse(msg []byte, evs []Event) ([]Event, error) {
	var (
		ev    Event
		typ   []byte
		field = func(key, value []byte) bool {
			switch string(key) {
			case "type":
				typ, _ = jsonscan.Unquote(value)
			case "channel":
				ev.Channel, _ = jsonscan.Unquote(value)
			case "data":
				ev.Data = value
			case "id":
				ev.ID, _ = jsonscan.Int(value)
			case "offset":
				if n, err := strconv.ParseUint(string(value), 10, 64); err == nil {
					ev.Offset, ev.HasOffset = n, true
				}
			case "epoch":
				ev.Epoch, _ = jsonscan.Unquote(value)
			case "recovered":
				ev.Recovered = value
			case "code":
				code, _ := jsonscan.Unquote(value)
				ev.Code = string(code)
			}
			return true
		}
	)
	if err := jsonscan.Fields(msg, field); err != nil {
		return evs, fmt.Errorf("target %s: %w", e.name, err)
	}
	switch string(typ) {
	case "message":
		ev.Kind = KindMessage
	case "subscribed":
		ev.Kind = KindSubscribed
	case "published":
		ev.Kind = KindPublished
	case "error":
		ev.Kind = KindError
	default:
		ev.Kind = KindIgnore
	}
	return append(evs, ev), nil
}

func (e *envelope) NewPublishRequest(adminURL, channel string, data []byte) (*http.Request, error) {
	req, err := newPublishRequest(adminURL, channel, data)
	if err != nil {
		return nil, err
	}
	if e.opts.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+e.opts.APIKey)
	}
	return req, nil
}

func (e *envelope) MetricsURL(adminURL string) string {
	return strings.TrimSuffix(adminURL, "/") + "/metrics"
}

// appendString appends s as a JSON string. Channel names are plain ASCII;
// the escapes are for anything else a user passes.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = fmt.Appendf(dst, `\u%04x`, c)
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// newPublishRequest builds POST <admin>/api/publish with the body
// {"channel":...,"data":...} that shardgate, gorillahub and Centrifugo's
// HTTP API all take; adapters add their credentials.
func newPublishRequest(adminURL, channel string, data []byte) (*http.Request, error) {
	body := make([]byte, 0, len(channel)+len(data)+24)
	body = append(body, `{"channel":`...)
	body = appendString(body, channel)
	body = append(body, `,"data":`...)
	body = append(body, data...)
	body = append(body, '}')
	req, err := http.NewRequest(http.MethodPost, strings.TrimSuffix(adminURL, "/")+"/api/publish", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return req, nil
}
