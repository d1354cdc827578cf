package pmce

import (
	"bytes"
	"encoding/binary"
	"math"
	"strconv"
	"strings"
)

// ExtensionName is the token a client offers in Sec-WebSocket-Extensions.
const ExtensionName = "permessage-deflate"

// Params is a negotiated permessage-deflate agreement, in one byte so that
// a connection carries it in its spare bits. The zero value means the
// extension is not in use.
//
// The low four bits are the server's LZ77 window in bits, 8 to 15: what
// the client's server_max_window_bits allowed, 15 when it said nothing.
// echoWindow records that the client named server_max_window_bits, which
// the response must then repeat (RFC 7692 §7.1.2.1).
type Params uint8

const (
	windowMask = 0x0f
	echoWindow = 0x10

	minWindowBits = 8
	maxWindowBits = 15
)

// On reports whether the extension is in use.
func (p Params) On() bool { return p != 0 }

// WindowBits returns the server's window in bits (8 to 15), or 0 when the
// extension is not in use.
func (p Params) WindowBits() int { return int(p & windowMask) }

// Fits reports whether a message of n payload bytes may be sent
// compressed to this connection.
//
// Go's deflate cannot shrink its window below 32 KiB, but it does not
// need to: with server_no_context_takeover every message is compressed on
// its own, so no back-reference reaches further back than the message's
// own start, and a message of at most 2^bits bytes never references
// further back than the window the client allowed. Longer messages go
// uncompressed (RSV1 clear), which is always allowed on a deflate
// connection.
func (p Params) Fits(n int) bool {
	bits := p.WindowBits()
	return bits == maxWindowBits || (bits >= minWindowBits && n <= 1<<bits)
}

// FitsFrame is Fits for the message a plain server frame carries (its
// header declares the length). With the whole window, the common case, it
// reads nothing.
func (p Params) FitsFrame(frame []byte) bool {
	if p.WindowBits() == maxWindowBits {
		return true
	}
	return p.Fits(payloadLen(frame))
}

// payloadLen returns the payload length a server frame's header declares.
func payloadLen(frame []byte) int {
	switch n := int(frame[1] & 0x7f); n {
	case 126:
		return int(binary.BigEndian.Uint16(frame[2:]))
	case 127:
		return int(min(binary.BigEndian.Uint64(frame[2:]), math.MaxInt32))
	default:
		return n
	}
}

// Header returns the Sec-WebSocket-Extensions response line (with its
// CRLF) that accepts p, or "" when p is not in use. The strings are built
// once: an upgrade allocates nothing for them.
func (p Params) Header() string {
	if !p.On() || int(p) >= len(responseHeaders) {
		return ""
	}
	return responseHeaders[p]
}

// responseHeaders holds the answer to every Params value that Accept can
// return, indexed by it.
var responseHeaders = func() (h [echoWindow | maxWindowBits + 1]string) {
	const base = "Sec-WebSocket-Extensions: " + ExtensionName + "; server_no_context_takeover; client_no_context_takeover"
	for bits := minWindowBits; bits <= maxWindowBits; bits++ {
		h[bits] = base + "\r\n"
		h[echoWindow|bits] = base + "; server_max_window_bits=" + strconv.Itoa(bits) + "\r\n"
	}
	return h
}()

// Accept goes through the offers of one Sec-WebSocket-Extensions header
// value, in order, and returns the agreement for the first
// permessage-deflate offer the gateway accepts. ok is false when there is
// none: the upgrade then goes ahead without the extension (an offer is
// declined, never refused). A request may carry the header more than
// once; its values are read in order, and the first that yields an
// agreement wins.
//
// An offer is accepted when each of its parameters is one RFC 7692
// defines, at most once, with a valid value:
//   - server_no_context_takeover and client_no_context_takeover, without a
//     value: the answer carries both whether offered or not;
//   - server_max_window_bits=N, N from 8 to 15 without leading zeros: the
//     answer repeats N, and messages longer than 2^N go uncompressed (see
//     Params.Fits);
//   - client_max_window_bits, with or without such a value: the inflater
//     has a 32 KiB window anyway, so the answer leaves it out (the client
//     may then use any window up to 15 bits, RFC 7692 §7.1.2.2).
//
// Anything else (an unknown parameter, a duplicate, a value where none
// belongs or a bad one, broken syntax) declines that offer. Values may be
// tokens or quoted strings (RFC 7692 §7.1).
func Accept(header []byte) (p Params, ok bool) {
	rest := header
	for len(rest) > 0 {
		var elem []byte
		var whole bool
		elem, rest, whole = nextElement(rest)
		if !whole {
			// An unterminated quoted string: nothing after it can be
			// told apart from its contents.
			return 0, false
		}
		if p, ok := acceptOffer(elem); ok {
			return p, true
		}
	}
	return 0, false
}

