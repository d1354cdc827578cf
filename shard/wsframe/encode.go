package wsframe

import (
	"encoding/binary"
	"math"
	"slices"

	"github.com/gobwas/ws"
)

// Server frames are always final and never masked (RFC 6455 section 5.1), so
// the encoders take no Fin, Rsv or mask arguments. They append to a
// caller-owned slice so that a broadcast is encoded once and the same bytes
// are queued to every connection; with enough capacity in dst they do not
// allocate.

// HeaderLen returns the size in bytes of a server frame header for a payload
// of payloadLen bytes: 2, 4 or 10. payloadLen must not be negative.
func HeaderLen(payloadLen int) int {
	switch {
	case payloadLen <= maxLen7:
		return 2
	case payloadLen <= math.MaxUint16:
		return 4
	default:
		return 10
	}
}

// AppendHeader appends the header of a final, unmasked frame with opcode op
// and a payload of payloadLen bytes to dst, using the shortest length
// encoding, and returns the extended slice. The caller appends the payload
// itself; this lets it write a header in front of a payload it builds in
// place. payloadLen must not be negative.
func AppendHeader(dst []byte, op ws.OpCode, payloadLen int) []byte {
	return appendHeader(dst, finBit|byte(op)&opBits, payloadLen)
}

// AppendCompressedHeader is AppendHeader for a message compressed with
// permessage-deflate (RFC 7692 §6): the header has RSV1 set, which marks
// the payload that follows as the message's deflated bytes. Only data
// opcodes may carry it.
func AppendCompressedHeader(dst []byte, op ws.OpCode, payloadLen int) []byte {
	return appendHeader(dst, finBit|rsv1Bit|byte(op)&opBits, payloadLen)
}

// appendHeader appends a header whose first byte is b0.
func appendHeader(dst []byte, b0 byte, payloadLen int) []byte {
	switch {
	case payloadLen <= maxLen7:
		return append(dst, b0, byte(payloadLen))
	case payloadLen <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, b0, lenCode16), uint16(payloadLen))
	default:
		return binary.BigEndian.AppendUint64(append(dst, b0, lenCode64), uint64(payloadLen))
	}
}

// AppendFrame appends a final, unmasked frame with opcode op carrying payload
// to dst and returns the extended slice. payload is copied; the caller may
// reuse it at once. dst grows at most once, to the frame's full size.
func AppendFrame(dst []byte, op ws.OpCode, payload []byte) []byte {
	dst = slices.Grow(dst, HeaderLen(len(payload))+len(payload))
	return append(AppendHeader(dst, op, len(payload)), payload...)
}
