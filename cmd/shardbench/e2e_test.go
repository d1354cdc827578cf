package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/shardgate/shardgate/bench/peers/gorillahub/hub"
	"github.com/shardgate/shardgate/bench/report"
	"github.com/shardgate/shardgate/gateway"
)

// server is a target started in this process on loopback ports chosen by
// the kernel.
type server struct {
	target, url, adminURL string
}

// startShardgate runs a real gateway in-process, like cmd/shardgate.
func startShardgate(t *testing.T) server { t.Helper(); return startShardgateWith(t, nil) }

// startShardgateWith is startShardgate with settings of the caller's.
func startShardgateWith(t *testing.T, configure func(*gateway.Config)) server {
	t.Helper()
	cfg := gateway.Defaults()
	cfg.Listen, cfg.Admin = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Shards = 2
	cfg.ClientRate = 0 // echo runs as fast as it can
	cfg.DrainTimeout = 2 * time.Second
	if configure != nil {
		configure(&cfg)
	}
	g, err := gateway.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway: %v", err)
		}
	})
	return server{"shardgate", "ws://" + g.Addr().String() + cfg.Path, "http://" + g.AdminAddr().String()}
}

// startGorillahub runs the peer in-process, with a registry of its own so
// that tests do not share metrics.
func startGorillahub(t *testing.T) server {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := hub.Start(hub.Options{Registerer: reg, Log: slog.New(slog.NewTextHandler(io.Discard, nil))},
		"127.0.0.1:0", "127.0.0.1:0", reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("gorillahub: %v", err)
		}
	})
	return server{"gorillahub", "ws://" + srv.Addr().String() + "/ws", "http://" + srv.AdminAddr().String()}
}

// bench runs shardbench with args against s, its workers as child
// processes (this test binary, see TestMain), and returns the JSON report.
func bench(t *testing.T, s server, args ...string) *report.Report {
	t.Helper()
	path := filepath.Join(t.TempDir(), "report.json")
	args = append(args, "-target", s.target, "-url", s.url, "-admin-url", s.adminURL, "-json", path)
	var stdout, stderr bytes.Buffer
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("shardbench %v: exit %d\nstderr: %s\nstdout: %s", args, code, stderr.String(), stdout.String())
	}
	t.Logf("shardbench %v:\n%s", args, stdout.String())
	return readReport(t, path)
}

// readReport reads the JSON report shardbench wrote to path.
func readReport(t *testing.T, path string) *report.Report {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep report.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	return &rep
}

var servers = []struct {
	name  string
	start func(*testing.T) server
}{
	{"shardgate", startShardgate},
	{"gorillahub", startGorillahub},
}

func TestFanoutDeliversEverything(t *testing.T) {
	for _, sv := range servers {
		t.Run(sv.name, func(t *testing.T) {
			s := sv.start(t)
			const conns, rate, seconds = 200, 10, 2
			rep := bench(t, s, "fanout", "-conns", "200", "-channels", "2", "-rate", "10", "-size", "256",
				"-duration", "2s", "-procs", "2")
			c, f := rep.Connect, rep.Fanout
			if c.Opened != conns || c.Failed != 0 || c.Dropped != 0 {
				t.Fatalf("connections: %+v", c)
			}
			if f == nil || f.Subscribed != conns || f.Published != rate*seconds || f.PublishErrors != 0 {
				t.Fatalf("fanout: %+v", f)
			}
			// Each message reaches the half of the connections on its channel.
			if want := int64(rate * seconds * conns / 2); f.Expected != want || f.Delivered != want || f.Reordered != 0 {
				t.Fatalf("delivered %d, expected %d (want %d), reordered %d", f.Delivered, f.Expected, want, f.Reordered)
			}
			if f.Latency.Count != uint64(f.Delivered) || f.Latency.P50MS <= 0 || f.Latency.MaxMS < f.Latency.P99MS {
				t.Fatalf("latency: %+v", f.Latency)
			}
			if rep.Server.Baseline == nil || rep.Server.End == nil || rep.Server.ScrapeError != "" {
				t.Fatalf("server metrics not read: %+v", rep.Server)
			}
			if g := rep.Generator; g.Procs != 2 || g.UserS+g.SysS <= 0 || g.MaxRSSBytes <= 0 {
				t.Fatalf("generator overhead not measured: %+v", g)
			}
		})
	}
}

