package shardgate

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/shardgate/shardgate/internal/gwproc"
	"github.com/shardgate/shardgate/internal/natstest"
)

// flood publishes numbered messages 1, 2, ... to channel through g's
// admin API, one at a time (so in order), until stop is closed and at
// least min were sent; it returns how many were published.
func flood(g *gwproc.Gateway, channel string, min int, stop <-chan struct{}) (int, error) {
	ctx := context.Background()
	for n := 1; ; n++ {
		if _, err := g.Publish(ctx, channel, seqData(n)); err != nil {
			return n - 1, err
		}
		if n >= min {
			select {
			case <-stop:
				return n, nil
			default:
			}
		}
	}
}

type floodResult struct {
	n   int
	err error
}

// TestRecoveryHasNoGapNorDuplicateWhileConnectionsAreCut: while a
// publisher floods a channel with numbered messages, the test cuts the
// client's connection every 200-400 ms; every resubscribe recovers
// (recovered:true) and the application gets every number exactly once,
// in order.
func TestRecoveryHasNoGapNorDuplicateWhileConnectionsAreCut(t *testing.T) {
	t.Parallel()
	g := gateway.Start(t, "-history-size", "100000", "-recover-max", "100000")
	p := gwproc.NewProxy(t, g.Addr())
	r := newRecorder()
	c := newClient(t, r.options(Options{
		URLs:              []string{p.WSURL()},
		MinReconnectDelay: 20 * time.Millisecond, MaxReconnectDelay: 100 * time.Millisecond,
	}))
	subscribe(t, c, "flood", r)
	connect(t, c)
	r.waitFor(t, "subscribed", func() bool { return len(r.subscribed) == 1 })

	stop := make(chan struct{})
	published := make(chan floodResult, 1)
	go func() {
		n, err := flood(g, "flood", 2000, stop)
		published <- floodResult{n, err}
	}()
	cuts := 0
	stopAt := time.After(4 * time.Second)
	var res floodResult
cutting:
	for {
		select {
		case <-time.After(200*time.Millisecond + rand.N(200*time.Millisecond)):
			cuts += p.Cut()
		case <-stopAt:
			close(stop)
			stopAt = nil
		case res = <-published:
			break cutting
		}
	}
	if res.err != nil {
		t.Fatalf("publisher after %d messages: %v", res.n, res.err)
	}
	r.waitFor(t, "every message", func() bool { return len(r.messages) >= res.n })

	got := r.snapshot()
	checkWhole(t, got.messages, res.n)
	if cuts < 5 || len(got.subscribed) < 5 {
		t.Fatalf("%d cuts and %d subscribes: the flood was not cut often enough to prove anything", cuts, len(got.subscribed))
	}
	replayed := 0
	for i, s := range got.subscribed[1:] {
		if !s.Recovering || !s.Recovered {
			t.Fatalf("resubscribe %d: %+v, want recovered:true", i+1, s)
		}
		replayed += got.replayed(i + 1)
	}
	t.Logf("%d messages, %d cuts, %d subscribes, %d messages recovered", res.n, cuts, len(got.subscribed), replayed)
	if replayed == 0 {
		t.Fatal("no resubscribe recovered a message: the cuts fell outside the flood")
	}
}

// TestFailoverToAnotherNodeKeepsTheStreamWhole (issue #10, item 4): three
// nodes share history through NATS JetStream; a client given all three
// URLs is on the first while a publisher floods through the second;
// the first is SIGKILLed; the client reconnects to another node,
// recovers there, and its stream stays whole: exactly 1..N.
func TestFailoverToAnotherNodeKeepsTheStreamWhole(t *testing.T) {
	t.Parallel()
	ns := natstest.StartConfig(t, natstest.Config{JetStream: true, StoreDir: t.TempDir()})
	flags := []string{"-broker", natstest.URL(ns), "-history-size", "100000", "-recover-max", "100000"}
	var nodes []*gwproc.Gateway
	var urls []string
	for range 3 {
		g := gateway.Start(t, flags...)
		nodes = append(nodes, g)
		urls = append(urls, g.WSURL())
	}
	r := newRecorder()
	c := newClient(t, r.options(Options{
		URLs:              urls,
		MinReconnectDelay: 50 * time.Millisecond, MaxReconnectDelay: 500 * time.Millisecond,
	}))
	subscribe(t, c, "orders", r)
	connect(t, c)
	r.waitFor(t, "subscribed on the first node", func() bool { return len(r.subscribed) == 1 })
	if url := r.snapshot().states[1].URL; url != urls[0] {
		t.Fatalf("connected to %s, want the first URL %s", url, urls[0])
	}

	stop := make(chan struct{})
	published := make(chan floodResult, 1)
	go func() {
		n, err := flood(nodes[1], "orders", 1000, stop)
		published <- floodResult{n, err}
	}()
	r.waitFor(t, "the flood arriving", func() bool { return len(r.messages) >= 300 })
	nodes[0].Kill()
	r.waitFor(t, "resubscribed on another node", func() bool { return len(r.subscribed) == 2 })
	// Let the flood go on for a while on the new node, then stop it.
	before := len(r.snapshot().messages)
	r.waitFor(t, "the flood on the new node", func() bool { return len(r.messages) >= before+300 })
	close(stop)
	res := <-published
	if res.err != nil {
		t.Fatalf("publisher after %d messages: %v", res.n, res.err)
	}
	r.waitFor(t, "every message", func() bool { return len(r.messages) >= res.n })

	got := r.snapshot()
	checkWhole(t, got.messages, res.n)
	if s := got.subscribed[1]; !s.Recovering || !s.Recovered {
		t.Fatalf("resubscribe on the new node: %+v, want recovered:true", s)
	}
	// What was published while the client was away came from the new
	// node's history (JetStream), not from the live stream.
	if got.replayed(1) == 0 {
		t.Fatal("the new node replayed nothing: the flood did not go on while the client was away")
	}
	var connectedTo string
	for _, s := range got.states {
		if s.State == Connected {
			connectedTo = s.URL
		}
	}
	if connectedTo == urls[0] {
		t.Fatalf("connected to the killed node again:%s", r.stateLog())
	}
	t.Logf("%d messages, failed over to %s, %d recovered there", res.n, connectedTo, got.replayed(1))
}
