package shardgate

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shardgate/shardgate/internal/gwproc"
)

// TestPublishReachesSubscribersAndBroadcastsReachOnMessage: a publish is
// answered (nil) and its message reaches the subscription, with an offset
// when history is on; a message to every connection reaches
// Options.OnMessage.
func TestPublishReachesSubscribersAndBroadcastsReachOnMessage(t *testing.T) {
	t.Parallel()
	g := gateway.Start(t, "-history-size", "100")
	r := newRecorder()
	c := newClient(t, r.options(Options{URLs: []string{g.WSURL()}}))
	subscribe(t, c, "news", r)
	connect(t, c)
	r.waitFor(t, "subscribed", func() bool { return len(r.subscribed) == 1 })

	ctx := context.Background()
	if err := c.Publish(ctx, "news", seq{1}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	if _, err := g.Publish(ctx, "", []byte(`"to everyone"`)); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "message and broadcast", func() bool { return len(r.messages) == 1 && len(r.broadcasts) == 1 })
	got := r.snapshot()
	if m := got.messages[0]; seqOf(t, m) != 1 || m.Channel != "news" || !m.HasOffset || m.Offset == 0 {
		t.Errorf("message %+v", m)
	}
	if s := got.subscribed[0]; s.Epoch == "" || s.Recovering {
		t.Errorf("first subscribed %+v: want an epoch, no recovery", s)
	}
	if string(got.broadcasts[0]) != `"to everyone"` {
		t.Errorf("broadcast %s", got.broadcasts[0])
	}
}

// TestRejectedPublishCarriesItsCode: the gateway's refusal comes back as
// an *Error with its code (forbidden: the token grants no publish), and an
// invalid channel name fails before anything is sent.
func TestRejectedPublishCarriesItsCode(t *testing.T) {
	t.Parallel()
	g := gateway.Start(t, "-auth-secret", testSecret)
	r := newRecorder()
	c := newClient(t, r.options(Options{
		URLs:  []string{g.WSURL()},
		Token: mint(t, claims{sub: "reader", channels: []string{"news"}}),
	}))
	connect(t, c)
	r.waitFor(t, "connected", func() bool { return r.count(Connected) == 1 })

	err := c.Publish(context.Background(), "news", "hello")
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeForbidden {
		t.Fatalf("publish without a publish grant: %v, want code forbidden", err)
	}
	err = c.Publish(context.Background(), "bad channel", "hello")
	if !errors.As(err, &e) || e.Code != CodeBadChannel {
		t.Fatalf("publish to a bad name: %v, want code bad_channel", err)
	}
	if c.State() != Connected {
		t.Fatalf("state %v after refused publishes, want connected", c.State())
	}
}

// TestPublishWhileDisconnectedFailsAtOnce: before Connect and while the
// gateway is down, Publish fails with code disconnected without waiting,
// and nothing is sent later.
func TestPublishWhileDisconnectedFailsAtOnce(t *testing.T) {
	t.Parallel()
	g := gateway.Start(t, "-history-size", "100")
	r := newRecorder()
	c := newClient(t, r.options(Options{URLs: []string{g.WSURL()}, MinReconnectDelay: 50 * time.Millisecond, MaxReconnectDelay: 100 * time.Millisecond}))
	subscribe(t, c, "news", r)

	start := time.Now()
	if err := c.Publish(context.Background(), "news", seq{1}); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("publish before Connect: %v, want disconnected", err)
	}
	connect(t, c)
	r.waitFor(t, "subscribed", func() bool { return len(r.subscribed) == 1 })
	g.Kill()
	r.waitFor(t, "the connection lost", func() bool { return r.count(Connecting) >= 2 })
	if err := c.Publish(context.Background(), "news", seq{2}); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("publish while the gateway is down: %v, want disconnected", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the failing publishes took %v", d)
	}

	g.Restart()
	r.waitFor(t, "resubscribed", func() bool { return len(r.subscribed) == 2 })
	if err := c.Publish(context.Background(), "news", seq{3}); err != nil {
		t.Fatalf("publish after the restart: %v", err)
	}
	r.waitFor(t, "message 3", func() bool { return len(r.messages) == 1 })
	if n := seqOf(t, r.snapshot().messages[0]); n != 3 {
		t.Fatalf("first message is %d, want 3: a failed publish was sent later", n)
	}
}

// TestPublishWithoutAnswerTimesOutOrFailsWhenTheConnectionIsLost: a
// publish whose frame never reaches the gateway fails with code timeout
// after PublishTimeout; one whose connection is lost before the answer
// fails with code disconnected; neither is sent again after the
// reconnect.
func TestPublishWithoutAnswerTimesOutOrFailsWhenTheConnectionIsLost(t *testing.T) {
	t.Parallel()
	g := gateway.Start(t)
	p := gwproc.NewProxy(t, g.Addr())
	r := newRecorder()
	c := newClient(t, r.options(Options{
		URLs: []string{p.WSURL()}, PublishTimeout: 300 * time.Millisecond,
		MinReconnectDelay: 50 * time.Millisecond, MaxReconnectDelay: 100 * time.Millisecond,
	}))
	subscribe(t, c, "news", r)
	connect(t, c)
	r.waitFor(t, "subscribed", func() bool { return len(r.subscribed) == 1 })

	p.Drop()
	start := time.Now()
	if err := c.Publish(context.Background(), "news", seq{1}); !errors.Is(err, ErrTimeout) {
		t.Fatalf("publish swallowed by the proxy: %v, want timeout", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
		t.Errorf("timed out after %v, want about 300ms", d)
	}

	swallowed := p.Dropped()
	lost := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		lost <- c.Publish(ctx, "news", seq{2})
	}()
	// Once the proxy has swallowed the frame, the publish is in flight.
	for deadline := time.Now().Add(waitTimeout); p.Dropped() == swallowed; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the second publish never left the client")
		}
	}
	p.Cut()
	p.Flow()
	err := <-lost
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeDisconnected || e.Message != errLostAnswer.Message {
		t.Fatalf("publish whose connection was cut: %v, want %v", err, errLostAnswer)
	}

	r.waitFor(t, "resubscribed", func() bool { return len(r.subscribed) == 2 })
	if err := c.Publish(context.Background(), "news", seq{3}); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "message 3", func() bool { return len(r.messages) >= 1 })
	if n := seqOf(t, r.snapshot().messages[0]); n != 3 {
		t.Fatalf("first message is %d, want 3: a failed publish was sent again", n)
	}
}
