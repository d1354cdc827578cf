package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/shardgate/shardgate/internal/natstest"
	"github.com/shardgate/shardgate/internal/wstest"
	"github.com/shardgate/shardgate/shard"
)

// Cluster history (SPEC "History and recovery", cluster): an in-process
// NATS server with JetStream on the test's own store, and gateway nodes
// with -history-size using it.

// startJetStream runs a NATS server with JetStream storing in dir, on
// port (-1: the kernel picks).
func startJetStream(t testing.TB, dir string, port int) *server.Server {
	t.Helper()
	return natstest.StartConfig(t, natstest.Config{Port: port, JetStream: true, StoreDir: dir})
}

// startHistoryNode starts one node with history on broker url.
func startHistoryNode(t *testing.T, url string, size int, mutate ...func(*Config)) *testGateway {
	t.Helper()
	g := startGateway(t, func(c *Config) {
		c.Broker = url
		c.ClientRate = 0
		c.HistorySize = size
		c.RecoverMax = size
		for _, m := range mutate {
			m(c)
		}
	})
	g.waitReady(http.StatusOK)
	return g
}

// offsetData is one message as a subscriber saw it.
type offsetData struct {
	Offset uint64
	Data   string
}

// readMessages reads n messages of channel from c.
func readMessages(t testing.TB, c *wstest.Client, channel string, n int) []offsetData {
	t.Helper()
	out := make([]offsetData, 0, n)
	for range n {
		m := readHist(t, c)
		if m.Type != "message" || m.Channel != channel || m.Offset == nil {
			t.Fatalf("%v: got %+v, want a message on %s", c, m, channel)
		}
		out = append(out, offsetData{*m.Offset, string(m.Data)})
	}
	return out
}

// TestClusterClientRecoversOnAnotherNode: a client subscribed on node A
// drops; messages are published meanwhile on B (API) and C (a client);
// it reconnects to B and recovers exactly those, in order, then live
// ones. Every node's subscribers see the same offsets and epoch, which
// are those of the publish receipts and of GET /api/history on any node.
func TestClusterClientRecoversOnAnotherNode(t *testing.T) {
	srv := startJetStream(t, t.TempDir(), -1)
	url := natstest.URL(srv)
	nodes := []*testGateway{startHistoryNode(t, url, 100), startHistoryNode(t, url, 100), startHistoryNode(t, url, 100)}
	a, b, c := nodes[0], nodes[1], nodes[2]
	const channel = "room.1"

	// A watcher on each node sees the whole channel.
	var watchers []*wstest.Client
	var epoch string
	for _, g := range nodes {
		w := wstest.Dial(t, g.wsURL(), nil)
		sub := subscribeHist(t, w, channel, "", 0)
		if epoch == "" {
			epoch = *sub.Epoch
		}
		if *sub.Epoch != epoch {
			t.Fatalf("node epochs differ: %q and %q", *sub.Epoch, epoch)
		}
		watchers = append(watchers, w)
	}

	mover := wstest.Dial(t, a.wsURL(), nil)
	first := subscribeHist(t, mover, channel, "", 0)
	var receipts []offsetData
	for i := range 3 {
		off, ep := b.publishOffset(channel, fmt.Sprint(i))
		if ep != epoch {
			t.Fatalf("receipt epoch %q, nodes say %q", ep, epoch)
		}
		receipts = append(receipts, offsetData{off, fmt.Sprint(i)})
	}
	last := expectData(t, mover, channel, *first.Offset, "0", "1", "2")
	mover.Close()

	// Missed: two from B's API, two from a client on C, in that order.
	for i := 3; i < 5; i++ {
		off, _ := b.publishOffset(channel, fmt.Sprint(i))
		receipts = append(receipts, offsetData{off, fmt.Sprint(i)})
	}
	pub := wstest.Dial(t, c.wsURL(), nil)
	for i := 5; i < 7; i++ {
		pub.Send(publishFrame(channel, i, i))
		if m := pub.Expect("published"); string(m.ID) != fmt.Sprint(i) {
			t.Fatalf("publish ack: %+v", m)
		}
	}

	back := wstest.Dial(t, b.wsURL(), nil)
	sub := subscribeHist(t, back, channel, epoch, last)
	if !*sub.Recovered || *sub.Epoch != epoch {
		t.Fatalf("recover on another node: %+v", sub)
	}
	last = expectData(t, back, channel, last, "3", "4", "5", "6")
	off, _ := a.publishOffset(channel, "7")
	if got := expectData(t, back, channel, last, "7"); got != off {
		t.Fatalf("live message at offset %d, receipt says %d", got, off)
	}

	// Every node delivered the same offsets, the receipts' among them.
	var seen [][]offsetData
	for _, w := range watchers {
		seen = append(seen, readMessages(t, w, channel, 8))
	}
	for i := range seen[1:] {
		if !reflect.DeepEqual(seen[0], seen[i+1]) {
			t.Fatalf("node %d saw %v, node 0 saw %v", i+1, seen[i+1], seen[0])
		}
	}
	if !reflect.DeepEqual(seen[0][:5], receipts) {
		t.Fatalf("delivered %v, publish receipts %v", seen[0][:5], receipts)
	}
	for i, g := range nodes {
		p := g.history("channel=" + channel)
		var got []offsetData
		for _, m := range p.Messages {
			got = append(got, offsetData{m.Offset, string(m.Data)})
		}
		if p.Epoch != epoch || p.Offset != seen[0][7].Offset || !reflect.DeepEqual(got, seen[0]) {
			t.Fatalf("node %d /api/history: %+v, delivered %v", i, p, seen[0])
		}
	}
}

