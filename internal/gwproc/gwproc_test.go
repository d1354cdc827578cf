package gwproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// bin is built once for this test binary by TestMain.
var bin *Binary

func TestMain(m *testing.M) {
	b, err := Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = b
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		b.Remove()
		os.Exit(code)
	}))
}

// TestGatewayKillRestartKeepsAddresses: a killed gateway restarts on the
// same public and admin addresses, and the publish API answers with
// history's offset and epoch, a new epoch after the restart.
func TestGatewayKillRestartKeepsAddresses(t *testing.T) {
	t.Parallel()
	g := bin.Start(t, "-history-size", "10")
	ctx := context.Background()
	first, err := g.Publish(ctx, "news", []byte(`{"n":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if first.Offset == 0 || first.Epoch == "" {
		t.Fatalf("publish answered %+v, want an offset and an epoch", first)
	}
	wsURL, adminURL := g.WSURL(), g.AdminURL()

	g.Kill()
	if g.Running() {
		t.Fatal("running after Kill")
	}
	if _, err := g.Publish(ctx, "news", []byte(`1`)); err == nil {
		t.Fatal("publish to a killed gateway succeeded")
	}
	g.Restart()
	if g.WSURL() != wsURL || g.AdminURL() != adminURL {
		t.Fatalf("restarted on %s %s, want %s %s", g.WSURL(), g.AdminURL(), wsURL, adminURL)
	}
	again, err := g.Publish(ctx, "news", []byte(`{"n":2}`))
	if err != nil {
		t.Fatal(err)
	}
	if again.Epoch == first.Epoch {
		t.Fatalf("epoch %q unchanged by a restart without a shared store", again.Epoch)
	}
	if err := g.Term(10 * time.Second); err != nil {
		t.Fatalf("SIGTERM: %v, want exit 0", err)
	}
}

// TestPublishErrorsCarryTheStatus: an API refusal comes back as a
// *StatusError with the status and the answer.
func TestPublishErrorsCarryTheStatus(t *testing.T) {
	t.Parallel()
	g := bin.Start(t)
	_, err := g.Publish(context.Background(), "bad channel", []byte(`1`))
	var se *StatusError
	if !errors.As(err, &se) || se.Status != 400 {
		t.Fatalf("publish to a bad channel: %v, want a 400 StatusError", err)
	}
}

// TestProxyForwardsDropsAndCuts: bytes flow both ways, a dropping proxy
// swallows (and counts) what the client sends, and Cut breaks the
// connection.
func TestProxyForwardsDropsAndCuts(t *testing.T) {
	t.Parallel()
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := echo.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	p := NewProxy(t, echo.Addr().String())
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip := func(msg string) string {
		t.Helper()
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(msg))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		return string(buf)
	}
	if got := roundTrip("ping"); got != "ping" {
		t.Fatalf("echo %q", got)
	}

	p.Drop()
	if _, err := c.Write([]byte("lost")); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); p.Dropped() < 4; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) { // polling: the proxy reads on its own goroutine
			t.Fatalf("dropped %d bytes, want 4", p.Dropped())
		}
	}
	p.Flow()
	if got := roundTrip("pong"); got != "pong" {
		t.Fatalf("echo after Flow %q, want pong (the dropped bytes must not arrive)", got)
	}

	if n := p.Cut(); n != 1 {
		t.Fatalf("Cut cut %d connections, want 1", n)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 4)); err == nil {
		t.Fatal("read after Cut succeeded")
	}
	<-served
}
