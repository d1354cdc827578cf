package protocol

import (
	"encoding/json"
	"testing"
)

func TestAppendRefreshed(t *testing.T) {
	cases := []struct {
		name    string
		id      string
		expires int64
		want    string
	}{
		{"with exp", "4", 1767225600, `{"type":"refreshed","id":4,"expires":1767225600}`},
		{"string id", `"r-1"`, 1, `{"type":"refreshed","id":"r-1","expires":1}`},
		{"no id", "", 1767225600, `{"type":"refreshed","expires":1767225600}`},
		{"token without exp leaves expires out", "4", 0, `{"type":"refreshed","id":4}`},
		{"nothing", "", 0, `{"type":"refreshed"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var id json.RawMessage
			if tc.id != "" {
				id = json.RawMessage(tc.id)
			}
			got := AppendRefreshed([]byte("prefix"), id, tc.expires)
			if string(got) != "prefix"+tc.want {
				t.Fatalf("AppendRefreshed(%s, %d) = %s, want %s", tc.id, tc.expires, got, tc.want)
			}
			decodeObject(t, got[len("prefix"):])
		})
	}
}

func TestAppendUnsubscribed(t *testing.T) {
	got := AppendUnsubscribed([]byte("prefix"), "news.eu", ReasonForbidden)
	want := `{"type":"unsubscribed","channel":"news.eu","reason":"forbidden"}`
	if string(got) != "prefix"+want {
		t.Fatalf("got %s, want %s", got, want)
	}
	// A caller's mistake yields a wrong name, never broken JSON.
	m := decodeObject(t, AppendUnsubscribed(nil, "a\"\x00\xff", "r\n"))
	if m["channel"] != "a\"\x00\ufffd" || m["reason"] != "r\n" {
		t.Fatalf("round trip: %v", m)
	}
}

func TestAppendSessionRepliesAllocateNothing(t *testing.T) {
	buf := make([]byte, 0, 256)
	id := json.RawMessage(`12345`)
	if n := testing.AllocsPerRun(100, func() {
		buf = AppendRefreshed(buf[:0], id, 1767225600)
		buf = AppendUnsubscribed(buf[:0], "news.sport", ReasonForbidden)
	}); n != 0 && !raceEnabled {
		t.Fatalf("%v allocations per run, want 0", n)
	}
}
