package natsbroker

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shardgate/shardgate/gateway/broker"
	"github.com/shardgate/shardgate/internal/natstest"
)

// bigPayload writes a JSON message of about 60 KiB carrying n into buf.
func bigPayload(buf []byte, n int) []byte {
	const size = 60 << 10
	buf = append(buf[:0], `{"n":`...)
	buf = strconv.AppendInt(buf, int64(n), 10)
	buf = append(buf, `,"pad":"`...)
	for len(buf) < size-2 {
		buf = append(buf, 'x')
	}
	return append(buf, `"}`...)
}

// payloadID reads n back from a bigPayload.
func payloadID(data string) (int, error) {
	var v struct{ N int }
	if err := json.Unmarshal([]byte(data), &v); err != nil {
		return 0, err
	}
	return v.N, nil
}

// TestFrozenServerPublish: a server that stops reading while keeping the
// connection open blocks nats.go's writes. Publish still returns at once,
// every done is called within PublishTimeout plus a couple of
// WriteTimeouts, with ErrUnavailable for what could not be handed over,
// the connection is then treated as down, and none of the publishes
// answered with an error ever reaches a subscriber, even once the frozen
// connection's bytes flow again. After that the broker works again.
//
// Two orders: the blocked write times out before queued messages do
// (they are then answered as soon as the connection is known down), or
// after (the expirer answers them while the publisher is still blocked).
func TestFrozenServerPublish(t *testing.T) {
	for _, c := range []struct {
		name                         string
		publishTimeout, writeTimeout time.Duration
		reason                       error // an answer at least one publish must get
	}{
		{"write times out first", 600 * time.Millisecond, 300 * time.Millisecond, errDisconnected},
		{"queued publishes expire first", 200 * time.Millisecond, 600 * time.Millisecond, errExpired},
	} {
		t.Run(c.name, func(t *testing.T) { testFrozenServerPublish(t, c.publishTimeout, c.writeTimeout, c.reason) })
	}
}

