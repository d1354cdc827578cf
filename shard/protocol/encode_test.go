package protocol

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// decodeObject decodes out as one JSON object with numbers kept verbatim, and
// fails the test when out is not exactly that.
func decodeObject(t *testing.T, out []byte) map[string]any {
	t.Helper()
	if !json.Valid(out) {
		t.Fatalf("output is not valid JSON: %s", out)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decoding %s: %v", out, err)
	}
	return m
}

func TestAppendAck(t *testing.T) {
	cases := []struct {
		typ     Type
		channel string
		id      string
		want    string
	}{
		{TypeSubscribe, "news", "1", `{"type":"subscribed","channel":"news","id":1}`},
		{TypeUnsubscribe, "news", "2", `{"type":"unsubscribed","channel":"news","id":2}`},
		{TypePublish, "news", "3", `{"type":"published","channel":"news","id":3}`},
		{TypePublish, "a.b", "", `{"type":"published","channel":"a.b"}`},
		{TypeSubscribe, "x", `"s\"q"`, `{"type":"subscribed","channel":"x","id":"s\"q"}`},
		{TypeSubscribe, "x", `123456789012345678901234567890`, `{"type":"subscribed","channel":"x","id":123456789012345678901234567890}`},
		{0, "x", "", `{"type":"ack","channel":"x"}`},
	}
	for _, tc := range cases {
		var id json.RawMessage
		if tc.id != "" {
			id = json.RawMessage(tc.id)
		}
		got := AppendAck([]byte("prefix"), tc.typ, tc.channel, id)
		if string(got) != "prefix"+tc.want {
			t.Errorf("AppendAck(%v, %q, %s) = %s, want %s", tc.typ, tc.channel, tc.id, got, tc.want)
		}
		m := decodeObject(t, got[len("prefix"):])
		if m["channel"] != tc.channel {
			t.Errorf("round trip channel = %v, want %q", m["channel"], tc.channel)
		}
		if _, has := m["id"]; has != (tc.id != "") {
			t.Errorf("round trip id present = %v, want %v", has, tc.id != "")
		}
	}
}

func TestAppendError(t *testing.T) {
	cases := []struct {
		name string
		id   string
		err  *Error
		want string
	}{
		{"spec example", "3", &Error{CodeBadChannel, "bad name"}, `{"type":"error","id":3,"code":"bad_channel","message":"bad name"}`},
		{"no id", "", &Error{CodeBadJSON, "x"}, `{"type":"error","code":"bad_json","message":"x"}`},
		{"string id", `"r-1"`, &Error{CodeRateLimited, "slow down"}, `{"type":"error","id":"r-1","code":"rate_limited","message":"slow down"}`},
		{"escapes", "", &Error{CodeBadRequest, "q\"b\\n\n\r\t\x01\x1f"}, `{"type":"error","code":"bad_request","message":"q\"b\\n\n\r\t\u0001\u001f"}`},
		{"nil error", "", nil, `{"type":"error","code":"","message":""}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var id json.RawMessage
			if tc.id != "" {
				id = json.RawMessage(tc.id)
			}
			got := AppendError(nil, id, tc.err)
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			decodeObject(t, got)
		})
	}
}

// TestAppendErrorRoundTrip checks that any message text survives encoding,
// with invalid UTF-8 replaced as encoding/json would.
func TestAppendErrorRoundTrip(t *testing.T) {
	msgs := []string{
		"", "plain", `"quoted"`, `back\slash`, "nl\nand\ttab", "\x00\x07\x1f\x7f",
		"héllo wörld 😀", "bad \xff utf8 \xc3", "</script>\u2028\u2029", strings.Repeat("é\"", 500),
	}
	for _, msg := range msgs {
		out := AppendError(nil, json.RawMessage(`1`), &Error{Code: CodeUnavailable, Message: msg})
		m := decodeObject(t, out)
		// What encoding/json makes of the same text: each invalid byte
		// becomes U+FFFD, everything else survives.
		stdJSON, _ := json.Marshal(msg)
		var want string
		if err := json.Unmarshal(stdJSON, &want); err != nil {
			t.Fatal(err)
		}
		if m["message"] != want {
			t.Errorf("message %q round-tripped to %q, want %q", msg, m["message"], want)
		}
		if m["code"] != CodeUnavailable || m["type"] != "error" || m["id"] != json.Number("1") {
			t.Errorf("round trip of %q: %v", msg, m)
		}
	}
}

func TestAppendMessage(t *testing.T) {
	cases := []struct {
		name    string
		channel string
		data    json.RawMessage
		want    string
	}{
		{"channel", "news", json.RawMessage(`{"a":1}`), `{"type":"message","channel":"news","data":{"a":1}}`},
		{"to everyone", "", json.RawMessage(`[1,2]`), `{"type":"message","data":[1,2]}`},
		{"null data", "n", json.RawMessage(`null`), `{"type":"message","channel":"n","data":null}`},
		{"nil data", "n", nil, `{"type":"message","channel":"n","data":null}`},
		{"string data", "n", json.RawMessage(`"x\"y"`), `{"type":"message","channel":"n","data":"x\"y"}`},
		{"unvalidated channel is escaped", "a\"b\n\xff", json.RawMessage(`1`), `{"type":"message","channel":"a\"b\n\ufffd","data":1}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := AppendMessage(nil, tc.channel, tc.data)
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			if n := MessageLen(tc.channel, tc.data); n != len(got) {
				t.Errorf("MessageLen = %d, AppendMessage wrote %d", n, len(got))
			}
			m := decodeObject(t, got)
			if _, has := m["channel"]; has != (tc.channel != "") {
				t.Errorf("channel member present = %v", has)
			}
			want := any(nil)
			if len(tc.data) > 0 {
				dec := json.NewDecoder(strings.NewReader(string(tc.data)))
				dec.UseNumber()
				if err := dec.Decode(&want); err != nil {
					t.Fatal(err)
				}
			}
			if !reflect.DeepEqual(m["data"], want) {
				t.Errorf("data round-tripped to %#v, want %#v", m["data"], want)
			}
		})
	}
}

