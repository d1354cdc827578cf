package gateway

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"
	"github.com/shardgate/shardgate/internal/wstest"
	"github.com/shardgate/shardgate/shard"
)

// This file covers SPEC "Sessions" end to end: a connection is closed with
// 4001 once its token's exp has passed, unless a refresh replaced the
// token; a refresh's grants replace the old ones.
//
// Tokens expire a couple of seconds ahead, so these tests take that long;
// they run in parallel with each other. Every wait is on an event (a
// frame, a metric), never a sleep.

// expirySlack is how long after exp a 4001 may arrive. The gateway's
// promise is "within a second" (a sweep every 500 ms at most); the rest is
// room for a loaded 2-core CI machine running the race detector, where a
// goroutine can wait hundreds of milliseconds for a CPU.
const expirySlack = 2500 * time.Millisecond

// startSessionGateway starts a gateway that requires tokens, with one
// shard so that every connection of a test shares it: a witness proves
// that an expiry closes only its own connection.
func startSessionGateway(t *testing.T) *testGateway {
	t.Helper()
	return startGateway(t, func(c *Config) {
		c.AuthSecret = testAuthSecret
		c.Shards = 1
	})
}

// sessionToken signs a token for sub that may subscribe to channels and
// expires at exp (Unix seconds; 0: no exp claim).
func sessionToken(t *testing.T, sub string, exp int64, channels ...string) string {
	t.Helper()
	claims := jwt.MapClaims{"sub": sub, "channels": channels}
	if exp != 0 {
		claims["exp"] = exp
	}
	return signToken(t, testAuthSecret, claims)
}

