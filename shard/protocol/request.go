package protocol

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// Type is what a client asks for. The zero value is no type at all, so a
// zero Request is never mistaken for a subscribe.
type Type uint8

// Request types, named after their "type" values.
const (
	TypeSubscribe Type = iota + 1
	TypeUnsubscribe
	TypePublish
	// TypeRefresh replaces the connection's token (SPEC "Sessions").
	TypeRefresh
)

// String returns the request's "type" value ("subscribe", …), or "" for a
// Type that is not one of the constants.
func (t Type) String() string {
	switch t {
	case TypeSubscribe:
		return "subscribe"
	case TypeUnsubscribe:
		return "unsubscribe"
	case TypePublish:
		return "publish"
	case TypeRefresh:
		return "refresh"
	}
	return ""
}

// Request is one parsed client request.
//
// Data and ID are sub-slices of the message given to ParseRequest, not
// copies: they stay valid only while that buffer is unchanged. A caller that
// reuses its read buffer must copy them (or encode its reply) first. Channel
// is a fresh string and may be kept.
type Request struct {
	Type Type
	// Channel is the requested channel name, a valid one (ValidChannel)
	// whenever ParseRequest succeeds, except for a refresh, which has none
	// ("").
	Channel string
	// Data is the raw JSON of "data" for a publish, whitespace-trimmed and
	// otherwise verbatim. It is nil when the field is absent (and for the
	// other types), and the 4 bytes "null" when the client sent null, so the
	// two stay distinguishable.
	Data json.RawMessage
	// ID is the raw JSON of "id" (a number or a string, quotes and escapes
	// included, big numbers unrounded) or nil when absent. Echoing it
	// verbatim is always valid JSON.
	ID json.RawMessage
	// Token is the decoded "token" of a refresh, a fresh string; "" for
	// the other types. It is not checked here beyond being a JSON string:
	// whether it is a valid token is the verifier's business.
	Token string
	// Recover is a subscribe's "recover" member: where the client's
	// history of the channel stopped. Nil when absent (and for the other
	// types).
	Recover *Recover
}

// Recover is the position a recovering subscribe names,
// "recover":{"epoch":"...","offset":N}.
type Recover struct {
	Epoch  string // a fresh string
	Offset uint64
}

// MaxEpochLen bounds a recover's epoch: the gateway's epochs are short
// hex strings, so a longer one cannot match and is refused outright.
const MaxEpochLen = 64

// Member names ParseRequest knows; every other member is ignored.
const (
	keyUnknown = iota
	keyType
	keyChannel
	keyData
	keyID
	keyToken
	keyRecover
)

