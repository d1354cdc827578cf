package shardgate

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestTokenRefreshedInPlaceForTwentySeconds: tokens that live two
// seconds are refreshed on the open connection, halfway through their
// life, for 20 s: never a 4001, never a reconnect, and messages still
// arrive at the end.
func TestTokenRefreshedInPlaceForTwentySeconds(t *testing.T) {
	if testing.Short() {
		t.Skip("20 s")
	}
	t.Parallel()
	g := gateway.Start(t, "-auth-secret", testSecret)
	r := newRecorder()
	var fetched atomic.Int32
	c := newClient(t, r.options(Options{
		URLs: []string{g.WSURL()},
		GetToken: func(ctx context.Context) (string, error) {
			fetched.Add(1)
			return mint(t, claims{sub: "alice", ttl: 2 * time.Second, channels: []string{"news"}}), nil
		},
	}))
	subscribe(t, c, "news", r)
	connect(t, c)
	r.waitFor(t, "subscribed", func() bool { return len(r.subscribed) == 1 })

	// The client refreshes on its own; the test only lets time pass and
	// then looks at what happened meanwhile.
	time.Sleep(20 * time.Second)
	if _, err := g.Publish(context.Background(), "news", seqData(1)); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "a message after 20 s", func() bool { return len(r.messages) == 1 })

	got := r.snapshot()
	if len(got.states) != 2 || len(got.subscribed) != 1 {
		t.Fatalf("states:%s\nwant one connecting and one connected, nothing else", r.stateLog())
	}
	if len(got.errors) != 0 {
		t.Fatalf("errors: %v", got.errors)
	}
	// A token of 1-2 s (exp has whole seconds) is refreshed every 0.5-1 s.
	if n := fetched.Load(); n < 15 {
		t.Fatalf("%d tokens fetched in 20 s, want a refresh every second or so", n)
	}
}

// Test4001GetsAFreshTokenAndReconnectsAtOnce: when every refresh is
// refused (bad_token: another sub), the gateway closes with 4001 once
// the token expires; the client gets a fresh token and reconnects at
// once, not after the (10 s) backoff.
func Test4001GetsAFreshTokenAndReconnectsAtOnce(t *testing.T) {
	t.Parallel()
	g := gateway.Start(t, "-auth-secret", testSecret)
	r := newRecorder()
	var c *Client
	c = newClient(t, r.options(Options{
		URLs:              []string{g.WSURL()},
		MinReconnectDelay: 10 * time.Second, MaxReconnectDelay: 20 * time.Second,
		GetToken: func(ctx context.Context) (string, error) {
			sub := "alice"
			if c.State() == Connected {
				sub = "mallory" // a refresh: refused, the sub differs
			}
			return mint(t, claims{sub: sub, ttl: 2 * time.Second, channels: []string{"news"}}), nil
		},
	}))
	subscribe(t, c, "news", r)
	connect(t, c)
	r.waitFor(t, "a 4001", func() bool { return r.count(Connecting) == 2 })
	lost := r.snapshot().states[2]
	if lost.Code != 4001 || lost.Delay != 0 {
		t.Fatalf("after expiry: %+v, want code 4001 and no delay", lost.StateChange)
	}
	r.waitFor(t, "reconnected and resubscribed", func() bool { return len(r.subscribed) == 2 })
	if d := r.snapshot().states[3].at.Sub(lost.at); d > 5*time.Second {
		t.Fatalf("reconnected %v after the 4001, want at once", d)
	}
	var e *Error
	if errs := r.snapshot().errors; len(errs) == 0 || !errors.As(errs[0], &e) || e.Code != CodeBadToken {
		t.Fatalf("OnError got %v, want the refused refresh (bad_token)", errs)
	}
}

// Test4003StopsReconnecting: POST /api/disconnect closes the client's
// connection with 4003; the client goes to Disconnected and makes no
// further attempt, until Connect.
func Test4003StopsReconnecting(t *testing.T) {
	t.Parallel()
	g := gateway.Start(t, "-auth-secret", testSecret)
	r := newRecorder()
	var fetched atomic.Int32
	const minDelay = 50 * time.Millisecond
	c := newClient(t, r.options(Options{
		URLs:              []string{g.WSURL()},
		MinReconnectDelay: minDelay, MaxReconnectDelay: minDelay,
		GetToken: func(ctx context.Context) (string, error) {
			fetched.Add(1)
			return mint(t, claims{sub: "bob", ttl: time.Hour, channels: []string{"news"}}), nil
		},
	}))
	subscribe(t, c, "news", r)
	connect(t, c)
	// subscribed: a round trip, so the gateway has attached the connection.
	r.waitFor(t, "subscribed", func() bool { return len(r.subscribed) == 1 })
	if err := g.Disconnect(context.Background(), "bob"); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "disconnected", func() bool { return r.count(Disconnected) == 1 })
	if s := r.snapshot().states[2]; s.Code != 4003 {
		t.Fatalf("disconnected with %+v, want code 4003", s.StateChange)
	}
	// Nothing to wait for: time for many backoff delays passes, and
	// nothing may happen in it.
	time.Sleep(20 * minDelay)
	if n := len(r.snapshot().states); n != 3 || c.State() != Disconnected || fetched.Load() != 1 {
		t.Fatalf("after 4003: state %v, %d tokens fetched, states:%s", c.State(), fetched.Load(), r.stateLog())
	}

	connect(t, c)
	r.waitFor(t, "resubscribed after Connect", func() bool { return len(r.subscribed) == 2 })
}

