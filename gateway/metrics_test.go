package gateway

// Tests of the SPEC's "Metrics" section: the per-shard gauges and counters
// move by exactly what the traffic on each shard accounts for, and the
// gateway-wide series count upgrades, publishes and the broker's state.

import (
	"bufio"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/prometheus/common/model"
	"github.com/shardgate/shardgate/internal/wstest"
)

// byShard returns the samples of name by their shard label.
func byShard(t testing.TB, g *testGateway, name string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	if v := g.in(t).metrics()[name]; v != nil {
		for _, s := range *v {
			out[string(s.Metric[model.LabelName("shard")])] += float64(s.Value)
		}
	}
	return out
}

// dialTracked dials a connection and returns it with the shard it was
// attached to, found as the shard whose connections gauge rose. The caller
// opens or closes no other connection meanwhile.
func dialTracked(t *testing.T, g *testGateway) (*wstest.Client, string) {
	t.Helper()
	before := byShard(t, g, "shardgate_connections")
	total := sumValues(before)
	c := wstest.Dial(t, g.wsURL(), nil)
	var after map[string]float64
	waitFor(t, "the new connection in shardgate_connections", func() bool {
		after = byShard(t, g, "shardgate_connections")
		return sumValues(after) == total+1
	})
	for shard, n := range after {
		if n == before[shard]+1 {
			return c, shard
		}
	}
	t.Fatalf("no shard gained the connection: before %v, after %v", before, after)
	return nil, ""
}

func sumValues(m map[string]float64) float64 {
	total := 0.0
	for _, v := range m {
		total += v
	}
	return total
}

// counterSnapshot is a set of per-shard counter values, keyed
// "name{shard}".
type counterSnapshot map[string]float64

var trafficCounters = []string{
	"shardgate_messages_received_total",
	"shardgate_messages_sent_total",
	"shardgate_bytes_received_total",
	"shardgate_bytes_sent_total",
	"shardgate_broadcast_duration_seconds_count",
}

func snapshotCounters(t testing.TB, g *testGateway) counterSnapshot {
	t.Helper()
	all := g.in(t).metrics()
	snap := counterSnapshot{}
	for _, name := range trafficCounters {
		for i := range g.cfg.Shards {
			shard := fmt.Sprint(i)
			snap[name+"{"+shard+"}"] = sumSamples(all[name], "shard", shard)
		}
	}
	return snap
}

// expectCounterDeltas waits until every counter has grown by at least its
// delta in want (counters absent from want: by 0), then requires the growth
// to be exactly that. Counters only grow, so waiting for "at least" and
// then checking "exactly" catches both missing and extra counts.
func expectCounterDeltas(t testing.TB, g *testGateway, before counterSnapshot, want map[string]float64) counterSnapshot {
	t.Helper()
	var now counterSnapshot
	waitFor(t, fmt.Sprintf("counter deltas %v", want), func() bool {
		now = snapshotCounters(t, g)
		for k, d := range want {
			if now[k]-before[k] < d {
				return false
			}
		}
		return true
	})
	var diffs []string
	for _, k := range slices.Sorted(maps.Keys(now)) {
		if got := now[k] - before[k]; got != want[k] {
			diffs = append(diffs, fmt.Sprintf("%s grew by %v, want %v", k, got, want[k]))
		}
	}
	if len(diffs) > 0 {
		t.Fatalf("counters:\n%s", strings.Join(diffs, "\n"))
	}
	return now
}

// clientFrameLen and serverFrameLen are the wire sizes of a text frame
// under 126 bytes: a client frame carries a 4-byte mask key.
func clientFrameLen(payload string) float64 { return float64(2 + 4 + len(payload)) }
func serverFrameLen(payload string) float64 { return float64(2 + len(payload)) }

