package natsbroker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/shardgate/shardgate/gateway/broker"
	"github.com/shardgate/shardgate/internal/natstest"
	"go.uber.org/goleak"
)

// TestMain fails the package if a broker or server outlives its test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startNATS and stopNATS are natstest.Start and natstest.Stop.
func startNATS(t testing.TB, port int) *server.Server { return natstest.Start(t, port) }
func stopNATS(s *server.Server)                       { natstest.Stop(s) }

func natsURL(s *server.Server) string { return natstest.URL(s) }
func natsPort(s *server.Server) int   { return natstest.Port(s) }

// subsOn counts the server's subscriptions that a message to subject
// would reach.
func subsOn(t testing.TB, s *server.Server, subject string) int {
	t.Helper()
	sz, err := s.Subsz(&server.SubszOptions{Subscriptions: true, Test: subject})
	if err != nil {
		t.Fatalf("subsz: %v", err)
	}
	return sz.Total
}

// waitFor polls cond every 5 ms for up to 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type msg struct{ channel, data string }

// node is a broker with a handler that records what it delivers and the
// states it reports.
type node struct {
	*Broker
	got chan msg

	mu     sync.Mutex
	states []bool
}

func newNode(t testing.TB, url string) *node {
	t.Helper()
	n := &node{got: make(chan msg, 4096)}
	b, err := New(url, func(channel string, data json.RawMessage) error {
		n.got <- msg{channel, string(data)}
		return nil
	}, Options{
		ReconnectWait: 20 * time.Millisecond,
		Log:           slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnStateChange: func(up bool) {
			n.mu.Lock()
			n.states = append(n.states, up)
			n.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatalf("new broker: %v", err)
	}
	n.Broker = b
	t.Cleanup(func() { b.Close() })
	return n
}

func (n *node) lastState() (up, ok bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.states) == 0 {
		return false, false
	}
	return n.states[len(n.states)-1], true
}

// expect reads the next delivered messages and compares them with want.
func (n *node) expect(t testing.TB, want ...msg) {
	t.Helper()
	for i, w := range want {
		select {
		case got := <-n.got:
			if got != w {
				t.Fatalf("message %d: got %+v, want %+v", i, got, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d (%+v) not delivered", i, w)
		}
	}
}

func mustPublish(t testing.TB, b *Broker, channel, data string) {
	t.Helper()
	if err := b.Publish(channel, json.RawMessage(data)); err != nil {
		t.Fatalf("publish %q %s: %v", channel, data, err)
	}
}

func waitConnected(t testing.TB, n *node, want bool) {
	t.Helper()
	waitFor(t, fmt.Sprintf("Connected() == %v and reported", want), func() bool {
		up, ok := n.lastState()
		return n.Connected() == want && ok && up == want
	})
}

// TestDeliveryOnceInOrder: a node receives what another node publishes to
// a channel it is interested in, once each and in publish order, and
// nothing for channels it is not interested in; the publisher, not
// interested, receives only messages to everyone.
func TestDeliveryOnceInOrder(t *testing.T) {
	srv := startNATS(t, -1)
	a, b := newNode(t, natsURL(srv)), newNode(t, natsURL(srv))
	waitConnected(t, a, true)
	waitConnected(t, b, true)
	b.Interest("a.b", true)
	waitFor(t, "b's subscription", func() bool { return subsOn(t, srv, "shardgate.ch.a~b") == 1 })

	var want []msg
	for i := range 200 {
		data := fmt.Sprintf(`{"n":%d}`, i)
		mustPublish(t, a.Broker, "a.b", data)
		mustPublish(t, a.Broker, "a", `"not for b"`)
		want = append(want, msg{"a.b", data})
	}
	if err := a.Publish("a~b", json.RawMessage(`1`)); !errors.Is(err, ErrBadChannel) {
		t.Fatalf("publish to a~b: %v, want ErrBadChannel", err)
	}
	mustPublish(t, a.Broker, "", `"everyone"`)
	want = append(want, msg{"", `"everyone"`})
	// The message to everyone comes after all of a's others: nothing
	// extra can hide between them.
	b.expect(t, want...)
	a.expect(t, msg{"", `"everyone"`})
}

// TestOwnPublishComesBack: a node delivers its own publishes only through
// NATS, and an Interest made just before a publish is already in place.
func TestOwnPublishComesBack(t *testing.T) {
	srv := startNATS(t, -1)
	a := newNode(t, natsURL(srv))
	waitConnected(t, a, true)
	for i := range 20 {
		ch := fmt.Sprintf("c%d", i)
		a.Interest(ch, true)
		mustPublish(t, a.Broker, ch, "1")
		a.expect(t, msg{ch, "1"})
	}
}

// TestInterestCostsSubscriptions: one NATS subscription for everyone, one
// per channel with interest, none left after interest ends.
func TestInterestCostsSubscriptions(t *testing.T) {
	srv := startNATS(t, -1)
	base := srv.NumSubscriptions()
	a := newNode(t, natsURL(srv))
	waitConnected(t, a, true)
	count := func(want uint32) {
		t.Helper()
		waitFor(t, fmt.Sprintf("%d subscriptions", want), func() bool { return srv.NumSubscriptions()-base == want })
	}
	count(1)
	a.Interest("news", true)
	count(2)
	a.Interest("news", true) // already subscribed
	a.Interest("sport", true)
	count(3)
	a.Interest("news", false)
	a.Interest("news", false) // not subscribed
	count(2)
	if n := subsOn(t, srv, "shardgate.ch.news"); n != 0 {
		t.Fatalf("%d subscriptions on news after interest ended", n)
	}
	a.Interest("sport", false)
	count(1)
}

// TestOutage: while the server is away the broker reports it, refuses
// publishes without buffering them, and records interest changes; when a
// server returns on the same address every change is in place.
func TestOutage(t *testing.T) {
	srv := startNATS(t, -1)
	port := natsPort(srv)
	a, b := newNode(t, natsURL(srv)), newNode(t, natsURL(srv))
	waitConnected(t, a, true)
	waitConnected(t, b, true)
	b.Interest("kept", true)
	b.Interest("dropped", true)

	stopNATS(srv)
	waitConnected(t, a, false)
	waitConnected(t, b, false)
	if err := a.Publish("kept", json.RawMessage(`"lost"`)); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("publish during outage: %v, want ErrUnavailable", err)
	}
	b.Interest("added", true)
	b.Interest("dropped", false)

	srv = startNATS(t, port)
	waitConnected(t, a, true)
	waitConnected(t, b, true)
	waitFor(t, "b's subscriptions restored", func() bool {
		return subsOn(t, srv, "shardgate.ch.kept") == 1 && subsOn(t, srv, "shardgate.ch.added") == 1 &&
			subsOn(t, srv, "shardgate.all") == 2
	})
	if n := subsOn(t, srv, "shardgate.ch.dropped"); n != 0 {
		t.Fatalf("%d subscriptions on a channel dropped during the outage", n)
	}
	mustPublish(t, a.Broker, "dropped", `"no"`)
	mustPublish(t, a.Broker, "kept", `"k"`)
	mustPublish(t, a.Broker, "added", `"a"`)
	mustPublish(t, a.Broker, "", `"all"`)
	b.expect(t, msg{"kept", `"k"`}, msg{"added", `"a"`}, msg{"", `"all"`})
	a.expect(t, msg{"", `"all"`})
}

// TestStartWithoutServer: New succeeds while NATS is down, and the broker
// connects, with its interest, once a server appears.
func TestStartWithoutServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there now

	a := newNode(t, fmt.Sprintf("nats://127.0.0.1:%d", port))
	if a.Connected() {
		t.Fatal("connected with no server")
	}
	if up, ok := a.lastState(); !ok || up {
		t.Fatalf("first reported state %v (reported %v), want false", up, ok)
	}
	if err := a.Publish("x", json.RawMessage(`1`)); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("publish: %v, want ErrUnavailable", err)
	}
	a.Interest("x", true)

	srv := startNATS(t, port)
	waitConnected(t, a, true)
	waitFor(t, "subscription", func() bool { return subsOn(t, srv, "shardgate.ch.x") == 1 })
	mustPublish(t, a.Broker, "x", "1")
	a.expect(t, msg{"x", "1"})
}