// TestClusterHistoryKeepsItsEpochAcrossANATSRestart: NATS restarted on
// its store keeps the stream, so a client recovers what was published
// before, with the same epoch, and offsets go on growing.
func TestClusterHistoryKeepsItsEpochAcrossANATSRestart(t *testing.T) {
	dir := t.TempDir()
	srv := startJetStream(t, dir, -1)
	port := natstest.Port(srv)
	a := startHistoryNode(t, natstest.URL(srv), 100)
	b := startHistoryNode(t, natstest.URL(srv), 100)
	const channel = "kept"
	start, epoch := a.publishOffset(channel, `"before"`)
	for _, d := range []string{"1", "2"} {
		b.publishOffset(channel, d)
	}

	natstest.Stop(srv)
	a.waitReady(http.StatusServiceUnavailable)
	srv = startJetStream(t, dir, port)
	for _, g := range []*testGateway{a, b} {
		g.waitReady(http.StatusOK)
	}

	c := wstest.Dial(t, b.wsURL(), nil)
	sub := subscribeHist(t, c, channel, epoch, start)
	if !*sub.Recovered || *sub.Epoch != epoch {
		t.Fatalf("after the restart: %+v, want recovered in epoch %q", sub, epoch)
	}
	last := expectData(t, c, channel, start, "1", "2")
	off, ep := a.publishOffset(channel, "3")
	if ep != epoch || off <= last {
		t.Fatalf("publish after the restart: offset %d epoch %q, before: %d %q", off, ep, last, epoch)
	}
	expectData(t, c, channel, last, "3")
}

// TestClusterLinkCutDuringFloodDeliversEveryMessageOnce: node B's NATS
// link (broker and history) is cut three times while node A's API floods
// a channel; every subscriber connected to B ends with every message once
// and in order. A subscriber closed with 4010 meanwhile must recover in
// full on reconnect (history covers the flood).
func TestClusterLinkCutDuringFloodDeliversEveryMessageOnce(t *testing.T) {
	const clients, total = 20, 2000
	srv := startJetStream(t, t.TempDir(), -1)
	proxy := natstest.NewProxy(t, srv.Addr().String())
	a := startHistoryNode(t, natstest.URL(srv), total)
	b := startHistoryNode(t, proxy.URL(), total)

	type result struct {
		id, sessions int
		err          error
	}
	results := make(chan result, clients)
	ready := make(chan struct{}, clients)
	for i := range clients {
		go func() {
			n, err := stayingClient(b.wsURL(), total, ready)
			results <- result{i, n, err}
		}()
	}
	for range clients {
		<-ready
	}
	for published := 0; published < total; {
		if published > 0 && published%500 == 0 {
			b.waitMetric(1, "shardgate_broker_connected")
			proxy.Cut()
		}
		_, err := a.publishWait("flood", json.RawMessage(fmt.Sprint(published+1)), sourceAPI)
		switch err {
		case nil:
			published++
		case errOverloaded:
		default:
			t.Fatalf("publish %d: %v", published+1, err)
		}
	}
	reconnects := 0
	for range clients {
		r := <-results
		if r.err != nil {
			t.Errorf("client %d: %v", r.id, r.err)
		}
		reconnects += r.sessions - 1
	}
	t.Logf("%d subscribers on the cut node, %d messages each, %d reconnects after 4010", clients, total, reconnects)
}