// TestGetTokenErrNoTokenStops: a GetToken that returns ErrNoToken stops
// the client before any attempt.
func TestGetTokenErrNoTokenStops(t *testing.T) {
	t.Parallel()
	down := newRefuser(t)
	r := newRecorder()
	c := newClient(t, r.options(Options{
		URLs:     []string{down.url()},
		GetToken: func(ctx context.Context) (string, error) { return "", ErrNoToken },
	}))
	connect(t, c)
	r.waitFor(t, "disconnected", func() bool { return r.count(Disconnected) == 1 })
	if s := r.snapshot().states[1]; !errors.Is(s.Err, ErrNoToken) {
		t.Fatalf("disconnected with %+v, want ErrNoToken", s.StateChange)
	}
	if n := len(down.times()); n != 0 {
		t.Fatalf("%d attempts without a token", n)
	}
}

// TestSubscriptionsTheGatewayEndsReachTheirHandlers: a subscribe the
// token does not allow ends with OnError (forbidden) and may be made
// again; a subscription that a refreshed token no longer allows ends
// with OnUnsubscribed("forbidden"); the others go on.
func TestSubscriptionsTheGatewayEndsReachTheirHandlers(t *testing.T) {
	t.Parallel()
	g := gateway.Start(t, "-auth-secret", testSecret)
	var mu sync.Mutex
	channels := []string{"news", "sport"}
	grant := func(chs ...string) {
		mu.Lock()
		defer mu.Unlock()
		channels = chs
	}
	state := newRecorder()
	c := newClient(t, state.options(Options{
		URLs: []string{g.WSURL()},
		GetToken: func(ctx context.Context) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			return mint(t, claims{sub: "carol", ttl: 2 * time.Second, channels: channels}), nil
		},
	}))
	news, sport, secret := newRecorder(), newRecorder(), newRecorder()
	subscribe(t, c, "news", news)
	subscribe(t, c, "sport", sport)
	subscribe(t, c, "secret", secret)
	connect(t, c)
	secret.waitFor(t, "the forbidden subscribe's error", func() bool { return len(secret.subErrors) == 1 })
	if e := secret.snapshot().subErrors[0]; e.Code != CodeForbidden {
		t.Fatalf("subscribe to secret: %v, want forbidden", e)
	}
	again := newRecorder()
	subscribe(t, c, "secret", again) // ended, so allowed again
	again.waitFor(t, "the second forbidden", func() bool { return len(again.subErrors) == 1 })

	// The next refresh (within about a second) drops "sport".
	grant("news")
	sport.waitFor(t, "sport ended by the gateway", func() bool { return len(sport.unsubscribed) == 1 })
	if reason := sport.snapshot().unsubscribed[0]; reason != "forbidden" {
		t.Fatalf("unsubscribed reason %q, want forbidden", reason)
	}
	ctx := context.Background()
	for _, ch := range []string{"sport", "news"} {
		if _, err := g.Publish(ctx, ch, seqData(1)); err != nil {
			t.Fatal(err)
		}
	}
	news.waitFor(t, "news still flowing", func() bool { return len(news.messages) == 1 })
	if n := len(sport.snapshot().messages); n != 0 {
		t.Fatalf("%d messages on the ended subscription", n)
	}
	if n := state.count(Connected); n != 1 {
		t.Fatalf("%d connections, want 1:%s", n, state.stateLog())
	}
}

// TestRefreshAgainstAGatewayWithoutAuthIsNotRetried: a gateway without
// -auth-secret answers refresh with bad_request; the client reports it
// once and stays connected without refreshing again.
func TestRefreshAgainstAGatewayWithoutAuthIsNotRetried(t *testing.T) {
	t.Parallel()
	g := gateway.Start(t)
	r := newRecorder()
	var fetched atomic.Int32
	c := newClient(t, r.options(Options{
		URLs:              []string{g.WSURL()},
		MinReconnectDelay: 20 * time.Millisecond, MaxReconnectDelay: 20 * time.Millisecond,
		GetToken: func(ctx context.Context) (string, error) {
			fetched.Add(1)
			return mint(t, claims{sub: "frank", ttl: 2 * time.Second}), nil
		},
	}))
	connect(t, c)
	r.waitFor(t, "the refused refresh", func() bool { return len(r.errors) == 1 })
	var e *Error
	if !errors.As(r.snapshot().errors[0], &e) || e.Code != CodeBadRequest {
		t.Fatalf("OnError got %v, want bad_request", r.snapshot().errors[0])
	}
	// Retries would come every 20 ms; for 2 s (past the token's exp)
	// none may come, and the connection stays.
	time.Sleep(2 * time.Second)
	got := r.snapshot()
	if n := fetched.Load(); n != 2 || len(got.errors) != 1 || c.State() != Connected || got.count(Connected) != 1 {
		t.Fatalf("%d tokens fetched (want 2: connect, refresh), errors %v, states:%s", n, got.errors, r.stateLog())
	}
}
