package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/shardgate/shardgate/bench/client"
	"github.com/shardgate/shardgate/bench/peers/gorillahub/hub"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func startHub(t *testing.T) *hub.Server { t.Helper(); return startHubWith(t, hub.Options{}) }

func startHubWith(t *testing.T, opts hub.Options) *hub.Server {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.Registerer, opts.Log = reg, slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := hub.Start(opts, "127.0.0.1:0", "127.0.0.1:0", reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return s
}

func config(scenario, wsAddr, adminAddr string) Config {
	return Config{
		Scenario: scenario, Target: "gorillahub",
		URL: "ws://" + wsAddr + "/ws", Addr: netip.MustParseAddrPort(wsAddr), AdminURL: "http://" + adminAddr,
		Conns: 50, Procs: 2, SourceIPs: []netip.Addr{netip.MustParseAddr("127.0.0.5"), netip.MustParseAddr("127.0.0.6")},
		Channels: 3, Rate: 20, Size: 100, Duration: 500 * time.Millisecond, ProgressEvery: 20 * time.Millisecond,
		Spawn: InProcessSpawner(),
	}
}

func TestRunInProcessFanout(t *testing.T) {
	s := startHub(t)
	cfg := config(ScenarioFanout, s.Addr().String(), s.AdminAddr().String())
	var progressed bool
	cfg.OnProgress = func(Progress) { progressed = true }
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := rep.Fanout
	if rep.Connect.Opened != 50 || f.Published != 10 || f.Expected == 0 || f.Delivered != f.Expected {
		t.Fatalf("connect %+v fanout %+v", rep.Connect, f)
	}
	// Channels 0..2 get 17, 17 and 16 of the 50 connections; messages go
	// round the channels: 4, 3 and 3 of the 10.
	if want := int64(4*17 + 3*17 + 3*16); f.Expected != want {
		t.Fatalf("expected %d deliveries, want %d", f.Expected, want)
	}
	if !progressed {
		t.Fatal("OnProgress never called")
	}
}

// permessage-deflate against the gorilla peer with compression on and off:
// the offer is accepted or declined, messages arrive either way, and the
// bytes read per delivery show the difference.
func TestRunInProcessFanoutCompressed(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("server compression %v", on), func(t *testing.T) {
			s := startHubWith(t, hub.Options{Compression: on})
			cfg := config(ScenarioFanout, s.Addr().String(), s.AdminAddr().String())
			cfg.Compress, cfg.Payload, cfg.Size = true, PayloadJSON, 1024
			rep, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			f, z := rep.Fanout, rep.Compression
			if f.Delivered != f.Expected || f.Expected == 0 || z == nil || rep.Params.Payload != PayloadJSON {
				t.Fatalf("fanout %+v compression %+v", f, z)
			}
			if z.Offer != client.DeflateOffer || z.Negotiated+z.Declined != 50 {
				t.Fatalf("compression %+v: want 50 answers to the offer", z)
			}
			// The envelope adds a few dozen bytes to the 1,024 of data.
			if m := f.Wire.MessageBytesPerDelivery; m < 1024 || m > 1100 {
				t.Fatalf("%.0f message bytes per delivery, want 1,024 of data and the envelope", m)
			}
			if on {
				if z.Negotiated != 50 || z.CompressedMessages != f.Delivered || z.PlainMessages != 0 || z.Answer == "" {
					t.Fatalf("compression %+v: want every upgrade and message compressed", z)
				}
				if f.Wire.BytesPerDelivery*2 > f.Wire.MessageBytesPerDelivery {
					t.Fatalf("wire %+v: the JSON payload did not shrink to half", f.Wire)
				}
			} else {
				if z.Declined != 50 || z.CompressedMessages != 0 || z.Answer != "" {
					t.Fatalf("compression %+v: want every offer declined", z)
				}
				// Plain: each message and its 4-byte frame header, then
				// the server's close frame (4 bytes: 1000) on each
				// connection.
				want := f.Delivered*int64(f.Wire.MessageBytesPerDelivery+4) + 50*4
				if f.Wire.Bytes != want {
					t.Fatalf("wire %+v: want %d bytes, the messages with 4-byte headers and 50 close frames", f.Wire, want)
				}
			}
		})
	}
}

