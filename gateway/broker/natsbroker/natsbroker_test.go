package natsbroker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
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

// quiet is a logger for brokers under test.
func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

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

// outcome is what a done or ready received, and when.
type outcome struct {
	err error
	at  time.Time
}

// callback returns a done/ready function and the channel its one call
// lands in. A second call is reported by the test that reads calls.
func callback() (broker.Done, <-chan outcome, *atomic.Int32) {
	ch := make(chan outcome, 2)
	var calls atomic.Int32
	return func(err error) {
		calls.Add(1)
		ch <- outcome{err, time.Now()}
	}, ch, &calls
}

// await returns the outcome of a callback, failing after 10 s.
func await(t testing.TB, what string, ch <-chan outcome) error {
	t.Helper()
	select {
	case o := <-ch:
		return o.err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: callback not called", what)
		return nil
	}
}

// publish publishes and waits for done.
func publish(t testing.TB, b *Broker, channel, data string) error {
	t.Helper()
	done, ch, _ := callback()
	b.Publish(channel, json.RawMessage(data), done)
	return await(t, "publish "+channel, ch)
}

func mustPublish(t testing.TB, b *Broker, channel, data string) {
	t.Helper()
	if err := publish(t, b, channel, data); err != nil {
		t.Fatalf("publish %q %s: %v", channel, data, err)
	}
}

// interest registers interest in channel and waits for ready.
func interest(t testing.TB, b *Broker, channel string) error {
	t.Helper()
	ready, ch, _ := callback()
	b.Interest(channel, true, ready)
	return await(t, "ready "+channel, ch)
}

func mustInterest(t testing.TB, b *Broker, channel string) {
	t.Helper()
	if err := interest(t, b, channel); err != nil {
		t.Fatalf("interest in %q: %v", channel, err)
	}
}

type msg struct{ channel, data string }

// node is a broker with callbacks that record what it delivers, the
// disconnect requests and rejections it receives, and the states it
// reports.
type node struct {
	*Broker
	got      chan msg
	subs     chan string
	rejected atomic.Int64

	mu     sync.Mutex
	states []bool
}