func testFrozenServerPublish(t *testing.T, publishTimeout, writeTimeout time.Duration, reason error) {
	srv := startNATS(t, -1)
	p := natstest.NewProxy(t, srv.Addr().String())
	const connectTimeout = 400 * time.Millisecond
	// Documented bound, plus slack for a loaded test machine.
	doneBound := publishTimeout + 2*writeTimeout + connectTimeout + 700*time.Millisecond
	a := newNode(t, p.URL(), func(o *Options) {
		o.PublishTimeout = publishTimeout
		o.WriteTimeout = writeTimeout
		o.ConnectTimeout = connectTimeout
		o.PublishQueueBytes = 4 << 20
	})
	// The subscriber talks to the server directly and records ids.
	var (
		recvMu sync.Mutex
		recv   []int
	)
	marker := make(chan struct{}, 1)
	sub, err := New(natsURL(srv), func(channel string, data json.RawMessage) error {
		if string(data) == `"marker"` {
			marker <- struct{}{}
			return nil
		}
		id, err := payloadID(string(data))
		recvMu.Lock()
		defer recvMu.Unlock()
		if err != nil {
			id = -1
		}
		recv = append(recv, id)
		return nil
	}, Options{Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	waitConnected(t, a, true)
	waitFor(t, "subscriber connected", sub.Connected)
	mustInterest(t, sub, "big")
	mustPublish(t, a.Broker, "big", `"marker"`)
	<-marker

	type result struct {
		err     error
		latency time.Duration
		calls   int
	}
	var (
		mu        sync.Mutex
		results   = map[int]*result{}
		pending   sync.WaitGroup
		maxCall   time.Duration
		slowCalls int
		sent      int
	)
	p.SetMode(natstest.Stalled)
	start := time.Now()
	buf := make([]byte, 0, 64<<10)
	// Paced at about one message per millisecond for long enough to fill
	// the socket buffers, time out a write, and go on while disconnected.
	for i := 0; time.Since(start) < publishTimeout+2*writeTimeout+200*time.Millisecond; i++ {
		buf = bigPayload(buf, i)
		mu.Lock()
		results[i] = &result{}
		mu.Unlock()
		pending.Add(1)
		called := time.Now()
		a.Publish("big", buf, func(err error) {
			mu.Lock()
			r := results[i]
			r.calls++
			r.err, r.latency = err, time.Since(called)
			mu.Unlock()
			if r.calls == 1 {
				pending.Done()
			}
		})
		took := time.Since(called)
		maxCall = max(maxCall, took)
		if took > 50*time.Millisecond {
			slowCalls++
		}
		sent++
		time.Sleep(time.Millisecond)
	}
	// Publish never waits for NATS: every call takes a few microseconds
	// (1–4 ms at most here, idle, under -race). A call that waited for a
	// blocked write would last about WriteTimeout. An overloaded machine
	// can deschedule the test for tens of milliseconds (one 113 ms call
	// seen at a load of 3.5 per CPU), so a rare call over 50 ms is
	// logged, not failed; many, or one near WriteTimeout, fail.
	if maxCall >= writeTimeout/2 || slowCalls*100 > sent {
		t.Errorf("Publish calls blocked: %d of %d over 50 ms, slowest %v", slowCalls, sent, maxCall)
	} else if slowCalls > 0 {
		t.Logf("%d of %d calls over 50 ms (slowest %v): machine load", slowCalls, sent, maxCall)
	}
	allDone := make(chan struct{})
	go func() { pending.Wait(); close(allDone) }()
	select {
	case <-allDone:
	case <-time.After(doneBound):
		pending.Add(sent) // let the waiting goroutine end
		t.Fatalf("some of %d dones not called within %v", sent, doneBound)
	}

	var ok, unavailable, wanted int
	reasons := map[string]int{}
	var slowest time.Duration
	mu.Lock()
	for i, r := range results {
		switch {
		case r.calls != 1:
			t.Errorf("publish %d: done called %d times", i, r.calls)
		case r.latency > doneBound:
			t.Errorf("publish %d: done after %v", i, r.latency)
		case r.err == nil:
			ok++
		case errors.Is(r.err, broker.ErrUnavailable):
			unavailable++
			reasons[r.err.Error()]++
			slowest = max(slowest, r.latency)
			if errors.Is(r.err, reason) {
				wanted++
			}
			// Answered by the expirer, not when the write failed.
			if errors.Is(r.err, errExpired) && r.latency > publishTimeout+(writeTimeout-publishTimeout)/2 {
				t.Errorf("publish %d: answered expired after %v", i, r.latency)
			}
		default:
			t.Errorf("publish %d: %v", i, r.err)
		}
	}
	mu.Unlock()
	t.Logf("%d publishes: %d handed over, %d unavailable (slowest answer %v), slowest call %v",
		sent, ok, unavailable, slowest, maxCall)
	for reason, n := range reasons {
		t.Logf("%5d × %s", n, reason)
	}
	if ok == 0 || unavailable == 0 || wanted == 0 {
		t.Fatalf("%d handed over, %d refused, %d with %q: the freeze was not exercised", ok, unavailable, wanted, reason)
	}
	if a.Connected() {
		t.Fatal("still connected after writes to a frozen server timed out")
	}
	done, c, _ := callback()
	a.Publish("big", json.RawMessage(`1`), done)
	select {
	case o := <-c:
		if !errors.Is(o.err, broker.ErrUnavailable) {
			t.Fatalf("publish once known down: %v", o.err)
		}
	default:
		t.Fatal("publish once known down not answered at once")
	}

	// Unfreeze. The frozen connection's bytes flow to the server before
	// its end; once the server has dropped that connection, everything
	// it will ever deliver from it was delivered before a marker sent on
	// the new one.
	p.SetMode(natstest.Flowing)
	waitConnected(t, a, true)
	waitFor(t, "the frozen connection gone from the server", func() bool { return srv.NumClients() == 2 })
	mustPublish(t, a.Broker, "big", `"marker"`)
	select {
	case <-marker:
	case <-time.After(10 * time.Second):
		t.Fatal("marker after the freeze not delivered")
	}
	recvMu.Lock()
	defer recvMu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	last := -1
	for _, id := range recv {
		if id < 0 {
			t.Fatal("a message arrived corrupted")
		}
		if r := results[id]; r.err != nil {
			t.Fatalf("publish %d was answered %v but was delivered", id, r.err)
		}
		if id <= last {
			t.Fatalf("publish %d delivered after %d", id, last)
		}
		last = id
	}
	t.Logf("%d delivered", len(recv))
}

// TestPublishQueueBounds: past its bound in messages the queue refuses at
// once, and what it took is answered once PublishTimeout has passed even
// though nothing took it from the queue.
func TestPublishQueueBounds(t *testing.T) {
	q := newPubQueue(3, 1<<20)
	now := time.Now()
	for i := range 3 {
		if _, err := q.push(pubItem{subject: "s", data: []byte("x"), deadline: now.Add(time.Duration(i) * time.Second)}); err != nil {
			t.Fatalf("push %d: %v", i, err)
		}
	}
	if _, err := q.push(pubItem{subject: "s"}); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("push past the bound: %v, want ErrUnavailable", err)
	}
	expired, next := q.expire(now.Add(time.Second), nil)
	if len(expired) != 2 || !next.Equal(now.Add(2*time.Second)) {
		t.Fatalf("expired %d, next %v", len(expired), next.Sub(now))
	}
	it, ok, _ := q.pop()
	if !ok || !it.deadline.Equal(now.Add(2*time.Second)) {
		t.Fatalf("pop after expiry: %v %v", ok, it.deadline.Sub(now))
	}
	if _, ok, _ := q.pop(); ok {
		t.Fatal("queue not empty")
	}

	// Bytes: a large item alone is taken, a second is not.
	q = newPubQueue(100, 1000)
	big := pubItem{subject: "s", data: []byte(strings.Repeat("x", 2000))}
	if _, err := q.push(big); err != nil {
		t.Fatalf("a large item into an empty queue: %v", err)
	}
	if _, err := q.push(pubItem{subject: "s"}); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("push past the byte bound: %v", err)
	}
	q.close()
	if _, err := q.push(pubItem{subject: "s"}); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("push after close: %v", err)
	}
	if _, ok, closed := q.pop(); !ok || !closed {
		t.Fatal("queued item lost by close")
	}
	if _, ok, closed := q.pop(); ok || !closed {
		t.Fatal("closed queue not reported empty and closed")
	}
}