// ParseRequest parses one text message.
//
// On failure it returns the *Error to send and, in the Request, the ID when
// it could still be recovered, so that the error reply can echo it. The rules,
// checked in this order:
//   - not valid UTF-8, not one JSON value, trailing bytes after it, or not an
//     object: bad_json;
//   - "id" present but not a number or a string: bad_request (no ID echoed);
//   - a known member ("type", "channel", "data", "id") given twice:
//     bad_request, because two parsers along the way could each pick a
//     different copy;
//   - "type" missing, not a string, or unknown: bad_request;
//   - a refresh: "token" missing or not a string: bad_request; "channel"
//     and "data" are ignored;
//   - "channel" missing or not a string: bad_request;
//   - "channel" not a valid name: bad_channel;
//   - a publish without "data": bad_request ("data" may be any JSON,
//     null included);
//   - a subscribe whose "recover" is not an object holding a string
//     "epoch" (at most MaxEpochLen bytes) and an integer "offset" from 0
//     to 2^64-1, or names either twice: bad_request. Other types ignore
//     "recover".
//
// Member names are matched exactly (after JSON unescaping): "Type" is not
// "type". Unknown members are ignored ("token" is known to every type, so
// two of them are refused even on a subscribe).
//
// The message is validated with encoding/json first; the members are then
// found by a small scanner that relies on that validation, which keeps the
// common request down to one allocation (the channel name).
func ParseRequest(msg []byte) (Request, *Error) {
	var req Request
	if !utf8.Valid(msg) {
		return req, &Error{CodeBadJSON, "message is not valid UTF-8"}
	}
	if !json.Valid(msg) {
		return req, &Error{CodeBadJSON, "message is not a single JSON value"}
	}
	start := skipSpace(msg, 0)
	if start >= len(msg) || msg[start] != '{' {
		return req, &Error{CodeBadJSON, "message is not a JSON object"}
	}

	var (
		vals [keyRecover + 1][]byte
		dup  = keyUnknown
	)
	it := members{b: msg, i: start + 1}
	for {
		key, val, ok := it.next()
		if !ok {
			break
		}
		k := keyOf(key)
		if k == keyUnknown {
			continue
		}
		if vals[k] != nil {
			if dup == keyUnknown {
				dup = k
			}
			continue
		}
		vals[k] = val
	}

	if id := vals[keyID]; id != nil {
		if !isString(id) && !isNumber(id) {
			return req, &Error{CodeBadRequest, `"id" must be a number or a string`}
		}
		if dup != keyID {
			req.ID = id
		}
	}
	switch dup {
	case keyType:
		return req, &Error{CodeBadRequest, `duplicate "type" member`}
	case keyChannel:
		return req, &Error{CodeBadRequest, `duplicate "channel" member`}
	case keyData:
		return req, &Error{CodeBadRequest, `duplicate "data" member`}
	case keyID:
		return req, &Error{CodeBadRequest, `duplicate "id" member`}
	case keyToken:
		return req, &Error{CodeBadRequest, `duplicate "token" member`}
	case keyRecover:
		return req, &Error{CodeBadRequest, `duplicate "recover" member`}
	}

	typ := vals[keyType]
	switch {
	case typ == nil:
		return req, &Error{CodeBadRequest, `missing "type"`}
	case stringIs(typ, "subscribe"):
		req.Type = TypeSubscribe
	case stringIs(typ, "unsubscribe"):
		req.Type = TypeUnsubscribe
	case stringIs(typ, "publish"):
		req.Type = TypePublish
	case stringIs(typ, "refresh"):
		req.Type = TypeRefresh
		return parseRefresh(req, vals[keyToken])
	default:
		return req, &Error{CodeBadRequest, `unknown "type"`}
	}

	ch := vals[keyChannel]
	if ch == nil {
		return req, &Error{CodeBadRequest, `missing "channel"`}
	}
	if !isString(ch) {
		return req, &Error{CodeBadRequest, `"channel" must be a string`}
	}
	name, ok := channelString(ch)
	if !ok {
		return req, &Error{CodeBadChannel, "channel names are 1-128 bytes of A-Z a-z 0-9 . _ : @ -"}
	}
	req.Channel = name

	if req.Type == TypePublish {
		if vals[keyData] == nil {
			return req, &Error{CodeBadRequest, `missing "data"`}
		}
		req.Data = vals[keyData]
	}
	if req.Type == TypeSubscribe && vals[keyRecover] != nil {
		rec, perr := parseRecover(vals[keyRecover])
		if perr != nil {
			return req, perr
		}
		req.Recover = rec
	}
	return req, nil
}

var errBadRecover = &Error{CodeBadRequest, `"recover" must be {"epoch":"<string>","offset":<integer from 0>}`}

