package shard

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// TestEchoModeEchoesDataMessagesThroughTheProductionPath: with
// Options.Echo, text comes back as text and binary as binary, fragmented
// messages reassembled with control frames between their fragments
// answered first; protocol checks and limits still close the connection
// as the gateway would. Without Echo a binary message is still 1003.
func TestEchoModeEchoesDataMessagesThroughTheProductionPath(t *testing.T) {
	// The peer's reader takes 16-bit lengths at most: 65535 bytes.
	echo := func(o *Options) { o.Echo = true; o.MaxMessageBytes = 1<<16 - 1 }
	big := bytes.Repeat([]byte{0xfe}, 1<<16-1)
	tests := []struct {
		name   string
		mutate func(*Options)
		send   [][]byte
		want   []frame // frames expected back, in order
	}{
		{
			name:   "text",
			mutate: echo,
			send:   [][]byte{clientFragment(ws.OpText, true, "héllo")},
			want:   []frame{{ws.OpText, "héllo"}},
		},
		{
			name:   "binary",
			mutate: echo,
			send:   [][]byte{clientFragment(ws.OpBinary, true, "\x00\xff")},
			want:   []frame{{ws.OpBinary, "\x00\xff"}},
		},
		{
			name:   "binary-at-the-limit",
			mutate: echo,
			send:   [][]byte{clientFragment(ws.OpBinary, true, string(big))},
			want:   []frame{{ws.OpBinary, string(big)}},
		},
		{
			name:   "fragmented-with-ping-between",
			mutate: echo,
			send: [][]byte{
				clientFragment(ws.OpText, false, "frag"),
				clientFragment(ws.OpPing, true, "p"),
				clientFragment(ws.OpContinuation, true, "ment"),
			},
			want: []frame{{ws.OpPong, "p"}, {ws.OpText, "fragment"}},
		},
		{
			name:   "invalid-utf8-still-1007",
			mutate: echo,
			send:   [][]byte{clientFragment(ws.OpText, true, "ok"), clientFragment(ws.OpText, true, "\xff")},
			want:   []frame{{ws.OpText, "ok"}, closeWith(ws.StatusInvalidFramePayloadData)},
		},
		{
			name:   "over-the-limit-still-1009",
			mutate: echo,
			send:   [][]byte{clientFragment(ws.OpBinary, false, string(big)), clientFragment(ws.OpContinuation, true, "x")},
			want:   []frame{closeWith(ws.StatusMessageTooBig)},
		},
		{
			name: "gateway-closes-binary-with-1003",
			send: [][]byte{clientFragment(ws.OpBinary, true, "\x00\xff")},
			want: []frame{closeWith(ws.StatusUnsupportedData)},
		},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			s := newTestShard(t, test.mutate)
			p := attachPeer(t, s)
			for _, b := range test.send {
				p.write(b)
			}
			got := p.readFrames(len(test.want))
			for i, w := range test.want {
				if i >= len(got) || got[i].op != w.op || !samePayload(got[i], w) {
					t.Fatalf("frame %d: got %v, want %v", i, got, test.want)
				}
			}
		})
	}
}

type frame struct {
	op      ws.OpCode
	payload string
}

func (f frame) String() string {
	if len(f.payload) > 16 {
		return fmt.Sprintf("{op %d %q... (%d bytes)}", f.op, f.payload[:16], len(f.payload))
	}
	return fmt.Sprintf("{op %d %q}", f.op, f.payload)
}

// closeWith is an expected close frame, matched by its code only.
func closeWith(code ws.StatusCode) frame {
	return frame{ws.OpClose, string([]byte{byte(code >> 8), byte(code)})}
}

func samePayload(got, want frame) bool {
	if want.op == ws.OpClose {
		return len(got.payload) >= 2 && got.payload[:2] == want.payload
	}
	return got.payload == want.payload
}

// readFrames reads n server frames, or fewer if a close frame comes
// first.
func (p *peer) readFrames(n int) []frame {
	p.t.Helper()
	var got []frame
	for len(got) < n {
		op, b := p.next()
		got = append(got, frame{op, string(b)})
		if op == ws.OpClose {
			break
		}
	}
	return got
}

// clientFragment returns one masked client frame.
func clientFragment(op ws.OpCode, fin bool, payload string) []byte {
	var b bytes.Buffer
	if err := ws.WriteFrame(&b, ws.MaskFrame(ws.NewFrame(op, fin, []byte(payload)))); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// write writes b with one system call.
func (p *peer) write(b []byte) {
	p.t.Helper()
	if n, err := unix.Write(p.fd, b); err != nil || n != len(b) {
		p.t.Fatalf("write: %d of %d bytes, %v", n, len(b), err)
	}
}
