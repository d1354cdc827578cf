package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shardgate/shardgate/bench/report"
	"github.com/shardgate/shardgate/gateway"
	"github.com/shardgate/shardgate/internal/natstest"
)

// chaosRun runs shardbench chaos with args and returns its report and exit
// status (0 PASS, 3 FAIL).
func chaosRun(t *testing.T, args ...string) (*report.Report, int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "chaos.json")
	args = append([]string{"chaos", "-target", "shardgate", "-json", path}, args...)
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	t.Logf("shardbench %v: exit %d\n%s%s", args, code, stdout.String(), stderr.String())
	if code != 0 && code != exitSoakFailed {
		t.Fatalf("shardbench chaos could not run: exit %d", code)
	}
	rep := readReport(t, path)
	if rep.Chaos == nil {
		t.Fatal("no chaos section in the report")
	}
	return rep, code
}

// Clients whose connections are cut mid-stream (a TCP proxy in front of
// the gateway, one per "node", both cut in turn) reconnect through the
// other one and recover: every message once, in order, every resubscribe
// answered recovered:true.
func TestChaosClientsRecoverAcrossDrops(t *testing.T) {
	s := startShardgateWith(t, func(c *gateway.Config) { c.HistorySize = 10000 })
	gw := strings.TrimSuffix(strings.TrimPrefix(s.url, "ws://"), "/ws")
	p1, p2 := natstest.NewProxy(t, gw), natstest.NewProxy(t, gw)
	wsOf := func(p *natstest.Proxy) string { return "ws://" + strings.TrimPrefix(p.URL(), "nats://") + "/ws" }

	stop, cutsDone := make(chan struct{}), make(chan int)
	go func() {
		cuts := 0
		defer func() { cutsDone <- cuts }()
		// The stream starts once every client has subscribed: cut from
		// its first publish on, five times 400 ms apart.
		if !waitPublished(s.adminURL, stop) {
			return
		}
		for i := 0; i < 5; i++ {
			if i%2 == 0 {
				p1.Cut()
			} else {
				p2.Cut()
			}
			cuts++
			select {
			case <-time.After(400 * time.Millisecond):
			case <-stop:
				return
			}
		}
	}()
	rep, code := chaosRun(t, "-url", wsOf(p1)+","+wsOf(p2), "-admin-url", s.adminURL,
		"-conns", "100", "-rate", "200", "-duration", "4s", "-wait", "15s", "-procs", "2", "-require-recovered")
	close(stop)
	cuts := <-cutsDone
	c := rep.Chaos
	if code != 0 || !c.Pass || !c.ExactlyOnce {
		t.Fatalf("verdict: exit %d, %+v", code, c)
	}
	if cuts < 3 || c.Disconnects < 100 || c.Reconnects != c.Disconnects || c.RecoveredTrue != c.Reconnects || c.RecoveredFalse != 0 {
		t.Fatalf("%d cuts: %d disconnects, %d reconnects, recovered true %d false %d", cuts, c.Disconnects, c.Reconnects, c.RecoveredTrue, c.RecoveredFalse)
	}
	if c.Lost != 0 || c.Duplicated != 0 || c.Reordered != 0 || c.OffsetErrors != 0 || c.Unrecoverable != 0 || c.CleanClients != 100 {
		t.Fatalf("stream: %+v", c)
	}
	if c.Published != 800 || c.Delivered != c.Expected || c.Expected != 800*100 {
		t.Fatalf("published %d, delivered %d of %d", c.Published, c.Delivered, c.Expected)
	}
	if c.Reconnect.Count != uint64(c.Reconnects) || c.Reconnect.MaxMS <= 0 {
		t.Fatalf("reconnect times: %+v", c.Reconnect)
	}
	if rep.Connect.Handshake.Count != 100 || rep.Connect.Opened != 100 {
		t.Fatalf("setup counts reconnections: %d handshakes, %d opened", rep.Connect.Handshake.Count, rep.Connect.Opened)
	}
}

// A gateway restarted mid-stream (drained, then a new process on the same
// ports) has a new epoch: every client's resubscribe is answered
// recovered:false, which is counted, with what it missed as
// unrecoverable, and the run passes; with -require-recovered it fails.
func TestChaosRestartCountsRecoveredFalse(t *testing.T) {
	for _, require := range []bool{false, true} {
		t.Run(map[bool]string{false: "counted", true: "required"}[require], func(t *testing.T) {
			cfg := gateway.Defaults()
			cfg.Listen, cfg.Admin = "127.0.0.1:0", "127.0.0.1:0"
			cfg.Shards = 2
			cfg.DrainTimeout = time.Second
			cfg.HistorySize = 10000
			first, stopFirst := runGateway(t, cfg)
			cfg.Listen, cfg.Admin = first.Addr().String(), first.AdminAddr().String()
			url, admin := "ws://"+cfg.Listen+cfg.Path, "http://"+cfg.Admin

			restarted := make(chan func(), 1)
			go func() {
				// Once the stream runs (every client subscribed), a second in.
				waitPublished(admin, make(chan struct{}))
				time.Sleep(time.Second)
				stopFirst()
				time.Sleep(300 * time.Millisecond)
				_, stop := runGateway(t, cfg)
				restarted <- stop
			}()
			args := []string{"-url", url, "-admin-url", admin, "-conns", "50", "-rate", "100", "-duration", "4s", "-wait", "15s", "-procs", "1"}
			if require {
				args = append(args, "-require-recovered")
			}
			rep, code := chaosRun(t, args...)
			(<-restarted)()
			c := rep.Chaos
			if c.Clients != 50 || c.RecoveredFalse < 50 || c.NotReconnected != 0 {
				t.Fatalf("clients %d, recovered:false %d, not reconnected %d", c.Clients, c.RecoveredFalse, c.NotReconnected)
			}
			if c.Lost != 0 || c.Duplicated != 0 || c.Reordered != 0 || c.OffsetErrors != 0 || c.CleanClients != 50 {
				t.Fatalf("stream: %+v", c)
			}
			if c.Delivered+c.Unrecoverable < c.Expected {
				t.Fatalf("delivered %d + unrecoverable %d < expected %d", c.Delivered, c.Unrecoverable, c.Expected)
			}
			switch {
			case !require && (code != 0 || !c.Pass):
				t.Fatalf("recovered:false failed the run: exit %d, %v", code, c.Failures)
			case require && (code != exitSoakFailed || c.Pass):
				t.Fatalf("-require-recovered passed with %d recovered:false", c.RecoveredFalse)
			}
		})
	}
}

// waitPublished polls the gateway's metrics until it has taken a publish
// through its API; false when stop closes first.
func waitPublished(adminURL string, stop <-chan struct{}) bool {
	for {
		if resp, err := http.Get(adminURL + "/metrics"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, line := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(line, `shardgate_publishes_total{source="api"}`) && !strings.HasSuffix(line, " 0") {
					return true
				}
			}
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-stop:
			return false
		}
	}
}

// runGateway runs a gateway with cfg until stop (or the test's end).
func runGateway(t *testing.T, cfg gateway.Config) (*gateway.Gateway, func()) {
	t.Helper()
	g, err := gateway.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway: %v", err)
		}
	}
	t.Cleanup(stop)
	return g, stop
}
