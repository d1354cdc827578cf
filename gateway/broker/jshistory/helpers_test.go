package jshistory

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/shardgate/shardgate/internal/natstest"
	"go.uber.org/goleak"
)

// TestMain fails the package if a History or a server outlives its test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startJS runs a NATS server with JetStream storing in dir (a new
// temporary one if empty) on port (-1: any).
func startJS(t testing.TB, port int, dir string) *server.Server {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	return natstest.StartConfig(t, natstest.Config{Port: port, JetStream: true, StoreDir: dir})
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testConfig is a small, quick configuration for tests.
func testConfig() Config {
	return Config{
		Size:           1000,
		TTL:            time.Hour,
		PublishTimeout: time.Second,
		ReconnectWait:  20 * time.Millisecond,
		ConnectTimeout: 500 * time.Millisecond,
		PingInterval:   time.Second,
		Log:            quiet(),
	}
}

// open opens a History on url, closed when the test ends.
func open(t testing.TB, url string, cfg Config) *History {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := Open(ctx, url, cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func ctx10(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond every 5 ms for up to 20 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// recorder collects what a follower delivers and whether it was lost.
type recorder struct {
	mu       sync.Mutex
	offsets  []uint64
	data     []string
	lostErr  error
	lostN    int
	inDeliv  bool
	overlaps int
	lostCh   chan struct{}
}

func newRecorder() *recorder { return &recorder{lostCh: make(chan struct{})} }

func (r *recorder) deliver(off uint64, data []byte) {
	r.mu.Lock()
	if r.inDeliv {
		r.overlaps++
	}
	r.inDeliv = true
	r.offsets = append(r.offsets, off)
	r.data = append(r.data, string(data))
	r.inDeliv = false
	r.mu.Unlock()
}

func (r *recorder) lost(err error) {
	r.mu.Lock()
	r.lostErr = err
	r.lostN++
	if r.lostN == 1 {
		close(r.lostCh)
	}
	r.mu.Unlock()
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.offsets)
}

func (r *recorder) snapshot() ([]uint64, error, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.offsets), r.lostErr, r.lostN
}

// checkExactly fails unless got is want sorted: every offset once, in
// ascending order.
func checkExactly(t testing.TB, got, want []uint64) {
	t.Helper()
	want = slices.Clone(want)
	slices.Sort(want)
	if !slices.IsSorted(got) {
		for i := 1; i < len(got); i++ {
			if got[i] <= got[i-1] {
				t.Fatalf("out of order or duplicate at %d: %d after %d", i, got[i], got[i-1])
			}
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("delivered %d offsets, want %d (first differences: %v)", len(got), len(want), firstDiff(got, want))
	}
}

func firstDiff(a, b []uint64) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("index %d: got %d want %d", i, a[i], b[i])
		}
	}
	return "one is a prefix of the other"
}
