package gateway

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/shardgate/shardgate/internal/wstest"
)

// This file covers SPEC "Auth and origin" end to end: tokens and origins
// checked at upgrade, and the token's grants checked on every request.

const testAuthSecret = "gateway-test-secret-0123456789abcdef"

// signToken returns an HS256 JWT over claims, signed with secret.
func signToken(t testing.TB, secret string, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func bearer(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

// startAuthGateway starts a gateway that requires tokens, with bystanders
// holding a token for their channel.
func startAuthGateway(t *testing.T) (*testGateway, *bystanders) {
	t.Helper()
	g := startGateway(t, func(c *Config) { c.AuthSecret = testAuthSecret })
	tok := signToken(t, testAuthSecret, jwt.MapClaims{"sub": "bystander", "channels": []string{bystanderChannel}})
	return g, newBystanders(t, g, bearer(tok))
}

// TestAuthAtUpgrade: with -auth-secret, a missing, invalid or expired
// token gets 401 and no upgrade; a valid one, as a bearer header or as
// ?token=, upgrades.
func TestAuthAtUpgrade(t *testing.T) {
	g, bs := startAuthGateway(t)
	now := time.Now().Unix()
	claims := jwt.MapClaims{"sub": "u1", "exp": now + 600, "channels": []string{"news"}}
	good := signToken(t, testAuthSecret, claims)
	forged := signToken(t, "some-other-secret", claims)
	expired := signToken(t, testAuthSecret, jwt.MapClaims{"sub": "u1", "exp": now - 1, "channels": []string{"news"}})
	enc := base64.RawURLEncoding
	algNone := enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(`{"sub":"u1","channels":["news"]}`)) + "."
	hs512, err := jwt.NewWithClaims(jwt.SigningMethodHS512, claims).SignedString([]byte(testAuthSecret))
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name   string
		query  string // token for ?token=
		header http.Header
		ok     bool
	}{
		{name: "no token"},
		{name: "bad signature", header: bearer(forged)},
		{name: "expired", header: bearer(expired)},
		{name: "not a JWT", header: bearer("not-a-jwt")},
		{name: "alg none", header: bearer(algNone)},
		{name: "HS512", header: bearer(hs512)},
		{name: "Basic scheme", header: http.Header{"Authorization": {"Basic " + good}}},
		{name: "empty bearer", header: http.Header{"Authorization": {"Bearer "}}},
		{name: "query: bad signature", query: forged},
		{name: "query: expired", query: expired},
		{name: "query: empty", query: ""},
		{name: "bearer header", header: bearer(good), ok: true},
		{name: "bearer scheme in lower case", header: http.Header{"Authorization": {"bearer " + good}}, ok: true},
		{name: "query token", query: good, ok: true},
	}
	refused := 0
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := g.wsURL()
			if tc.query != "" || tc.name == "query: empty" {
				u += "?token=" + url.QueryEscape(tc.query)
			}
			c, err := wstest.TryDial(t, u, tc.header)
			if !tc.ok {
				if err == nil {
					t.Fatal("upgraded without a valid token")
				}
				if got := statusOf(t, err); got != http.StatusUnauthorized {
					t.Fatalf("status %d, want 401", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("dial with a valid token: %v", err)
			}
			c.Subscribe("news")
			c.Close()
		})
		if !tc.ok {
			refused++
		}
		bs.check(t)
	}

	// The 401 answer itself, and the connection closed after it.
	resp, body := rawExchange(t, g, upgradeRequest("/ws", ""))
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("raw upgrade without a token: %d %q, want 401", resp.StatusCode, body)
	}
	refused++
	bs.check(t)

	g.waitMetric(float64(refused), "shardgate_upgrades_total", "result", "unauthorized")
	g.waitMetric(float64(len(bs.conns)+3), "shardgate_upgrades_total", "result", "ok")
}

