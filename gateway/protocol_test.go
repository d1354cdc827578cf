package gateway

// Tests of the SPEC's "Client protocol" section: acknowledgements, the
// message envelope, errors and their codes, channel names, subscription
// limits, rate limiting and per-publisher ordering, over real sockets.
//
// Absence ("the sender does not receive its own message", "messages arrive
// once") is proven with a barrier rather than a timeout: a marker published
// afterwards through the same pipeline must be the very next frame.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/shardgate/shardgate/internal/wstest"
)

// writeRaw and writeText write to c reporting through t: unlike c's own
// methods they may serve a connection dialled by a parent test.
func writeRaw(t testing.TB, c *wstest.Client, b []byte) {
	t.Helper()
	if _, err := c.Conn.Write(b); err != nil {
		t.Fatalf("%v: write: %v", c, err)
	}
}

// writeText sends msg as one masked text frame.
func writeText(t testing.TB, c *wstest.Client, msg string) {
	t.Helper()
	writeRaw(t, c, wire(textFrame(msg)))
}

// readText returns the next text frame from c, answering pings on the way.
// It reports through t (not c's own t), so it serves connections dialled
// by a parent test as well.
func readText(t testing.TB, c *wstest.Client) []byte {
	t.Helper()
	for {
		h, p, err := c.ReadFrame(wstest.DefaultTimeout)
		if err != nil {
			t.Fatalf("%v: read: %v", c, err)
		}
		switch h.OpCode {
		case ws.OpPing:
			if err := ws.WriteFrame(c.Conn, ws.MaskFrame(ws.NewPongFrame(p))); err != nil {
				t.Fatalf("%v: pong: %v", c, err)
			}
		case ws.OpText:
			if !h.Fin {
				t.Fatalf("%v: fragmented server frame %q", c, p)
			}
			return p
		default:
			t.Fatalf("%v: expected a text frame, got opcode %v payload %q", c, h.OpCode, p)
		}
	}
}

// expectText requires the next text frame to be exactly want, byte for byte.
func expectText(t testing.TB, c *wstest.Client, want string) {
	t.Helper()
	if got := readText(t, c); string(got) != want {
		t.Fatalf("%v: got %s\nwant %s", c, got, want)
	}
}

// expectJSON requires the next text frame to be the JSON value want: the
// same members with the same values (numbers compared as written), no
// member more or less; member order is free.
func expectJSON(t testing.TB, c *wstest.Client, want string) {
	t.Helper()
	if got := readText(t, c); !jsonEqual(t, got, []byte(want)) {
		t.Fatalf("%v: got %s\nwant %s", c, got, want)
	}
}

// expectUnordered reads len(want) text frames and requires them to be the
// JSON values of want in any order (e.g. an ack and a message whose
// relative order the SPEC leaves open).
func expectUnordered(t testing.TB, c *wstest.Client, want ...string) {
	t.Helper()
	left := append([]string(nil), want...)
	for range want {
		got := readText(t, c)
		i := 0
		for i < len(left) && !jsonEqual(t, got, []byte(left[i])) {
			i++
		}
		if i == len(left) {
			t.Fatalf("%v: got %s, want one of %q", c, got, left)
		}
		left = append(left[:i], left[i+1:]...)
	}
}

func jsonEqual(t testing.TB, a, b []byte) bool {
	t.Helper()
	return reflect.DeepEqual(decodeJSON(t, a), decodeJSON(t, b))
}

func decodeJSON(t testing.TB, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("invalid JSON %s: %v", b, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("trailing data after JSON %s", b)
	}
	return v
}

// expectError requires the next text frame to be an error reply with code
// and id (see errorReplyIs).
func expectError(t testing.TB, c *wstest.Client, code, id string) {
	t.Helper()
	if got := readText(t, c); !errorReplyIs(got, code, id) {
		t.Fatalf("%v: got %s, want an error with code %q and id %q", c, got, code, id)
	}
}

// errorReplyIs reports whether b is exactly
// {"type":"error","code":code,"message":<non-empty text>}, plus "id":id
// (raw JSON, compared as written) when id is not empty.
func errorReplyIs(b []byte, code, id string) bool {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return false
	}
	var msg string
	if err := json.Unmarshal(m["message"], &msg); err != nil || msg == "" {
		return false
	}
	delete(m, "message")
	want := map[string]json.RawMessage{"type": json.RawMessage(`"error"`), "code": json.RawMessage(strconv.Quote(code))}
	if id != "" {
		want["id"] = json.RawMessage(id)
	}
	return reflect.DeepEqual(m, want)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestProtocolAcks: each request is acknowledged with its id echoed
