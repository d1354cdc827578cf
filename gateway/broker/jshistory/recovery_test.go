package jshistory

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shardgate/shardgate/gateway/broker"
	"github.com/shardgate/shardgate/internal/natstest"
)

// flood publishes on channel from n until stop is closed and returns the
// acknowledged offsets (publishes refused while NATS is away are not
// stored, so not expected).
func flood(n *History, channel string, stop <-chan struct{}, sent *atomic.Int64) func() []uint64 {
	var offs []uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			p, err := n.Publish(context.Background(), channel, fmt.Appendf(nil, `{"n":%d}`, i))
			if err == nil {
				offs = append(offs, p.Offset)
				sent.Add(1)
			}
		}
	}()
	return func() []uint64 { <-done; return offs }
}

// TestFollowSurvivesCut: a node's link to NATS is cut during a flood
// published on another node and comes back; its follower delivers every
// message once and in order, without reporting a loss.
func TestFollowSurvivesCut(t *testing.T) {
	s := startJS(t, -1, "")
	proxy := natstest.NewProxy(t, s.Addr().String())
	cfg := testConfig()
	cfg.Size = 1 << 20 // holds the whole flood: no loss to report
	pub := open(t, natstest.URL(s), cfg)
	node := open(t, proxy.URL(), cfg)
	ctx := ctx10(t)
	start, err := node.Latest(ctx, "news")
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	f, err := node.Follow("news", start, rec.deliver, rec.lost)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()

	stop := make(chan struct{})
	var sent atomic.Int64
	result := flood(pub, "news", stop, &sent)
	waitFor(t, "flood under way", func() bool { return rec.count() >= 100 })

	// Cut: connections dropped, new ones silent, while the flood goes on.
	proxy.SetMode(natstest.Dropping)
	proxy.Cut()
	waitFor(t, "node disconnected", func() bool { return !node.Connected() })
	mark := sent.Load()
	waitFor(t, "publishes while cut", func() bool { return sent.Load() >= mark+300 })
	during := rec.count()
	proxy.SetMode(natstest.Flowing)
	waitFor(t, "node reconnected", node.Connected)
	waitFor(t, "more publishes after reconnect", func() bool { return sent.Load() >= mark+600 })
	close(stop)
	want := result()
	deadline := time.Now().Add(20 * time.Second)
	for rec.count() < len(want) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	got, lostErr, _ := rec.snapshot()
	if lostErr != nil || rec.overlaps != 0 {
		t.Fatalf("lost %v, overlapping deliveries %d", lostErr, rec.overlaps)
	}
	checkExactly(t, got, want)
	t.Logf("%d messages, %d delivered before the link came back", len(want), during)
}

// TestFollowReportsLoss: while a node's link is down, more messages than
// the stream keeps per channel are published; the follower reports
// ErrLost once and delivers nothing it cannot vouch for.
func TestFollowReportsLoss(t *testing.T) {
	s := startJS(t, -1, "")
	proxy := natstest.NewProxy(t, s.Addr().String())
	cfg := testConfig()
	cfg.Size = 10
	pub := open(t, natstest.URL(s), cfg)
	node := open(t, proxy.URL(), cfg)
	ctx := ctx10(t)
	start, err := node.Latest(ctx, "news")
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	if _, err := node.Follow("news", start, rec.deliver, rec.lost); err != nil {
		t.Fatal(err)
	}
	before := publishMany(t, []*History{pub}, "news", 1, 5)
	waitFor(t, "first messages", func() bool { return rec.count() == len(before) })

	proxy.SetMode(natstest.Dropping)
	proxy.Cut()
	waitFor(t, "node disconnected", func() bool { return !node.Connected() })
	publishMany(t, []*History{pub}, "news", 1, 25) // evicts what the node missed
	proxy.SetMode(natstest.Flowing)
	select {
	case <-rec.lostCh:
	case <-time.After(20 * time.Second):
		t.Fatal("no loss reported")
	}
	got, lostErr, n := rec.snapshot()
	if !errors.Is(lostErr, ErrLost) || n != 1 {
		t.Fatalf("lost %v (%d calls), want ErrLost once", lostErr, n)
	}
	checkExactly(t, got, before)
	// The node may follow again from where the channel is now.
	p, err := node.Latest(ctx, "news")
	if err != nil {
		t.Fatal(err)
	}
	f, err := node.Follow("news", p, rec.deliver, nil)
	if err != nil {
		t.Fatalf("Follow after a loss: %v", err)
	}
	f.Stop()
}