func newNode(t testing.TB, url string, tune ...func(*Options)) *node {
	t.Helper()
	n := &node{got: make(chan msg, 4096), subs: make(chan string, 64)}
	o := Options{
		ReconnectWait: 20 * time.Millisecond,
		Log:           quiet(),
		OnStateChange: func(up bool) {
			n.mu.Lock()
			n.states = append(n.states, up)
			n.mu.Unlock()
		},
		OnDisconnect: func(sub string) { n.subs <- sub },
		OnRejected:   func() { n.rejected.Add(1) },
	}
	for _, f := range tune {
		f(&o)
	}
	b, err := New(url, func(channel string, data json.RawMessage) error {
		n.got <- msg{channel, string(data)}
		return nil
	}, o)
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

// expectNothingMore checks that nothing is waiting to be read.
func (n *node) expectNothingMore(t testing.TB) {
	t.Helper()
	select {
	case got := <-n.got:
		t.Fatalf("unexpected message %+v", got)
	default:
	}
}

// expectSub reads the next disconnect request.
func (n *node) expectSub(t testing.TB, want string) {
	t.Helper()
	select {
	case got := <-n.subs:
		if got != want {
			t.Fatalf("disconnect %q, want %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("disconnect %q not delivered", want)
	}
}

func waitConnected(t testing.TB, n *node, want bool) {
	t.Helper()
	waitFor(t, fmt.Sprintf("Connected() == %v and reported", want), func() bool {
		up, ok := n.lastState()
		return n.Connected() == want && ok && up == want
	})
}

// rawConn is a plain nats.go connection, for publishing what no gateway
// would.
func rawConn(t testing.TB, s *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(natsURL(s))
	if err != nil {
		t.Fatalf("raw connection: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
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
	mustInterest(t, b.Broker, "a.b")
	if n := subsOn(t, srv, "shardgate.ch.a~b"); n != 1 {
		t.Fatalf("%d subscriptions for a.b after ready", n)
	}

	// Published without waiting: done comes later, order must hold.
	var (
		want  []msg
		dones []<-chan outcome
	)
	for i := range 200 {
		data := fmt.Sprintf(`{"n":%d}`, i)
		for _, ch := range []string{"a.b", "a"} {
			done, c, _ := callback()
			a.Publish(ch, json.RawMessage(data), done)
			dones = append(dones, c)
		}
		want = append(want, msg{"a.b", data})
	}
	for i, c := range dones {
		if err := await(t, fmt.Sprint("publish ", i), c); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if err := publish(t, a.Broker, "a~b", `1`); !errors.Is(err, ErrBadChannel) {
		t.Fatalf("publish to a~b: %v, want ErrBadChannel", err)
	}
	mustPublish(t, a.Broker, "", `"everyone"`)
	want = append(want, msg{"", `"everyone"`})
	// The message to everyone comes after all of a's others: nothing
	// extra can hide between them.
	b.expect(t, want...)
	a.expect(t, msg{"", `"everyone"`})
}

// TestPublishCopiesData: the caller may reuse its buffer as soon as
// Publish returns.
func TestPublishCopiesData(t *testing.T) {
	srv := startNATS(t, -1)
	a := newNode(t, natsURL(srv))
	waitConnected(t, a, true)
	mustInterest(t, a.Broker, "c")
	buf := []byte(`{"n":0}`)
	var dones []<-chan outcome
	for i := range 10 {
		buf[5] = byte('0' + i)
		done, c, _ := callback()
		a.Publish("c", buf, done)
		dones = append(dones, c)
	}
	buf[5] = 'x'
	for i, c := range dones {
		if err := await(t, "publish", c); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	for i := range 10 {
		a.expect(t, msg{"c", fmt.Sprintf(`{"n":%d}`, i)})
	}
}

// TestOwnPublishComesBack: a node delivers its own publishes only through
// NATS, and a publish made once ready was called comes back.
func TestOwnPublishComesBack(t *testing.T) {
	srv := startNATS(t, -1)
	a := newNode(t, natsURL(srv))
	waitConnected(t, a, true)
	for i := range 20 {
		ch := fmt.Sprintf("c%d", i)
		mustInterest(t, a.Broker, ch)
		mustPublish(t, a.Broker, ch, "1")
		a.expect(t, msg{ch, "1"})
	}
}

// TestReadyMeansRegistered: a message that another node publishes as
// soon as ready(nil) fires reaches the interested node, every time. A
// ready called before the server had the SUB would lose some of these.
func TestReadyMeansRegistered(t *testing.T) {
	srv := startNATS(t, -1)
	a, b := newNode(t, natsURL(srv)), newNode(t, natsURL(srv))
	waitConnected(t, a, true)
	waitConnected(t, b, true)
	for i := range 1000 {
		ch := fmt.Sprintf("r%d", i)
		data := fmt.Sprintf(`{"i":%d}`, i)
		pubDone, pubCh, _ := callback()
		ready, readyCh, _ := callback()
		b.Interest(ch, true, func(err error) {
			if err == nil {
				a.Publish(ch, json.RawMessage(data), pubDone)
			}
			ready(err)
		})
		if err := await(t, "ready "+ch, readyCh); err != nil {
			t.Fatalf("ready %s: %v", ch, err)
		}
		if err := await(t, "publish "+ch, pubCh); err != nil {
			t.Fatalf("publish %s: %v", ch, err)
		}
		select {
		case got := <-b.got:
			if got != (msg{ch, data}) {
				t.Fatalf("round %d: got %+v", i, got)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: message published after ready never arrived", i)
		}
		b.Interest(ch, false, nil)
	}
	waitFor(t, "channel subscriptions gone", func() bool { return subsOn(t, srv, "shardgate.ch.r999") == 0 })
}

// TestReadyBatches: many Interest calls made together are all answered,
// each once, with their subscriptions in place.
func TestReadyBatches(t *testing.T) {
	srv := startNATS(t, -1)
	a := newNode(t, natsURL(srv))
	waitConnected(t, a, true)
	const n = 500
	var chans []<-chan outcome
	var counts []*atomic.Int32
	for i := range n {
		ready, c, calls := callback()
		a.Interest(fmt.Sprintf("b%d", i), true, ready)
		chans, counts = append(chans, c), append(counts, calls)
	}
	for i, c := range chans {
		if err := await(t, "ready", c); err != nil {
			t.Fatalf("ready %d: %v", i, err)
		}
	}
	for i := range n {
		if got := subsOn(t, srv, fmt.Sprintf("shardgate.ch.b%d", i)); got != 1 {
			t.Fatalf("b%d: %d subscriptions after ready", i, got)
		}
		if c := counts[i].Load(); c != 1 {
			t.Fatalf("ready %d called %d times", i, c)
		}
	}
}

// TestReadyWithdrawn: an interest withdrawn before the worker applied it
// does not report success.
func TestReadyWithdrawn(t *testing.T) {
	srv := startNATS(t, -1)
	a := newNode(t, natsURL(srv))
	waitConnected(t, a, true)
	// Holding subMu keeps the worker from applying anything: whether it
	// takes the first call alone or both together, it applies after the
	// withdrawal.
	ready, c, _ := callback()
	a.subMu.Lock()
	a.Interest("w", true, ready)
	a.Interest("w", false, nil)
	a.subMu.Unlock()
	if err := await(t, "ready w", c); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("ready of a withdrawn interest: %v, want ErrUnavailable", err)
	}
	if n := subsOn(t, srv, "shardgate.ch.w"); n != 0 {
		t.Fatalf("%d subscriptions for a withdrawn interest", n)
	}
}

// TestInterestCostsSubscriptions: one NATS subscription for everyone, one
// for disconnect requests, one per channel with interest, none left after
// interest ends.
func TestInterestCostsSubscriptions(t *testing.T) {
	srv := startNATS(t, -1)
	base := srv.NumSubscriptions()
	a := newNode(t, natsURL(srv))
	waitConnected(t, a, true)
	count := func(want uint32) {
		t.Helper()
		waitFor(t, fmt.Sprintf("%d subscriptions", want), func() bool { return srv.NumSubscriptions()-base == want })
	}
	count(2)
	mustInterest(t, a.Broker, "news")
	count(3)
	mustInterest(t, a.Broker, "news") // already subscribed
	mustInterest(t, a.Broker, "sport")
	count(4)
	a.Interest("news", false, nil)
	a.Interest("news", false, nil) // not subscribed
	count(3)
	if n := subsOn(t, srv, "shardgate.ch.news"); n != 0 {
		t.Fatalf("%d subscriptions on news after interest ended", n)
	}
	a.Interest("sport", false, nil)
	count(2)
	if err := interest(t, a.Broker, "a~b"); !errors.Is(err, ErrBadChannel) {
		t.Fatalf("interest in a~b: %v, want ErrBadChannel", err)
	}
}

// TestOutage: while the server is away the broker reports it, refuses
// publishes, readies and disconnect requests without buffering them, and
// records interest changes; when a server returns on the same address
// every change is in place.
func TestOutage(t *testing.T) {
	srv := startNATS(t, -1)
	port := natsPort(srv)
	a, b := newNode(t, natsURL(srv)), newNode(t, natsURL(srv))
	waitConnected(t, a, true)
	waitConnected(t, b, true)
	mustInterest(t, b.Broker, "kept")
	mustInterest(t, b.Broker, "dropped")

	stopNATS(srv)
	waitConnected(t, a, false)
	waitConnected(t, b, false)
	if err := publish(t, a.Broker, "kept", `"lost"`); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("publish during outage: %v, want ErrUnavailable", err)
	}
	if err := interest(t, b.Broker, "added"); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("ready during outage: %v, want ErrUnavailable", err)
	}
	if err := a.Disconnect("alice"); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("disconnect during outage: %v, want ErrUnavailable", err)
	}
	b.Interest("dropped", false, nil)

	srv = startNATS(t, port)
	waitConnected(t, a, true)
	waitConnected(t, b, true)
	waitFor(t, "b's subscriptions restored", func() bool {
		return subsOn(t, srv, "shardgate.ch.kept") == 1 && subsOn(t, srv, "shardgate.ch.added") == 1 &&
			subsOn(t, srv, "shardgate.all") == 2 && subsOn(t, srv, "shardgate.ctl.disconnect") == 2
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
	// The message published during the outage was answered with an
	// error: it never arrives.
	b.expectNothingMore(t)
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
	if err := publish(t, a.Broker, "x", `1`); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("publish: %v, want ErrUnavailable", err)
	}
	if err := interest(t, a.Broker, "x"); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("ready: %v, want ErrUnavailable", err)
	}

	srv := startNATS(t, port)
	waitConnected(t, a, true)
	waitFor(t, "subscription", func() bool { return subsOn(t, srv, "shardgate.ch.x") == 1 })
	mustPublish(t, a.Broker, "x", "1")
	a.expect(t, msg{"x", "1"})
}

// TestClose: Close stops the broker's goroutines (goleak checks), hands
// over the publishes already queued, makes later calls fail or do
// nothing, and a second Close reports ErrClosed.
func TestClose(t *testing.T) {
	srv := startNATS(t, -1)
	a := newNode(t, natsURL(srv))
	b := newNode(t, natsURL(srv))
	waitConnected(t, a, true)
	waitConnected(t, b, true)
	mustInterest(t, a.Broker, "x")
	mustInterest(t, b.Broker, "x")
	// Queued just before Close: each is answered by the time Close
	// returns, and those answered nil arrive.
	var dones []<-chan outcome
	for i := range 100 {
		done, c, _ := callback()
		a.Publish("x", json.RawMessage(fmt.Sprint(i)), done)
		dones = append(dones, c)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	var delivered []msg
	for i, c := range dones {
		select {
		case o := <-c:
			if o.err != nil {
				t.Fatalf("publish %d queued before Close: %v", i, o.err)
			}
			delivered = append(delivered, msg{"x", fmt.Sprint(i)})
		default:
			t.Fatalf("publish %d not answered when Close returned", i)
		}
	}
	b.expect(t, delivered...)

	if err := a.Close(); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("second close: %v, want ErrClosed", err)
	}
	if a.Connected() {
		t.Fatal("connected after Close")
	}
	if err := publish(t, a.Broker, "x", `1`); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("publish after Close: %v, want ErrClosed", err)
	}
	if err := interest(t, a.Broker, "y"); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("ready after Close: %v, want ErrClosed", err)
	}
	if err := a.Disconnect("alice"); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("disconnect after Close: %v, want ErrClosed", err)
	}
	waitFor(t, "no subscriptions of a left", func() bool {
		return subsOn(t, srv, "shardgate.all") == 1 && subsOn(t, srv, "shardgate.ch.x") == 1
	})
	if n := subsOn(t, srv, "shardgate.ch.y"); n != 0 {
		t.Fatalf("interest after Close subscribed (%d)", n)
	}
}

// TestCloseAnswersPendingReadies: with a frozen server, readies waiting
// for its acknowledgement get ErrClosed from Close, which does not wait
// for the flush timeout.
func TestCloseAnswersPendingReadies(t *testing.T) {
	srv := startNATS(t, -1)
	p := natstest.NewProxy(t, srv.Addr().String())
	a := newNode(t, p.URL(), func(o *Options) { o.FlushTimeout = time.Minute })
	waitConnected(t, a, true)
	p.SetMode(natstest.Stalled)
	// The first is in the worker's flush or waits for it, the second may
	// wait for the worker's next pass: either way nothing can answer.
	r1, c1, n1 := callback()
	r2, c2, n2 := callback()
	a.Interest("p1", true, r1)
	a.Interest("p2", true, r2)
	for _, c := range []<-chan outcome{c1, c2} {
		select {
		case o := <-c:
			t.Fatalf("ready answered (%v) while the server is frozen", o.err)
		default:
		}
	}
	start := time.Now()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %v", d)
	}
	for i, c := range []<-chan outcome{c1, c2} {
		select {
		case o := <-c:
			if !errors.Is(o.err, broker.ErrClosed) {
				t.Fatalf("ready %d: %v, want ErrClosed", i+1, o.err)
			}
		default:
			t.Fatalf("ready %d not answered when Close returned", i+1)
		}
	}
	if n1.Load() != 1 || n2.Load() != 1 {
		t.Fatalf("readies called %d and %d times", n1.Load(), n2.Load())
	}
}