// verbatim, and without an "id" member when the request had none.
func TestProtocolAcks(t *testing.T) {
	g := startGateway(t, nil)
	tests := []struct {
		name, req, ack string
	}{
		{"subscribe, number id", `{"type":"subscribe","channel":"news","id":1}`, `{"type":"subscribed","channel":"news","id":1}`},
		{"subscribe, string id", `{"type":"subscribe","channel":"news","id":"abc"}`, `{"type":"subscribed","channel":"news","id":"abc"}`},
		{"subscribe, no id", `{"type":"subscribe","channel":"news"}`, `{"type":"subscribed","channel":"news"}`},
		{"unsubscribe, number id", `{"type":"unsubscribe","channel":"news","id":2}`, `{"type":"unsubscribed","channel":"news","id":2}`},
		{"unsubscribe, string id", `{"type":"unsubscribe","channel":"news","id":"u"}`, `{"type":"unsubscribed","channel":"news","id":"u"}`},
		{"unsubscribe, no id", `{"type":"unsubscribe","channel":"news"}`, `{"type":"unsubscribed","channel":"news"}`},
		{"publish, number id", `{"type":"publish","channel":"news","data":{"a":1},"id":3}`, `{"type":"published","channel":"news","id":3}`},
		{"publish, string id", `{"type":"publish","channel":"news","data":[],"id":"p-3"}`, `{"type":"published","channel":"news","id":"p-3"}`},
		{"publish, no id", `{"type":"publish","channel":"news","data":"x"}`, `{"type":"published","channel":"news"}`},
		{"publish, null data", `{"type":"publish","channel":"news","data":null,"id":4}`, `{"type":"published","channel":"news","id":4}`},
		{"id 0", `{"type":"subscribe","channel":"news","id":0}`, `{"type":"subscribed","channel":"news","id":0}`},
		{"negative id", `{"type":"subscribe","channel":"news","id":-7}`, `{"type":"subscribed","channel":"news","id":-7}`},
		{"fractional id", `{"type":"subscribe","channel":"news","id":2.5}`, `{"type":"subscribed","channel":"news","id":2.5}`},
		{"exponent id kept as written", `{"type":"subscribe","channel":"news","id":1e3}`, `{"type":"subscribed","channel":"news","id":1e3}`},
		{"big id not rounded", `{"type":"subscribe","channel":"news","id":12345678901234567890}`, `{"type":"subscribed","channel":"news","id":12345678901234567890}`},
		{"empty string id", `{"type":"subscribe","channel":"news","id":""}`, `{"type":"subscribed","channel":"news","id":""}`},
		{"string id with escapes", `{"type":"subscribe","channel":"news","id":"q\"é\u00e9"}`, `{"type":"subscribed","channel":"news","id":"q\"éé"}`},
		{"id first, members reordered", `{"id":9,"channel":"news","type":"subscribe"}`, `{"type":"subscribed","channel":"news","id":9}`},
		{"unknown members ignored", `{"type":"subscribe","channel":"news","id":10,"extra":{"x":[1]}}`, `{"type":"subscribed","channel":"news","id":10}`},
		{"whitespace around", " \n{ \"type\" : \"subscribe\" , \"channel\" : \"news\" , \"id\" : 11 }\t", `{"type":"subscribed","channel":"news","id":11}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := wstest.Dial(t, g.wsURL(), nil)
			c.Send(tc.req)
			expectJSON(t, c, tc.ack)
		})
	}
	// The first ack is also checked byte for byte against the SPEC's text.
	t.Run("exact bytes", func(t *testing.T) {
		c := wstest.Dial(t, g.wsURL(), nil)
		c.Send(`{"type":"subscribe","channel":"news","id":1}`)
		expectText(t, c, `{"type":"subscribed","channel":"news","id":1}`)
	})
}

// TestProtocolMessageEnvelope: a message is exactly
// {"type":"message","channel":…,"data":…}, with data verbatim, and a
// message to everyone has no "channel" member.
func TestProtocolMessageEnvelope(t *testing.T) {
	g := startGateway(t, nil)
	sub := wstest.Dial(t, g.wsURL(), nil)
	sub.Subscribe("news")
	other := wstest.Dial(t, g.wsURL(), nil) // subscribed to nothing
	// A reply proves other is attached to its shard: the acceptor writes
	// the 101 before the attach reaches the shard, so a message to
	// everyone published at once could go ahead of it.
	other.Send(`{"type":"unsubscribe","channel":"none"}`)
	other.Expect("unsubscribed")
	for _, data := range []string{`{"n":1}`, `null`, `"text"`, `[1,"two",{"three":3}]`, `42`, `-0.5e-3`, `true`, `{"nested":{"deep":[null,false]}}`, `"é\u00e9\n"`} {
		t.Run("channel, data "+data, func(t *testing.T) {
			g.in(t).mustPublish("news", data)
			expectText(t, sub, `{"type":"message","channel":"news","data":`+data+`}`)
		})
		t.Run("everyone, data "+data, func(t *testing.T) {
			g.in(t).mustPublish("", data)
			want := `{"type":"message","data":` + data + `}`
			expectText(t, sub, want)
			expectText(t, other, want)
		})
	}
	t.Run("published by a client", func(t *testing.T) {
		pub := wstest.Dial(t, g.wsURL(), nil)
		pub.Send(`{"type":"publish","channel":"news","data":{"from":"client"}}`)
		expectJSON(t, pub, `{"type":"published","channel":"news"}`)
		expectText(t, sub, `{"type":"message","channel":"news","data":{"from":"client"}}`)
	})
}

// TestProtocolOwnPublish: the sender of a publish gets the message when it
// is subscribed to the channel, and not when it is not.
func TestProtocolOwnPublish(t *testing.T) {
	g := startGateway(t, nil)
	t.Run("subscribed sender receives its message", func(t *testing.T) {
		sender := wstest.Dial(t, g.wsURL(), nil)
		sender.Subscribe("own")
		sender.Send(`{"type":"publish","channel":"own","data":"mine","id":1}`)
		expectUnordered(t, sender,
			`{"type":"published","channel":"own","id":1}`,
			`{"type":"message","channel":"own","data":"mine"}`)
		g.in(t).mustPublish("own", `"marker"`)
		expectText(t, sender, `{"type":"message","channel":"own","data":"marker"}`) // once, not twice
	})
	t.Run("unsubscribed sender does not", func(t *testing.T) {
		sender := wstest.Dial(t, g.wsURL(), nil)
		sender.Subscribe("marker")
		receiver := wstest.Dial(t, g.wsURL(), nil)
		receiver.Subscribe("elsewhere")
		sender.Send(`{"type":"publish","channel":"elsewhere","data":"yours","id":2}`)
		expectJSON(t, sender, `{"type":"published","channel":"elsewhere","id":2}`)
		expectText(t, receiver, `{"type":"message","channel":"elsewhere","data":"yours"}`)
		// Had the sender been sent the message, it would have been queued
		// before this marker: the marker must come first.
		g.in(t).mustPublish("marker", `"marker"`)
		expectText(t, sender, `{"type":"message","channel":"marker","data":"marker"}`)
	})
}

// TestProtocolSubscriptions: subscribing twice, unsubscribing what is not
// subscribed, and unsubscribing to stop delivery.
func TestProtocolSubscriptions(t *testing.T) {
	g := startGateway(t, nil)
	w := newWitness(t, g)

	t.Run("subscribe twice: both acked, messages once", func(t *testing.T) {
		c := wstest.Dial(t, g.wsURL(), nil)
		c.Subscribe("marker")
		c.Send(`{"type":"subscribe","channel":"twice","id":1}`)
		expectJSON(t, c, `{"type":"subscribed","channel":"twice","id":1}`)
		c.Send(`{"type":"subscribe","channel":"twice","id":2}`)
		expectJSON(t, c, `{"type":"subscribed","channel":"twice","id":2}`)
		g.in(t).waitMetric(float64(len(w.conns)+2), "shardgate_subscriptions")
		g.in(t).mustPublish("twice", `1`)
		g.in(t).mustPublish("marker", `"after"`)
		expectText(t, c, `{"type":"message","channel":"twice","data":1}`)
		expectText(t, c, `{"type":"message","channel":"marker","data":"after"}`)
		w.check(t)
	})
	t.Run("unsubscribe when not subscribed: acked", func(t *testing.T) {
		c := wstest.Dial(t, g.wsURL(), nil)
		c.Send(`{"type":"unsubscribe","channel":"never","id":"n"}`)
		expectJSON(t, c, `{"type":"unsubscribed","channel":"never","id":"n"}`)
		c.Send(`{"type":"unsubscribe","channel":"never"}`)
		expectJSON(t, c, `{"type":"unsubscribed","channel":"never"}`)
		g.in(t).waitMetric(float64(len(w.conns)), "shardgate_subscriptions")
		w.check(t)
	})
	t.Run("unsubscribe stops delivery", func(t *testing.T) {
		c := wstest.Dial(t, g.wsURL(), nil)
		stays := wstest.Dial(t, g.wsURL(), nil)
		c.Subscribe("marker")
		c.Subscribe("topic")
		stays.Subscribe("topic")
		g.in(t).mustPublish("topic", `"before"`)
		expectText(t, c, `{"type":"message","channel":"topic","data":"before"}`)
		expectText(t, stays, `{"type":"message","channel":"topic","data":"before"}`)
		c.Send(`{"type":"unsubscribe","channel":"topic","id":5}`)
		expectJSON(t, c, `{"type":"unsubscribed","channel":"topic","id":5}`)
		g.in(t).mustPublish("topic", `"after"`)
		g.in(t).mustPublish("marker", `"marker"`)
		expectText(t, stays, `{"type":"message","channel":"topic","data":"after"}`)
		expectText(t, c, `{"type":"message","channel":"marker","data":"marker"}`)
		w.check(t)
	})
	t.Run("subscribers leave in any order", func(t *testing.T) {
		// Six subscribers over both shards leave one by one, alternately
		// by unsubscribing and by closing; after each departure exactly
		// the remaining ones receive, and the leavers get only the marker.
		const n = 6
		var cs []*wstest.Client
		subscribed := map[int]bool{}
		open := map[int]bool{}
		for i := range n {
			c := wstest.Dial(t, g.wsURL(), nil)
			c.Subscribe("marker")
			c.Subscribe("churn")
			cs = append(cs, c)
			subscribed[i], open[i] = true, true
		}
		for step, leave := range []int{2, 0, 5, 3, 1, 4} {
			if step%2 == 0 {
				cs[leave].Send(`{"type":"unsubscribe","channel":"churn","id":"leave"}`)
				expectJSON(t, cs[leave], `{"type":"unsubscribed","channel":"churn","id":"leave"}`)
			} else {
				cs[leave].Close()
				open[leave] = false
			}
			subscribed[leave] = false
			g.in(t).mustPublish("churn", strconv.Itoa(step))
			g.in(t).mustPublish("marker", strconv.Itoa(step))
			for i, c := range cs {
				if subscribed[i] {
					expectText(t, c, `{"type":"message","channel":"churn","data":`+strconv.Itoa(step)+`}`)
				}
				if open[i] {
					expectText(t, c, `{"type":"message","channel":"marker","data":`+strconv.Itoa(step)+`}`)
				}
			}
		}
		g.in(t).waitMetric(float64(len(w.conns)+n/2), "shardgate_subscriptions") // the markers of the open ones
		w.check(t)
	})
}

// TestProtocolSubscriptionLimit: with -max-subscriptions 2 a third channel
// is refused, re-subscribing a held channel is not, and an unsubscribe
// frees a place.
func TestProtocolSubscriptionLimit(t *testing.T) {
	g := startGateway(t, func(c *Config) { c.MaxSubscriptions = 2 })
	w := newWitness(t, g)
	c := wstest.Dial(t, g.wsURL(), nil)
	steps := []struct {
		req, reply string
		errCode    string // reply is then the id
	}{
		{req: `{"type":"subscribe","channel":"a","id":1}`, reply: `{"type":"subscribed","channel":"a","id":1}`},
		{req: `{"type":"subscribe","channel":"b","id":2}`, reply: `{"type":"subscribed","channel":"b","id":2}`},
		{req: `{"type":"subscribe","channel":"c","id":3}`, errCode: "too_many_subscriptions", reply: `3`},
		{req: `{"type":"subscribe","channel":"c","id":"again"}`, errCode: "too_many_subscriptions", reply: `"again"`},
		{req: `{"type":"subscribe","channel":"a","id":4}`, reply: `{"type":"subscribed","channel":"a","id":4}`},
		{req: `{"type":"unsubscribe","channel":"a","id":5}`, reply: `{"type":"unsubscribed","channel":"a","id":5}`},
		{req: `{"type":"subscribe","channel":"c","id":6}`, reply: `{"type":"subscribed","channel":"c","id":6}`},
		{req: `{"type":"subscribe","channel":"d","id":7}`, errCode: "too_many_subscriptions", reply: `7`},
	}
	for i, s := range steps {
		t.Run(fmt.Sprintf("step %d %s", i+1, s.req), func(t *testing.T) {
			writeText(t, c, s.req)
			if s.errCode != "" {
				expectError(t, c, s.errCode, s.reply)
			} else {
				expectJSON(t, c, s.reply)
			}
			w.check(t)
		})
	}
	g.waitMetric(float64(len(w.conns)+2), "shardgate_subscriptions")
	g.mustPublish("a", `"a"`) // no longer subscribed
	g.mustPublish("c", `"c"`)
	g.mustPublish("b", `"b"`)
	expectText(t, c, `{"type":"message","channel":"c","data":"c"}`)
	expectText(t, c, `{"type":"message","channel":"b","data":"b"}`)
}

// TestProtocolErrors: each bad request gets {"type":"error"} with the
// documented code and the id echoed when it could be read; the connection
// stays open and serves the next request, and the witness is untouched.
func TestProtocolErrors(t *testing.T) {
	g := startGateway(t, nil)
	w := newWitness(t, g)
	tests := []struct {
		name, req, code, id string
	}{
		{"not JSON", `hello`, "bad_json", ""},
		{"truncated JSON", `{"type":"subscribe","channel":"news","id":1`, "bad_json", ""},
		{"trailing data", `{"type":"subscribe","channel":"news","id":1} {}`, "bad_json", ""},
		{"JSON array", `[{"type":"subscribe","channel":"news","id":1}]`, "bad_json", ""},
		{"JSON string", `"subscribe"`, "bad_json", ""},
		{"JSON number", `42`, "bad_json", ""},
		{"empty message", ``, "bad_json", ""},
		{"unknown type", `{"type":"dance","channel":"news","id":4}`, "bad_request", "4"},
		{"type with wrong case", `{"type":"Subscribe","channel":"news","id":"tc"}`, "bad_request", `"tc"`},
		{"type not a string", `{"type":1,"channel":"news","id":41}`, "bad_request", "41"},
		{"missing type", `{"channel":"news","id":"m"}`, "bad_request", `"m"`},
		{"missing channel", `{"type":"subscribe","id":5}`, "bad_request", "5"},
		{"unsubscribe without channel", `{"type":"unsubscribe","id":51}`, "bad_request", "51"},
		{"publish without channel", `{"type":"publish","data":1,"id":52}`, "bad_request", "52"},
		{"channel not a string", `{"type":"subscribe","channel":7,"id":53}`, "bad_request", "53"},
		{"publish without data", `{"type":"publish","channel":"news","id":6}`, "bad_request", "6"},
		{"missing everything", `{}`, "bad_request", ""},
		{"empty channel", `{"type":"subscribe","channel":"","id":7}`, "bad_channel", "7"},
		{"129-byte channel", `{"type":"subscribe","channel":"` + strings.Repeat("c", 129) + `","id":8}`, "bad_channel", "8"},
		{"space in channel", `{"type":"subscribe","channel":"a b","id":"sp"}`, "bad_channel", `"sp"`},
		{"slash in channel", `{"type":"subscribe","channel":"a/b","id":9}`, "bad_channel", "9"},
		{"non-ASCII channel", `{"type":"subscribe","channel":"é","id":10}`, "bad_channel", "10"},
		{"escaped non-ASCII channel", `{"type":"subscribe","channel":"\u00e9","id":11}`, "bad_channel", "11"},
		{"star in channel", `{"type":"subscribe","channel":"news.*","id":12}`, "bad_channel", "12"},
		{"bad channel on unsubscribe", `{"type":"unsubscribe","channel":"a b","id":13}`, "bad_channel", "13"},
		{"bad channel on publish", `{"type":"publish","channel":"a/b","data":1,"id":14}`, "bad_channel", "14"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := wstest.Dial(t, g.wsURL(), nil)
			c.Send(tc.req)
			expectError(t, c, tc.code, tc.id)
			// Still open, still served.
			c.Send(`{"type":"subscribe","channel":"after-error","id":"ok"}`)
			expectJSON(t, c, `{"type":"subscribed","channel":"after-error","id":"ok"}`)
			w.check(t)
		})
	}
	t.Run("many errors on one connection", func(t *testing.T) {
		c := wstest.Dial(t, g.wsURL(), nil)
		for _, tc := range tests {
			c.Send(tc.req)
			expectError(t, c, tc.code, tc.id)
		}
		c.Subscribe("survivor")
		g.in(t).mustPublish("survivor", `"alive"`)
		expectText(t, c, `{"type":"message","channel":"survivor","data":"alive"}`)
		w.check(t)
	})
	if got := g.metricSum("shardgate_disconnects_total", "reason", "protocol_error"); got != 0 {
		t.Fatalf("request errors closed %v connections", got)
	}
}

// TestProtocolChannelNames: 1–128 bytes of A-Z a-z 0-9 . _ : @ -.
func TestProtocolChannelNames(t *testing.T) {
	g := startGateway(t, nil)
	w := newWitness(t, g)
	for _, tc := range []struct {
		name, channel string
		ok            bool
	}{
		{"one byte", "x", true},
		{"every allowed byte", "AZaz09._:@-", true},
		{"all letters and digits", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", true},
		{"128 bytes", strings.Repeat("a", 128), true},
		{"129 bytes", strings.Repeat("a", 129), false},
		{"127 bytes and a space", strings.Repeat("a", 127) + " ", false},
		{"empty", "", false},
		{"space", "a b", false},
		{"slash", "a/b", false},
		{"é", "é", false},
		{"tab", "a\tb", false},
		{"NUL", "a\x00b", false},
		{"comma", "a,b", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := wstest.Dial(t, g.wsURL(), nil)
			name, _ := json.Marshal(tc.channel)
			c.Send(`{"type":"subscribe","channel":` + string(name) + `,"id":1}`)
			if !tc.ok {
				expectError(t, c, "bad_channel", "1")
				w.check(t)
				return
			}
			expectJSON(t, c, `{"type":"subscribed","channel":`+string(name)+`,"id":1}`)
			g.in(t).mustPublish(tc.channel, `"named"`)
			expectText(t, c, `{"type":"message","channel":`+string(name)+`,"data":"named"}`)
			w.check(t)
		})
	}
}

// TestProtocolRateLimit: with -client-rate 5 (bursts of 10) a burst of 30
// requests gets rate_limited errors beyond the burst, with ids echoed; the
// connection stays open and is served again once tokens refill.
func TestProtocolRateLimit(t *testing.T) {
	g := startGateway(t, func(c *Config) { c.ClientRate = 5 })
	w := newWitness(t, g)
	c := wstest.Dial(t, g.wsURL(), nil)

	// All 30 leave in one write, so they arrive as one burst.
	var burst []rawFrame
	for i := 1; i <= 30; i++ {
		burst = append(burst, textFrame(fmt.Sprintf(`{"type":"subscribe","channel":"r%d","id":%d}`, i, i)))
	}
	c.WriteRaw(wire(burst...))
	acked, limited := 0, 0
	for i := 1; i <= 30; i++ {
		got := readText(t, c)
		if jsonEqual(t, got, fmt.Appendf(nil, `{"type":"subscribed","channel":"r%d","id":%d}`, i, i)) {
			acked++
			continue
		}
		if !errorReplyIs(got, "rate_limited", strconv.Itoa(i)) {
			t.Fatalf("reply %d: got %s, want subscribed or a rate_limited error with id %d", i, got, i)
		}
		limited++
	}
	t.Logf("burst of 30: %d acked, %d rate_limited", acked, limited)
	if acked < 10 || limited < 15 {
		t.Fatalf("burst of 30 at -client-rate 5: %d acked, %d rate_limited; want the burst of 10 (and little more) acked", acked, limited)
	}
	w.check(t)

	// Tokens refill at 5 per second: poll until a request is served again.
	try := 0
	waitFor(t, "a request served after the burst", func() bool {
		try++
		c.Send(fmt.Sprintf(`{"type":"unsubscribe","channel":"r1","id":"retry%d"}`, try))
		got := readText(t, c)
		if jsonEqual(t, got, fmt.Appendf(nil, `{"type":"unsubscribed","channel":"r1","id":"retry%d"}`, try)) {
			return true
		}
		if !errorReplyIs(got, "rate_limited", fmt.Sprintf(`"retry%d"`, try)) {
			t.Fatalf("retry %d: got %s", try, got)
		}
		return false
	})
	w.check(t)
	if got := g.metricSum("shardgate_disconnects_total", "reason", "protocol_error"); got != 0 {
		t.Fatalf("rate limiting closed %v connections", got)
	}
}

// TestProtocolNothingUnasked: a fresh connection receives nothing until it
// asks; its first frame is the answer to its first request.
func TestProtocolNothingUnasked(t *testing.T) {
	g := startGateway(t, nil)
	c := wstest.Dial(t, g.wsURL(), nil)
	// Absence can only be observed for a while: a short read deadline that
	// must expire is the accepted exception to "no timeouts as proof".
	if h, p, err := c.ReadFrame(300 * time.Millisecond); err == nil {
		t.Fatalf("unasked frame on connect: opcode %v payload %q", h.OpCode, p)
	} else if !isTimeout(err) {
		t.Fatalf("read on connect: %v", err)
	}
	c.Send(`{"type":"subscribe","channel":"first","id":1}`)
	expectText(t, c, `{"type":"subscribed","channel":"first","id":1}`)
}

// TestProtocolPublishOrder: within one channel, the messages of one
// publisher arrive in publish order, for a publisher on the admin API and
// a publisher on a WebSocket publishing at the same time, at subscribers
// on both shards.
func TestProtocolPublishOrder(t *testing.T) {
	const n = 500
	g := startGateway(t, func(c *Config) {
		c.Shards = 2
		c.ClientRate = 0 // unlimited: 500 publishes in a row
	})
	// On an empty gateway the acceptor puts the two subscribers on
	// different shards.
	subs := []*wstest.Client{wstest.Dial(t, g.wsURL(), nil), wstest.Dial(t, g.wsURL(), nil)}
	g.waitMetric(1, "shardgate_connections", "shard", "0")
	g.waitMetric(1, "shardgate_connections", "shard", "1")
	for _, s := range subs {
		s.Subscribe("ordered")
	}
	pub := wstest.Dial(t, g.wsURL(), nil)

	// The API publisher runs beside the test goroutine and only reports.
	apiDone := make(chan error, 1)
	go func() {
		for i := range n {
			body := fmt.Sprintf(`{"channel":"ordered","data":{"src":"api","n":%d}}`, i)
			if err := postPublish(g.adminURL(), body); err != nil {
				apiDone <- fmt.Errorf("API publish %d: %w", i, err)
				return
			}
		}
		apiDone <- nil
	}()
	for i := range n {
		pub.Send(fmt.Sprintf(`{"type":"publish","channel":"ordered","data":{"src":"client","n":%d},"id":%d}`, i, i))
	}
	for i := range n {
		expectJSON(t, pub, fmt.Sprintf(`{"type":"published","channel":"ordered","id":%d}`, i))
	}
	if err := <-apiDone; err != nil {
		t.Fatal(err)
	}

	for si, s := range subs {
		next := map[string]int{"api": 0, "client": 0}
		for range 2 * n {
			var m struct {
				Type    string `json:"type"`
				Channel string `json:"channel"`
				Data    struct {
					Src string `json:"src"`
					N   int    `json:"n"`
				} `json:"data"`
			}
			got := readText(t, s)
			if err := json.Unmarshal(got, &m); err != nil || m.Type != "message" || m.Channel != "ordered" {
				t.Fatalf("subscriber %d: unexpected %s", si, got)
			}
			want, ok := next[m.Data.Src]
			if !ok || m.Data.N != want {
				t.Fatalf("subscriber %d: got %s, want %s message %d next", si, got, m.Data.Src, want)
			}
			next[m.Data.Src]++
		}
	}
}

// postPublish posts to /api/publish; safe on any goroutine.
func postPublish(adminURL, body string) error {
	resp, err := http.Post(adminURL+"/api/publish", "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return nil
}