// nextElement splits off the first element of a comma-separated list,
// honouring quoted strings. whole is false when a quoted string runs to
// the end of b.
func nextElement(b []byte) (elem, rest []byte, whole bool) {
	i, ok := scanTo(b, ',')
	if !ok {
		return b, nil, false
	}
	if i == len(b) {
		return b, nil, true
	}
	return b[:i], b[i+1:], true
}

// scanTo returns the index of the first sep outside a quoted string, or
// len(b) when there is none; ok is false for an unterminated quoted
// string.
func scanTo(b []byte, sep byte) (int, bool) {
	quoted := false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case quoted && c == '\\':
			i++ // the escaped byte, whatever it is
		case c == '"':
			quoted = !quoted
		case !quoted && c == sep:
			return i, true
		}
	}
	return len(b), !quoted
}

// offer collects the parameters of one permessage-deflate offer.
type offer struct {
	serverNoTakeover bool
	clientNoTakeover bool
	serverWindow     int // 0: not offered
	clientWindow     bool
}

// acceptOffer returns the agreement for one list element, if it is a
// permessage-deflate offer the gateway accepts.
func acceptOffer(elem []byte) (Params, bool) {
	var o offer
	name, params, hasParams := bytes.Cut(elem, []byte(";"))
	name = trimOWS(name)
	if !bytes.EqualFold(name, []byte(ExtensionName)) {
		return 0, false
	}
	for hasParams {
		i, _ := scanTo(params, ';') // quotes are balanced: nextElement checked
		if !o.add(params[:i]) {
			return 0, false
		}
		hasParams = i < len(params)
		if hasParams {
			params = params[i+1:]
		}
	}
	p := Params(maxWindowBits)
	if o.serverWindow != 0 {
		p = Params(o.serverWindow) | echoWindow
	}
	return p, true
}

// add records one parameter ("name" or "name=value", with optional white
// space around both) and reports whether the offer is still acceptable.
func (o *offer) add(param []byte) bool {
	key, value, hasValue := bytes.Cut(param, []byte("="))
	key = trimOWS(key)
	if hasValue {
		var ok bool
		if value, ok = paramValue(trimOWS(value)); !ok {
			return false
		}
	}
	switch {
	case bytes.EqualFold(key, []byte("server_no_context_takeover")):
		if o.serverNoTakeover || hasValue {
			return false
		}
		o.serverNoTakeover = true
	case bytes.EqualFold(key, []byte("client_no_context_takeover")):
		if o.clientNoTakeover || hasValue {
			return false
		}
		o.clientNoTakeover = true
	case bytes.EqualFold(key, []byte("server_max_window_bits")):
		bits := windowBits(value)
		if o.serverWindow != 0 || !hasValue || bits == 0 {
			return false
		}
		o.serverWindow = bits
	case bytes.EqualFold(key, []byte("client_max_window_bits")):
		if o.clientWindow || (hasValue && windowBits(value) == 0) {
			return false
		}
		o.clientWindow = true
	default:
		// Unknown parameters, and an empty one (";;" or a trailing
		// ";"), which the grammar does not allow.
		return false
	}
	return true
}

// paramValue returns a parameter's value: a token as it is, or a quoted
// string unquoted. ok is false for anything else.
func paramValue(v []byte) ([]byte, bool) {
	if len(v) == 0 {
		return nil, false
	}
	if v[0] != '"' {
		return v, isToken(v)
	}
	if len(v) < 2 || v[len(v)-1] != '"' {
		return nil, false
	}
	inner := v[1 : len(v)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		if bytes.IndexByte(inner, '"') >= 0 {
			return nil, false
		}
		return inner, true
	}
	out := make([]byte, 0, len(inner))
	for i := 0; i < len(inner); i++ {
		switch c := inner[i]; {
		case c == '\\':
			if i+1 == len(inner) {
				return nil, false
			}
			i++
			out = append(out, inner[i])
		case c == '"':
			return nil, false
		default:
			out = append(out, c)
		}
	}
	return out, true
}

// windowBits parses a window size, 8 to 15 written without leading
// zeros, or returns 0.
func windowBits(v []byte) int {
	switch {
	case len(v) == 1 && v[0] >= '8' && v[0] <= '9':
		return int(v[0] - '0')
	case len(v) == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5':
		return 10 + int(v[1]-'0')
	}
	return 0
}

// trimOWS removes optional white space (RFC 7230: spaces and tabs).
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// separators are the bytes RFC 7230 keeps out of tokens, besides
// controls, space and DEL.
const separators = `()<>@,;:\"/[]?={}`

// isToken reports whether b is a non-empty RFC 7230 token.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(separators, c) >= 0 {
			return false
		}
	}
	return true
}