// stayingClient subscribes to "flood" on url and reads until message
// total, reconnecting and recovering only when closed with 4010. It
// returns the number of sessions.
func stayingClient(url string, total int, ready chan<- struct{}) (int, error) {
	var (
		epoch    string
		last     uint64
		next     = 1
		sessions int
	)
	for next <= total {
		sessions++
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		conn, _, _, err := ws.Dial(ctx, url)
		cancel()
		if err != nil {
			return sessions, fmt.Errorf("dial: %w", err)
		}
		req := map[string]any{"type": "subscribe", "channel": "flood"}
		if epoch != "" {
			req["recover"] = map[string]any{"epoch": epoch, "offset": last}
		}
		msg, _ := json.Marshal(req)
		if err := wsutil.WriteClientText(conn, msg); err != nil {
			conn.Close()
			return sessions, err
		}
		err = readSession(conn, &epoch, &last, &next, total, total, sessions == 1, ready)
		conn.Close()
		var closed wsutil.ClosedError
		switch {
		case err == nil:
		case errors.As(err, &closed) && closed.Code == shard.StatusInsufficientState:
		default:
			return sessions, err
		}
	}
	return sessions, nil
}

// TestClusterLostHistoryClosesSubscribersWith4010: while node B is cut
// off, more messages are published than the channel keeps, so B's
// follower cannot catch up: B closes the channel's subscribers with 4010,
// a reconnecting client gets recovered:false and then live messages, and
// a subscriber of another channel on B is left alone.
func TestClusterLostHistoryClosesSubscribersWith4010(t *testing.T) {
	srv := startJetStream(t, t.TempDir(), -1)
	proxy := natstest.NewProxy(t, srv.Addr().String())
	a := startHistoryNode(t, natstest.URL(srv), 5)
	b := startHistoryNode(t, proxy.URL(), 5)

	c := wstest.Dial(t, b.wsURL(), nil)
	sub := subscribeHist(t, c, "busy", "", 0)
	// The quiet channel has a message held, so its follower can prove
	// after the outage that it missed nothing (an empty channel could
	// not: see "Delivery guarantees" in the README).
	quiet := wstest.Dial(t, b.wsURL(), nil)
	quietSub := subscribeHist(t, quiet, "quiet", "", 0)
	a.publishOffset("quiet", `"hello"`)
	quietLast := expectData(t, quiet, "quiet", *quietSub.Offset, `"hello"`)
	off, _ := a.publishOffset("busy", "0")
	last := expectData(t, c, "busy", *sub.Offset, "0")
	if last != off {
		t.Fatalf("offset %d, receipt %d", last, off)
	}

	proxy.SetMode(natstest.Dropping)
	proxy.Cut()
	b.waitMetric(0, "shardgate_broker_connected")
	for i := 1; i <= 20; i++ {
		a.publishOffset("busy", fmt.Sprint(i))
	}
	proxy.SetMode(natstest.Flowing)
	c.ExpectClose(shard.StatusInsufficientState)
	b.waitMetric(1, "shardgate_disconnects_total", "reason", "insufficient_state")

	again := wstest.Dial(t, b.wsURL(), nil)
	sub = subscribeHist(t, again, "busy", *sub.Epoch, last)
	if *sub.Recovered {
		t.Fatalf("recovered across an eviction: %+v", sub)
	}
	a.publishOffset("busy", "21")
	expectData(t, again, "busy", *sub.Offset, "21")
	a.publishOffset("quiet", `"still here"`)
	expectData(t, quiet, "quiet", quietLast, `"still here"`)
}

