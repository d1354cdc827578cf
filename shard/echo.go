package shard

import (
	"github.com/gobwas/ws"
	"github.com/shardgate/shardgate/shard/wsframe"
)

// Echo mode (Options.Echo) exists so that a conformance suite judges the
// WebSocket layer production runs. The Autobahn fuzzing client sends
// messages and expects them back; the gateway would parse them as JSON
// requests and close binary ones with 1003. The hook is as narrow as it
// can be: New binds s.onFrame to echoFrame instead of handleFrame and lets
// the decoder accept binary messages (wsframe.Rules.Binary). No conn field
// and no per-frame branch is added to the production path; the choice is
// one function value, made once per shard.

// echoFrame is the decoder callback of an echo-mode shard: a data message
// goes back to its sender as a frame of the same opcode, through the same
// send path and queue cap as any reply; control frames are handled exactly
// as handleFrame handles them.
//
// On a connection that negotiated permessage-deflate (Autobahn's groups
// 12 and 13) a message arrives here inflated, whether or not it came
// compressed, and its echo goes back compressed, always, within the
// window the client allowed. The gateway's broadcasts go plain where
// compression does not pay or the window is too small, which RFC 7692
// allows (RSV1 is per message); echoes do not, because the fuzzing
// client, kosoku 0.1.0, hands an uncompressed message on a deflate
// connection to Autobahn's cases as text, which they cannot hash
// ("Strings must be encoded before hashing", every 12.x and 13.x case
// whose echo went plain), while gorilla/websocket, which compresses
// every message, passes them.
func (s *Shard) echoFrame(op ws.OpCode, payload []byte) bool {
	if op != ws.OpText && op != ws.OpBinary {
		return s.handleFrame(op, payload)
	}
	c := s.cur
	if c.state == stateOpen {
		s.stats.recvMsgs++
		// payload is valid only during this call: the echo is a copy,
		// owned by c until written.
		b := s.pool.Get(wsframe.HeaderLen(len(payload)) + len(payload))
		if c.deflate.On() {
			*b = s.deflater.AppendFrame((*b)[:0], op, payload, c.deflate)
		} else {
			*b = wsframe.AppendFrame((*b)[:0], op, payload)
		}
		s.stats.sentMsgs++
		s.send(c, *b, b, false)
	}
	return c.state != stateClosed
}