// TestClose: Close stops the broker's goroutines (goleak checks), makes
// later calls fail or do nothing, and a second Close reports ErrClosed.
func TestClose(t *testing.T) {
	srv := startNATS(t, -1)
	a := newNode(t, natsURL(srv))
	waitConnected(t, a, true)
	a.Interest("x", true)
	if err := a.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := a.Close(); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("second close: %v, want ErrClosed", err)
	}
	if a.Connected() {
		t.Fatal("connected after Close")
	}
	if err := a.Publish("x", json.RawMessage(`1`)); err == nil {
		t.Fatal("publish after Close succeeded")
	}
	a.Interest("y", true)
	waitFor(t, "no subscriptions left", func() bool {
		return subsOn(t, srv, "shardgate.all") == 0 && subsOn(t, srv, "shardgate.ch.x") == 0
	})
	if n := subsOn(t, srv, "shardgate.ch.y"); n != 0 {
		t.Fatalf("interest after Close subscribed (%d)", n)
	}
}

// TestHandlerErrorDoesNotStall: a handler that refuses messages (an
// overloaded node) loses those messages only.
func TestHandlerErrorDoesNotStall(t *testing.T) {
	srv := startNATS(t, -1)
	got := make(chan string, 16)
	b, err := New(natsURL(srv), func(channel string, data json.RawMessage) error {
		if string(data) == `"refuse"` {
			return errors.New("overloaded")
		}
		got <- string(data)
		return nil
	}, Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	waitFor(t, "connected", b.Connected)
	mustPublish(t, b, "", `"refuse"`)
	mustPublish(t, b, "", `"take"`)
	select {
	case d := <-got:
		if d != `"take"` {
			t.Fatalf("got %s", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("message after a refused one not delivered")
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	h := func(string, json.RawMessage) error { return nil }
	if _, err := New("nats://127.0.0.1:1", h, Options{SubjectPrefix: "a.*"}); err == nil {
		t.Fatal("wildcard prefix accepted")
	}
	if _, err := New("nats://%zz", h, Options{}); err == nil {
		t.Fatal("bad url accepted")
	}
}

// freezer is a TCP proxy to a NATS server that can be frozen: it then
// drops whatever flows through its connections and leaves new ones
// silent, as a crashed host or a network partition would, without
// closing anything.
type freezer struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex
	frozen bool
	closed bool
	conns  []net.Conn
}

func newFreezer(t testing.TB, target string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln, target: target}
	f.wg.Add(1)
	go f.serve()
	t.Cleanup(f.close)
	return f
}

func (f *freezer) url() string { return "nats://" + f.ln.Addr().String() }

func (f *freezer) setFrozen(v bool) {
	f.mu.Lock()
	f.frozen = v
	f.mu.Unlock()
}

func (f *freezer) isFrozen() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.frozen
}

// track remembers c for close, or closes it if close has run.
func (f *freezer) track(c net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		c.Close()
		return
	}
	f.conns = append(f.conns, c)
}