// A server that upgrades and then never answers: every connection fails
// its setup after the handshake timeout, and the run still ends.
func TestSubscribeTimeout(t *testing.T) {
	var wg sync.WaitGroup
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wg.Add(1)
		defer wg.Done()
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}))
	t.Cleanup(func() {
		srv.Close()
		wg.Wait()
	})
	addr := srv.Listener.Addr().String()
	cfg := config(ScenarioEcho, addr, addr)
	cfg.Conns, cfg.HandshakeTimeout, cfg.CloseTimeout = 5, 200*time.Millisecond, time.Second
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c := rep.Connect; c.Opened != 0 || c.Failed != 5 || c.Failures["subscribe_timeout"] != 5 {
		t.Fatalf("connect: %+v", c)
	}
	if rep.Server.ScrapeError == "" {
		t.Fatal("scraping a server without /metrics did not note an error")
	}
}

func TestWorkerThatDiesFailsTheRun(t *testing.T) {
	s := startHub(t)
	cfg := config(ScenarioConnect, s.Addr().String(), s.AdminAddr().String())
	cfg.Spawn = func(i int) (*Worker, error) {
		// A worker that exits at once: its output ends, its input goes
		// nowhere.
		return &Worker{In: nopCloser{io.Discard}, Out: strings.NewReader(""), Wait: func() error { return nil }}, nil
	}
	_, err := Run(context.Background(), cfg)
	if !errors.Is(err, errWorkerExited) {
		t.Fatalf("err = %v, want errWorkerExited", err)
	}
}

func TestCancel(t *testing.T) {
	s := startHub(t)
	cfg := config(ScenarioConnect, s.Addr().String(), s.AdminAddr().String())
	cfg.Hold = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	cfg.OnProgress = func(p Progress) {
		if p.Phase == "holding" {
			cancel()
		}
	}
	if _, err := Run(ctx, cfg); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// A short soak against the gorilla peer, workers in-process: the stream
// arrives whole while the behaviours the peer handles like shardgate
// churn beside it, and the server is sampled.
func TestRunInProcessSoak(t *testing.T) {
	s := startHub(t)
	cfg := config(ScenarioSoak, s.Addr().String(), s.AdminAddr().String())
	cfg.Conns, cfg.Channels, cfg.Rate, cfg.Duration = 40, 2, 40, time.Second
	cfg.Soak = SoakConfig{
		Churn: 40, Behaviours: []string{"clean-close", "abrupt-close", "silent", "ping-flood"},
		Hold: 100 * time.Millisecond, PingFlood: 50,
		SampleInterval: 200 * time.Millisecond, Settle: 2 * time.Second,
	}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	sk := rep.Soak
	if sk == nil || sk.Subscribed != 40 || sk.Published != 40 || sk.Delivered != sk.Expected || sk.Expected != 40*20 {
		t.Fatalf("soak: %+v", sk)
	}
	if sk.Lost != 0 || sk.Duplicated != 0 || sk.Reordered != 0 {
		t.Fatalf("lost %d, duplicated %d, reordered %d", sk.Lost, sk.Duplicated, sk.Reordered)
	}
	if len(sk.Churn) != 4 {
		t.Fatalf("churn: %+v", sk.Churn)
	}
	for _, c := range sk.Churn {
		if c.Started < 5 || c.Done != c.Started || c.Failed != 0 {
			t.Errorf("churn %s: %+v", c.Behaviour, c)
		}
	}
	if sk.Start == nil || sk.End == nil || len(sk.Samples) < 3 || sk.Samples[len(sk.Samples)-1].Phase != phaseEnd {
		t.Fatalf("samples: %+v", sk.Samples)
	}
}