// TestMetricsConnectionsAndSubscriptions: shardgate_connections and
// shardgate_subscriptions follow open clients and their subscriptions per
// shard, and shardgate_upgrades_total{result="ok"} counts upgrades.
//
// One connection set evolves step by step, so the steps run in sequence on
// the test's goroutine (the clients belong to it) rather than as subtests.
func TestMetricsConnectionsAndSubscriptions(t *testing.T) {
	g := startGateway(t, func(c *Config) { c.Shards = 2 })
	okBefore := g.metricSum("shardgate_upgrades_total", "result", "ok")

	// The expected gauges, by shard label, kept in step with the clients.
	conns := map[string]float64{}
	subs := map[string]float64{}
	var clients []*wstest.Client
	var shards []string
	for range 5 {
		c, shard := dialTracked(t, g)
		clients = append(clients, c)
		shards = append(shards, shard)
		conns[shard]++
	}
	expectGauges := func(step string) {
		t.Helper()
		for _, shard := range []string{"0", "1"} {
			g.waitMetric(conns[shard], "shardgate_connections", "shard", shard)
			g.waitMetric(subs[shard], "shardgate_subscriptions", "shard", shard)
		}
		t.Logf("after %s: connections %v, subscriptions %v", step, conns, subs)
	}
	left := func(i int, nsubs float64) {
		conns[shards[i]]--
		subs[shards[i]] -= nsubs
	}

	if conns["0"] == 0 || conns["1"] == 0 {
		t.Fatalf("5 connections not spread over 2 shards: %v", conns)
	}
	expectGauges("5 upgrades")
	g.waitMetric(5, "shardgate_connections")
	if got := g.metricSum("shardgate_upgrades_total", "result", "ok"); got != okBefore+5 {
		t.Fatalf("upgrades ok: %v, want %v", got, okBefore+5)
	}

	for _, s := range []struct {
		client  int
		channel string
	}{{0, "a"}, {0, "b"}, {1, "a"}, {2, "c"}, {3, "a"}} {
		clients[s.client].Subscribe(s.channel)
		subs[shards[s.client]]++
	}
	clients[3].Subscribe("a") // twice: still one subscription
	expectGauges("subscribing")
	g.waitMetric(5, "shardgate_subscriptions")

	clients[0].Send(`{"type":"unsubscribe","channel":"b"}`)
	clients[0].Expect("unsubscribed")
	subs[shards[0]]--
	clients[2].Send(`{"type":"unsubscribe","channel":"never"}`) // not subscribed: no change
	clients[2].Expect("unsubscribed")
	expectGauges("unsubscribing")

	clients[1].Close()
	left(1, 1)
	expectGauges("a close handshake")

	clients[2].WriteRaw(wire(rawFrame{op: ws.OpBinary, payload: []byte("x")}))
	clients[2].ExpectClose(ws.StatusUnsupportedData)
	left(2, 1)
	expectGauges("a protocol error")

	clients[3].Conn.Close()
	left(3, 1)
	expectGauges("a connection dropped without a close frame")

	if _, err := wstest.TryDial(t, "ws://"+g.Addr().String()+"/elsewhere", nil); err == nil {
		t.Fatal("upgrade on another path succeeded")
	}
	if got := g.metricSum("shardgate_upgrades_total", "result", "ok"); got != okBefore+5 {
		t.Fatalf("upgrades ok after a failed upgrade: %v, want %v", got, okBefore+5)
	}
	expectGauges("a failed upgrade")
	g.waitMetric(2, "shardgate_connections")
	g.waitMetric(1, "shardgate_subscriptions")
}

