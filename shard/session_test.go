package shard

import (
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/gobwas/ws"
)

// testGrants allows the channels that start with one of its prefixes.
type testGrants struct {
	sub      string
	exp      int64
	prefixes []string
}

func (g *testGrants) CanSubscribe(ch string) bool {
	for _, p := range g.prefixes {
		if strings.HasPrefix(ch, p) {
			return true
		}
	}
	return false
}
func (g *testGrants) CanPublish(string) bool { return false }
func (g *testGrants) Sub() string            { return g.sub }
func (g *testGrants) Expiry() int64          { return g.exp }

// attachGranted attaches the shard end of a socketpair whose connection
// holds grants g.
func attachGranted(t *testing.T, s *Shard, g Grants) *peer {
	t.Helper()
	return attachSocketpair(t, s, g, 0)
}

// expectCloseFrame reads the next frame and checks it is a close with
// code and text.
func (p *peer) expectCloseFrame(code ws.StatusCode, text string) {
	p.t.Helper()
	op, b := p.next()
	if op != ws.OpClose || len(b) < 2 || ws.StatusCode(uint16(b[0])<<8|uint16(b[1])) != code || string(b[2:]) != text {
		p.t.Fatalf("got op %v %q, want close %d %q", op, b, code, text)
	}
}

// refreshWith returns a Refresh hook that hands out g for every token
// ("bad" fails).
func refreshWith(g Grants) func(string) (Grants, error) {
	return func(token string) (Grants, error) {
		if token == "bad" {
			return nil, errors.New("signature is invalid")
		}
		return g, nil
	}
}

// TestConnStaysSmall: sessions must not grow the per-connection struct;
// idle memory per connection is a product target (see doc.go).
func TestConnStaysSmall(t *testing.T) {
	if got := unsafe.Sizeof(conn{}); got > 144 {
		t.Fatalf("conn is %d bytes, want at most 144", got)
	}
}

// TestSweepClosesExpiredTokens: a tick closes, with 4001, the connections
// whose token's exp has passed, and only those: a later exp and no exp at
// all stay open, as does a connection without grants.
func TestSweepClosesExpiredTokens(t *testing.T) {
	s := newTestShard(t, nil)
	now := time.Now().Unix()
	expiredPeer := attachGranted(t, s, &testGrants{sub: "a", exp: now})
	later := attachGranted(t, s, &testGrants{sub: "b", exp: now + 3600})
	never := attachGranted(t, s, &testGrants{sub: "c"})
	open := attachPeer(t, s)

	s.Tick()
	// The inbox runs in order: the broadcast is handled after the sweep.
	if err := s.Broadcast("", []byte("\x81\x03all")); err != nil {
		t.Fatal(err)
	}
	expiredPeer.expectCloseFrame(StatusTokenExpired, "token expired")
	for _, p := range []*peer{later, never, open} {
		p.expectText("all")
	}
	if got := counterValue(s.opts.Metrics.Disconnects[ReasonTokenExpired]); got != 1 {
		t.Fatalf("token_expired disconnects %v, want 1", got)
	}
}

