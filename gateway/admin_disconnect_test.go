package gateway

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"
	"github.com/shardgate/shardgate/internal/wstest"
)

// This file covers POST /api/disconnect (SPEC "Admin API safety"): every
// connection whose token names the sub, on every node, is closed with
// 4003 "disconnected" and counted as kicked; no other connection notices.

// dialAs opens a connection with a token whose sub is sub, allowed to
// subscribe to every channel.
func dialAs(t testing.TB, g *testGateway, sub string) *wstest.Client {
	t.Helper()
	tok := signToken(t, testAuthSecret, jwt.MapClaims{"sub": sub, "channels": []string{"*"}})
	c := wstest.Dial(t, g.wsURL(), bearer(tok))
	// The acceptor writes the 101 before the shard has attached the
	// connection, so a disconnect posted the moment Dial returns could
	// reach the shard first and find no one to kick. A ping's pong comes
	// from the shard: after it, the connection is there.
	c.WriteFrame(ws.MaskFrame(ws.NewPingFrame([]byte("attached?"))))
	h, p, err := c.ReadFrame(wstest.DefaultTimeout)
	if err != nil || h.OpCode != ws.OpPong || string(p) != "attached?" {
		t.Fatalf("%v: waiting for the pong that proves the attach: %v %v %q", c, err, h.OpCode, p)
	}
	return c
}

// expectKicked checks that c is closed with 4003 "disconnected": it reads
// the close frame, answers it and sees the TCP connection end.
func expectKicked(t testing.TB, c *wstest.Client) {
	t.Helper()
	if reason := c.ExpectClose(4003); reason != "disconnected" {
		t.Fatalf("%v: close reason %q, want \"disconnected\"", c, reason)
	}
	// The server may already be gone from the socket: a failed echo is
	// fine, the end of the stream is what counts.
	_ = ws.WriteFrame(c.Conn, ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(4003, ""))))
	c.ExpectEOF()
}

// expectMessage reads the next frame of c and checks that it is data on
// channel.
func expectMessage(t testing.TB, c *wstest.Client, channel, data string) {
	t.Helper()
	want := fmt.Sprintf(`{"type":"message","channel":%q,"data":%s}`, channel, data)
	if got := readTextFrame(t, c); got != want {
		t.Fatalf("%v got %s, want %s", c, got, want)
	}
}

// TestDisconnectAPIClosesTheSubOnly: POST /api/disconnect {"sub":"alice"}
// closes every connection of alice, over every shard, with 4003
// "disconnected" and counts them as kicked, while other subs' connections
// on the same shards (one shard: all share it) stay open and keep
// receiving messages.
func TestDisconnectAPIClosesTheSubOnly(t *testing.T) {
	for _, shards := range []int{1, 4} {
		t.Run(fmt.Sprintf("%d shards", shards), func(t *testing.T) {
			g := startGateway(t, func(c *Config) {
				c.AuthSecret = testAuthSecret
				c.Shards = shards
			})
			var alice, others []*wstest.Client
			for i := range 2 * shards {
				a := dialAs(t, g, "alice")
				a.Subscribe("news")
				alice = append(alice, a)
				// Subjects that resemble alice's but are not hers.
				for _, sub := range []string{"bob", "Alice", "alice2"}[:1+i%3] {
					o := dialAs(t, g, sub)
					o.Subscribe("news")
					others = append(others, o)
				}
			}
			g.waitMetric(float64(len(alice)+len(others)), "shardgate_connections")

			if code, body := postJSON(t, g, "/api/disconnect", `{"sub":"alice"}`); code != http.StatusOK || strings.TrimSpace(body) != `{"ok":true}` {
				t.Fatalf("disconnect: %d %q, want 200 {\"ok\":true}", code, body)
			}
			for _, a := range alice {
				expectKicked(t, a)
			}
			g.waitMetric(float64(len(alice)), "shardgate_disconnects_total", "reason", "kicked")
			g.waitMetric(float64(len(others)), "shardgate_connections")

			for i := range 3 {
				data := fmt.Sprintf(`"after %d"`, i)
				if code, body := postJSON(t, g, "/api/publish", `{"channel":"news","data":`+data+`}`); code != http.StatusOK {
					t.Fatalf("publish: %d %q", code, body)
				}
				for _, o := range others {
					expectMessage(t, o, "news", data)
				}
			}
			if n := g.metricSum("shardgate_disconnects_total"); n != float64(len(alice)) {
				t.Fatalf("disconnects_total = %v, want only alice's %d", n, len(alice))
			}
		})
	}
}

