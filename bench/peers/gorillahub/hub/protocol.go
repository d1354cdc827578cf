package hub

import (
	"encoding/json"
	"strconv"
)

// request is a client request (shardgate's client protocol).
type request struct {
	Type    string          `json:"type"`
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
	ID      json.RawMessage `json:"id"`
}

// encodeMessage builds the envelope of a published message, once per
// broadcast; without a channel it is a message to everyone.
func encodeMessage(channel string, data json.RawMessage) []byte {
	b := make([]byte, 0, len(data)+len(channel)+40)
	b = append(b, `{"type":"message"`...)
	if channel != "" {
		b = append(b, `,"channel":`...)
		b = strconv.AppendQuote(b, channel) // channel names are plain ASCII
	}
	b = append(b, `,"data":`...)
	b = append(b, data...)
	return append(b, '}')
}

func encodeReply(typ, channel string, id json.RawMessage) []byte {
	b := append([]byte(`{"type":`), strconv.Quote(typ)...)
	b = append(b, `,"channel":`...)
	b = strconv.AppendQuote(b, channel)
	b = appendID(b, id)
	return append(b, '}')
}

func encodeError(id json.RawMessage, code, message string) []byte {
	b := append([]byte(`{"type":"error"`), appendID(nil, id)...)
	b = append(b, `,"code":`...)
	b = strconv.AppendQuote(b, code)
	b = append(b, `,"message":`...)
	b = strconv.AppendQuote(b, message)
	return append(b, '}')
}

func appendID(b []byte, id json.RawMessage) []byte {
	if len(id) == 0 || string(id) == "null" {
		return b
	}
	return append(append(b, `,"id":`...), id...)
}

// validChannel: 1-128 bytes of A-Z a-z 0-9 . _ : @ -, as in shardgate.
func validChannel(s string) bool {
	if len(s) < 1 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.' || c == '_' || c == ':' || c == '@' || c == '-':
		default:
			return false
		}
	}
	return true
}
