package loadgen

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shardgate/shardgate/bench/target"
)

// The chaos stream fails over from a node that refuses connections and
// one that answers 503 to one that takes the message, with the same
// number, and keeps the last receipt; numbers have no holes.
func TestChaosStreamFailsOver(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now: connection refused

	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"ok":false}`, http.StatusServiceUnavailable)
	}))
	defer busy.Close()
	var offset atomic.Uint64
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := offset.Add(10)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true,"offset":` + strconv.FormatUint(n, 10) + `,"epoch":"ep"}`))
	}))
	defer ok.Close()

	tgt, _ := target.New("shardgate", target.Options{})
	cfg := Config{Channels: 1, Rate: 100, Duration: 200 * time.Millisecond, ChannelPrefix: "t",
		AdminURL: dead, AdminURLs: []string{dead, busy.URL, ok.URL}}
	s := newChaosStream(cfg, tgt, &http.Client{Timeout: 2 * time.Second}, []int64{5})
	s.run(context.Background())
	res, unknown, failovers, perAdmin, end := s.result()
	if res.published != 20 || res.errors != 0 || unknown != 0 || failovers != 2 {
		t.Fatalf("published %d, errors %d, unknown %d, failovers %d", res.published, res.errors, unknown, failovers)
	}
	if perAdmin[0] != 0 || perAdmin[1] != 0 || perAdmin[2] != 20 || res.expected != 100 {
		t.Fatalf("per admin %v, expected %d", perAdmin, res.expected)
	}
	if end.Last[0] != 20 || end.LastOffset[0] != 200 || end.LastEpoch[0] != "ep" {
		t.Fatalf("end %+v", end)
	}
}
