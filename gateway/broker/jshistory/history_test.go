package jshistory

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/shardgate/shardgate/gateway/history"
	"github.com/shardgate/shardgate/internal/natstest"
)

// TestNodesAgree: three nodes (connections) see one epoch, and the
// offsets each gets from Publish are the ones every node reads back.
func TestNodesAgree(t *testing.T) {
	s := startJS(t, -1, "")
	url := natstest.URL(s)
	nodes := []*History{open(t, url, testConfig()), open(t, url, testConfig()), open(t, url, testConfig())}
	for i, n := range nodes {
		if n.Epoch() == "" || n.Epoch() != nodes[0].Epoch() {
			t.Fatalf("node %d epoch %q, node 0 %q", i, n.Epoch(), nodes[0].Epoch())
		}
	}
	ctx := ctx10(t)
	// A channel with no message: the stream's position, 0 on a new stream.
	if p, err := nodes[1].Latest(ctx, "news"); err != nil || p.Offset != 0 {
		t.Fatalf("Latest of an empty stream: %+v %v", p, err)
	}
	var offsets []uint64
	for i := range 30 {
		ch := "news"
		if i%3 == 2 {
			ch = "other.channel"
		}
		p, err := nodes[i%3].Publish(ctx, ch, fmt.Appendf(nil, `{"i":%d}`, i))
		if err != nil {
			t.Fatal(err)
		}
		if p.Epoch != nodes[0].Epoch() {
			t.Fatalf("publish epoch %q", p.Epoch)
		}
		if ch == "news" {
			if len(offsets) > 0 && p.Offset <= offsets[len(offsets)-1] {
				t.Fatalf("offset %d after %d", p.Offset, offsets[len(offsets)-1])
			}
			offsets = append(offsets, p.Offset)
		}
	}
	for i, n := range nodes {
		p, err := n.Latest(ctx, "news")
		if err != nil || p.Offset != offsets[len(offsets)-1] || p.Epoch != nodes[0].Epoch() {
			t.Fatalf("node %d Latest %+v %v, want offset %d", i, p, err, offsets[len(offsets)-1])
		}
		msgs, whole, err := n.Since(ctx, "news", Position{Epoch: n.Epoch()}, 100)
		if err != nil || !whole {
			t.Fatalf("node %d Since(0): whole %v err %v", i, whole, err)
		}
		got := make([]uint64, len(msgs))
		for j, m := range msgs {
			got[j] = m.Offset
		}
		checkExactly(t, got, offsets)
		last, pos, err := n.Last(ctx, "news", 5)
		if err != nil || len(last) != 5 || pos.Offset != offsets[len(offsets)-1] || last[4].Offset != pos.Offset || last[0].Offset != offsets[len(offsets)-5] {
			t.Fatalf("node %d Last(5): %d messages, %+v, %v", i, len(last), pos, err)
		}
	}
	// An empty channel now reads as the stream's position, which every
	// later message of it is after.
	p, err := nodes[2].Latest(ctx, "empty")
	if err != nil || p.Offset < offsets[len(offsets)-1] {
		t.Fatalf("Latest(empty) %+v %v", p, err)
	}
	pub, err := nodes[0].Publish(ctx, "empty", []byte(`1`))
	if err != nil || pub.Offset <= p.Offset {
		t.Fatalf("publish after Latest: %+v %v", pub, err)
	}
	msgs, whole, err := nodes[1].Since(ctx, "empty", p, 10)
	if err != nil || !whole || len(msgs) != 1 || msgs[0].Offset != pub.Offset {
		t.Fatalf("Since(empty's position): %v %v %v", msgs, whole, err)
	}
}

// TestFollowLive: a node following a channel gets every message any node
// publishes on it after its start position, once, in order, and none of
// other channels.
func TestFollowLive(t *testing.T) {
	s := startJS(t, -1, "")
	url := natstest.URL(s)
	a, b, c := open(t, url, testConfig()), open(t, url, testConfig()), open(t, url, testConfig())
	ctx := ctx10(t)
	if _, err := a.Publish(ctx, "news", []byte(`"before"`)); err != nil {
		t.Fatal(err)
	}
	start, err := c.Latest(ctx, "news")
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	f, err := c.Follow("news", start, rec.deliver, rec.lost)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	if _, err := c.Follow("news", start, rec.deliver, rec.lost); !errors.Is(err, ErrFollowing) {
		t.Fatalf("second Follow: %v", err)
	}
	want := publishMany(t, []*History{a, b}, "news", 2, 300)
	publishMany(t, []*History{a}, "sport", 1, 50)
	waitFor(t, "every message", func() bool { return rec.count() >= len(want) })
	got, lostErr, _ := rec.snapshot()
	checkExactly(t, got, want)
	if lostErr != nil || rec.overlaps != 0 {
		t.Fatalf("lost %v, overlapping deliveries %d", lostErr, rec.overlaps)
	}
	if p := f.Position(); p.Offset != got[len(got)-1] {
		t.Fatalf("Position %d, last delivered %d", p.Offset, got[len(got)-1])
	}
	// Only followed channels reach a node.
	if n := subsOn(t, s, "shardgate.live.sport"); n != 0 {
		t.Fatalf("%d subscriptions to an unfollowed channel", n)
	}
	f.Stop()
	waitFor(t, "unsubscribed", func() bool { return subsOn(t, s, "shardgate.live.news") == 0 })
}