// TestDisconnectAPIRequests covers the answers of POST /api/disconnect to
// good and bad requests: 400 without a usable sub, 405 for other methods,
// 413 over -max-message-bytes, 200 for a sub nobody holds (and nobody is
// closed).
func TestDisconnectAPIRequests(t *testing.T) {
	const maxBytes = 2048
	g := startGateway(t, func(c *Config) {
		c.AuthSecret = testAuthSecret
		c.MaxMessageBytes = maxBytes
	})
	bystander := dialAs(t, g, "bystander")
	bystander.Subscribe("news")

	cases := []struct {
		name, method, body string
		status             int
	}{
		{"a sub nobody holds", "POST", `{"sub":"nobody"}`, 200},
		{"a sub with unknown fields", "POST", `{"sub":"nobody","reason":"x"}`, 200},
		{"no sub", "POST", `{}`, 400},
		{"empty sub", "POST", `{"sub":""}`, 400},
		{"null sub", "POST", `{"sub":null}`, 400},
		{"sub not a string", "POST", `{"sub":7}`, 400},
		{"sub a list", "POST", `{"sub":["bystander"]}`, 400},
		{"sub over 1024 bytes", "POST", `{"sub":"` + strings.Repeat("a", 1025) + `"}`, 400},
		{"invalid JSON", "POST", `{"sub":`, 400},
		{"not an object", "POST", `"bystander"`, 400},
		{"empty body", "POST", ``, 400},
		{"body over -max-message-bytes", "POST", `{"sub":"` + strings.Repeat("a", maxBytes) + `"}`, 413},
		{"GET", "GET", ``, 405},
		{"PUT", "PUT", `{"sub":"bystander"}`, 405},
		{"DELETE", "DELETE", `{"sub":"bystander"}`, 405},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr, body := adminDo(t, g, tc.method, "/api/disconnect", tc.body, jsonContent...)
			if code != tc.status {
				t.Fatalf("status %d %q, want %d", code, body, tc.status)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			switch tc.status {
			case http.StatusOK:
				if strings.TrimSpace(body) != `{"ok":true}` {
					t.Fatalf("reply %q, want {\"ok\":true}", body)
				}
			case http.StatusMethodNotAllowed:
				if allow := hdr.Get("Allow"); allow != http.MethodPost {
					t.Fatalf("Allow %q, want POST", allow)
				}
				checkAPIError(t, body)
			default:
				checkAPIError(t, body)
			}
		})
	}
	// The bystander, named in refused requests, is still connected: the
	// next frame it reads is a message published now.
	if code, body := postJSON(t, g, "/api/publish", `{"channel":"news","data":"still here"}`); code != http.StatusOK {
		t.Fatalf("publish: %d %q", code, body)
	}
	expectMessage(t, bystander, "news", `"still here"`)
	if n := g.metricSum("shardgate_disconnects_total"); n != 0 {
		t.Fatalf("disconnects_total = %v after requests that name nobody connected", n)
	}
}

