package shardgate

import (
	"context"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestKilledGatewayRestartedReconnectsAndReportsRecoveredFalse: SIGKILL
// takes the connection down without a close frame (1006, backoff); the
// client retries until the gateway is back on the same address,
// resubscribes asking to recover, and, the restarted gateway's history
// having a new epoch, hands recovered:false to the application; new
// messages flow again.
func TestKilledGatewayRestartedReconnectsAndReportsRecoveredFalse(t *testing.T) {
	t.Parallel()
	g := gateway.Start(t, "-history-size", "100")
	r := newRecorder()
	c := newClient(t, r.options(Options{
		URLs:              []string{g.WSURL()},
		MinReconnectDelay: 50 * time.Millisecond, MaxReconnectDelay: 200 * time.Millisecond,
	}))
	subscribe(t, c, "news", r)
	connect(t, c)
	r.waitFor(t, "subscribed", func() bool { return len(r.subscribed) == 1 })
	ctx := context.Background()
	if _, err := g.Publish(ctx, "news", seqData(1)); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "message 1", func() bool { return len(r.messages) == 1 })

	g.Kill()
	r.waitFor(t, "the loss reported", func() bool { return r.count(Connecting) >= 2 })
	if lost := r.snapshot().states[2]; lost.Code != closeAbnormal || lost.Delay < 50*time.Millisecond {
		t.Errorf("after SIGKILL: %+v, want code 1006 and a backoff delay", lost.StateChange)
	}
	r.waitFor(t, "a failed attempt", func() bool { return r.count(Connecting) >= 3 })
	g.Restart()
	r.waitFor(t, "resubscribed", func() bool { return len(r.subscribed) == 2 })
	if s := r.snapshot().subscribed[1]; !s.Recovering || s.Recovered {
		t.Fatalf("resubscribed %+v, want recovering and recovered:false (new epoch)", s)
	}
	if _, err := g.Publish(ctx, "news", seqData(2)); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "message 2", func() bool { return len(r.messages) == 2 })
	// The new epoch's offsets start over: only the numbers are checked.
	if m := r.snapshot().messages; seqOf(t, m[0]) != 1 || seqOf(t, m[1]) != 2 {
		t.Fatalf("messages %s %s, want 1 and 2", m[0].Data, m[1].Data)
	}
	if c.State() != Connected {
		t.Fatalf("state %v", c.State())
	}
}

// TestDrainMovesAtOnceToTheNextURL: a SIGTERM drain closes with 1001;
// the client reconnects at once (no backoff, though the minimum delay is
// 10 s) to the next URL, and resubscribes there.
func TestDrainMovesAtOnceToTheNextURL(t *testing.T) {
	t.Parallel()
	g0 := gateway.Start(t, "-drain-timeout", "5s")
	g1 := gateway.Start(t)
	r := newRecorder()
	c := newClient(t, r.options(Options{
		URLs:              []string{g0.WSURL(), g1.WSURL()},
		MinReconnectDelay: 10 * time.Second, MaxReconnectDelay: 20 * time.Second,
	}))
	subscribe(t, c, "news", r)
	connect(t, c)
	r.waitFor(t, "subscribed", func() bool { return len(r.subscribed) == 1 })

	start := time.Now()
	if err := g0.Term(10 * time.Second); err != nil {
		t.Fatalf("drain: %v", err)
	}
	r.waitFor(t, "resubscribed on the next node", func() bool { return len(r.subscribed) == 2 })
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("back after %v: not at once", d)
	}
	got := r.snapshot()
	// connecting, connected, connecting (1001), connected
	if len(got.states) != 4 {
		t.Fatalf("states:%s", r.stateLog())
	}
	if s := got.states[2]; s.State != Connecting || s.Code != 1001 || s.Delay != 0 || s.URL != g1.WSURL() {
		t.Errorf("after the drain: %+v, want connecting, code 1001, no delay, %s", s.StateChange, g1.WSURL())
	}
	if s := got.states[3]; s.State != Connected || s.URL != g1.WSURL() {
		t.Errorf("then %+v, want connected to %s", s.StateChange, g1.WSURL())
	}
	if _, err := g1.Publish(context.Background(), "news", seqData(1)); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "a message through the next node", func() bool { return len(r.messages) == 1 })
}

// refuser is a listener that accepts connections and closes them at
// once, noting when: a gateway that is down, seen by the attempts.
type refuser struct {
	ln net.Listener
	wg sync.WaitGroup

	mu      sync.Mutex
	accepts []time.Time
}

