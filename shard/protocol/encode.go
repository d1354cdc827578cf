package protocol

import (
	"encoding/json"
	"slices"
	"strconv"
	"unicode/utf8"
)

// The encoders below append to a caller-owned buffer and allocate only when
// that buffer has to grow, so a shard can encode into a pooled buffer and a
// broadcast is encoded once for all its subscribers.
//
// Strings (channel names, error codes and messages) are JSON-escaped. Channel
// names that passed ValidChannel never need it and take a copy-only path; the
// escaping is there so that a caller's mistake yields a wrong name, never
// broken JSON. Raw values (ids, data) are copied verbatim and must be valid
// JSON in valid UTF-8 — what ParseRequest returns always is.

// AppendAck appends the reply to a successful request,
// {"type":"subscribed","channel":"news","id":1} (or "unsubscribed",
// "published"). The "id" member is left out when id is empty.
func AppendAck(dst []byte, t Type, channel string, id json.RawMessage) []byte {
	dst = append(dst, `{"type":"`...)
	dst = append(dst, t.ackName()...)
	dst = append(dst, `","channel":`...)
	dst = appendString(dst, channel)
	if len(id) > 0 {
		dst = append(dst, `,"id":`...)
		dst = append(dst, id...)
	}
	return append(dst, '}')
}

// ackName is the reply type that acknowledges a request of type t. An
// invalid t gets "ack" so the output stays well-formed.
func (t Type) ackName() string {
	switch t {
	case TypeSubscribe:
		return "subscribed"
	case TypeUnsubscribe:
		return "unsubscribed"
	case TypePublish:
		return "published"
	}
	return "ack"
}

// AppendSubscribed appends the reply to a subscribe on a channel with
// history: {"type":"subscribed","channel":"news","id":1,"epoch":"…","offset":7}
// with the channel's epoch and its latest offset when the subscription
// took effect, and, when the subscribe asked to recover, "recovered":
// true or false.
func AppendSubscribed(dst []byte, channel string, id json.RawMessage, epoch string, offset uint64, recover, recovered bool) []byte {
	dst = AppendAck(dst, TypeSubscribe, channel, id)
	dst = dst[:len(dst)-1] // reopen the object
	dst = append(dst, `,"epoch":`...)
	dst = appendString(dst, epoch)
	dst = append(dst, `,"offset":`...)
	dst = strconv.AppendUint(dst, offset, 10)
	if recover {
		dst = append(dst, `,"recovered":`...)
		dst = strconv.AppendBool(dst, recovered)
	}
	return append(dst, '}')
}

// AppendRefreshed appends the reply to a successful refresh,
// {"type":"refreshed","id":4,"expires":1767225600}: expires is the new
// token's "exp" in Unix seconds. The "expires" member is left out when
// expires is 0 (a token without "exp" never expires), and "id" when id is
// empty.
func AppendRefreshed(dst []byte, id json.RawMessage, expires int64) []byte {
	dst = append(dst, `{"type":"refreshed"`...)
	if len(id) > 0 {
		dst = append(dst, `,"id":`...)
		dst = append(dst, id...)
	}
	if expires != 0 {
		dst = append(dst, `,"expires":`...)
		dst = strconv.AppendInt(dst, expires, 10)
	}
	return append(dst, '}')
}

// ReasonForbidden is the "reason" of an unsubscribed message for a
// subscription that a refreshed token no longer allows.
const ReasonForbidden = "forbidden"

// AppendUnsubscribed appends the notice of a subscription the gateway
// ended on its own, {"type":"unsubscribed","channel":"news","reason":"forbidden"}:
// an "unsubscribed" with no "id" (nobody asked) and the reason why.
func AppendUnsubscribed(dst []byte, channel, reason string) []byte {
	dst = append(dst, `{"type":"unsubscribed","channel":`...)
	dst = appendString(dst, channel)
	dst = append(dst, `,"reason":`...)
	dst = appendString(dst, reason)
	return append(dst, '}')
}

