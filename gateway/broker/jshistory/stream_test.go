package jshistory

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shardgate/shardgate/internal/natstest"
)

// TestStreamConfigChecked: a stream that differs from the flags in what
// NATS can change is updated, keeping its epoch and messages; one that
// differs in storage fails Open with ErrStreamConfig.
func TestStreamConfigChecked(t *testing.T) {
	s := startJS(t, -1, "")
	url := natstest.URL(s)
	ctx := ctx10(t)
	first := open(t, url, testConfig())
	p, err := first.Publish(ctx, "news", []byte(`1`))
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Size = 7
	cfg.TTL = 2 * time.Hour
	second := open(t, url, cfg)
	if second.Epoch() != first.Epoch() {
		t.Fatalf("epoch changed by an update: %q → %q", first.Epoch(), second.Epoch())
	}
	info := streamInfo(t, url, "SHARDGATE_HISTORY")
	if info.Config.MaxMsgsPerSubject != 7 || info.Config.MaxAge != 2*time.Hour {
		t.Fatalf("not updated: %+v", info.Config)
	}
	if msgs, whole, err := second.Since(ctx, "news", Position{second.Epoch(), 0}, 10); err != nil || !whole || len(msgs) != 1 || msgs[0].Offset != p.Offset {
		t.Fatalf("messages after update: %v %v %v", msgs, whole, err)
	}

	// Memory storage cannot become file storage.
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "MEM", Subjects: []string{"mem.ch.*"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	bad := testConfig()
	bad.Prefix, bad.Stream = "mem", "MEM"
	h, err := Open(ctx, url, bad)
	if !errors.Is(err, ErrStreamConfig) {
		if h != nil {
			h.Close()
		}
		t.Fatalf("Open on a memory stream: %v", err)
	}
	t.Logf("error: %v", err)
	// A stream made by hand without an epoch: every node derives the same.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "HAND", Subjects: []string{"hand.ch.*"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	hand := testConfig()
	hand.Prefix, hand.Stream = "hand", "HAND"
	a, b := open(t, url, hand), open(t, url, hand)
	if a.Epoch() == "" || a.Epoch() != b.Epoch() {
		t.Fatalf("derived epochs %q and %q", a.Epoch(), b.Epoch())
	}
}

func streamInfo(t testing.TB, url, name string) *jetstream.StreamInfo {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return st.CachedInfo()
}