// TestMetricsTraffic: messages and bytes, received and sent, and broadcast
// durations move per shard by exactly the traffic of that shard; publishes
// are counted by source; the in-memory broker reports connected.
func TestMetricsTraffic(t *testing.T) {
	g := startGateway(t, func(c *Config) { c.Shards = 2 })
	a, shardA := dialTracked(t, g)
	b, shardB := dialTracked(t, g)
	if shardA == shardB {
		t.Fatalf("both connections on shard %s of an empty 2-shard gateway", shardA)
	}
	key := func(name, shard string) string { return name + "{" + shard + "}" }
	const (
		recvMsgs  = "shardgate_messages_received_total"
		sentMsgs  = "shardgate_messages_sent_total"
		recvBytes = "shardgate_bytes_received_total"
		sentBytes = "shardgate_bytes_sent_total"
		casts     = "shardgate_broadcast_duration_seconds_count"
	)
	snap := snapshotCounters(t, g)

	// One request and its reply: counted on the client's shard only.
	subscribe := func(t *testing.T, c *wstest.Client, shard string) {
		req := `{"type":"subscribe","channel":"traffic"}`
		ack := `{"type":"subscribed","channel":"traffic"}`
		writeText(t, c, req)
		expectText(t, c, ack)
		snap = expectCounterDeltas(t, g, snap, map[string]float64{
			key(recvMsgs, shard):  1,
			key(recvBytes, shard): clientFrameLen(req),
			key(sentMsgs, shard):  1,
			key(sentBytes, shard): serverFrameLen(ack),
		})
	}
	t.Run("request on shard A", func(t *testing.T) { subscribe(t, a, shardA) })
	t.Run("request on shard B", func(t *testing.T) { subscribe(t, b, shardB) })

	t.Run("API publish", func(t *testing.T) {
		apiBefore := g.in(t).metricSum("shardgate_publishes_total", "source", "api")
		g.in(t).mustPublish("traffic", `{"k":"v"}`)
		msg := `{"type":"message","channel":"traffic","data":{"k":"v"}}`
		expectText(t, a, msg)
		expectText(t, b, msg)
		snap = expectCounterDeltas(t, g, snap, map[string]float64{
			key(sentMsgs, shardA): 1, key(sentBytes, shardA): serverFrameLen(msg), key(casts, shardA): 1,
			key(sentMsgs, shardB): 1, key(sentBytes, shardB): serverFrameLen(msg), key(casts, shardB): 1,
		})
		if got := g.in(t).metricSum("shardgate_publishes_total", "source", "api"); got != apiBefore+1 {
			t.Fatalf("publishes api: %v, want %v", got, apiBefore+1)
		}
	})
	t.Run("client publish", func(t *testing.T) {
		clientBefore := g.in(t).metricSum("shardgate_publishes_total", "source", "client")
		apiBefore := g.in(t).metricSum("shardgate_publishes_total", "source", "api")
		req := `{"type":"publish","channel":"traffic","data":2,"id":1}`
		ack := `{"type":"published","channel":"traffic","id":1}`
		msg := `{"type":"message","channel":"traffic","data":2}`
		writeText(t, a, req)
		expectUnordered(t, a, ack, msg)
		expectText(t, b, msg)
		snap = expectCounterDeltas(t, g, snap, map[string]float64{
			key(recvMsgs, shardA): 1, key(recvBytes, shardA): clientFrameLen(req),
			key(sentMsgs, shardA): 2, key(sentBytes, shardA): serverFrameLen(ack) + serverFrameLen(msg), key(casts, shardA): 1,
			key(sentMsgs, shardB): 1, key(sentBytes, shardB): serverFrameLen(msg), key(casts, shardB): 1,
		})
		if got := g.in(t).metricSum("shardgate_publishes_total", "source", "client"); got != clientBefore+1 {
			t.Fatalf("publishes client: %v, want %v", got, clientBefore+1)
		}
		if got := g.in(t).metricSum("shardgate_publishes_total", "source", "api"); got != apiBefore {
			t.Fatalf("publishes api moved on a client publish: %v, want %v", got, apiBefore)
		}
	})
	t.Run("ping and pong", func(t *testing.T) {
		// Control frames are bytes, not messages.
		writeRaw(t, b, wire(rawFrame{op: ws.OpPing, payload: []byte("hb")}))
		expectControl(t, b, ws.OpPong, "hb")
		snap = expectCounterDeltas(t, g, snap, map[string]float64{
			key(recvBytes, shardB): 2 + 4 + 2,
			key(sentBytes, shardB): 2 + 2,
		})
	})
	t.Run("frame pipelined behind the handshake", func(t *testing.T) {
		// The acceptor reads these bytes with the request header and hands
		// them to the shard: they are still WebSocket input.
		req := `{"type":"subscribe","channel":"piped"}`
		ack := `{"type":"subscribed","channel":"piped"}`
		recvMsgsBefore := g.in(t).metricSum(recvMsgs)
		recvBytesBefore := g.in(t).metricSum(recvBytes)
		conn, err := net.Dial("tcp", g.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conn.SetDeadline(time.Now().Add(wstest.DefaultTimeout))
		handshake := "GET " + g.cfg.Path + " HTTP/1.1\r\nHost: gateway\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
		if _, err := conn.Write(append([]byte(handshake), wire(textFrame(req))...)); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade: %v %v", resp, err)
		}
		f, err := ws.ReadFrame(br)
		if err != nil || string(f.Payload) != ack {
			t.Fatalf("reply to the pipelined frame: %q %v, want %s", f.Payload, err, ack)
		}
		g.in(t).waitMetric(recvMsgsBefore+1, recvMsgs)
		if got := g.in(t).metricSum(recvBytes) - recvBytesBefore; got != clientFrameLen(req) {
			t.Fatalf("bytes_received grew by %v for a pipelined %v-byte frame", got, clientFrameLen(req))
		}
	})
	t.Run("every source label exists", func(t *testing.T) {
		for _, source := range []string{"api", "client", "broker"} {
			if v := g.in(t).metrics()["shardgate_publishes_total"]; v == nil || !hasLabel(v, "source", source) {
				t.Errorf("no shardgate_publishes_total{source=%q} series", source)
			}
		}
	})
	t.Run("broker connected", func(t *testing.T) {
		if got := g.in(t).metricSum("shardgate_broker_connected"); got != 1 {
			t.Fatalf("shardgate_broker_connected = %v, want 1", got)
		}
	})
}

func hasLabel(v *dto, name, value string) bool {
	for _, s := range *v {
		if string(s.Metric[model.LabelName(name)]) == value {
			return true
		}
	}
	return false
}
