package client

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// OpCode is a WebSocket frame opcode (RFC 6455 section 5.2).
type OpCode byte

// Opcodes a client sees or sends.
const (
	OpContinuation OpCode = 0x0
	OpText         OpCode = 0x1
	OpBinary       OpCode = 0x2
	OpClose        OpCode = 0x8
	OpPing         OpCode = 0x9
	OpPong         OpCode = 0xa
)

func (op OpCode) isControl() bool { return op&0x8 != 0 }

// Close status codes (RFC 6455 section 7.4.1) this client sends.
const (
	StatusNormalClosure uint16 = 1000
	StatusProtocolError uint16 = 1002
	StatusNoStatus      uint16 = 1005 // reported for a close frame without a code; never sent
)

const (
	finBit    = 0x80
	rsv1Bit   = 0x40 // "compressed", with permessage-deflate (RFC 7692)
	rsvBits   = 0x70
	opBits    = 0x0f
	maskBit   = 0x80
	lenBits   = 0x7f
	maxLen7   = 125
	lenCode16 = 126
	lenCode64 = 127
)

// ErrProtocol is wrapped by every violation of RFC 6455 by the server.
var ErrProtocol = errors.New("client: server broke the WebSocket protocol")

// frameHeader is a parsed server frame header.
type frameHeader struct {
	fin    bool
	op     OpCode
	rsv1   bool // the message is compressed (permessage-deflate)
	length int  // payload bytes
}

// parseFrameHeader parses the server frame header at the start of b. It
// returns the header and its size in bytes, or n == 0 when b does not hold a
// whole header yet. maxPayload bounds the declared payload length, so a
// server cannot make the client buffer an arbitrary amount. A server frame
// must not be masked and must not set RSV bits, except RSV1 on the first
// frame of a data message when deflate (permessage-deflate negotiated) is
// true; control frames are final and at most 125 bytes.
func parseFrameHeader(b []byte, maxPayload int, deflate bool) (h frameHeader, n int, err error) {
	if len(b) < 2 {
		return h, 0, nil
	}
	b0, b1 := b[0], b[1]
	h.fin = b0&finBit != 0
	h.op = OpCode(b0 & opBits)
	rsv := b0 & rsvBits
	if deflate && rsv == rsv1Bit && h.op != OpContinuation && !h.op.isControl() {
		h.rsv1, rsv = true, 0
	}
	switch {
	case rsv != 0:
		return h, 0, fmt.Errorf("%w: RSV bits 0x%x set", ErrProtocol, rsv)
	case b1&maskBit != 0:
		return h, 0, fmt.Errorf("%w: masked server frame", ErrProtocol)
	}
	switch h.op {
	case OpContinuation, OpText, OpBinary, OpClose, OpPing, OpPong:
	default:
		return h, 0, fmt.Errorf("%w: reserved opcode 0x%x", ErrProtocol, byte(h.op))
	}
	n = 2
	switch l := b1 & lenBits; l {
	case lenCode16:
		if len(b) < 4 {
			return h, 0, nil
		}
		h.length = int(binary.BigEndian.Uint16(b[2:4]))
		n = 4
	case lenCode64:
		if len(b) < 10 {
			return h, 0, nil
		}
		l64 := binary.BigEndian.Uint64(b[2:10])
		if l64 > uint64(maxPayload) {
			return h, 0, fmt.Errorf("%w: frame of %d bytes over the %d-byte limit", ErrProtocol, l64, maxPayload)
		}
		h.length = int(l64)
		n = 10
	default:
		h.length = int(l)
	}
	if h.op.isControl() && (!h.fin || h.length > maxLen7) {
		return h, 0, fmt.Errorf("%w: fragmented or oversized control frame", ErrProtocol)
	}
	if h.length > maxPayload {
		return h, 0, fmt.Errorf("%w: frame of %d bytes over the %d-byte limit", ErrProtocol, h.length, maxPayload)
	}
	return h, n, nil
}

// appendMaskedFrame appends a final client frame with opcode op and payload,
// masked with key as RFC 6455 requires of clients, to dst. payload is not
// modified.
func appendMaskedFrame(dst []byte, op OpCode, payload []byte, key uint32) []byte {
	return AppendFrame(dst, finBit|byte(op), payload, true, key)
}

// mask XORs p with the repeating key (it also unmasks).
func mask(p []byte, k [4]byte) {
	k8 := uint64(binary.LittleEndian.Uint32(k[:]))
	k8 |= k8 << 32
	i := 0
	for ; i+8 <= len(p); i += 8 {
		binary.LittleEndian.PutUint64(p[i:], binary.LittleEndian.Uint64(p[i:])^k8)
	}
	for ; i < len(p); i++ {
		p[i] ^= k[i&3]
	}
}

// appendClosePayload appends a close frame body: the status code and reason.
func appendClosePayload(dst []byte, code uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(dst, code), reason...)
}

// parseClosePayload splits a close frame body into status and reason.
func parseClosePayload(p []byte) (code uint16, reason string) {
	if len(p) < 2 {
		return StatusNoStatus, ""
	}
	return binary.BigEndian.Uint16(p), string(p[2:])
}
