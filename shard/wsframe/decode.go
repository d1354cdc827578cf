package wsframe

import (
	"encoding/binary"
	"errors"
	"math"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// Bits of the first two header bytes (RFC 6455 section 5.2).
const (
	finBit  = 0x80 // byte 0: final fragment
	rsvBits = 0x70 // byte 0: RSV1-3, meaningless without extensions
	rsv1Bit = 0x40 // byte 0: RSV1, "compressed" under permessage-deflate (RFC 7692)
	opBits  = 0x0f // byte 0: opcode
	maskBit = 0x80 // byte 1: payload is masked
	lenBits = 0x7f // byte 1: payload length or length code

	maxLen7   = 125 // largest length carried in the 7-bit field
	lenCode16 = 126 // a 16-bit length follows
	lenCode64 = 127 // a 64-bit length follows
)

// Allocator supplies the memory for reassembling fragmented messages, so the
// caller can pool it per shard (*bufpool.Pool satisfies it).
type Allocator interface {
	// Get returns a buffer of length n; its capacity may be larger. The
	// Decoder owns it until it hands it back with Put.
	Get(n int) *[]byte
	// Put takes back a buffer from Get. The Decoder keeps no slice of it.
	Put(b *[]byte)
}

// Rules are what a Decoder accepts beyond RFC 6455's own framing rules:
// the size bound of a message and the kinds of message the server serves.
// They belong to the server, not to a connection, so one value serves
// every Decode call of a shard.
type Rules struct {
	// MaxMessage bounds the payload of one data message, summed over its
	// fragments; a negative value counts as 0. Control frames are bounded
	// by the protocol's 125 bytes instead.
	MaxMessage int
	// Binary accepts binary messages. The gateway speaks JSON text only
	// and leaves it false: a binary frame then fails with 1003. The
	// Autobahn echo server (test/autobahn) sets it.
	Binary bool
	// Inflater, when set, accepts permessage-deflate messages (RFC 7692):
	// RSV1 on the first frame of a text or binary message marks it
	// compressed, and Decode hands the message to Inflater once its last
	// fragment is in. Set it only for a connection that negotiated the
	// extension; without it RSV1 fails with 1002 like the other RSV bits.
	Inflater Inflater
}

// Inflater decompresses permessage-deflate messages for Decode.
type Inflater interface {
	// Inflate returns the message that compressed inflates to, in a
	// buffer from alloc that the caller hands back with alloc.Put.
	// compressed is the payload of the message's frames, concatenated, as
	// the peer sent it: without the 00 00 ff ff that RFC 7692 §7.2.2 has
	// the receiver append. A message longer than limit bytes fails with
	// ErrTooBig, having held no more than about limit bytes; data that
	// does not inflate fails with any other error. Inflate must not keep
	// compressed.
	Inflate(compressed []byte, limit int, alloc Allocator) (*[]byte, error)
}

// ErrTooBig is what an Inflater returns for a message that inflates to
// more than its limit.
var ErrTooBig = errors.New("wsframe: message too big")

// MaxCompressed is the most compressed bytes Decode takes for one
// message under Rules.Inflater, given Rules.MaxMessage. Deflate may make
// data that does not compress a little longer than it was (5 bytes per
// stored block of up to 64 KiB, a few more per flush), so a compressed
// message may exceed the limit its inflated size is held to by this
// margin: 1/16 of it, and 1 KiB for small limits. Past it the message
// fails with 1009 before anything is inflated.
func MaxCompressed(maxMessage int) int {
	maxMessage = max(maxMessage, 0)
	return maxMessage + maxMessage/16 + 1024
}

// Decoder holds what must survive between reads of one connection: the
// state of a fragmented message in progress. It is two words; the zero value
// is ready to use and is what an idle connection between messages holds.
//
// A Decoder is used by one goroutine at a time (the shard loop owning the
// connection). Every call must pass the same Allocator, which owns the
// reassembly buffer while a fragmented message is in progress.
type Decoder struct {
	// op is the opcode of the fragmented message in progress, or
	// ws.OpContinuation (zero) when there is none.
	op ws.OpCode
	// compressed: the fragmented message in progress had RSV1 on its
	// first frame, and msg collects its compressed bytes. It lives in the
	// padding after op: the Decoder stays two words.
	compressed bool
	// msg holds the message's payload received so far. It is nil when no
	// fragmented message is in progress and also while its fragments have
	// carried no bytes, so empty fragments borrow nothing.
	msg *[]byte
}

// Decode parses the complete frames at the start of buf and returns n, the
// number of bytes they took. buf[n:] is the start of a frame that is not
// complete yet; the caller keeps it and presents it again, with more bytes
// appended, in the next call. A frame is never consumed partly, so the
// caller may move or grow that tail between calls.
//
// Payloads are unmasked in place: the consumed part of buf is modified. fn is
// called with each complete data message (text, or binary if rules allow
// it) and with each control frame (ping,
// pong, close), in wire order; control frames that arrive between the
// fragments of a message are delivered as they come, and the message
// continues afterwards. A payload of an unfragmented frame is a slice of buf;
// a fragmented message's payload is the reassembly buffer, which goes back
// to alloc when fn returns. Either way payload is valid only until fn
// returns: copy what must outlive the call. fn must not call d's methods.
// If fn returns false Decode stops after that frame, returning the bytes
// consumed so far, which include that frame; the gateway does that after a
// close frame, which ends the connection's input.
//
// rules.MaxMessage bounds the payload of one data message, summed over its
// fragments. A header that would take the message past it fails as soon as
// its length field is in, before any of the payload is buffered. Every call
// for one Decoder must pass the same rules. Only a fragmented message uses
// alloc; alloc may be nil, in which case reassembly buffers come from the
// heap.
//
// With rules.Inflater set (the connection negotiated permessage-deflate),
// a data message whose first frame has RSV1 is compressed: its frames are
// held to MaxCompressed(rules.MaxMessage) as they arrive, collected like a
// fragmented message's (an unfragmented one is read in place), and
// inflated once the last one is in, into a buffer from alloc under
// rules.MaxMessage; fn gets the inflated message. UTF-8 is checked on the
// inflated text, once whole.
//
// A violation of the protocol returns a *CloseError with the status code the
// server must close with, and n is the offset of the offending frame:
//   - 1002 (ws.StatusProtocolError): RSV bits set (other than RSV1 on
//     the first frame of a data message under rules.Inflater), a reserved opcode, an
//     unmasked client frame, a fragmented control frame or one over 125
//     bytes, a continuation frame with no message in progress, a text or
//     binary frame while one is, a 64-bit length with its top bit set, a
//     close payload of 1 byte or with a code not allowed on the wire;
//   - 1003 (ws.StatusUnsupportedData): a binary frame, unless rules.Binary;
//   - 1007 (ws.StatusInvalidFramePayloadData): a text message, or a close
//     reason, that is not valid UTF-8; a fragmented message fails at the
//     fragment that makes it invalid, before it is complete (a frame is
//     checked only once it is whole, however it is split across reads);
//     a compressed message that does not inflate;
//   - 1009 (ws.StatusMessageTooBig): a message longer than rules.MaxMessage
//     (a compressed one: inflated, or past MaxCompressed as sent).
//
// Checks run in the order their bytes arrive (first two header bytes, the
// extended length, then the payload), so the same input fails the same way
// however it is split across calls. After an error the reassembly buffer is
// already back in alloc, and d must not be used again until Reset.
func (d *Decoder) Decode(buf []byte, rules Rules, alloc Allocator, fn func(op ws.OpCode, payload []byte) bool) (n int, err error) {
	maxMessage := max(rules.MaxMessage, 0)
	for {
		frame := buf[n:]
		if len(frame) < 2 {
			return n, nil
		}
		b0, b1 := frame[0], frame[1]
		fin := b0&finBit != 0
		op := ws.OpCode(b0 & opBits)
		control := op.IsControl()
		// RSV1 marks a compressed message, on its first frame only (RFC
		// 7692 §6.1): never on a continuation or control frame.
		compressed := b0&rsvBits == rsv1Bit && rules.Inflater != nil &&
			(op == ws.OpText || op == ws.OpBinary)
		switch {
		case b0&rsvBits != 0 && !compressed:
			return n, d.fail(alloc, ws.StatusProtocolError, "reserved bits set")
		case op.IsReserved():
			return n, d.fail(alloc, ws.StatusProtocolError, "reserved opcode")
		case b1&maskBit == 0:
			return n, d.fail(alloc, ws.StatusProtocolError, "client frame not masked")
		case control && !fin:
			return n, d.fail(alloc, ws.StatusProtocolError, "fragmented control frame")
		case op == ws.OpContinuation && d.op == ws.OpContinuation:
			return n, d.fail(alloc, ws.StatusProtocolError, "continuation frame with no message in progress")
		case !control && op != ws.OpContinuation && d.op != ws.OpContinuation:
			return n, d.fail(alloc, ws.StatusProtocolError, "new message while a fragmented one is in progress")
		case op == ws.OpBinary && !rules.Binary:
			return n, d.fail(alloc, ws.StatusUnsupportedData, "binary messages not supported")
		}

		// The length is checked as soon as its bytes are in, without
		// waiting for the mask key.
		hlen, length, ok := parseLength(frame)
		if !ok {
			return n, nil
		}
		switch {
		case length > math.MaxInt64:
			return n, d.fail(alloc, ws.StatusProtocolError, "64-bit length with the most significant bit set")
		case control:
			if length > ws.MaxControlFramePayloadSize {
				return n, d.fail(alloc, ws.StatusProtocolError, "control frame payload over 125 bytes")
			}
		default:
			// A compressed message is held to MaxCompressed as it
			// arrives, and to maxMessage once inflated.
			if op == ws.OpContinuation {
				compressed = d.compressed
			}
			limit := maxMessage
			if compressed {
				limit = MaxCompressed(maxMessage)
			}
			// Compared as room left rather than as a sum: length comes from
			// the peer and may be near 2^63.
			have := d.len()
			if have > limit || length > uint64(limit-have) {
				return n, d.fail(alloc, ws.StatusMessageTooBig, "message too big")
			}
		}
		// length is now bounded by maxMessage or 125, so it fits an int.
		if len(frame) < hlen || uint64(len(frame)-hlen) < length {
			return n, nil
		}
		end := hlen + int(length)
		payload := frame[hlen:end]
		ws.Cipher(payload, [4]byte(frame[hlen-4:hlen]), 0)

		switch {
		case control:
			if op == ws.OpClose {
				if err := checkClose(payload); err != nil {
					d.Reset(alloc)
					return n, err
				}
			}
			n += end
			if !fn(op, payload) {
				return n, nil
			}

		case fin && op != ws.OpContinuation && compressed:
			// Unfragmented and compressed: inflated straight out of buf.
			more, err := d.deliverInflated(op, payload, rules, alloc, fn)
			if err != nil {
				return n, err
			}
			n += end
			if !more {
				return n, nil
			}

		case fin && op != ws.OpContinuation:
			// Unfragmented: validated and delivered in place, no copy.
			if op == ws.OpText && !utf8.Valid(payload) {
				return n, d.fail(alloc, ws.StatusInvalidFramePayloadData, "invalid UTF-8 in text message")
			}
			n += end
			if !fn(op, payload) {
				return n, nil
			}

		default:
			if op != ws.OpContinuation {
				d.op = op
				d.compressed = compressed
			}
			limit := maxMessage
			if d.compressed {
				limit = MaxCompressed(maxMessage)
			}
			checked := d.len()
			d.appendFragment(alloc, payload, limit)
			var msg []byte
			if d.msg != nil {
				msg = *d.msg
			}
			// Each fragment is checked as it arrives, so an invalid message
			// fails at the fragment that breaks it (Autobahn's "fail fast",
			// case 6.4) and is never buffered further; a rune split across
			// fragments is checked once its last byte is in. Compressed
			// bytes are not text: their message is checked once inflated.
			if d.op == ws.OpText && !d.compressed && !validUTF8From(msg, checked, fin) {
				return n, d.fail(alloc, ws.StatusInvalidFramePayloadData, "invalid UTF-8 in text message")
			}
			if !fin {
				n += end
				continue
			}
			var more bool
			if d.compressed {
				var err error
				if more, err = d.deliverInflated(d.op, msg, rules, alloc, fn); err != nil {
					return n, err
				}
			} else {
				more = fn(d.op, msg)
			}
			n += end
			d.Reset(alloc)
			if !more {
				return n, nil
			}
		}
	}
}

// deliverInflated inflates a complete compressed message, checks it and
// hands it to fn; the inflated buffer goes back to alloc when fn returns.
// It reports fn's answer, or the close error (d already reset) when the
// message is too big, does not inflate, or is text that is not UTF-8.
func (d *Decoder) deliverInflated(op ws.OpCode, compressed []byte, rules Rules, alloc Allocator, fn func(ws.OpCode, []byte) bool) (bool, error) {
	maxMessage := max(rules.MaxMessage, 0)
	msg, err := rules.Inflater.Inflate(compressed, maxMessage, allocator(alloc))
	switch {
	case errors.Is(err, ErrTooBig):
		return false, d.fail(alloc, ws.StatusMessageTooBig, "message too big")
	case err != nil:
		return false, d.fail(alloc, ws.StatusInvalidFramePayloadData, "invalid compressed data")
	}
	if len(*msg) > maxMessage {
		put(alloc, msg)
		return false, d.fail(alloc, ws.StatusMessageTooBig, "message too big")
	}
	if op == ws.OpText && !utf8.Valid(*msg) {
		put(alloc, msg)
		return false, d.fail(alloc, ws.StatusInvalidFramePayloadData, "invalid UTF-8 in text message")
	}
	more := fn(op, *msg)
	put(alloc, msg)
	return more, nil
}

// validUTF8From reports whether b is valid UTF-8, given that b[:from] was
// accepted by an earlier call with complete false: only the rune b[:from]
// left open and what follows it are checked, so a message checked fragment
// by fragment costs one pass over its bytes. Unless complete, b may end
// inside a rune whose bytes so far can still make a valid one.
func validUTF8From(b []byte, from int, complete bool) bool {
	// An ASCII byte ends no open rune: JSON text skips both scans.
	start := from
	if from > 0 && b[from-1] >= utf8.RuneSelf {
		start -= len(openRune(b[:from]))
	}
	end := len(b)
	if !complete && end > 0 && b[end-1] >= utf8.RuneSelf {
		end -= len(openRune(b))
	}
	return utf8.Valid(b[start:end])
}

// openRune returns the bytes at the end of b that begin a rune without
// finishing it, if they are a valid beginning (utf8.FullRune is false only
// for those), or nil.
func openRune(b []byte) []byte {
	for i := len(b) - 1; i >= 0 && i >= len(b)-(utf8.UTFMax-1); i-- {
		if utf8.RuneStart(b[i]) {
			if utf8.FullRune(b[i:]) {
				return nil
			}
			return b[i:]
		}
	}
	return nil
}

// Reset gives the reassembly buffer, if any, back to alloc and returns d to
// its zero state. Call it when the connection goes away (a fragmented message
// may be in progress) or to reuse d after an error. alloc must be the
// Allocator passed to Decode.
func (d *Decoder) Reset(alloc Allocator) {
	if d.msg != nil {
		put(alloc, d.msg)
	}
	*d = Decoder{}
}

// fail releases d's state and returns the close error for a violation.
func (d *Decoder) fail(alloc Allocator, code ws.StatusCode, reason string) error {
	d.Reset(alloc)
	return closeError(code, reason)
}

// len returns the length of the fragmented message received so far.
func (d *Decoder) len() int {
	if d.msg == nil {
		return 0
	}
	return len(*d.msg)
}

// appendFragment adds a fragment's payload to the message in progress.
//
// The buffer grows only by bytes that have arrived (the whole fragment is in
// buf), never on a declared length. It at least doubles, so a message of k
// fragments costs O(log k) copies, but never beyond maxMessage, which the
// header check already holds the message to.
func (d *Decoder) appendFragment(alloc Allocator, p []byte, maxMessage int) {
	if len(p) == 0 {
		return
	}
	if d.msg == nil {
		b := get(alloc, len(p))
		*b = append((*b)[:0], p...)
		d.msg = b
		return
	}
	old := *d.msg
	if need := len(old) + len(p); need > cap(old) {
		b := get(alloc, max(min(2*cap(old), maxMessage), need))
		*b = append((*b)[:0], old...)
		put(alloc, d.msg)
		d.msg = b
	}
	*d.msg = append(*d.msg, p...)
}

// heapAllocator serves a nil Allocator from the heap.
type heapAllocator struct{}

func (heapAllocator) Get(n int) *[]byte { b := make([]byte, n); return &b }
func (heapAllocator) Put(*[]byte)       {}

// allocator returns alloc, or the heap when alloc is nil.
func allocator(alloc Allocator) Allocator {
	if alloc == nil {
		return heapAllocator{}
	}
	return alloc
}

// get and put route to alloc, or to the heap when alloc is nil.
func get(alloc Allocator, n int) *[]byte {
	if alloc == nil {
		b := make([]byte, n)
		return &b
	}
	return alloc.Get(n)
}

func put(alloc Allocator, b *[]byte) {
	if alloc != nil {
		alloc.Put(b)
	}
}

// Need returns the total size (header and payload) of the frame that starts
// buf, or 0 while buf holds less than the whole header. The caller uses it to
// size the buffer that collects a partial frame before reading more.
//
// Need does not validate the header. On a tail that Decode left unconsumed
// it is at most ws.MaxHeaderSize plus rules.MaxMessage (or plus 125 for a control
// frame, or plus MaxCompressed(rules.MaxMessage) under rules.Inflater),
// because Decode rejects a longer frame as soon as its length field is in.
// On unchecked input a declared length that does not fit an int gives
// math.MaxInt.
func Need(buf []byte) int {
	hlen, length, ok := parseLength(buf)
	if !ok || len(buf) < hlen {
		return 0
	}
	if length > uint64(math.MaxInt-hlen) {
		return math.MaxInt
	}
	return hlen + int(length)
}

// parseLength returns the header length and the declared payload length of
// the frame starting at b, or ok false while b ends before the length does.
// The mask key, if any, may still be missing: len(b) < hlen. Non-minimal
// length encodings are accepted as they are.
func parseLength(b []byte) (hlen int, length uint64, ok bool) {
	if len(b) < 2 {
		return 0, 0, false
	}
	hlen = 2
	if b[1]&maskBit != 0 {
		hlen += 4
	}
	switch code := b[1] & lenBits; code {
	case lenCode16:
		if len(b) < 4 {
			return 0, 0, false
		}
		hlen += 2
		length = uint64(binary.BigEndian.Uint16(b[2:]))
	case lenCode64:
		if len(b) < 10 {
			return 0, 0, false
		}
		hlen += 8
		length = binary.BigEndian.Uint64(b[2:])
	default:
		length = uint64(code)
	}
	return hlen, length, true
}
