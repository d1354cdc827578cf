package shardgate

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// silentListener accepts connections and never answers: an attempt
// hangs in its handshake.
func silentListener(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	})
	return "ws://" + ln.Addr().String() + "/ws"
}

// TestCloseLeavesNoGoroutine: whatever the client is doing (connected
// with subscriptions and a publish, hanging in a handshake, waiting out
// a backoff delay, waiting for a GetToken that honours its context,
// stopped by 4003, never connected), Close returns promptly, reports
// Disconnected once, and no goroutine of the client is left. Not
// parallel: goleak compares with the goroutines running when it starts.
func TestCloseLeavesNoGoroutine(t *testing.T) {
	g := gateway.Start(t, "-history-size", "10", "-auth-secret", testSecret)
	token := func(ctx context.Context) (string, error) {
		return mint(t, claims{sub: "dave", ttl: time.Hour, channels: []string{"*"}, publish: []string{"*"}}), nil
	}
	down := newRefuser(t)
	cases := []struct {
		name  string
		opts  Options
		ready func(t *testing.T, c *Client, r *recorder) // brings the client where Close finds it
		// disconnects is how many Disconnected events the client reports
		// in all: 0 if it never left Disconnected.
		disconnects int
	}{
		{"connected", Options{URLs: []string{g.WSURL()}, GetToken: token}, func(t *testing.T, c *Client, r *recorder) {
			connect(t, c)
			r.waitFor(t, "subscribed", func() bool { return len(r.subscribed) == 1 })
			if err := c.Publish(context.Background(), "news", seq{1}); err != nil {
				t.Fatal(err)
			}
			r.waitFor(t, "the message", func() bool { return len(r.messages) == 1 })
		}, 1},
		{"handshake hanging", Options{URLs: []string{silentListener(t)}, HandshakeTimeout: time.Minute}, func(t *testing.T, c *Client, r *recorder) {
			connect(t, c)
			r.waitFor(t, "connecting", func() bool { return r.count(Connecting) == 1 })
		}, 1},
		{"waiting out a backoff", Options{URLs: []string{down.url()}, MinReconnectDelay: time.Minute, MaxReconnectDelay: time.Minute}, func(t *testing.T, c *Client, r *recorder) {
			connect(t, c)
			r.waitFor(t, "a failed attempt", func() bool { return r.count(Connecting) == 2 })
		}, 1},
		{"in GetToken", Options{URLs: []string{g.WSURL()}, GetToken: func(ctx context.Context) (string, error) {
			<-ctx.Done()
			return "", ctx.Err()
		}}, func(t *testing.T, c *Client, r *recorder) {
			connect(t, c)
			r.waitFor(t, "connecting", func() bool { return r.count(Connecting) == 1 })
		}, 1},
		{"after 4003", Options{URLs: []string{g.WSURL()}, GetToken: func(ctx context.Context) (string, error) {
			return mint(t, claims{sub: "erin", channels: []string{"*"}}), nil
		}}, func(t *testing.T, c *Client, r *recorder) {
			connect(t, c)
			r.waitFor(t, "subscribed", func() bool { return len(r.subscribed) == 1 })
			if err := g.Disconnect(context.Background(), "erin"); err != nil {
				t.Fatal(err)
			}
			r.waitFor(t, "disconnected", func() bool { return r.count(Disconnected) == 1 })
		}, 1},
		{"never connected", Options{URLs: []string{g.WSURL()}}, func(t *testing.T, c *Client, r *recorder) {}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent(),
				// The test's own keep-alive connection to the admin API.
				goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
				goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"))
			r := newRecorder()
			c, err := New(r.options(tc.opts))
			if err != nil {
				t.Fatal(err)
			}
			subscribe(t, c, "news", r)
			tc.ready(t, c, r)
			start := time.Now()
			c.Close()
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Close took %v", d)
			}
			if c.State() != Disconnected {
				t.Errorf("state %v after Close", c.State())
			}
			got := r.snapshot()
			if n := got.count(Disconnected); n != tc.disconnects {
				t.Errorf("%d disconnected events, want %d:%s", n, tc.disconnects, r.stateLog())
			}
			if err := c.Connect(); !errors.Is(err, ErrClosed) {
				t.Errorf("Connect after Close: %v, want ErrClosed", err)
			}
			if _, err := c.Subscribe("other", Handlers{}); !errors.Is(err, ErrClosed) {
				t.Errorf("Subscribe after Close: %v, want ErrClosed", err)
			}
			if err := c.Publish(context.Background(), "news", 1); !errors.Is(err, ErrDisconnected) {
				t.Errorf("Publish after Close: %v, want disconnected", err)
			}
			c.Close() // twice: harmless
		})
	}
}
