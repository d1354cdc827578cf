package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shardgate/shardgate/gateway/broker"
	"github.com/shardgate/shardgate/gateway/broker/jshistory"
	"github.com/shardgate/shardgate/gateway/broker/natsbroker"
	"github.com/shardgate/shardgate/internal/natstest"
)

// TestHistoryBrokerOverloadEndsTheChannelsFollowing: when the node cannot
// take a followed message (the dispatcher answers overloaded), nothing
// more of that follower reaches the node, lost is called once for the
// channel, and the interest registered anew follows from the latest
// position: the refused message is never delivered late.
func TestHistoryBrokerOverloadEndsTheChannelsFollowing(t *testing.T) {
	srv := startJetStream(t, t.TempDir(), -1)
	url := natstest.URL(srv)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js, err := jshistory.Open(ctx, url, jshistory.Config{Size: 100, TTL: time.Minute, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer js.Close()
	nb, err := natsbroker.New(url, func(string, json.RawMessage) error { return nil }, natsbroker.Options{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}

	var refuse atomic.Bool
	delivered := make(chan uint64, 16)
	lost := make(chan string, 4)
	deliver := func(_ string, offset uint64, _ json.RawMessage) error {
		if refuse.Load() {
			return errOverloaded
		}
		delivered <- offset
		return nil
	}
	b := newHistoryBroker(nb, js, Defaults(), quiet, deliver, func(channel string) { lost <- channel }, func(string) {})
	defer b.Close()

	follow := func() {
		t.Helper()
		ready := make(chan error, 1)
		b.Interest("c", true, func(err error) { ready <- err })
		if err := <-ready; err != nil {
			t.Fatalf("interest: %v", err)
		}
	}
	publish := func(data string) uint64 {
		t.Helper()
		out := make(chan broker.Receipt, 1)
		b.PublishReceipt("c", json.RawMessage(data), func(r broker.Receipt, err error) {
			if err != nil {
				r = broker.Receipt{}
			}
			out <- r
		})
		r := <-out
		if r.Epoch != js.Epoch() {
			t.Fatalf("publish %s: receipt %+v", data, r)
		}
		return r.Offset
	}
	expect := func(want uint64) {
		t.Helper()
		select {
		case got := <-delivered:
			if got != want {
				t.Fatalf("delivered offset %d, want %d", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("offset %d not delivered", want)
		}
	}

	follow()
	expect(publish("1"))
	refuse.Store(true)
	publish("2")
	select {
	case ch := <-lost:
		if ch != "c" {
			t.Fatalf("lost %q", ch)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("an overloaded delivery did not end the channel's following")
	}
	refuse.Store(false)
	follow() // what Gateway.channelLost does after closing the subscribers
	// The next message delivered is one published now: 2 is gone with
	// the session that refused it.
	expect(publish("3"))
	select {
	case ch := <-lost:
		t.Fatalf("lost %q again", ch)
	default:
	}
}
