package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/nats-io/nats.go"
	"github.com/shardgate/shardgate/internal/natstest"
	"github.com/shardgate/shardgate/internal/wstest"
)

// TestFrozenNATSNeverStallsAShard: the NATS server stops reading (a proxy
// between node and server stops, keeping the TCP connection open) while a
// client publishes 60 KiB messages. On the publisher's own shard, pings
// are answered and local fan-out goes on within 100 ms, and every publish
// gets an answer within a bounded time: "published" for what NATS took
// before it froze, "unavailable" for the rest. Before publishes went
// through a bounded queue, nats.go's synchronous write blocked the shard:
// a witness got no pong for over 3 seconds.
func TestFrozenNATSNeverStallsAShard(t *testing.T) {
	srv := startNATS(t, -1)
	proxy := natstest.NewProxy(t, srv.Addr().String())
	g := startGateway(t, func(c *Config) {
		c.Shards = 1
		c.Broker = proxy.URL()
		c.ClientRate = 0
		c.MaxMessageBytes = 128 << 10
	})
	g.waitReady(http.StatusOK)
	w := newPromptWitness(t, g)
	pub := wstest.Dial(t, g.wsURL(), nil)

	payload := `"` + strings.Repeat("x", 60<<10) + `"`
	publish := func(id int) {
		pub.Send(fmt.Sprintf(`{"type":"publish","channel":"flood","data":%s,"id":%d}`, payload, id))
	}
	publish(0)
	if m := pub.Expect("published"); string(m.ID) != "0" {
		t.Fatalf("publish before the freeze: %+v", m)
	}

	proxy.SetMode(natstest.Stalled)
	const flood = 300 // 18 MB: far more than the socket buffers hold
	answers := make(chan wstest.Msg, flood)
	go func() {
		for range flood {
			h, p, err := pub.ReadFrame(30 * time.Second)
			if err != nil || h.OpCode != ws.OpText {
				close(answers)
				return
			}
			answers <- decodeMsg(p)
		}
	}()
	for i := 1; i <= flood; i++ {
		publish(i)
		if i%50 == 0 {
			w.check(t)
			w.pingWithin(t, promptly)
		}
	}
	lastSent := time.Now()
	published, unavailable := 0, 0
	for range flood {
		m, ok := <-answers
		if !ok {
			t.Fatalf("publisher's answers stopped after %d published and %d unavailable", published, unavailable)
		}
		switch {
		case m.Type == "published":
			published++
		case m.Type == "error" && m.Code == "unavailable":
			unavailable++
		default:
			t.Fatalf("unexpected answer %+v", m)
		}
	}
	// Every answer within the broker's bounds (PublishTimeout 2s, a
	// write deadline, a reconnect attempt), counted from the last send.
	if d := time.Since(lastSent); d > 10*time.Second {
		t.Fatalf("the last answers came %v after the last publish", d)
	}
	if unavailable == 0 {
		t.Fatalf("all %d publishes answered published with NATS frozen", published)
	}
	w.check(t)
	w.pingWithin(t, promptly)

	proxy.SetMode(natstest.Flowing)
	g.waitReady(http.StatusOK)
	waitFor(t, "publishes to work again", func() bool {
		publish(flood + 1)
		m := pub.Read()
		return m.Type == "published"
	})
}

// pingWithin sends a ping from the witness and fails unless its pong
// arrives within d.
func (w *promptWitness) pingWithin(t testing.TB, d time.Duration) {
	t.Helper()
	start := time.Now()
	w.c.WriteFrame(ws.MaskFrame(ws.NewPingFrame([]byte("alive"))))
	for {
		h, p, err := w.c.ReadFrame(wstest.DefaultTimeout)
		if err != nil {
			t.Fatalf("witness waiting for its pong: %v", err)
		}
		if h.OpCode == ws.OpPong && string(p) == "alive" {
			break
		}
	}
	if took := time.Since(start); took > d {
		t.Fatalf("witness got its pong after %v, want within %v", took, d)
	}
}

// TestMalformedBrokerMessagesReachNoClient: messages published straight
// into NATS on a channel's subject (or the everyone subject) that are not
// valid UTF-8 or not valid JSON are dropped and counted in
// shardgate_broker_rejected_total; a valid one after them is delivered
// (forwarded, invalid UTF-8 would make every browser close with 1007).
func TestMalformedBrokerMessagesReachNoClient(t *testing.T) {
	srv := startNATS(t, -1)
	g := startCluster(t, srv, 1)[0]
	c := wstest.Dial(t, g.wsURL(), nil)
	c.Subscribe("news")
	waitNATSSubs(t, srv, "news", 1)

	nc, err := nats.Connect(natstest.URL(srv))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	bad := []struct{ subject, data string }{
		{"shardgate.ch.news", "\"caf\xe9\""},          // valid JSON string, invalid UTF-8
		{"shardgate.ch.news", `{"unterminated":`},     // invalid JSON
		{"shardgate.ch.news", ""},                     // empty: not a JSON value
		{"shardgate.all", "\xff\xfe"},                 // to everyone, binary
		{"shardgate.all", `{"a":1} {"b":2}`},          // two values
		{"shardgate.ch.news", "[1,2,\x00]"},           // a control byte
		{"shardgate.ch.news", `{"a":"\ud800"}` + "}"}, // trailing garbage
	}
	for _, m := range bad {
		if err := nc.Publish(m.subject, []byte(m.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Publish("shardgate.ch.news", []byte(`{"ok":true}`)); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if m := c.Expect("message"); string(m.Data) != `{"ok":true}` {
		t.Fatalf("first message delivered: %s, want the valid one", m.Data)
	}
	g.waitMetric(float64(len(bad)), "shardgate_broker_rejected_total")
	if n := g.metricSum("shardgate_disconnects_total"); n != 0 {
		t.Fatalf("%v connections closed", n)
	}
}

// TestPublishRightAfterSubscribedIsNeverMissed: a client on node B
// subscribes to a fresh channel; the moment its "subscribed" arrives, a
// message is published on node A. 1,000 times in a row, none is missing:
// "subscribed" is sent only once NATS has B's interest (3 to 6 of 300
// were lost when the reply went out before the subscription was flushed).
func TestPublishRightAfterSubscribedIsNeverMissed(t *testing.T) {
	srv := startNATS(t, -1)
	nodes := startCluster(t, srv, 2)
	a, b := nodes[0], nodes[1]
	sub := wstest.Dial(t, b.wsURL(), nil)
	const rounds = 1000
	for i := range rounds {
		ch := fmt.Sprintf("fresh-%d", i)
		sub.Subscribe(ch)
		a.mustPublish(ch, fmt.Sprint(i))
		m := sub.Read()
		if m.Type != "message" || m.Channel == nil || *m.Channel != ch || string(m.Data) != fmt.Sprint(i) {
			t.Fatalf("round %d: got %+v, want the message published right after subscribed", i, m)
		}
		sub.Send(map[string]any{"type": "unsubscribe", "channel": ch})
		sub.Expect("unsubscribed")
	}
}

func decodeMsg(p []byte) wstest.Msg {
	var m wstest.Msg
	if err := json.Unmarshal(bytes.TrimSpace(p), &m); err != nil {
		m.Type = "invalid: " + err.Error()
	}
	return m
}