func TestConnectCountsServerCost(t *testing.T) {
	for _, sv := range servers {
		t.Run(sv.name, func(t *testing.T) {
			s := sv.start(t)
			rep := bench(t, s, "connect", "-conns", "200", "-hold", "200ms", "-procs", "2")
			c := rep.Connect
			if c.Attempted != 200 || c.Opened != 200 || c.Failed != 0 || c.PerSecond <= 0 || c.Handshake.Count != 200 {
				t.Fatalf("connect: %+v", c)
			}
			srv := rep.Server
			if srv.Baseline == nil || srv.End == nil {
				t.Fatalf("server samples missing: %+v", srv)
			}
			// The gorilla design costs two goroutines per connection; the
			// gateway's count does not grow with connections.
			grew := srv.End.Goroutines - srv.Baseline.Goroutines
			switch s.target {
			case "gorillahub":
				if grew < 2*200 {
					t.Fatalf("gorillahub goroutines grew by %v, want >= 400", grew)
				}
			case "shardgate":
				if grew > 10 {
					t.Fatalf("shardgate goroutines grew by %v with 200 connections", grew)
				}
			}
		})
	}
}

func TestEchoRoundTrips(t *testing.T) {
	for _, sv := range servers {
		t.Run(sv.name, func(t *testing.T) {
			s := sv.start(t)
			rep := bench(t, s, "echo", "-conns", "20", "-duration", "500ms", "-procs", "1")
			e := rep.Echo
			if rep.Connect.Opened != 20 || e == nil || e.RoundTrips < 20 || e.PerSecond <= 0 || len(e.Errors) != 0 {
				t.Fatalf("echo: %+v, connect %+v", e, rep.Connect)
			}
			if e.Latency.Count != uint64(e.RoundTrips) {
				t.Fatalf("latency samples %d for %d round trips", e.Latency.Count, e.RoundTrips)
			}
		})
	}
}

// -compress against the real gateway, compression on and off: the offer
// is accepted or declined, every message arrives, and the 1 KiB JSON
// payload crosses the wire at under half its size only when compressed.
func TestFanoutCompressed(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("compression %v", on), func(t *testing.T) {
			s := startShardgateWith(t, func(c *gateway.Config) { c.Compression = on })
			rep := bench(t, s, "fanout", "-conns", "100", "-rate", "10", "-size", "1024", "-payload", "json",
				"-duration", "1s", "-procs", "2", "-compress")
			f, z := rep.Fanout, rep.Compression
			if f == nil || f.Delivered != f.Expected || f.Expected != 1000 || z == nil {
				t.Fatalf("fanout %+v, compression %+v", f, z)
			}
			if rep.Params.Payload != "json" || z.Negotiated+z.Declined != 100 {
				t.Fatalf("params %+v, compression %+v", rep.Params, z)
			}
			w := f.Wire
			if w.MessageBytesPerDelivery < 1024 || w.BytesPerDelivery <= 0 {
				t.Fatalf("wire %+v", w)
			}
			if on {
				if z.Negotiated != 100 || z.CompressedMessages != f.Delivered || w.BytesPerDelivery*2 > w.MessageBytesPerDelivery {
					t.Fatalf("compression %+v, wire %+v: want every message compressed to under half", z, w)
				}
			} else if z.Declined != 100 || z.CompressedMessages != 0 || w.BytesPerDelivery < w.MessageBytesPerDelivery {
				t.Fatalf("compression %+v, wire %+v: want a declined offer and plain messages", z, w)
			}
		})
	}
}
