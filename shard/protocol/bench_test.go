package protocol

import (
	"encoding/json"
	"strings"
	"testing"
)

func BenchmarkParseRequest(b *testing.B) {
	cases := []struct {
		name string
		msg  string
	}{
		{"subscribe", `{"type":"subscribe","channel":"news.sport","id":1}`},
		{"publish-256", `{"type":"publish","channel":"news.sport","id":"p-1","data":{"k":"` + strings.Repeat("v", 246) + `"}}`},
		{"escaped", `{"\u0074ype":"subscribe","channel":"n\u0065ws","id":1}`},
		{"bad_channel", `{"type":"subscribe","channel":"no spaces allowed","id":1}`},
		{"bad_json", `{"type":"subscribe","channel":"news"`},
	}
	for _, bc := range cases {
		msg := []byte(bc.msg)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				ParseRequest(msg)
			}
		})
	}
}

func BenchmarkAppendMessage(b *testing.B) {
	data := json.RawMessage(`{"k":"` + strings.Repeat("v", 248) + `"}`) // 256 bytes
	b.Run("reused-256", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, MessageLen("news.sport", data))
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			buf = AppendMessage(buf[:0], "news.sport", data)
		}
	})
	b.Run("fresh-256", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			AppendMessage(nil, "news.sport", data)
		}
	})
}

func BenchmarkAppendReply(b *testing.B) {
	id := json.RawMessage(`12345`)
	e := &Error{CodeBadChannel, "channel names are 1-128 bytes of A-Z a-z 0-9 . _ : @ -"}
	buf := make([]byte, 0, 256)
	b.Run("ack", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendAck(buf[:0], TypeSubscribe, "news.sport", id)
		}
	})
	b.Run("error", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendError(buf[:0], id, e)
		}
	})
}
