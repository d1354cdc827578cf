package wsframe

import (
	"encoding/binary"
	"strconv"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// CloseError is a protocol violation by the peer: Code and Reason are what
// the server must send in its close frame (see AppendClose) before it drops
// the connection.
type CloseError struct {
	Code   ws.StatusCode
	Reason string
}

// Error implements error.
func (e *CloseError) Error() string {
	return "wsframe: " + strconv.Itoa(int(e.Code)) + " " + e.Reason
}

// closeError returns a new *CloseError. A fresh value per failure keeps
// package state immutable; failures end a connection, so the allocation is
// off the hot path.
func closeError(code ws.StatusCode, reason string) error {
	return &CloseError{Code: code, Reason: reason}
}

// maxCloseReason is the longest reason that fits a close frame: a control
// payload is at most 125 bytes, two of them the status code.
const maxCloseReason = ws.MaxControlFramePayloadSize - 2

// AppendClose appends a close frame carrying code and reason to dst and
// returns the extended slice.
//
// A reason longer than 123 bytes is cut at the last UTF-8 rune boundary that
// fits, so the payload stays within the 125-byte control frame limit and
// stays valid UTF-8. StatusNoStatusRcvd (1005) must never appear on the wire:
// it stands for "no status", so it is encoded as an empty close frame and the
// reason is dropped. AppendClose does not check that code is otherwise
// allowed on the wire; that is the caller's contract.
func AppendClose(dst []byte, code ws.StatusCode, reason string) []byte {
	if code == ws.StatusNoStatusRcvd {
		return AppendHeader(dst, ws.OpClose, 0)
	}
	reason = truncateUTF8(reason, maxCloseReason)
	dst = AppendHeader(dst, ws.OpClose, 2+len(reason))
	dst = binary.BigEndian.AppendUint16(dst, uint16(code))
	return append(dst, reason...)
}

// truncateUTF8 returns the longest prefix of s of at most n bytes that does
// not end inside a multi-byte rune.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// s[n] is the first byte cut off; if it continues a rune, the rune
	// started before n and must go as well.
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// ParseClose splits a close frame payload, as delivered by Decode, into its
// status code and reason.
//
// An empty payload means the peer sent no status: the code is then
// StatusNoStatusRcvd (1005), as RFC 6455 section 7.1.5 prescribes, and the
// reason is nil. Decode never delivers a 1-byte close payload; ParseClose
// treats one like an empty payload. reason aliases payload and is valid as
// long as payload is (for Decode, until the callback returns).
func ParseClose(payload []byte) (code ws.StatusCode, reason []byte) {
	if len(payload) < 2 {
		return ws.StatusNoStatusRcvd, nil
	}
	return ws.StatusCode(binary.BigEndian.Uint16(payload)), payload[2:]
}

// checkClose validates a received close payload: it is empty, or a status
// code allowed on the wire followed by a UTF-8 reason.
func checkClose(payload []byte) error {
	switch {
	case len(payload) == 0:
		return nil
	case len(payload) == 1:
		return closeError(ws.StatusProtocolError, "close payload of 1 byte")
	}
	code, reason := ParseClose(payload)
	if !validCloseCode(code) {
		return closeError(ws.StatusProtocolError, "invalid close code")
	}
	if !utf8.Valid(reason) {
		return closeError(ws.StatusInvalidFramePayloadData, "invalid UTF-8 in close reason")
	}
	return nil
}

// validCloseCode reports whether a peer may send code in a close frame.
//
// It follows ws.CheckCloseFrameData, which is not called directly because it
// takes the reason as a string (a copy of the payload): codes below 1000, the
// undefined codes of the protocol range 1000-2999 (1004, 1012-2999) and the
// codes reserved for local use (1005, 1006, 1015) are rejected, and 3000-4999
// are accepted. Unlike ws.CheckCloseFrameData it also rejects 5000 and
// above: RFC 6455 section 7.4.2 defines no range there, and the Autobahn
// suite (case 7.9.x) expects a protocol error for them.
func validCloseCode(code ws.StatusCode) bool {
	switch {
	case code.IsProtocolSpec():
		return code.IsProtocolDefined() && !code.IsProtocolReserved()
	case code.IsApplicationSpec(), code.IsPrivateSpec():
		return true
	default:
		return false
	}
}