// TestAuthGrants: the "channels" claim limits subscriptions and the
// "publish" claim limits publishing; a refused request gets error
// "forbidden" with its id, and the connection stays open.
func TestAuthGrants(t *testing.T) {
	g, bs := startAuthGateway(t)
	reader := wstest.Dial(t, g.wsURL(), bearer(signToken(t, testAuthSecret, jwt.MapClaims{"channels": []string{"news.*"}})))
	writer := wstest.Dial(t, g.wsURL(), bearer(signToken(t, testAuthSecret, jwt.MapClaims{
		"channels": []string{"chat.*"}, "publish": []string{"chat.*"}})))
	nothing := wstest.Dial(t, g.wsURL(), bearer(signToken(t, testAuthSecret, jwt.MapClaims{"sub": "nobody"})))

	cases := []struct {
		name    string
		c       *wstest.Client
		req     string
		id      string // the id the reply must echo
		reply   string // "subscribed", "published" or "forbidden"
		channel string
	}{
		{"subscribe matching", reader, `{"type":"subscribe","channel":"news.eu","id":1}`, "1", "subscribed", "news.eu"},
		{"subscribe matching deeper", reader, `{"type":"subscribe","channel":"news.eu.west","id":"a"}`, `"a"`, "subscribed", "news.eu.west"},
		{"subscribe star needs a byte", reader, `{"type":"subscribe","channel":"news.","id":2}`, "2", "forbidden", ""},
		{"subscribe prefix only", reader, `{"type":"subscribe","channel":"news","id":3}`, "3", "forbidden", ""},
		{"subscribe other channel", reader, `{"type":"subscribe","channel":"sport","id":"s-4"}`, `"s-4"`, "forbidden", ""},
		{"subscribe pattern as suffix", reader, `{"type":"subscribe","channel":"xnews.eu","id":5}`, "5", "forbidden", ""},
		{"publish without a publish claim", reader, `{"type":"publish","channel":"news.eu","data":1,"id":6}`, "6", "forbidden", ""},
		{"publish allowed", writer, `{"type":"publish","channel":"chat.room","data":1,"id":7}`, "7", "published", "chat.room"},
		{"publish outside the claim", writer, `{"type":"publish","channel":"news.eu","data":1,"id":8}`, "8", "forbidden", ""},
		{"subscribe without a channels claim", nothing, `{"type":"subscribe","channel":"news.eu","id":9}`, "9", "forbidden", ""},
		{"publish without any claim", nothing, `{"type":"publish","channel":"chat.room","data":1,"id":10}`, "10", "forbidden", ""},
	}
	for _, tc := range cases {
		// The clients belong to this test's goroutine, so the cases run
		// here rather than in subtests; t.Run only names them.
		tc.c.Send(tc.req)
		m := tc.c.Read()
		t.Run(tc.name, func(t *testing.T) {
			switch tc.reply {
			case "forbidden":
				if m.Type != "error" || m.Code != "forbidden" {
					t.Fatalf("got %+v, want error forbidden", m)
				}
				if m.Message == "" {
					t.Errorf("error without a message: %+v", m)
				}
			default:
				if m.Type != tc.reply || m.Channel == nil || *m.Channel != tc.channel {
					t.Fatalf("got %+v, want %s on %s", m, tc.reply, tc.channel)
				}
			}
			if string(m.ID) != tc.id {
				t.Fatalf("id %s, want %s", m.ID, tc.id)
			}
		})
		bs.check(t)
	}

	// The granted subscriptions work; refused ones hold nothing; every
	// client is still connected.
	writer.Send(`{"type":"subscribe","channel":"chat.room","id":11}`)
	writer.Expect("subscribed")
	g.mustPublish("news.eu", `"eu"`)
	g.mustPublish("sport", `"sport"`)
	g.mustPublish("chat.room", `"chat"`)
	for _, want := range []string{"news.eu", "chat.room"} {
		var c *wstest.Client
		if want == "news.eu" {
			c = reader
		} else {
			c = writer
		}
		if m := c.Expect("message"); m.Channel == nil || *m.Channel != want {
			t.Fatalf("got %+v, want a message on %s", m, want)
		}
	}
	g.waitMetric(float64(len(bs.conns)+3), "shardgate_connections")
}

// TestOrigins: with -allowed-origins, an Origin that matches no entry gets
// 403; an entry is a full origin or a scheme-less host pattern; hosts
// compare case-insensitively; a request without Origin is let through.
func TestOrigins(t *testing.T) {
	g := startGateway(t, func(c *Config) { c.AllowedOrigins = "https://app.example.com,*.example.org" })
	bs := newBystanders(t, g, nil)
	cases := []struct {
		origin string // "": no Origin header
		ok     bool
	}{
		{"https://app.example.com", true},
		{"https://APP.Example.COM", true},
		{"https://app.example.com:443", true},
		{"http://a.example.org", true},
		{"https://b.c.example.org", true},
		{"wss://A.EXAMPLE.ORG:8443", true},
		{"", true},
		{"https://evil.com", false},
		{"https://example.org", false},
		{"http://app.example.com", false},
		{"https://app.example.com:8443", false},
		{"https://app.example.com.evil.com", false},
		{"https://evilexample.org", false},
		{"null", false},
	}
	refused := 0
	for _, tc := range cases {
		name := tc.origin
		if name == "" {
			name = "no Origin header"
		}
		t.Run(name, func(t *testing.T) {
			var h http.Header
			if tc.origin != "" {
				h = http.Header{"Origin": {tc.origin}}
			}
			c, err := wstest.TryDial(t, g.wsURL(), h)
			if !tc.ok {
				if err == nil {
					t.Fatal("upgraded from a foreign origin")
				}
				if got := statusOf(t, err); got != http.StatusForbidden {
					t.Fatalf("status %d, want 403", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			c.Subscribe("o")
			c.Close()
		})
		if !tc.ok {
			refused++
		}
		bs.check(t)
	}
	g.waitMetric(float64(refused), "shardgate_upgrades_total", "result", "forbidden_origin")
}