// TestRestartKeepsHistory: NATS restarted on its store keeps the stream,
// its messages and its epoch, both for a node that stayed up (its
// follower catches up, no loss) and for one started afterwards.
func TestRestartKeepsHistory(t *testing.T) {
	dir := t.TempDir()
	s := startJS(t, -1, dir)
	port := natstest.Port(s)
	node := open(t, natstest.URL(s), testConfig())
	ctx := ctx10(t)
	epoch := node.Epoch()
	start, _ := node.Latest(ctx, "news")
	rec := newRecorder()
	f, err := node.Follow("news", start, rec.deliver, rec.lost)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	want := publishMany(t, []*History{node}, "news", 1, 20)
	waitFor(t, "delivered", func() bool { return rec.count() == len(want) })

	natstest.Stop(s)
	waitFor(t, "node disconnected", func() bool { return !node.Connected() })
	s = startJS(t, port, dir)
	waitFor(t, "node reconnected", node.Connected)
	more := publishMany(t, []*History{node}, "news", 1, 20)
	want = append(want, more...)
	waitFor(t, "delivered after restart", func() bool { return rec.count() == len(want) })
	got, lostErr, _ := rec.snapshot()
	checkExactly(t, got, want)
	if lostErr != nil {
		t.Fatalf("lost after a restart with the store: %v", lostErr)
	}
	if node.Epoch() != epoch {
		t.Fatalf("epoch %q after restart, was %q", node.Epoch(), epoch)
	}
	other := open(t, natstest.URL(s), testConfig())
	if other.Epoch() != epoch {
		t.Fatalf("new node's epoch %q, was %q", other.Epoch(), epoch)
	}
	msgs, whole, err := other.Since(ctx, "news", Position{Epoch: epoch, Offset: want[0]}, 100)
	if err != nil || !whole || len(msgs) != len(want)-1 {
		t.Fatalf("Since after restart: %d messages, whole %v, %v", len(msgs), whole, err)
	}
}

// TestRecreatedStreamNewEpoch: a stream deleted and made again (by a
// node's start, or by a node that finds it gone) has a new epoch;
// followers of the old one end with ErrEpochChanged, and positions of the
// old epoch are not complete.
func TestRecreatedStreamNewEpoch(t *testing.T) {
	s := startJS(t, -1, "")
	url := natstest.URL(s)
	node := open(t, url, testConfig())
	ctx := ctx10(t)
	old := node.Epoch()
	p, err := node.Publish(ctx, "news", []byte(`1`))
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	if _, err := node.Follow("news", p, rec.deliver, rec.lost); err != nil {
		t.Fatal(err)
	}
	deleteStream(t, url, "SHARDGATE_HISTORY")

	// A node starting now creates the stream with a new epoch.
	fresh := open(t, url, testConfig())
	if fresh.Epoch() == old || fresh.Epoch() == "" {
		t.Fatalf("recreated stream's epoch %q, old %q", fresh.Epoch(), old)
	}
	// The running node learns it at its next reconnect or failed
	// publish; here a reconnect.
	node.nc.ForceReconnect()
	select {
	case <-rec.lostCh:
	case <-time.After(20 * time.Second):
		t.Fatal("follower not told of the new epoch")
	}
	if _, err, _ := rec.snapshot(); !errors.Is(err, ErrEpochChanged) {
		t.Fatalf("lost with %v", err)
	}
	q, err := node.Publish(ctx, "news", []byte(`2`))
	if err != nil || q.Epoch != fresh.Epoch() {
		t.Fatalf("publish after recreation: %+v %v, epoch should be %q", q, err, fresh.Epoch())
	}
	if _, whole, err := node.Since(ctx, "news", p, 10); whole || err != nil {
		t.Fatalf("Since from the old epoch: whole %v %v", whole, err)
	}
	if _, err := node.Follow("news", p, rec.deliver, rec.lost); !errors.Is(err, ErrEpochChanged) {
		t.Fatalf("Follow from the old epoch: %v", err)
	}
}

// TestStreamGoneWhileConnected: the stream deleted under a connected
// node: its publish fails, and the next one recreates the stream with a
// new epoch.
func TestStreamGoneWhileConnected(t *testing.T) {
	s := startJS(t, -1, "")
	url := natstest.URL(s)
	node := open(t, url, testConfig())
	ctx := ctx10(t)
	old := node.Epoch()
	deleteStream(t, url, "SHARDGATE_HISTORY")
	if _, err := node.Publish(ctx, "news", []byte(`1`)); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("publish without a stream: %v", err)
	}
	p, err := node.Publish(ctx, "news", []byte(`2`))
	if err != nil || p.Epoch == old || p.Epoch != node.Epoch() {
		t.Fatalf("publish after: %+v %v (old epoch %q)", p, err, old)
	}
}

func deleteStream(t testing.TB, url, name string) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if err := js.DeleteStream(ctx10(t), name); err != nil {
		t.Fatalf("delete stream: %v", err)
	}
}