// TestRefresh covers the refresh request's answers: without auth it is a
// bad_request; a token that fails to verify, names another subject or
// expires sooner is bad_token; otherwise "refreshed" with the new exp, or
// without "expires" for a token that never expires.
func TestRefresh(t *testing.T) {
	const exp = 2_000_000_000
	cases := []struct {
		name    string
		hook    func(string) (Grants, error) // nil: no auth
		old     Grants                       // nil: the connection has no grants
		token   string
		want    string // the reply, exactly
		wantSub string // a substring of the reply, when the message is free text
	}{
		{name: "no auth", old: nil, hook: nil, token: "t",
			want: `{"type":"error","id":4,"code":"bad_request","message":"refresh needs auth, and the gateway runs without tokens"}`},
		{name: "hook but connection without grants", hook: refreshWith(&testGrants{sub: "u"}), old: nil, token: "t",
			wantSub: `"code":"bad_request"`},
		{name: "token fails to verify", hook: refreshWith(&testGrants{sub: "u"}), old: &testGrants{sub: "u", exp: exp}, token: "bad",
			wantSub: `"code":"bad_token","message":"token refused (signature is invalid); the token in force stays"`},
		{name: "another subject", hook: refreshWith(&testGrants{sub: "v", exp: exp + 10}), old: &testGrants{sub: "u", exp: exp}, token: "t",
			wantSub: `"code":"bad_token","message":"token names another subject`},
		{name: "earlier exp", hook: refreshWith(&testGrants{sub: "u", exp: exp - 1}), old: &testGrants{sub: "u", exp: exp}, token: "t",
			wantSub: `"code":"bad_token","message":"token expires before the one in force`},
		{name: "exp where there was none", hook: refreshWith(&testGrants{sub: "u", exp: exp}), old: &testGrants{sub: "u"}, token: "t",
			wantSub: `"code":"bad_token","message":"token expires before the one in force`},
		{name: "later exp", hook: refreshWith(&testGrants{sub: "u", exp: exp + 60}), old: &testGrants{sub: "u", exp: exp}, token: "t",
			want: `{"type":"refreshed","id":4,"expires":` + strconv.Itoa(exp+60) + `}`},
		{name: "same exp", hook: refreshWith(&testGrants{sub: "u", exp: exp}), old: &testGrants{sub: "u", exp: exp}, token: "t",
			want: `{"type":"refreshed","id":4,"expires":` + strconv.Itoa(exp) + `}`},
		{name: "no exp after an exp", hook: refreshWith(&testGrants{sub: "u"}), old: &testGrants{sub: "u", exp: exp}, token: "t",
			want: `{"type":"refreshed","id":4}`},
		{name: "no exp after none", hook: refreshWith(&testGrants{sub: ""}), old: &testGrants{sub: ""}, token: "t",
			want: `{"type":"refreshed","id":4}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestShard(t, func(o *Options) { o.Refresh = tc.hook })
			var p *peer
			if tc.old == nil {
				p = attachPeer(t, s)
			} else {
				p = attachGranted(t, s, tc.old)
			}
			p.send(ws.OpText, `{"type":"refresh","token":"`+tc.token+`","id":4}`)
			op, b := p.next()
			if op != ws.OpText {
				t.Fatalf("got op %v %q", op, b)
			}
			if tc.want != "" && string(b) != tc.want {
				t.Fatalf("got %s, want %s", b, tc.want)
			}
			if !strings.Contains(string(b), tc.wantSub) || !strings.Contains(string(b), `"id":4`) {
				t.Fatalf("got %s, want it to contain %s and the id", b, tc.wantSub)
			}
		})
	}
}

// TestRefreshDecidesTheExpiry: the sweep goes by the grants in force. A
// refused refresh leaves the old (here already passed) exp to close the
// connection; an accepted one, even after the old exp but before the
// sweep got to it, keeps the connection open.
func TestRefreshDecidesTheExpiry(t *testing.T) {
	now := time.Now().Unix()
	s := newTestShard(t, func(o *Options) { o.Refresh = refreshWith(&testGrants{sub: "u", exp: now + 3600}) })
	refused := attachGranted(t, s, &testGrants{sub: "other", exp: now})
	accepted := attachGranted(t, s, &testGrants{sub: "u", exp: now})

	refused.send(ws.OpText, `{"type":"refresh","token":"t","id":1}`)
	if _, b := refused.next(); !strings.Contains(string(b), `"bad_token"`) {
		t.Fatalf("got %s, want bad_token", b)
	}
	accepted.send(ws.OpText, `{"type":"refresh","token":"t","id":1}`)
	accepted.expectText(`{"type":"refreshed","id":1,"expires":` + strconv.FormatInt(now+3600, 10) + `}`)

	s.Tick()
	if err := s.Broadcast("", []byte("\x81\x03all")); err != nil {
		t.Fatal(err)
	}
	refused.expectCloseFrame(StatusTokenExpired, "token expired")
	accepted.expectText("all")
}

// TestRefreshRevokesForbiddenSubscriptions: the new grants replace the
// old; each subscription they no longer allow ends with an unsubscribed
// notice (reason forbidden) before the refreshed reply, and leaves the
// channel index, the gauge and the broker interest like an unsubscribe.
// The allowed subscription keeps its messages.
func TestRefreshRevokesForbiddenSubscriptions(t *testing.T) {
	events := make(chan string, 16)
	s := newTestShard(t, func(o *Options) {
		o.Refresh = refreshWith(&testGrants{sub: "u", prefixes: []string{"keep."}})
		o.OnChannel = func(ch string, active bool, ready func(error)) {
			if active {
				ready(nil)
				return
			}
			events <- "-" + ch
		}
	})
	p := attachGranted(t, s, &testGrants{sub: "u", prefixes: []string{"keep.", "drop."}})
	for _, ch := range []string{"drop.a", "keep.a", "drop.b"} {
		p.send(ws.OpText, `{"type":"subscribe","channel":"`+ch+`"}`)
		p.expectText(`{"type":"subscribed","channel":"` + ch + `"}`)
	}
	p.send(ws.OpText, `{"type":"refresh","token":"t","id":"r"}`)
	got := map[string]bool{}
	for range 2 {
		_, b := p.next()
		got[string(b)] = true
	}
	for _, ch := range []string{"drop.a", "drop.b"} {
		if !got[`{"type":"unsubscribed","channel":"`+ch+`","reason":"forbidden"}`] {
			t.Fatalf("no forbidden notice for %s; got %v", ch, got)
		}
	}
	p.expectText(`{"type":"refreshed","id":"r"}`)
	for range 2 {
		if ev := <-events; !strings.HasPrefix(ev, "-drop.") {
			t.Fatalf("OnChannel %s, want the dropped channels to go", ev)
		}
	}

	for _, ch := range []string{"drop.a", "keep.a"} {
		if err := s.Broadcast(ch, []byte("\x81\x06"+ch)); err != nil {
			t.Fatal(err)
		}
	}
	p.expectText("keep.a")
	if got := gaugeValue(s.opts.Metrics.Subscriptions); got != 1 {
		t.Fatalf("subscriptions gauge %v, want 1", got)
	}
	// Subscribing again is checked against the new grants.
	p.send(ws.OpText, `{"type":"subscribe","channel":"drop.a","id":9}`)
	if _, b := p.next(); !strings.Contains(string(b), `"code":"forbidden"`) {
		t.Fatalf("got %s, want forbidden", b)
	}
}

// TestRefreshAnswersPendingSubscribeForbidden: a subscribe still waiting
// for its channel's interest when a refresh forbids the channel gets the
// forbidden error (with its id), not an unsubscribed notice, and no
// "subscribed" once the interest is ready.
func TestRefreshAnswersPendingSubscribeForbidden(t *testing.T) {
	readies := make(chan func(error), 4)
	s := newTestShard(t, func(o *Options) {
		o.Refresh = refreshWith(&testGrants{sub: "u", prefixes: []string{"keep."}})
		o.OnChannel = func(ch string, active bool, ready func(error)) {
			if active {
				readies <- ready
			}
		}
	})
	other := attachGranted(t, s, &testGrants{sub: "w", prefixes: []string{"drop."}})
	p := attachGranted(t, s, &testGrants{sub: "u", prefixes: []string{"keep.", "drop."}})
	other.send(ws.OpText, `{"type":"subscribe","channel":"drop.a","id":1}`)
	ready := <-readies
	p.send(ws.OpText, `{"type":"subscribe","channel":"drop.a","id":7}`)
	p.send(ws.OpText, `{"type":"refresh","token":"t","id":8}`)
	p.expectText(`{"type":"error","id":7,"code":"forbidden","message":"not allowed to subscribe to this channel"}`)
	p.expectText(`{"type":"refreshed","id":8}`)

	ready(nil)
	other.expectText(`{"type":"subscribed","channel":"drop.a","id":1}`)
	// Anything queued for p after the ready would come before this reply.
	p.send(ws.OpText, `{"type":"unsubscribe","channel":"x","id":9}`)
	p.expectText(`{"type":"unsubscribed","channel":"x","id":9}`)
}

// TestRefreshIsRateLimited: a refresh is a request like any other under
// ClientRate, and a refused one never reaches the verifier.
func TestRefreshIsRateLimited(t *testing.T) {
	var calls atomic.Int32
	s := newTestShard(t, func(o *Options) {
		o.ClientRate, o.ClientBurst = 0.001, 1
		o.Refresh = func(string) (Grants, error) {
			calls.Add(1)
			return &testGrants{sub: "u"}, nil
		}
	})
	p := attachGranted(t, s, &testGrants{sub: "u"})
	p.send(ws.OpText, `{"type":"refresh","token":"t","id":1}`)
	p.expectText(`{"type":"refreshed","id":1}`)
	p.send(ws.OpText, `{"type":"refresh","token":"t","id":2}`)
	p.expectText(`{"type":"error","id":2,"code":"rate_limited","message":"request rate exceeded"}`)
	if n := calls.Load(); n != 1 {
		t.Fatalf("verifier called %d times, want 1", n)
	}
}
