package gateway

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/shardgate/shardgate/internal/natstest"
	"github.com/shardgate/shardgate/internal/wstest"
)

// Cluster tests: a real NATS server in this process, on a port the
// kernel picks, and several gateway nodes using it with -broker nats://.

// startNATS and stopNATS are natstest.Start and natstest.Stop.
func startNATS(t testing.TB, port int) *server.Server { return natstest.Start(t, port) }
func stopNATS(s *server.Server)                       { natstest.Stop(s) }

// startCluster starts n gateway nodes on srv, each with unlimited client
// publish rate, and waits until all are ready.
func startCluster(t *testing.T, srv *server.Server, n int) []*testGateway {
	t.Helper()
	url := "nats://" + srv.Addr().String()
	nodes := make([]*testGateway, n)
	for i := range nodes {
		nodes[i] = startGateway(t, func(c *Config) {
			c.Broker = url
			c.ClientRate = 0
		})
	}
	for _, g := range nodes {
		g.waitReady(http.StatusOK)
		g.waitMetric(1, "shardgate_broker_connected")
	}
	return nodes
}

// waitReady polls /readyz until it answers code.
func (g *testGateway) waitReady(code int) {
	g.t.Helper()
	waitFor(g.t, fmt.Sprintf("%s/readyz %d", g.adminURL(), code), func() bool {
		resp, err := http.Get(g.adminURL() + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == code
	})
}

// natsSubs counts the NATS server's subscriptions that a message to
// channel ("" for everyone) would reach: one per node with interest.
func natsSubs(t testing.TB, srv *server.Server, channel string) int {
	t.Helper()
	subject := "shardgate.all"
	if channel != "" {
		subject = "shardgate.ch." + channelToken(channel)
	}
	sz, err := srv.Subsz(&server.SubszOptions{Subscriptions: true, Test: subject})
	if err != nil {
		t.Fatalf("subsz %s: %v", subject, err)
	}
	return sz.Total
}

// channelToken restates natsbroker's subject encoding ('.' → '~'), so
// that the test checks the documented subjects rather than reusing code.
func channelToken(channel string) string {
	b := []byte(channel)
	for i := range b {
		if b[i] == '.' {
			b[i] = '~'
		}
	}
	return string(b)
}

func waitNATSSubs(t testing.TB, srv *server.Server, channel string, want int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d NATS subscriptions for %q", want, channel), func() bool {
		return natsSubs(t, srv, channel) == want
	})
}

// seqMsg is the data of the ordered test messages.
type seqMsg struct {
	Src string `json:"src"`
	N   int    `json:"n"`
}

// expectSeq reads count messages on channel and checks that every
// source's messages arrive once each, numbered 0, 1, 2, ... in order.
func expectSeq(t testing.TB, c *wstest.Client, channel string, count int, sources ...string) {
	t.Helper()
	next := map[string]int{}
	for i := 0; i < count; i++ {
		m := c.Expect("message")
		if m.Channel == nil || *m.Channel != channel {
			t.Fatalf("%v: message %d on wrong channel: %+v", c, i, m)
		}
		var d seqMsg
		if err := json.Unmarshal(m.Data, &d); err != nil {
			t.Fatalf("%v: message %d data %s: %v", c, i, m.Data, err)
		}
		if d.N != next[d.Src] {
			t.Fatalf("%v: from %q got n=%d, want %d (duplicate, loss or reorder)", c, d.Src, d.N, next[d.Src])
		}
		next[d.Src]++
	}
	for _, src := range sources {
		if next[src] != count/len(sources) {
			t.Fatalf("%v: %d messages from %q, want %d", c, next[src], src, count/len(sources))
		}
	}
}

func publishFrame(channel string, data any, id int) map[string]any {
	return map[string]any{"type": "publish", "channel": channel, "data": data, "id": id}
}

