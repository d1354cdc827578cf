package shardgate

import (
	"encoding/json"
	"fmt"
)

// The wire protocol (top-level README, "Client protocol"): text frames,
// one JSON object each. Every request the client sends carries a numeric
// "id", so that replies, which the gateway may send out of order in a
// cluster, are matched by it; errors carry no channel, only the id.

// request is a frame the client sends.
type request struct {
	Type    string          `json:"type"`
	Channel string          `json:"channel,omitempty"`
	ID      uint64          `json:"id"`
	Data    json.RawMessage `json:"data,omitempty"` // publish: never empty ("null" at least)
	Token   string          `json:"token,omitempty"`
	Recover *position       `json:"recover,omitempty"`
}

// position is a place in a channel's history: the gateway's
// "recover":{"epoch":…,"offset":…}.
type position struct {
	Epoch  string `json:"epoch"`
	Offset uint64 `json:"offset"`
}

// reply is any frame the gateway sends; which members are set depends on
// Type.
type reply struct {
	Type      string          `json:"type"`
	Channel   string          `json:"channel"`
	ID        uint64          `json:"id"` // 0: none (the client's ids start at 1)
	Data      json.RawMessage `json:"data"`
	Offset    *uint64         `json:"offset"` // message, subscribed: with history
	Epoch     string          `json:"epoch"`
	Recovered *bool           `json:"recovered"` // subscribed: the subscribe asked to recover
	Expires   int64           `json:"expires"`   // refreshed
	Reason    string          `json:"reason"`    // unsubscribed by the gateway
	Code      string          `json:"code"`      // error
	Message   string          `json:"message"`   // error
}

// parseReply decodes one frame. An id that is not one of ours (a string,
// which this client never sends) is an error, like any malformed frame.
func parseReply(b []byte) (reply, error) {
	var r reply
	if err := json.Unmarshal(b, &r); err != nil {
		return reply{}, fmt.Errorf("shardgate: undecodable frame %.100q: %w", b, err)
	}
	if r.Type == "" {
		return reply{}, fmt.Errorf("shardgate: frame without a type: %.100q", b)
	}
	return r, nil
}

// encode encodes a request without data: strings and numbers, which
// always encode (Publish encodes its own frame, whose data may not).
func encode(r request) []byte {
	b, _ := json.Marshal(r)
	return b
}

// maxChannelLen bounds a channel name (SPEC "Client protocol").
const maxChannelLen = 128

// validChannel reports whether name is 1–128 bytes of
// A-Z a-z 0-9 . _ : @ -, the gateway's rule, so that a bad name fails
// in the caller's hands rather than in a reply.
func validChannel(name string) bool {
	if len(name) == 0 || len(name) > maxChannelLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '_', c == ':', c == '@', c == '-':
		default:
			return false
		}
	}
	return true
}

func errBadChannel(name string) *Error {
	return &Error{Code: CodeBadChannel, Message: fmt.Sprintf("invalid channel name %.140q", name)}
}