func newRefuser(t *testing.T) *refuser {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &refuser{ln: ln}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.accepts = append(r.accepts, time.Now())
			r.mu.Unlock()
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		r.wg.Wait()
	})
	return r
}

func (r *refuser) url() string { return "ws://" + r.ln.Addr().String() + "/ws" }

func (r *refuser) times() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.accepts...)
}

// TestBackoffDelaysStayWithinBoundsSpreadAndRotateURLs: against two
// addresses that accept and drop every connection, the n-th consecutive
// failure waits a delay within [min, min(max, min·2ⁿ⁺¹)], the delays spread
// over that range (jitter), the attempts really are that far apart, and
// they alternate between the URLs.
func TestBackoffDelaysStayWithinBoundsSpreadAndRotateURLs(t *testing.T) {
	t.Parallel()
	const lo, hi, failures = 20 * time.Millisecond, 160 * time.Millisecond, 24
	a, b := newRefuser(t), newRefuser(t)
	r := newRecorder()
	c := newClient(t, r.options(Options{URLs: []string{a.url(), b.url()}, MinReconnectDelay: lo, MaxReconnectDelay: hi}))
	connect(t, c)
	r.waitFor(t, "failed attempts", func() bool { return r.count(Connecting) >= failures+1 })
	c.Close()

	got := r.snapshot()
	// states[0] is the first Connecting; states[k+1] follows failure k.
	var spread []time.Duration
	for k := 0; k < failures; k++ {
		s := got.states[k+1]
		ceiling := hi
		if lo<<(k+1) < hi {
			ceiling = lo << (k + 1)
		}
		if s.State != Connecting || s.Err == nil || s.Delay < lo || s.Delay > ceiling {
			t.Errorf("failure %d: %s delay %v err %v, want connecting with a delay in [%v, %v]", k, s.State, s.Delay, s.Err, lo, ceiling)
		}
		if want := []string{a.url(), b.url()}[(k+1)%2]; s.URL != want {
			t.Errorf("failure %d: next URL %s, want %s", k, s.URL, want)
		}
		if ceiling == hi {
			spread = append(spread, s.Delay)
		}
	}
	sort.Slice(spread, func(i, j int) bool { return spread[i] < spread[j] })
	if width := spread[len(spread)-1] - spread[0]; width < (hi-lo)/3 {
		t.Errorf("delays at the cap span only %v: %v", width, spread)
	}

	// The attempts, as the listeners saw them, alternate and are at
	// least the announced delay apart.
	at, bt := a.times(), b.times()
	if len(at) < failures/2 || len(bt) < failures/2 {
		t.Fatalf("attempts: %d on the first URL, %d on the second, want %d each", len(at), len(bt), failures/2)
	}
	var attempts []time.Time
	for i := 0; i < failures/2; i++ {
		attempts = append(attempts, at[i], bt[i])
	}
	for k := 0; k+1 < len(attempts); k++ {
		gap, delay := attempts[k+1].Sub(attempts[k]), got.states[k+1].Delay
		if gap < delay || gap > delay+time.Second {
			t.Errorf("attempts %d and %d: %v apart, want the delay %v (plus the failure's own time)", k, k+1, gap, delay)
		}
	}
}

// Test401GetsAFreshToken: a handshake refused with 401 (the static
// Token was signed with another key) makes the next attempt call
// GetToken, whose token is accepted.
func Test401GetsAFreshToken(t *testing.T) {
	t.Parallel()
	g := gateway.Start(t, "-auth-secret", testSecret)
	r := newRecorder()
	var mu sync.Mutex
	calls := 0
	c := newClient(t, r.options(Options{
		URLs:              []string{g.WSURL()},
		Token:             "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.bm90IHRoZSBzaWduYXR1cmU",
		MinReconnectDelay: 20 * time.Millisecond, MaxReconnectDelay: 50 * time.Millisecond,
		GetToken: func(ctx context.Context) (string, error) {
			mu.Lock()
			calls++
			mu.Unlock()
			return mint(t, claims{sub: "alice", ttl: time.Hour, channels: []string{"news"}}), nil
		},
	}))
	subscribe(t, c, "news", r)
	connect(t, c)
	r.waitFor(t, "subscribed", func() bool { return len(r.subscribed) == 1 })
	got := r.snapshot()
	if len(got.states) != 3 || got.states[1].Err == nil || !strings.Contains(got.states[1].Err.Error(), "HTTP 401") {
		t.Fatalf("states:%s\nwant connecting, connecting after a 401, connected", r.stateLog())
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 1 {
		t.Fatalf("GetToken called %d times, want once (after the 401)", calls)
	}
}
