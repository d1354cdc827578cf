// Package wsframe decodes client WebSocket frames (RFC 6455) from a byte
// slice and encodes server frames into one, for a gateway that owns its
// socket reads and writes.
//
// There is no io.Reader here on purpose: the shard reads whatever a
// non-blocking socket has into its own buffer and hands that buffer to
// Decode. Decode consumes the complete frames at its start and reports how
// many bytes it consumed; the rest is a partial frame that the caller keeps
// and presents again, with more bytes appended, after the next read:
//
//	var d wsframe.Decoder // zero value is ready; one per connection
//
//	pending = append(pending, readBytes...)
//	rules := wsframe.Rules{MaxMessage: 64 << 10} // one per server
//	n, err := d.Decode(pending, rules, pool, func(op ws.OpCode, p []byte) bool {
//		// p is valid only until this function returns.
//		handle(op, p)
//		return op != ws.OpClose // stop reading after a close frame
//	})
//	var ce *wsframe.CloseError
//	if errors.As(err, &ce) {
//		out = wsframe.AppendClose(out, ce.Code, ce.Reason) // then close the connection
//	}
//	pending = append(pending[:0], pending[n:]...) // keep the partial frame
//	if need := wsframe.Need(pending); need > cap(pending) {
//		// grow pending to hold the whole frame
//	}
//	...
//	d.Reset(pool) // when the connection goes away
//
// Why this shape: an idle connection costs the gateway only its Decoder (two
// words) and whatever partial bytes it has sent. Unfragmented frames are
// unmasked in place and handed to the callback straight out of the read
// buffer, so the common path neither copies nor allocates. Only a fragmented
// message borrows a reassembly buffer from the caller's Allocator, and gives
// it back as soon as the message is complete.
//
// Every limit is checked as soon as the bytes that carry it are present: a
// frame header that declares more than maxMessage fails before any of its
// payload arrives, so a peer cannot make the gateway buffer a huge frame.
//
// The gateway accepts text messages only: binary messages fail with 1003.
// Rules.Binary lets them through, for the Autobahn echo server that tests
// this package and the shard (test/autobahn). The one extension is
// permessage-deflate (RFC 7692, package shard/pmce): on a connection that
// negotiated it, Rules.Inflater accepts RSV1 on the first frame of a data
// message and inflates the message when it is complete; every other RSV
// bit, and RSV1 anywhere else or without the extension, fails with 1002.
//
// Encoding appends unmasked, final (FIN) server frames to a caller-owned
// slice, so one encoded broadcast frame can be queued to many connections;
// AppendCompressedHeader heads a frame whose payload is already deflated.
package wsframe