// TestMessageLen checks MessageLen == len(AppendMessage(nil, …)) over a
// spread of channels and data sizes, and that AppendMessage grows dst once.
func TestMessageLen(t *testing.T) {
	channels := []string{"", "a", "news.sport", strings.Repeat("z", 128), "\x00\"\\\t\xff😀é"}
	for _, ch := range channels {
		for _, size := range []int{0, 1, 10, 256, 4096, 70000} {
			data := json.RawMessage(`"` + strings.Repeat("d", max(size-2, 0)) + `"`)
			if size == 0 {
				data = nil
			}
			want := MessageLen(ch, data)
			got := AppendMessage(nil, ch, data)
			if len(got) != want {
				t.Errorf("channel %q size %d: MessageLen %d, len(AppendMessage) %d", ch, size, want, len(got))
			}
			if allocs := testing.AllocsPerRun(10, func() { AppendMessage(nil, ch, data) }); allocs != 1 && !raceEnabled {
				t.Errorf("channel %q size %d: AppendMessage(nil) allocated %.1f times, want 1", ch, size, allocs)
			}
			pre := []byte("xyz")
			if got := AppendMessage(pre, ch, data); len(got) != len(pre)+want || string(got[:3]) != "xyz" {
				t.Errorf("channel %q size %d: append to prefix lost bytes", ch, size)
			}
		}
	}
}

func TestQuotedLen(t *testing.T) {
	for _, s := range []string{"", "a", "\"", "\\", "\n\r\t\b\f", "\x00\x1f", "é", "😀", "\xff", "\xe2\x82", "a\xe2\x82\xacb", "\x7f"} {
		if got, want := quotedLen(s), len(appendString(nil, s)); got != want {
			t.Errorf("quotedLen(%q) = %d, len(appendString) = %d", s, got, want)
		}
	}
}

// TestEncodersDoNotAllocate pins the reused-buffer promise.
func TestEncodersDoNotAllocate(t *testing.T) {
	data := json.RawMessage(`{"k":"` + strings.Repeat("v", 240) + `"}`)
	id := json.RawMessage(`42`)
	e := &Error{CodeForbidden, "channel not granted"}
	buf := make([]byte, 0, 1024)
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendMessage(buf[:0], "news", data)
		buf = AppendAck(buf[:0], TypePublish, "news", id)
		buf = AppendError(buf[:0], id, e)
	})
	if allocs != 0 && !raceEnabled {
		t.Errorf("encoders allocated %.1f times per run into a large enough buffer", allocs)
	}
}