// parseRecover reads {"epoch":"...","offset":N}. raw is a valid JSON value
// (the whole message passed json.Valid). Unknown members are ignored,
// like the request's own.
func parseRecover(raw []byte) (*Recover, *Error) {
	if len(raw) == 0 || raw[0] != '{' {
		return nil, errBadRecover
	}
	var epoch, offset []byte
	it := members{b: raw, i: 1}
	for {
		key, val, ok := it.next()
		if !ok {
			break
		}
		var slot *[]byte
		switch {
		case stringIs(key, "epoch"):
			slot = &epoch
		case stringIs(key, "offset"):
			slot = &offset
		default:
			continue
		}
		if *slot != nil {
			return nil, errBadRecover // two parsers could read different copies
		}
		*slot = val
	}
	if !isString(epoch) || offset == nil {
		return nil, errBadRecover
	}
	rec := &Recover{}
	body := epoch[1 : len(epoch)-1]
	if !hasBackslash(body) {
		rec.Epoch = string(body)
	} else if json.Unmarshal(epoch, &rec.Epoch) != nil {
		return nil, errBadRecover
	}
	if len(rec.Epoch) > MaxEpochLen {
		return nil, errBadRecover
	}
	// Digits only: no sign, fraction or exponent, and within uint64.
	for _, c := range offset {
		if c < '0' || c > '9' {
			return nil, errBadRecover
		}
	}
	n, err := strconv.ParseUint(string(offset), 10, 64)
	if err != nil {
		return nil, errBadRecover
	}
	rec.Offset = n
	return rec, nil
}

// parseRefresh finishes a refresh request: it carries a token, not a
// channel.
func parseRefresh(req Request, tok []byte) (Request, *Error) {
	if tok == nil {
		return req, &Error{CodeBadRequest, `missing "token"`}
	}
	if !isString(tok) {
		return req, &Error{CodeBadRequest, `"token" must be a string`}
	}
	body := tok[1 : len(tok)-1]
	if !hasBackslash(body) {
		req.Token = string(body) // a real JWT: base64url and dots, never escaped
		return req, nil
	}
	if json.Unmarshal(tok, &req.Token) != nil {
		return req, &Error{CodeBadRequest, `"token" must be a string`}
	}
	return req, nil
}

// keyOf maps a member name (raw JSON string, quotes included) to a key.
func keyOf(raw []byte) int {
	switch {
	case stringIs(raw, "type"):
		return keyType
	case stringIs(raw, "channel"):
		return keyChannel
	case stringIs(raw, "data"):
		return keyData
	case stringIs(raw, "id"):
		return keyID
	case stringIs(raw, "token"):
		return keyToken
	case stringIs(raw, "recover"):
		return keyRecover
	}
	return keyUnknown
}

// channelString decodes the JSON string raw (quotes included) and returns it
// when it is a valid channel name. Unescaped names — all real ones — are
// checked before the string is made, so an invalid name costs no allocation.
func channelString(raw []byte) (string, bool) {
	body := raw[1 : len(raw)-1]
	if !hasBackslash(body) {
		if !validName(body) {
			return "", false
		}
		return string(body), true
	}
	// Every escape decodes to at least one byte per 6 input bytes, so a body
	// this long cannot decode to a valid name; don't bother decoding it.
	if len(body) > 6*MaxChannelLen {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil || !validName(s) {
		return "", false
	}
	return s, true
}

// stringIs reports whether the JSON string raw (quotes included) decodes to
// lit. The common unescaped case compares in place without allocating.
func stringIs(raw []byte, lit string) bool {
	if !isString(raw) {
		return false
	}
	body := raw[1 : len(raw)-1]
	if !hasBackslash(body) {
		return string(body) == lit
	}
	if len(body) > 6*len(lit) {
		return false
	}
	var s string
	return json.Unmarshal(raw, &s) == nil && s == lit
}

func isString(raw []byte) bool {
	return len(raw) >= 2 && raw[0] == '"'
}

// isNumber reports whether raw, a valid JSON value, is a number: only
// numbers start with '-' or a digit.
func isNumber(raw []byte) bool {
	return len(raw) > 0 && (raw[0] == '-' || '0' <= raw[0] && raw[0] <= '9')
}

func hasBackslash(b []byte) bool {
	for _, c := range b {
		if c == '\\' {
			return true
		}
	}
	return false
}