// TestCloseAnswersPendingPublishes: with a frozen server, publishes
// waiting in the queue or in a blocked write are all answered, once, by
// the time Close returns, and Close does not wait for PublishTimeout.
func TestCloseAnswersPendingPublishes(t *testing.T) {
	srv := startNATS(t, -1)
	p := natstest.NewProxy(t, srv.Addr().String())
	const writeTimeout = 300 * time.Millisecond
	a := newNode(t, p.URL(), func(o *Options) {
		o.PublishTimeout = time.Minute
		o.WriteTimeout = writeTimeout
	})
	waitConnected(t, a, true)
	p.SetMode(natstest.Stalled)
	// More than the socket buffers hold: the publisher blocks in a write,
	// the rest wait in the queue (unless the write timed out already).
	var (
		dones []<-chan outcome
		calls []*atomic.Int32
	)
	buf := make([]byte, 0, 64<<10)
	for i := range 150 {
		done, c, n := callback()
		buf = bigPayload(buf, i)
		a.Publish("big", buf, done)
		dones, calls = append(dones, c), append(calls, n)
	}
	start := time.Now()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*writeTimeout+2*time.Second {
		t.Fatalf("Close took %v", d)
	}
	refused := 0
	for i, c := range dones {
		select {
		case o := <-c:
			if o.err != nil {
				refused++
			}
		default:
			t.Fatalf("publish %d not answered when Close returned", i)
		}
		if n := calls[i].Load(); n != 1 {
			t.Fatalf("publish %d answered %d times", i, n)
		}
	}
	if refused == 0 {
		t.Fatal("every publish handed over: the socket buffers never filled")
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
	}, Options{Log: quiet()})
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