// AppendError appends {"type":"error","id":3,"code":"…","message":"…"}. The
// "id" member is left out when id is empty. A nil e is encoded as an error
// with empty code and message rather than panicking on a reply path.
func AppendError(dst []byte, id json.RawMessage, e *Error) []byte {
	var code, msg string
	if e != nil {
		code, msg = e.Code, e.Message
	}
	dst = append(dst, `{"type":"error"`...)
	if len(id) > 0 {
		dst = append(dst, `,"id":`...)
		dst = append(dst, id...)
	}
	dst = append(dst, `,"code":`...)
	dst = appendString(dst, code)
	dst = append(dst, `,"message":`...)
	dst = appendString(dst, msg)
	return append(dst, '}')
}

const (
	messagePrefix  = `{"type":"message",`
	messageChannel = `"channel":`
	messageData    = `"data":`
)

// AppendMessage appends {"type":"message","channel":"news","data":<data>}
// with data verbatim. An empty channel means a message to every connection
// and leaves the "channel" member out; empty data is encoded as null. dst
// grows at most once, to exactly MessageLen more bytes.
func AppendMessage(dst []byte, channel string, data json.RawMessage) []byte {
	dst = slices.Grow(dst, MessageLen(channel, data))
	dst = append(dst, messagePrefix...)
	if channel != "" {
		dst = append(dst, messageChannel...)
		dst = appendString(dst, channel)
		dst = append(dst, ',')
	}
	dst = append(dst, messageData...)
	if len(data) == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, data...)
	}
	return append(dst, '}')
}

const messageOffset = `"offset":`

// AppendMessageAt appends a channel message with its offset,
// {"type":"message","channel":"news","offset":7,"data":<data>}: the
// offset is inside the frame so that a broadcast is still encoded once
// for every subscriber. The data is the object's last member: it starts
// at len(result)-len(data)-1 (len("null") for empty data), which history
// uses to serve the data without keeping a copy. dst grows at most once,
// to exactly MessageAtLen more bytes.
func AppendMessageAt(dst []byte, channel string, offset uint64, data json.RawMessage) []byte {
	dst = slices.Grow(dst, MessageAtLen(channel, offset, data))
	dst = append(dst, messagePrefix...)
	dst = append(dst, messageChannel...)
	dst = appendString(dst, channel)
	dst = append(dst, ',')
	dst = append(dst, messageOffset...)
	dst = strconv.AppendUint(dst, offset, 10)
	dst = append(dst, ',')
	dst = append(dst, messageData...)
	if len(data) == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, data...)
	}
	return append(dst, '}')
}

// MessageAtLen is the exact number of bytes AppendMessageAt appends.
func MessageAtLen(channel string, offset uint64, data json.RawMessage) int {
	n := MessageLen(channel, data) + len(messageOffset) + decimalLen(offset) + 1 // comma
	if channel == "" {
		n += len(messageChannel) + 2 + 1 // AppendMessageAt always writes the member
	}
	return n
}

func decimalLen(v uint64) int {
	n := 1
	for v >= 10 {
		v /= 10
		n++
	}
	return n
}

// MessageLen is the exact number of bytes AppendMessage appends for channel
// and data, so that a broadcast frame (header included) can be sized and
// allocated once.
func MessageLen(channel string, data json.RawMessage) int {
	n := len(messagePrefix) + len(messageData) + 1 // closing brace
	if channel != "" {
		n += len(messageChannel) + quotedLen(channel) + 1 // comma
	}
	if len(data) == 0 {
		n += len("null")
	} else {
		n += len(data)
	}
	return n
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Quotes, backslashes and control
// characters are escaped, and each byte of invalid UTF-8 becomes \ufffd (as
// encoding/json does) because the result goes out in a WebSocket text frame,
// which must be valid UTF-8. quotedLen must stay in step with it.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// quotedLen is len(appendString(nil, s)) without encoding.
func quotedLen(s string) int {
	n := 2
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c >= 0x20 && c != '"' && c != '\\':
				n++
			case c == '"', c == '\\', c == '\n', c == '\r', c == '\t':
				n += 2
			default:
				n += 6
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			n += len(`\ufffd`)
			i++
			continue
		}
		n += size
		i += size
	}
	return n
}