// publishMany publishes per messages from each of writers goroutines per
// node and returns the acknowledged offsets.
func publishMany(t testing.TB, nodes []*History, channel string, writers, per int) []uint64 {
	t.Helper()
	var (
		mu   sync.Mutex
		offs []uint64
		errs []error
		wg   sync.WaitGroup
	)
	for ni, n := range nodes {
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range per {
					p, err := n.Publish(context.Background(), channel, fmt.Appendf(nil, `[%d,%d,%d]`, ni, w, i))
					mu.Lock()
					if err != nil {
						errs = append(errs, err)
					} else {
						offs = append(offs, p.Offset)
					}
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d publishes failed, first: %v", len(errs), errs[0])
	}
	return offs
}

// subsOn counts the server's subscriptions a message to subject reaches.
func subsOn(t testing.TB, s *server.Server, subject string) int {
	t.Helper()
	sz, err := s.Subsz(&server.SubszOptions{Subscriptions: true, Test: subject})
	if err != nil {
		t.Fatalf("subsz: %v", err)
	}
	return sz.Total
}

// TestSource: the gateway's history.Source over a History answers through
// its callback with the same pages.
func TestSource(t *testing.T) {
	s := startJS(t, -1, "")
	h := open(t, natstest.URL(s), testConfig())
	offs := publishMany(t, []*History{h}, "news", 1, 5)
	src := h.Source(5 * time.Second)
	type answer struct {
		p   history.Page
		err error
	}
	ch := make(chan answer, 1)
	done := func(p history.Page, err error) { ch <- answer{p, err} }
	src.Since("news", history.Position{Epoch: h.Epoch(), Offset: offs[1]}, 10, done)
	a := <-ch
	if a.err != nil || !a.p.Complete || len(a.p.Messages) != 3 || a.p.Latest != offs[4] || a.p.Epoch != h.Epoch() {
		t.Fatalf("Since page %+v %v", a.p, a.err)
	}
	src.Since("news", history.Position{Offset: offs[3]}, 10, done) // admin: any epoch
	if a = <-ch; a.err != nil || !a.p.Complete || len(a.p.Messages) != 1 {
		t.Fatalf("Since without epoch %+v %v", a.p, a.err)
	}
	src.Last("news", 2, done)
	if a = <-ch; a.err != nil || len(a.p.Messages) != 2 || a.p.Messages[1].Offset != offs[4] {
		t.Fatalf("Last page %+v %v", a.p, a.err)
	}
	src.Latest("news", done)
	if a = <-ch; a.err != nil || a.p.Latest != offs[4] {
		t.Fatalf("Latest page %+v %v", a.p, a.err)
	}
}

// TestSourceSinceHoldsEverythingUpToItsLatestWhilePublishing: while a
// publisher floods the channel, every complete page Since answers holds
// every message after the asked offset up to the latest offset it
// announces. A page that announced a latest past messages it did not hold
// made the shard drop those messages for good (it skips live frames at or
// below what it announced): the chaos run's loss, fixed by reading the
// latest first.
func TestSourceSinceHoldsEverythingUpToItsLatestWhilePublishing(t *testing.T) {
	s := startJS(t, -1, "")
	h := open(t, natstest.URL(s), testConfig())
	src := h.Source(5 * time.Second)
	first := publishMany(t, []*History{h}, "flood", 1, 1)[0]

	stop := make(chan struct{})
	pubDone := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				pubDone <- nil
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := h.Publish(ctx, "flood", []byte(`{"n":1}`))
			cancel()
			if err != nil {
				pubDone <- err
				return
			}
		}
	}()

	type answer struct {
		p   history.Page
		err error
	}
	ch := make(chan answer, 1)
	var pages []history.Page
	for range 50 {
		src.Since("flood", history.Position{Epoch: h.Epoch(), Offset: first}, 1000, func(p history.Page, err error) { ch <- answer{p, err} })
		a := <-ch
		if a.err != nil {
			t.Fatal(a.err)
		}
		if a.p.Complete {
			pages = append(pages, a.p)
		}
	}
	close(stop)
	if err := <-pubDone; err != nil {
		t.Fatalf("publisher: %v", err)
	}
	if len(pages) == 0 {
		t.Fatal("no complete page while publishing")
	}

	// What the stream holds after the first message, read at rest.
	all, whole, err := h.Since(ctx10(t), "flood", Position{Epoch: h.Epoch(), Offset: first}, 100000)
	if err != nil || !whole {
		t.Fatalf("final read: whole=%v err=%v", whole, err)
	}
	for i, p := range pages {
		want := 0
		for _, m := range all {
			if m.Offset <= p.Latest {
				want++
			}
		}
		if len(p.Messages) != want {
			t.Fatalf("page %d announced latest %d but held %d of the %d messages up to it", i, p.Latest, len(p.Messages), want)
		}
	}
}