// TestFrozenServer: a server that stops answering without closing the
// connection is noticed through pings; while nats.go then spends whole
// connect timeouts dialling it (holding its connection lock), Interest,
// Publish and Connected still return at once, and the interest is in
// place when the server answers again.
func TestFrozenServer(t *testing.T) {
	srv := startNATS(t, -1)
	p := natstest.NewProxy(t, srv.Addr().String())
	const connectTimeout = time.Second
	n := newNode(t, p.URL(), func(o *Options) {
		o.ConnectTimeout = connectTimeout
		o.PingInterval = 50 * time.Millisecond
	})
	waitConnected(t, n, true)

	p.SetMode(natstest.Dropping)
	waitConnected(t, n, false)
	// Reconnect attempts now block inside nats.go for connectTimeout each
	// (after a ReconnectWait pause): keep calling for a good part of one.
	var readies []<-chan outcome
	for i, until := 0, time.Now().Add(connectTimeout/4); time.Now().Before(until); i++ {
		start := time.Now()
		ready, c, _ := callback()
		n.Interest(fmt.Sprintf("c%d", i%20), true, ready)
		readies = append(readies, c)
		n.Interest("gone", i%2 == 0, func(error) {})
		done, pc, _ := callback()
		n.Publish("c0", json.RawMessage(`1`), done)
		select {
		case o := <-pc:
			if !errors.Is(o.err, broker.ErrUnavailable) {
				t.Fatalf("publish while frozen: %v", o.err)
			}
		default:
			t.Fatal("publish while disconnected not answered at once")
		}
		if n.Connected() {
			t.Fatal("connected while frozen")
		}
		if d := time.Since(start); d > connectTimeout/4 {
			t.Fatalf("calls took %v while nats.go was dialling", d)
		}
	}
	for i, c := range readies {
		if err := await(t, "ready", c); !errors.Is(err, broker.ErrUnavailable) {
			t.Fatalf("ready %d while frozen: %v, want ErrUnavailable", i, err)
		}
	}

	n.Interest("gone", false, nil)

	p.SetMode(natstest.Flowing)
	waitConnected(t, n, true)
	waitFor(t, "interest restored", func() bool {
		return subsOn(t, srv, "shardgate.ch.c0") == 1 && subsOn(t, srv, "shardgate.ch.c19") == 1
	})
	if got := subsOn(t, srv, "shardgate.ch.gone"); got != 0 {
		t.Fatalf("%d subscriptions for a channel whose interest ended", got)
	}
	mustPublish(t, n.Broker, "c19", "1")
	n.expect(t, msg{"c19", "1"})
}
