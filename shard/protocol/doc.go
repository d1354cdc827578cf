// Package protocol is the client side of shardgate's wire protocol: the JSON
// requests a client sends in text frames and the JSON replies and messages the
// gateway sends back.
//
// Requests are untrusted. ParseRequest checks one text message against the
// contract and either returns a Request or the *Error to send back, with the
// request's "id" whenever it can still be recovered so the client can match
// the reply:
//
//	req, perr := protocol.ParseRequest(msg)
//	if perr != nil {
//		out = protocol.AppendError(out, req.ID, perr)
//		return
//	}
//	// act on req, then
//	out = protocol.AppendAck(out, req.Type, req.Channel, req.ID)
//
// Replies and messages are written by Append functions into a caller-owned
// buffer, so a broadcast can be encoded once (MessageLen sizes the buffer
// exactly) and a connection's reply path allocates nothing.
package protocol
