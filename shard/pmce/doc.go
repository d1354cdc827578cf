// Package pmce is the permessage-deflate extension of RFC 7692 as the
// gateway speaks it: the negotiation of an upgrade's offers, a compressor
// that deflates one message into a server frame, and an inflater that
// decompresses one client message under a size limit.
//
// The gateway keeps no compression state between messages, in either
// direction: it always answers server_no_context_takeover, and always
// client_no_context_takeover too, which RFC 7692 §7.1.1.2 lets a server
// do whether or not the client offered it. Each message is then deflated
// and inflated on its own, so an idle connection holds nothing for the
// extension beyond the one byte of its Params, and the compressors and
// inflaters (with their 32 KiB windows) are pooled per user of the
// package, not kept per connection:
//
//	p, ok := pmce.Accept(headerValue)   // at upgrade; answer p.Header()
//	...
//	d := pmce.NewDeflater(pmce.DefaultLevel) // one per gateway
//	frame := d.Frame(ws.OpText, payload)     // RSV1 frame, or nil when it would not be smaller
//	if frame != nil && p.Fits(len(payload)) { /* send frame, else the plain one */ }
//	...
//	var in pmce.Inflater                     // one per shard
//	msg, err := in.Inflate(compressed, limit, alloc) // wsframe.ErrTooBig past limit
//
// Why no context takeover: a broadcast is compressed once and the same
// bytes go to every subscriber, which a compressor per connection (with
// its history of what that connection was sent) cannot allow; and a
// decompressor per connection would cost each idle client about 40 KiB.
// What it costs is the ratio on small messages that repeat one another,
// which a dictionary shared across messages would have improved.
package pmce