// TestClusterDeliversOnceInOrder: subscribers on node B and on node C
// receive, once each and in publish order, 200 messages posted to node A's
// admin API and 200 published by a client on node C, interleaved; C's own
// subscriber gets C's client publishes through NATS only, so once.
func TestClusterDeliversOnceInOrder(t *testing.T) {
	srv := startNATS(t, -1)
	nodes := startCluster(t, srv, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	const channel, n = "room.1", 200 // a '.' exercises the subject encoding

	subB := wstest.Dial(t, b.wsURL(), nil)
	subB.Subscribe(channel)
	subC := wstest.Dial(t, c.wsURL(), nil)
	subC.Subscribe(channel)
	waitNATSSubs(t, srv, channel, 2)
	pub := wstest.Dial(t, c.wsURL(), nil)

	for i := range n {
		a.mustPublish(channel, fmt.Sprintf(`{"src":"api","n":%d}`, i))
		pub.Send(publishFrame(channel, seqMsg{"client", i}, i))
	}
	for i := range n {
		if m := pub.Expect("published"); string(m.ID) != fmt.Sprint(i) {
			t.Fatalf("publish ack %d: %+v", i, m)
		}
	}
	for _, sub := range []*wstest.Client{subB, subC} {
		expectSeq(t, sub, channel, 2*n, "api", "client")
	}
	// Nothing more is on its way: the next message each subscriber reads
	// is one published after everything else.
	a.mustPublish("", `"end"`)
	for _, sub := range []*wstest.Client{subB, subC} {
		if m := sub.Expect("message"); m.Channel != nil || string(m.Data) != `"end"` {
			t.Fatalf("%v: after the sequence got %+v, want the end marker", sub, m)
		}
	}

	a.waitMetric(n+1, "shardgate_publishes_total", "source", "api")
	c.waitMetric(n, "shardgate_publishes_total", "source", "client")
	// Broker-sourced: every message a node took from NATS for delivery.
	// A has no channel subscribers: it took only the message to everyone.
	a.waitMetric(1, "shardgate_publishes_total", "source", "broker")
	b.waitMetric(2*n+1, "shardgate_publishes_total", "source", "broker")
	c.waitMetric(2*n+1, "shardgate_publishes_total", "source", "broker")
}

// TestClusterInterestCostsSubscriptions: a node holds a NATS subscription
// for a channel only while it has local subscribers, one however many
// connections and shards subscribe, and none after they leave.
func TestClusterInterestCostsSubscriptions(t *testing.T) {
	srv := startNATS(t, -1)
	base := srv.NumSubscriptions()
	nodes := startCluster(t, srv, 2)
	a, b := nodes[0], nodes[1]
	const channel = "quiet"
	waitNATSSubs(t, srv, "", 2) // each node: messages to everyone
	// Each node: messages to everyone and admin disconnects.
	const idle = 4
	if got := srv.NumSubscriptions() - base; got != idle {
		t.Fatalf("idle cluster holds %d NATS subscriptions, want %d", got, idle)
	}
	if got := natsSubs(t, srv, channel); got != 0 {
		t.Fatalf("%d NATS subscriptions for a channel nobody subscribed", got)
	}

	// Four connections on b (over its two shards), one on a.
	var onB []*wstest.Client
	for range 4 {
		cl := wstest.Dial(t, b.wsURL(), nil)
		cl.Subscribe(channel)
		onB = append(onB, cl)
	}
	waitNATSSubs(t, srv, channel, 1)
	onA := wstest.Dial(t, a.wsURL(), nil)
	onA.Subscribe(channel)
	waitNATSSubs(t, srv, channel, 2)
	if got := srv.NumSubscriptions() - base; got != idle+2 {
		t.Fatalf("cluster holds %d NATS subscriptions, want %d", got, idle+2)
	}

	for i, cl := range onB {
		cl.Send(map[string]any{"type": "unsubscribe", "channel": channel, "id": i})
		cl.Expect("unsubscribed")
	}
	waitNATSSubs(t, srv, channel, 1)
	onA.Close() // a disconnect ends its subscriptions too
	waitNATSSubs(t, srv, channel, 0)
	waitFor(t, "baseline NATS subscriptions", func() bool { return srv.NumSubscriptions()-base == idle })

	// Messages still reach the node that subscribes again.
	onB[0].Subscribe(channel)
	waitNATSSubs(t, srv, channel, 1)
	a.mustPublish(channel, `"back"`)
	if m := onB[0].Expect("message"); string(m.Data) != `"back"` {
		t.Fatalf("got %+v", m)
	}
}

// TestClusterOutage: with NATS gone, every node turns not-ready, reports
// the broker down and refuses publishes (503 / "unavailable") while its
// clients stay connected; a subscribe to a new channel is refused with
// "unavailable" too (a "subscribed" reply promises that NATS has the
// interest). When NATS returns on the same address, every node is ready
// again and delivers to the same connections, and the refused subscribe
// succeeds when retried.
func TestClusterOutage(t *testing.T) {
	srv := startNATS(t, -1)
	port := srv.Addr().(*net.TCPAddr).Port
	nodes := startCluster(t, srv, 3)
	const channel = "news"

	subs := make([]*wstest.Client, len(nodes))
	for i, g := range nodes {
		subs[i] = wstest.Dial(t, g.wsURL(), nil)
		subs[i].Subscribe(channel)
	}
	waitNATSSubs(t, srv, channel, len(nodes))
	nodes[0].mustPublish(channel, `"before"`)
	for _, c := range subs {
		if m := c.Expect("message"); string(m.Data) != `"before"` {
			t.Fatalf("%v: got %+v", c, m)
		}
	}

	stopNATS(srv)
	for i, g := range nodes {
		g.waitReady(http.StatusServiceUnavailable)
		g.waitMetric(0, "shardgate_broker_connected")
		if code, body := g.publish(`{"channel":"news","data":"lost"}`); code != http.StatusServiceUnavailable {
			t.Fatalf("node %d: publish during outage: %d %s", i, code, body)
		}
		c := subs[i]
		c.Send(publishFrame(channel, "lost", 7))
		if m := c.Expect("error"); m.Code != "unavailable" || string(m.ID) != "7" {
			t.Fatalf("node %d: client publish during outage: %+v", i, m)
		}
	}
	// Connections stay up; a subscription NATS cannot register is
	// refused, never acknowledged.
	late := subs[1]
	late.Send(map[string]any{"type": "subscribe", "channel": "late", "id": 9})
	if m := late.Expect("error"); m.Code != "unavailable" || string(m.ID) != "9" {
		t.Fatalf("subscribe during outage: %+v", m)
	}

	srv = startNATS(t, port)
	for _, g := range nodes {
		g.waitReady(http.StatusOK)
		g.waitMetric(1, "shardgate_broker_connected")
	}
	waitNATSSubs(t, srv, channel, len(nodes))
	waitNATSSubs(t, srv, "", len(nodes))
	late.Subscribe("late")

	for i, g := range nodes {
		g.mustPublish(channel, fmt.Sprintf(`"after %d"`, i))
		for _, c := range subs {
			if m := c.Expect("message"); string(m.Data) != fmt.Sprintf(`"after %d"`, i) {
				t.Fatalf("%v: after the outage got %+v", c, m)
			}
		}
	}
	subs[2].Send(publishFrame("late", "hello", 8))
	subs[2].Expect("published")
	if m := late.Expect("message"); *m.Channel != "late" || string(m.Data) != `"hello"` {
		t.Fatalf("late subscriber got %+v", m)
	}
	for i, g := range nodes {
		if n := g.metricSum("shardgate_disconnects_total"); n != 0 {
			t.Fatalf("node %d closed %v connections during the outage", i, n)
		}
		if n := g.metricSum("shardgate_connections"); n != 1 {
			t.Fatalf("node %d has %v connections, want 1", i, n)
		}
	}
}

// TestClusterNodeStartsWithoutNATS: a node starts while NATS is down,
// reports not-ready and refuses publishes and subscribes, and serves
// normally once a server appears, with no restart.
func TestClusterNodeStartsWithoutNATS(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there until startNATS below

	g := startGateway(t, func(c *Config) { c.Broker = fmt.Sprintf("nats://127.0.0.1:%d", port) })
	g.waitReady(http.StatusServiceUnavailable)
	g.waitMetric(0, "shardgate_broker_connected")
	if code, body := g.publish(`{"channel":"news","data":1}`); code != http.StatusServiceUnavailable {
		t.Fatalf("publish without NATS: %d %s", code, body)
	}
	c := wstest.Dial(t, g.wsURL(), nil)
	c.Send(map[string]any{"type": "subscribe", "channel": "news"})
	if m := c.Expect("error"); m.Code != "unavailable" {
		t.Fatalf("subscribe without NATS: %+v", m)
	}

	srv := startNATS(t, port)
	g.waitReady(http.StatusOK)
	g.waitMetric(1, "shardgate_broker_connected")
	c.Subscribe("news")
	waitNATSSubs(t, srv, "news", 1)
	g.mustPublish("news", `"hi"`)
	if m := c.Expect("message"); string(m.Data) != `"hi"` {
		t.Fatalf("got %+v", m)
	}
}