// TestClusterInterestChurnNeverSkipsAMessage: clients on node B keep
// subscribing to a channel and leaving it, so B's follower of it stops
// whenever the last one leaves and another starts with the next
// subscriber, while node A's API publishes without pause. Every session
// gets, after the offset its subscribed reply announced, exactly the
// published messages that follow it, in order, with none skipped.
func TestClusterInterestChurnNeverSkipsAMessage(t *testing.T) {
	const workers, rounds = 4, 25
	srv := startJetStream(t, t.TempDir(), -1)
	url := natstest.URL(srv)
	a := startHistoryNode(t, url, 10000)
	b := startHistoryNode(t, url, 10000)

	var (
		mu      sync.Mutex
		offsets []uint64 // every publish's offset, in publish order
	)
	stop := make(chan struct{})
	published := make(chan error, 1)
	go func() {
		for n := 0; ; n++ {
			select {
			case <-stop:
				published <- nil
				return
			default:
			}
			r, err := a.publishWait("churn", json.RawMessage(fmt.Sprint(n)), sourceAPI)
			switch {
			case errors.Is(err, errOverloaded):
				continue
			case err != nil:
				published <- err
				return
			}
			mu.Lock()
			offsets = append(offsets, r.Offset)
			mu.Unlock()
		}
	}()

	type result struct {
		sessions []churnSeen
		err      error
	}
	results := make(chan result, workers)
	for w := range workers {
		go func() {
			var r result
			for i := range rounds {
				s, err := churnSession(b.wsURL(), 1+(w+i)%4)
				if err != nil {
					r.err = fmt.Errorf("round %d: %w", i, err)
					break
				}
				r.sessions = append(r.sessions, s)
			}
			results <- r
		}()
	}
	var all []churnSeen
	for range workers {
		r := <-results
		if r.err != nil {
			t.Error(r.err)
		}
		all = append(all, r.sessions...)
	}
	close(stop)
	if err := <-published; err != nil {
		t.Fatalf("publisher: %v", err)
	}
	for i, s := range all {
		at := sort.Search(len(offsets), func(j int) bool { return offsets[j] > s.from })
		if at+len(s.got) > len(offsets) || !reflect.DeepEqual(s.got, offsets[at:at+len(s.got)]) {
			t.Fatalf("session %d after offset %d got %v, published next %v", i, s.from, s.got, offsets[at:min(at+len(s.got), len(offsets))])
		}
	}
	t.Logf("%d sessions over %d published messages", len(all), len(offsets))
}

// churnSeen is what one churning session saw.
type churnSeen struct {
	from uint64   // the subscribed reply's offset
	got  []uint64 // the offsets delivered after it
}

// churnSession subscribes to "churn" on url, reads n messages and hangs
// up.
func churnSession(url string, n int) (churnSeen, error) {
	var s churnSeen
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	conn, _, _, err := ws.Dial(ctx, url)
	cancel()
	if err != nil {
		return s, fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	if err := wsutil.WriteClientText(conn, []byte(`{"type":"subscribe","channel":"churn"}`)); err != nil {
		return s, err
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for subscribed := false; len(s.got) < n; {
		p, op, err := wsutil.ReadServerData(conn)
		if err != nil {
			return s, fmt.Errorf("read: %w", err)
		}
		if op != ws.OpText {
			continue
		}
		var m histMsg
		if err := json.Unmarshal(p, &m); err != nil || m.Offset == nil {
			return s, fmt.Errorf("bad message %s", p)
		}
		switch {
		case !subscribed && m.Type == "subscribed":
			s.from, subscribed = *m.Offset, true
		case subscribed && m.Type == "message":
			s.got = append(s.got, *m.Offset)
		default:
			return s, fmt.Errorf("unexpected %s", p)
		}
	}
	return s, nil
}

// TestClusterEmptyChannelHasOffsetZero: in a cluster, as on one node, a
// channel with no message yet answers offset 0 (SPEC), even though other
// channels have moved the stream's sequence on; its first message then
// carries an offset above 0 and a client recovering from 0 gets it.
func TestClusterEmptyChannelHasOffsetZero(t *testing.T) {
	srv := startJetStream(t, t.TempDir(), -1)
	url := natstest.URL(srv)
	a, b := startHistoryNode(t, url, 100), startHistoryNode(t, url, 100)
	for i := range 3 {
		b.publishOffset("busy", fmt.Sprint(i)) // the stream's sequence moves on
	}
	c := wstest.Dial(t, a.wsURL(), nil)
	sub := subscribeHist(t, c, "quiet", "", 0)
	if *sub.Offset != 0 {
		t.Fatalf("subscribed to a channel with no message: offset %d, want 0", *sub.Offset)
	}
	off, _ := b.publishOffset("quiet", `"first"`)
	if off == 0 {
		t.Fatal("the first message of a channel has offset 0")
	}
	expectData(t, c, "quiet", 0, `"first"`)
	c.Close()

	r := wstest.Dial(t, b.wsURL(), nil)
	rec := subscribeHist(t, r, "quiet", *sub.Epoch, 0)
	if rec.Recovered == nil || !*rec.Recovered || *rec.Offset != off {
		t.Fatalf("recover from 0 on another node: %+v, want recovered at offset %d", rec, off)
	}
	expectData(t, r, "quiet", 0, `"first"`)
}