// TestDisconnectAPINeedsAdminToken: with -admin-token, a disconnect
// without the token is refused and closes nothing.
func TestDisconnectAPINeedsAdminToken(t *testing.T) {
	const token = "disconnect-admin-token"
	g := startGateway(t, func(c *Config) {
		c.AuthSecret = testAuthSecret
		c.AdminToken = token
	})
	alice := dialAs(t, g, "alice")
	if code, body := postJSON(t, g, "/api/disconnect", `{"sub":"alice"}`); code != http.StatusUnauthorized {
		t.Fatalf("without the token: %d %q, want 401", code, body)
	}
	if code, body := postJSON(t, g, "/api/disconnect", `{"sub":"alice"}`, "Authorization", "Bearer "+token); code != http.StatusOK {
		t.Fatalf("with the token: %d %q, want 200", code, body)
	}
	expectKicked(t, alice)
	g.waitMetric(1, "shardgate_disconnects_total", "reason", "kicked")
}

// TestDisconnectAPIUnavailable: a broker that cannot take the request
// (here: closed) turns the disconnect into 503 with an error.
func TestDisconnectAPIUnavailable(t *testing.T) {
	g := startGateway(t, nil)
	if err := g.broker.Close(); err != nil {
		t.Fatal(err)
	}
	code, body := postJSON(t, g, "/api/disconnect", `{"sub":"alice"}`)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("status %d %q, want 503", code, body)
	}
	checkAPIError(t, body)
}

// TestClusterDisconnectAPI: on a three-node cluster, a disconnect posted
// to node A closes alice's connections on A, B and C with 4003
// "disconnected", each node counting its own as kicked, while bob's
// connections on every node (subscribed to the same channel as alice's)
// stay open and keep receiving messages published on any node.
func TestClusterDisconnectAPI(t *testing.T) {
	srv := startNATS(t, -1)
	url := "nats://" + srv.Addr().String()
	nodes := make([]*testGateway, 3)
	for i := range nodes {
		nodes[i] = startGateway(t, func(c *Config) {
			c.Broker = url
			c.AuthSecret = testAuthSecret
		})
	}
	for _, g := range nodes {
		g.waitReady(http.StatusOK)
		g.waitMetric(1, "shardgate_broker_connected")
	}

	alice := map[*testGateway][]*wstest.Client{}
	bob := map[*testGateway][]*wstest.Client{}
	for i, g := range nodes {
		for range i + 1 { // one on A, two on B, three on C
			a := dialAs(t, g, "alice")
			a.Subscribe("news")
			alice[g] = append(alice[g], a)
		}
		for range 3 - i { // three on A, two on B, one on C
			b := dialAs(t, g, "bob")
			b.Subscribe("news")
			bob[g] = append(bob[g], b)
		}
	}
	waitNATSSubs(t, srv, "news", len(nodes))
	for _, g := range nodes {
		g.waitMetric(float64(len(alice[g])+len(bob[g])), "shardgate_connections")
	}

	if code, body := postJSON(t, nodes[0], "/api/disconnect", `{"sub":"alice"}`); code != http.StatusOK {
		t.Fatalf("disconnect on A: %d %q", code, body)
	}
	for _, g := range nodes {
		for _, cl := range alice[g] {
			expectKicked(t, cl)
		}
		g.waitMetric(float64(len(alice[g])), "shardgate_disconnects_total", "reason", "kicked")
		g.waitMetric(float64(len(bob[g])), "shardgate_connections")
	}

	// Each node's bobs still hold their subscription, and messages from
	// every node still reach them all: nothing of bob's was closed,
	// unsubscribed or lost on any node.
	for i, from := range nodes {
		data := fmt.Sprintf(`"from node %d"`, i)
		if code, body := postJSON(t, from, "/api/publish", `{"channel":"news","data":`+data+`}`); code != http.StatusOK {
			t.Fatalf("publish on node %d: %d %q", i, code, body)
		}
		for _, g := range nodes {
			for _, b := range bob[g] {
				expectMessage(t, b, "news", data)
			}
		}
	}
	for i, g := range nodes {
		if n := g.metricSum("shardgate_disconnects_total"); n != float64(len(alice[g])) {
			t.Fatalf("node %d disconnects_total = %v, want alice's %d only", i, n, len(alice[g]))
		}
	}
}