// sessionMsg is a gateway message with the fields sessions add.
type sessionMsg struct {
	Type    string          `json:"type"`
	Channel string          `json:"channel"`
	ID      json.RawMessage `json:"id"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Reason  string          `json:"reason"`
	Expires *int64          `json:"expires"`
	Data    json.RawMessage `json:"data"`
}

// readMsg returns c's next text message, answering pings.
func readMsg(t *testing.T, c *wstest.Client) sessionMsg {
	t.Helper()
	for {
		h, p, err := c.ReadFrame(wstest.DefaultTimeout)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		switch h.OpCode {
		case ws.OpPing:
			c.WriteFrame(ws.MaskFrame(ws.NewPongFrame(p)))
			continue
		case ws.OpText:
			var m sessionMsg
			if err := json.Unmarshal(p, &m); err != nil {
				t.Fatalf("server sent invalid JSON %q: %v", p, err)
			}
			return m
		default:
			t.Fatalf("expected a text frame, got opcode %v payload %q", h.OpCode, p)
		}
	}
}

// refresh sends a refresh with token and id and returns the answer.
func refresh(t *testing.T, c *wstest.Client, token string, id int) sessionMsg {
	t.Helper()
	c.Send(map[string]any{"type": "refresh", "token": token, "id": id})
	m := readMsg(t, c)
	if string(m.ID) != jsonInt(id) {
		t.Fatalf("refresh %d answered %+v", id, m)
	}
	return m
}

func jsonInt(i int) string { b, _ := json.Marshal(i); return string(b) }

// expectMessage (admin_disconnect_test.go) checks the next frame exactly.

// expectExpiry waits for c's close frame and checks it is 4001 "token
// expired", arriving no earlier than exp and at most expirySlack after.
func expectExpiry(t *testing.T, c *wstest.Client, exp int64) {
	t.Helper()
	reason := c.ExpectClose(shard.StatusTokenExpired)
	at := time.Now()
	if reason != "token expired" {
		t.Errorf("close reason %q, want %q", reason, "token expired")
	}
	deadline := time.Unix(exp, 0)
	if at.Before(deadline) {
		t.Fatalf("closed at %s, before exp %s", at.Format(time.StampMilli), deadline.Format(time.StampMilli))
	}
	if late := at.Sub(deadline); late > expirySlack {
		t.Fatalf("closed %v after exp, want within %v", late, expirySlack)
	}
	c.ExpectEOF()
}

// TestTokenExpiryClosesWith4001: a connection whose token's exp passes is
// closed with 4001 "token expired" within about a second, and counted
// under token_expired; on the same shard, a connection with a later exp
// and one whose token has no exp at all keep receiving.
func TestTokenExpiryClosesWith4001(t *testing.T) {
	t.Parallel()
	g := startSessionGateway(t)
	exp := time.Now().Unix() + 2
	expiring := wstest.Dial(t, g.wsURL(), bearer(sessionToken(t, "u1", exp, "news")))
	later := wstest.Dial(t, g.wsURL(), bearer(sessionToken(t, "u2", exp+3600, "news")))
	never := wstest.Dial(t, g.wsURL(), bearer(sessionToken(t, "u3", 0, "news")))
	all := []*wstest.Client{expiring, later, never}
	for _, c := range all {
		c.Subscribe("news")
	}
	g.mustPublish("news", `"before"`)
	for _, c := range all {
		expectMessage(t, c, "news", `"before"`)
	}

	expectExpiry(t, expiring, exp)
	g.waitMetric(1, "shardgate_disconnects_total", "reason", "token_expired")

	// The sweep that closed expiring has looked at the others too.
	g.mustPublish("news", `"after"`)
	for _, c := range []*wstest.Client{later, never} {
		expectMessage(t, c, "news", `"after"`)
	}
	g.waitMetric(2, "shardgate_connections")
	if got := g.metricSum("shardgate_disconnects_total", "reason", "token_expired"); got != 1 {
		t.Fatalf("token_expired disconnects %v, want 1", got)
	}
}

// TestRefreshExtendsTheSession: a refresh with a later exp is answered
// with "refreshed" and that exp; the connection outlives its first exp
// and is closed at the new one. A refresh to a token without exp is
// answered without "expires" and outlives both.
func TestRefreshExtendsTheSession(t *testing.T) {
	t.Parallel()
	g := startSessionGateway(t)
	first := time.Now().Unix() + 2
	second := first + 2
	extended := wstest.Dial(t, g.wsURL(), bearer(sessionToken(t, "u1", first, "news")))
	unbounded := wstest.Dial(t, g.wsURL(), bearer(sessionToken(t, "u2", first, "news")))

	if m := refresh(t, extended, sessionToken(t, "u1", second, "news"), 4); m.Type != "refreshed" || m.Expires == nil || *m.Expires != second {
		t.Fatalf("refresh answered %+v, want refreshed with expires %d", m, second)
	}
	if m := refresh(t, unbounded, sessionToken(t, "u2", 0, "news"), 5); m.Type != "refreshed" || m.Expires != nil {
		t.Fatalf("refresh answered %+v, want refreshed without expires", m)
	}
	unbounded.Subscribe("news")

	expectExpiry(t, extended, second) // not at first: the close comes no earlier than second
	g.waitMetric(1, "shardgate_disconnects_total", "reason", "token_expired")
	g.mustPublish("news", `"still here"`)
	expectMessage(t, unbounded, "news", `"still here"`)
}

// TestRefreshRefusedKeepsTheOldToken: a refresh whose token names another
// subject, expires sooner, has a bad signature or is not a token at all
// gets error bad_token (with a message, and the request's id); the old
// token stays in force, and its exp still closes the connection.
func TestRefreshRefusedKeepsTheOldToken(t *testing.T) {
	t.Parallel()
	g := startSessionGateway(t)
	exp := time.Now().Unix() + 3
	c := wstest.Dial(t, g.wsURL(), bearer(sessionToken(t, "u1", exp, "news")))

	cases := []struct {
		name  string
		token string
	}{
		{"another subject", sessionToken(t, "u2", exp+60, "news")},
		{"earlier exp", sessionToken(t, "u1", exp-1, "news")},
		{"bad signature", signToken(t, "some-other-secret", jwt.MapClaims{"sub": "u1", "exp": exp + 60, "channels": []string{"news"}})},
		{"garbage", "not-a-jwt"},
		{"empty", ""},
	}
	for i, tc := range cases {
		// The client belongs to this test's goroutine, so the cases run
		// here; t.Run only names them.
		m := refresh(t, c, tc.token, i+1)
		t.Run(tc.name, func(t *testing.T) {
			if m.Type != "error" || m.Code != "bad_token" || m.Message == "" {
				t.Fatalf("got %+v, want error bad_token with a message", m)
			}
			t.Logf("bad_token: %s", m.Message)
		})
	}
	// Still open, with the old grants.
	c.Subscribe("news")
	expectExpiry(t, c, exp)
	g.waitMetric(1, "shardgate_disconnects_total", "reason", "token_expired")
}

// TestRefreshNarrowerGrantsEndForbiddenSubscriptions: the refreshed
// token's grants replace the old ones. Each subscription they no longer
// allow ends with unsubscribed/forbidden (before the refreshed reply) and
// its messages stop; the others continue; the subscription gauge follows.
func TestRefreshNarrowerGrantsEndForbiddenSubscriptions(t *testing.T) {
	t.Parallel()
	g := startSessionGateway(t)
	c := wstest.Dial(t, g.wsURL(), bearer(signToken(t, testAuthSecret, jwt.MapClaims{
		"sub": "u1", "channels": []string{"news.*", "sport", "chat"}})))
	for _, ch := range []string{"news.eu", "sport", "chat", "news.us"} {
		c.Subscribe(ch)
	}
	g.waitMetric(4, "shardgate_subscriptions")

	c.Send(map[string]any{"type": "refresh", "id": 7, "token": signToken(t, testAuthSecret, jwt.MapClaims{
		"sub": "u1", "channels": []string{"news.*"}})})
	ended := map[string]bool{}
	for {
		m := readMsg(t, c)
		if m.Type == "refreshed" {
			if string(m.ID) != "7" || m.Expires != nil {
				t.Fatalf("got %+v, want refreshed with id 7 and no expires", m)
			}
			break
		}
		if m.Type != "unsubscribed" || m.Reason != "forbidden" || m.ID != nil {
			t.Fatalf("got %+v, want unsubscribed with reason forbidden and no id", m)
		}
		ended[m.Channel] = true
	}
	if len(ended) != 2 || !ended["sport"] || !ended["chat"] {
		t.Fatalf("ended %v, want sport and chat", ended)
	}
	g.waitMetric(2, "shardgate_subscriptions")

	// One publisher, in order: a message on an ended channel would come
	// before the news.eu one.
	for _, ch := range []string{"sport", "chat", "news.eu", "news.us"} {
		g.mustPublish(ch, `"`+ch+`"`)
	}
	expectMessage(t, c, "news.eu", `"news.eu"`)
	expectMessage(t, c, "news.us", `"news.us"`)

	// The new grants decide subscriptions from now on.
	c.Send(`{"type":"subscribe","channel":"sport","id":8}`)
	if m := readMsg(t, c); m.Type != "error" || m.Code != "forbidden" || string(m.ID) != "8" {
		t.Fatalf("got %+v, want error forbidden for id 8", m)
	}
}

// TestRefreshWithoutAuthIsBadRequest: a gateway without auth has no token
// to refresh: the request is a bad_request and the connection stays.
func TestRefreshWithoutAuthIsBadRequest(t *testing.T) {
	g := startGateway(t, nil)
	c := wstest.Dial(t, g.wsURL(), nil)
	m := refresh(t, c, sessionToken(t, "u1", time.Now().Unix()+60, "news"), 9)
	if m.Type != "error" || m.Code != "bad_request" || m.Message == "" {
		t.Fatalf("got %+v, want error bad_request", m)
	}
	c.Subscribe("news")
	g.mustPublish("news", "1")
	expectMessage(t, c, "news", "1")
}