func (f *freezer) serve() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.track(c)
		if f.isFrozen() {
			continue // accepted, never answered
		}
		up, err := net.Dial("tcp", f.target)
		if err != nil {
			c.Close()
			continue
		}
		f.track(up)
		f.wg.Add(2)
		go f.pipe(c, up)
		go f.pipe(up, c)
	}
}

func (f *freezer) pipe(dst, src net.Conn) {
	defer f.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			dst.Close()
			return
		}
		if f.isFrozen() {
			continue
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			src.Close()
			return
		}
	}
}

func (f *freezer) close() {
	f.ln.Close()
	f.mu.Lock()
	f.closed = true
	for _, c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// TestFrozenServer: a server that stops answering without closing the
// connection is noticed through pings; while nats.go then spends whole
// connect timeouts dialling it (holding its connection lock), Interest,
// Publish and Connected still return at once, and the interest is in
// place when the server answers again.
func TestFrozenServer(t *testing.T) {
	srv := startNATS(t, -1)
	fz := newFreezer(t, srv.Addr().String())
	const connectTimeout = time.Second
	n := &node{got: make(chan msg, 16)}
	b, err := New(fz.url(), func(channel string, data json.RawMessage) error {
		n.got <- msg{channel, string(data)}
		return nil
	}, Options{
		ReconnectWait:  20 * time.Millisecond,
		ConnectTimeout: connectTimeout,
		PingInterval:   50 * time.Millisecond,
		Log:            slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnStateChange: func(up bool) {
			n.mu.Lock()
			n.states = append(n.states, up)
			n.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	n.Broker = b
	defer b.Close()
	waitConnected(t, n, true)

	fz.setFrozen(true)
	waitConnected(t, n, false)
	// Reconnect attempts now block inside nats.go for connectTimeout each
	// (after a ReconnectWait pause): keep calling for a good part of one.
	for i, until := 0, time.Now().Add(connectTimeout/4); time.Now().Before(until); i++ {
		start := time.Now()
		b.Interest(fmt.Sprintf("c%d", i%20), true)
		b.Interest("gone", i%2 == 0)
		if err := b.Publish("c0", json.RawMessage(`1`)); !errors.Is(err, broker.ErrUnavailable) {
			t.Fatalf("publish while frozen: %v", err)
		}
		if b.Connected() {
			t.Fatal("connected while frozen")
		}
		if d := time.Since(start); d > connectTimeout/4 {
			t.Fatalf("calls took %v while nats.go was dialling", d)
		}
	}

	b.Interest("gone", false)

	fz.setFrozen(false)
	waitConnected(t, n, true)
	waitFor(t, "interest restored", func() bool {
		return subsOn(t, srv, "shardgate.ch.c0") == 1 && subsOn(t, srv, "shardgate.ch.c19") == 1
	})
	if got := subsOn(t, srv, "shardgate.ch.gone"); got != 0 {
		t.Fatalf("%d subscriptions for a channel whose interest ended", got)
	}
	mustPublish(t, b, "c19", "1")
	n.expect(t, msg{"c19", "1"})
}
