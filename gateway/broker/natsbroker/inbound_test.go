package natsbroker

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestRejectsInvalidInput: whatever a NATS client publishes on the
// cluster's subjects, the Handler sees only UTF-8 JSON within
// MaxMessageBytes and OnDisconnect only valid subs; each refused message
// is counted once, and the valid message after it still goes through.
func TestRejectsInvalidInput(t *testing.T) {
	srv := startNATS(t, -1)
	const maxBytes = 64
	a := newNode(t, natsURL(srv), func(o *Options) { o.MaxMessageBytes = maxBytes })
	waitConnected(t, a, true)
	mustInterest(t, a.Broker, "news")
	raw := rawConn(t, srv)

	const (
		chSubject  = "shardgate.ch.news"
		allSubject = "shardgate.all"
		ctlSubject = "shardgate.ctl.disconnect"
	)
	cases := []struct {
		name    string
		subject string
		data    string
	}{
		{"invalid UTF-8", chSubject, "\xff\xfe"},
		// encoding/json.Valid alone accepts this one.
		{"invalid UTF-8 inside a JSON string", chSubject, "\"caf\xe9\""},
		{"truncated UTF-8", chSubject, "\"\xe2\x82\""},
		{"invalid JSON", chSubject, `{"a":`},
		{"bare word", chSubject, `hello`},
		{"two values", chSubject, `1 2`},
		{"empty", chSubject, ``},
		{"too large", chSubject, `"` + strings.Repeat("x", maxBytes) + `"`},
		{"invalid UTF-8 to everyone", allSubject, "\"\xc3\x28\""},
		{"invalid JSON to everyone", allSubject, `{]`},
		{"empty sub", ctlSubject, ``},
		{"sub not UTF-8", ctlSubject, "al\xffce"},
		{"sub too long", ctlSubject, strings.Repeat("s", MaxSubBytes+1)},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := a.rejected.Load()
			if err := raw.Publish(c.subject, []byte(c.data)); err != nil {
				t.Fatal(err)
			}
			// A valid message of the same kind, after it on the same
			// connection: once it is delivered the bad one was handled.
			switch c.subject {
			case ctlSubject:
				sub := strings.Repeat("é", i+1) // valid, and distinct per case
				if err := raw.Publish(c.subject, []byte(sub)); err != nil {
					t.Fatal(err)
				}
				a.expectSub(t, sub)
			default:
				channel, _ := a.subj.parse(c.subject)
				if err := raw.Publish(c.subject, []byte(`{"ok":true}`)); err != nil {
					t.Fatal(err)
				}
				a.expect(t, msg{channel, `{"ok":true}`})
			}
			a.expectNothingMore(t)
			select {
			case sub := <-a.subs:
				t.Fatalf("bad request reached OnDisconnect as %q", sub)
			default:
			}
			if got := a.rejected.Load() - before; got != 1 {
				t.Fatalf("OnRejected called %d times, want 1", got)
			}
		})
	}
	// At the limit is fine.
	atLimit := `"` + strings.Repeat("x", maxBytes-2) + `"`
	if err := raw.Publish(chSubject, []byte(atLimit)); err != nil {
		t.Fatal(err)
	}
	a.expect(t, msg{"news", atLimit})
}

// TestDisconnectReachesEveryNode: a disconnect request made on one node
// reaches OnDisconnect on every node, the one that made it included; a
// bad sub is refused before anything is sent.
func TestDisconnectReachesEveryNode(t *testing.T) {
	srv := startNATS(t, -1)
	a, b := newNode(t, natsURL(srv)), newNode(t, natsURL(srv))
	waitConnected(t, a, true)
	waitConnected(t, b, true)
	waitFor(t, "both nodes' control subscriptions", func() bool { return subsOn(t, srv, a.subj.disconnect) == 2 })
	for _, sub := range []string{"alice", "ünïcode", strings.Repeat("s", MaxSubBytes)} {
		if err := a.Disconnect(sub); err != nil {
			t.Fatalf("disconnect %q: %v", sub[:min(len(sub), 16)], err)
		}
		a.expectSub(t, sub)
		b.expectSub(t, sub)
	}
	for _, sub := range []string{"", "\xff", strings.Repeat("s", MaxSubBytes+1)} {
		if err := a.Disconnect(sub); !errors.Is(err, ErrBadSub) {
			t.Fatalf("disconnect of a bad sub (%d bytes): %v, want ErrBadSub", len(sub), err)
		}
	}
	// Nothing from the refused ones, nothing rejected on arrival.
	if err := b.Disconnect("bob"); err != nil {
		t.Fatal(err)
	}
	a.expectSub(t, "bob")
	b.expectSub(t, "bob")
	if n := a.rejected.Load() + b.rejected.Load(); n != 0 {
		t.Fatalf("%d messages rejected", n)
	}
	// The control subject is no channel's, and carries no message.
	a.expectNothingMore(t)
	b.expectNothingMore(t)
}

// TestSubjectsDoNotCollide: the control subject is neither a channel's
// subject nor the one for everyone.
func TestSubjectsDoNotCollide(t *testing.T) {
	s := newSubjects("shardgate")
	if ch, ok := s.parse(s.disconnect); ok {
		t.Fatalf("the disconnect subject parses as channel %q", ch)
	}
	for _, name := range []string{"ctl.disconnect", "ctl", "disconnect", "all"} {
		if subj, _ := s.channel(name); subj == s.disconnect || subj == s.all {
			t.Fatalf("channel %q maps to %q", name, subj)
		}
	}
}

// FuzzCheckPayload: a payload is accepted exactly when it is UTF-8 JSON
// within the limit.
func FuzzCheckPayload(f *testing.F) {
	for _, seed := range []string{`{}`, `"\xff"`, `[1,2`, ``, `"é"`, `null`, "\"\xed\xa0\x80\"", strings.Repeat("1", 40)} {
		f.Add([]byte(seed))
	}
	b := &Broker{opts: Options{MaxMessageBytes: 32}}
	f.Fuzz(func(t *testing.T, data []byte) {
		reason := b.checkPayload(data)
		want := len(data) <= 32 && utf8.Valid(data) && json.Valid(data)
		if (reason == "") != want {
			t.Fatalf("checkPayload(%q) = %q, want accepted %v", data, reason, want)
		}
		if reason == "" {
			// UseNumber: 1e1000 is valid JSON though no float64.
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.UseNumber()
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("accepted %q does not decode: %v", data, err)
			}
		}
	})
}