// TestPublishQueueOrderAcrossGrowth: the ring keeps FIFO order while it
// grows, wraps and shrinks.
func TestPublishQueueOrderAcrossGrowth(t *testing.T) {
	q := newPubQueue(100000, 1<<30)
	next, want := 0, 0
	for round := range 50 {
		for range round * 7 % 300 {
			if _, err := q.push(pubItem{subject: fmt.Sprint(next)}); err != nil {
				t.Fatal(err)
			}
			next++
		}
		for range round * 5 % 200 {
			it, ok, _ := q.pop()
			if !ok {
				break
			}
			if it.subject != fmt.Sprint(want) {
				t.Fatalf("popped %s, want %d", it.subject, want)
			}
			want++
		}
	}
	for _, it := range q.drain(nil) {
		if it.subject != fmt.Sprint(want) {
			t.Fatalf("drained %s, want %d", it.subject, want)
		}
		want++
	}
	if want != next {
		t.Fatalf("got %d items back of %d", want, next)
	}
}

// BenchmarkPublish: the cost of a Publish call and of the whole trip to
// nats.go (done), by message size, on a live connection. A producer this
// fast outruns the publisher: refused/op is the share the bounded queue
// turned away (ErrUnavailable at once) instead of buffering.
func BenchmarkPublish(b *testing.B) {
	srv := startNATS(b, -1)
	for _, size := range []int{64, 1 << 10, 16 << 10} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			n := newNode(b, natsURL(srv))
			waitConnected(b, n, true)
			data := json.RawMessage(`"` + strings.Repeat("x", size-2) + `"`)
			var (
				wg      sync.WaitGroup
				refused atomic.Int64
			)
			done := func(err error) {
				if err != nil {
					refused.Add(1)
				}
				wg.Done()
			}
			b.ReportAllocs()
			b.SetBytes(int64(size))
			b.ResetTimer()
			for range b.N {
				wg.Add(1)
				n.Publish("bench", data, done)
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(refused.Load())/float64(b.N), "refused/op")
		})
	}
}
