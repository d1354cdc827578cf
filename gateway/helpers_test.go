package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// testGateway is a running gateway on loopback ports chosen by the kernel.
type testGateway struct {
	*Gateway
	t      testing.TB
	cancel context.CancelFunc
	done   chan error
}

// startGateway starts a gateway with test-friendly defaults, adjusted by
// mutate, and shuts it down when the test ends.
func startGateway(t testing.TB, mutate func(*Config)) *testGateway {
	t.Helper()
	cfg := Defaults()
	cfg.Listen = "127.0.0.1:0"
	cfg.Admin = "127.0.0.1:0"
	cfg.Shards = 2
	cfg.DrainTimeout = 2 * time.Second
	if mutate != nil {
		mutate(&cfg)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	g, err := New(cfg, log)
	if err != nil {
		t.Fatalf("start gateway: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tg := &testGateway{Gateway: g, t: t, cancel: cancel, done: make(chan error, 1)}
	go func() { tg.done <- g.Run(ctx) }()
	t.Cleanup(tg.stop)
	return tg
}

func (g *testGateway) stop() {
	g.cancel()
	if err := <-g.done; err != nil && err != errDraining {
		g.t.Errorf("gateway run: %v", err)
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (g *testGateway) wsURL() string    { return "ws://" + g.Addr().String() + g.cfg.Path }
func (g *testGateway) adminURL() string { return "http://" + g.AdminAddr().String() }

// publish posts body to /api/publish and returns the status and body.
func (g *testGateway) publish(body string, header ...string) (int, string) {
	g.t.Helper()
	req, err := http.NewRequest(http.MethodPost, g.adminURL()+"/api/publish", strings.NewReader(body))
	if err != nil {
		g.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatalf("publish: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// mustPublish publishes and fails the test unless the answer is 200.
func (g *testGateway) mustPublish(channel string, data string) {
	g.t.Helper()
	body := fmt.Sprintf(`{"channel":%q,"data":%s}`, channel, data)
	if channel == "" {
		body = fmt.Sprintf(`{"data":%s}`, data)
	}
	if code, resp := g.publish(body); code != http.StatusOK {
		g.t.Fatalf("publish %s: %d %s", body, code, resp)
	}
}

// metrics scrapes /metrics.
func (g *testGateway) metrics() map[string]*dto {
	g.t.Helper()
	return scrape(g.t, g.adminURL()+"/metrics")
}

type dto = model.Vector

// scrape returns every sample of url's Prometheus text, by metric name.
func scrape(t testing.TB, url string) map[string]*dto {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	dec := expfmt.SampleDecoder{
		Dec:  expfmt.NewDecoder(resp.Body, expfmt.NewFormat(expfmt.TypeTextPlain)),
		Opts: &expfmt.DecodeOptions{Timestamp: model.Now()},
	}
	out := map[string]*dto{}
	for {
		var v model.Vector
		if err := dec.Decode(&v); err != nil {
			if err == io.EOF {
				break
			}
			t.Fatalf("decode metrics: %v", err)
		}
		for _, s := range v {
			name := string(s.Metric[model.MetricNameLabel])
			if out[name] == nil {
				out[name] = &dto{}
			}
			*out[name] = append(*out[name], s)
		}
	}
	return out
}

// metricSum adds the samples of name whose labels include every given
// label pair ("reason", "slow_consumer", ...).
func (g *testGateway) metricSum(name string, labels ...string) float64 {
	g.t.Helper()
	return sumSamples(g.metrics()[name], labels...)
}

func sumSamples(v *dto, labels ...string) float64 {
	if v == nil {
		return 0
	}
	total := 0.0
outer:
	for _, s := range *v {
		for i := 0; i+1 < len(labels); i += 2 {
			if string(s.Metric[model.LabelName(labels[i])]) != labels[i+1] {
				continue outer
			}
		}
		total += float64(s.Value)
	}
	return total
}

// waitFor polls cond (every 5 ms, up to 10 s) instead of sleeping a guess.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitMetric waits until the metric sum equals want.
func (g *testGateway) waitMetric(want float64, name string, labels ...string) {
	g.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := g.metricSum(name, labels...)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("timed out waiting for %s%v == %v (last %v)", name, labels, want, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// in returns g bound to t, so that a subtest (which runs on its own
// goroutine) can publish, scrape and wait through g's helpers and fail
// itself rather than the parent test.
func (g *testGateway) in(t testing.TB) *testGateway {
	c := *g
	c.t = t
	return &c
}