// TestSinceComplete: when Since vouches for its answer.
func TestSinceComplete(t *testing.T) {
	s := startJS(t, -1, "")
	cfg := testConfig()
	cfg.Size = 5
	node := open(t, natstest.URL(s), cfg)
	ctx := ctx10(t)
	ep := node.Epoch()
	offs := publishMany(t, []*History{node}, "news", 1, 8) // 3 evicted
	publishMany(t, []*History{node}, "other", 1, 3)
	cases := []struct {
		name  string
		from  Position
		limit int
		n     int
		whole bool
	}{
		{"held start", Position{ep, offs[4]}, 10, 3, true},
		{"newest", Position{ep, offs[7]}, 10, 0, true},
		{"first held is the start", Position{ep, offs[3]}, 10, 4, true},
		{"start evicted, Size after it", Position{ep, offs[2]}, 10, 5, false},
		{"evicted", Position{ep, offs[0]}, 10, 5, false},
		{"from zero after evictions", Position{ep, 0}, 10, 5, false},
		{"over limit", Position{ep, offs[3]}, 3, 3, false},
		{"exactly limit", Position{ep, offs[4]}, 3, 3, true},
		{"wrong epoch", Position{"x", offs[4]}, 10, 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msgs, whole, err := node.Since(ctx, "news", c.from, c.limit)
			if err != nil || whole != c.whole || len(msgs) != c.n {
				t.Fatalf("got %d messages, whole %v, %v; want %d, %v", len(msgs), whole, err, c.n, c.whole)
			}
			for i := 1; i < len(msgs); i++ {
				if msgs[i].Offset <= msgs[i-1].Offset || msgs[0].Offset <= c.from.Offset {
					t.Fatalf("not ascending after from: %v", msgs)
				}
			}
		})
	}
}

// TestSinceAfterTTL: messages past the stream's MaxAge are evicted; a
// position before them is not complete.
func TestSinceAfterTTL(t *testing.T) {
	s := startJS(t, -1, "")
	cfg := testConfig()
	cfg.TTL = 300 * time.Millisecond
	node := open(t, natstest.URL(s), cfg)
	ctx := ctx10(t)
	start, _ := node.Latest(ctx, "news")
	publishMany(t, []*History{node}, "news", 1, 3)
	waitFor(t, "expiry", func() bool {
		_, p, err := node.Last(ctx, "news", 10)
		return err == nil && p.Offset == 0
	})
	if msgs, whole, err := node.Since(ctx, "news", start, 10); whole || err != nil || len(msgs) != 0 {
		t.Fatalf("Since across expired messages: %d, whole %v, %v", len(msgs), whole, err)
	}
}

// TestPublishFrozenServer: a publish to a server that stopped reading
// fails within a bound, and the message is never stored afterwards, even
// once the server reads again.
func TestPublishFrozenServer(t *testing.T) {
	s := startJS(t, -1, "")
	proxy := natstest.NewProxy(t, s.Addr().String())
	cfg := testConfig()
	cfg.PublishTimeout = 300 * time.Millisecond
	node := open(t, proxy.URL(), cfg)
	watcher := open(t, natstest.URL(s), testConfig())
	ctx := ctx10(t)
	start, _ := watcher.Latest(ctx, "news")
	rec := newRecorder()
	f, err := watcher.Follow("news", start, rec.deliver, rec.lost)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()

	proxy.SetMode(natstest.Stalled)
	// The proxy holds the bytes of a read already under way when it
	// stalls (a server that had read them): give it others first, so the
	// publish below stays in the socket buffer, unread.
	node.nc.Publish("unrelated", []byte("x"))
	node.nc.Flush() // fails: nothing answers; the bytes are out
	bound := cfg.PublishTimeout + node.cfg.WriteTimeout + node.cfg.ConnectTimeout + 200*time.Millisecond
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			_, err := node.Publish(context.Background(), "news", fmt.Appendf(nil, `"lost %d"`, i))
			if took := time.Since(t0); err == nil || took > bound {
				t.Errorf("publish to a frozen server: %v after %v (bound %v)", err, took, bound)
			}
		}()
	}
	wg.Wait()
	proxy.SetMode(natstest.Flowing)
	waitFor(t, "node reconnected", node.Connected)
	p, err := node.Publish(ctx, "news", []byte(`"after"`))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "marker delivered", func() bool { return rec.count() >= 1 })
	got, _, _ := rec.snapshot()
	msgs, _, err := watcher.Last(ctx, "news", 100)
	if err != nil || len(msgs) != 1 || msgs[0].Offset != p.Offset || len(got) != 1 {
		t.Fatalf("stream holds %d messages (%v), follower got %v; want only the marker %d", len(msgs), err, got, p.Offset)
	}
}
