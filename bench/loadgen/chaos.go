package loadgen

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"syscall"
	"time"

	"github.com/shardgate/shardgate/bench/hist"
	"github.com/shardgate/shardgate/bench/report"
)

// The chaos scenario, for proving recovery across a cluster:
//
//	connecting  -Conns clients spread over the nodes (connection g on
//	            node g mod len(URLs)) subscribe, connection i to channel
//	            i mod Channels, and keep the epoch and offset they are told.
//	flood       for Duration the coordinator publishes the numbered stream
//	            (chaos_stream.go) through the admin APIs, failing over
//	            between them; at KillAfter it sends SIGKILL to KillPID (a
//	            node), when asked. Clients that lose their node reconnect
//	            to another and recover (chaos_worker.go).
//	catch-up    up to Wait after the last publish: every client has what
//	            was published (or counted it unrecoverable) and none is
//	            still reconnecting.
//	end         the workers count, per client, what was lost.
//
// Verdict: PASS when every client that subscribed ended subscribed and saw
// its channel's every message once and in order, by number and by offset,
// apart from messages behind a recovered:false, which are counted
// (unrecoverable), not failed, unless RequireRecovered.

// ChaosConfig is a chaos run's own settings; Config's Conns, Channels,
// Rate, Size, Duration and Wait give its clients and stream.
type ChaosConfig struct {
	// KillPID, when positive, is sent SIGKILL KillAfter after the stream
	// started.
	KillPID   int
	KillAfter time.Duration
	// BackoffMin and BackoffMax bound a client's wait between failed
	// reconnection attempts (the first one after a drop does not wait).
	BackoffMin time.Duration
	BackoffMax time.Duration
	// RequireRecovered fails the run on any recovered:false.
	RequireRecovered bool
}

func (s *ChaosConfig) setDefaults() {
	orDefault(&s.BackoffMin, 50*time.Millisecond)
	orDefault(&s.BackoffMax, 2*time.Second)
	s.BackoffMax = max(s.BackoffMax, s.BackoffMin)
}

// nodes lists the cluster for the chaos workers.
func (c *Config) nodes() []Node {
	if len(c.URLs) == 0 {
		return []Node{{URL: c.URL, Addr: c.Addr.String()}}
	}
	out := make([]Node, len(c.URLs))
	for i := range c.URLs {
		out[i] = Node{URL: c.URLs[i], Addr: c.Addrs[i].String()}
	}
	return out
}

// chaosState is the coordinator's side of a running chaos run.
type chaosState struct {
	stream   *chaosStream
	killAtS  float64 // since the stream started; 0: no kill
	killErr  string
	caughtUp bool
}

func (c *coordinator) runChaos(ctx context.Context) error {
	cfg := c.cfg
	subs := make([]int64, cfg.Channels)
	for _, w := range c.workers {
		for ch, n := range w.perChannel {
			subs[ch] += n
		}
	}
	st := &chaosState{}
	c.chaos = st
	// Publishes get a client of their own with short timeouts: a node
	// killed with a request out must not hold the stream for long.
	pubTransport := &http.Transport{MaxIdleConnsPerHost: 2, DisableCompression: true}
	defer pubTransport.CloseIdleConnections()
	pubHTTP := &http.Client{Timeout: 5 * time.Second, Transport: pubTransport}
	pctx, stopPublishing := context.WithCancel(ctx)
	defer stopPublishing()
	st.stream = newChaosStream(cfg, c.tgt, pubHTTP, subs)
	started := time.Now()
	go st.stream.run(pctx)
	defer func() { stopPublishing(); <-st.stream.done }()

	killed := make(chan struct{})
	if k := cfg.Chaos; k.KillPID > 0 {
		t := time.AfterFunc(k.KillAfter, func() {
			defer close(killed)
			st.killAtS = round3(time.Since(started).Seconds())
			if err := syscall.Kill(k.KillPID, syscall.SIGKILL); err != nil {
				st.killErr = err.Error()
			}
		})
		defer func() {
			if t.Stop() {
				close(killed)
			}
			<-killed
		}()
	}

	c.phase = "flooding"
	if _, err := c.waitUntil(ctx, time.Time{}, st.stream.done, st.stream.finished); err != nil {
		return err
	}
	c.phase = "catching up"
	_, expected := st.stream.counts()
	ok, err := c.waitUntil(ctx, time.Now().Add(cfg.Wait), nil, func() bool {
		t := c.total()
		return t.Reconnecting == 0 && t.Delivered+t.Unrecoverable >= expected
	})
	st.caughtUp = ok
	return err
}

// fillChaos completes the chaos section of rep from the workers' results.
func (c *coordinator) fillChaos(rep *report.Report, total Stats, lat *report.Latency) {
	cfg, st := c.cfg, c.chaos
	p, unknown, failovers, perAdmin, _ := st.stream.result()
	admins := cfg.AdminURLs
	if len(admins) == 0 {
		admins = []string{cfg.AdminURL}
	}
	ch := &report.Chaos{
		Nodes: cfg.URLs, Admins: admins, Channels: cfg.Channels, Subscribed: total.Subscribed,
		Published: p.published, PublishedPerAdmin: perAdmin, PublishFailovers: failovers,
		PublishErrors: p.errors, PublishUnknown: unknown, PublishLate: p.late,
		Expected: p.expected, Delivered: total.Delivered,
		Disconnects: total.Dropped, Reconnects: total.Reconnects,
		RecoveredTrue: total.RecoveredTrue, RecoveredFalse: total.RecoveredFalse,
		Latency: *lat, RequireRecovered: cfg.Chaos.RequireRecovered, CaughtUp: st.caughtUp, WaitS: cfg.Wait.Seconds(),
	}
	if len(ch.Nodes) == 0 {
		ch.Nodes = []string{cfg.URL}
	}
	if k := cfg.Chaos; k.KillPID > 0 {
		ch.Kill = &report.ChaosKill{PID: k.KillPID, AfterS: k.KillAfter.Seconds(), AtS: st.killAtS, Error: st.killErr}
	}
	rec := hist.New()
	attempts := map[string]int64{}
	for i, w := range c.workers {
		r := w.result.Chaos
		if r == nil {
			continue
		}
		ch.Clients += r.Clients
		ch.CleanClients += r.CleanClients
		ch.NotReconnected += r.NotReconnected
		ch.Lost += r.Lost
		ch.Duplicated += r.Duplicated
		ch.Reordered += r.Reordered
		ch.OffsetErrors += r.OffsetErrors
		ch.Unrecoverable += r.Unrecoverable
		addCounts(attempts, r.AttemptFailures)
		ch.Examples = append(ch.Examples, r.Examples...)
		if err := rec.MergeSnapshot(r.Reconnect); err != nil {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("worker %d reconnect times: %v", i, err))
		}
	}
	ch.AttemptFailures = nonEmpty(attempts)
	ch.DisconnectReasons = rep.Connect.DropReasons
	ch.Reconnect = report.LatencyOf(rec)
	if ch.Expected > 0 {
		ch.DeliveredPct = round3(100 * float64(ch.Delivered) / float64(ch.Expected))
	}
	for _, msg := range slices.Sorted(maps.Keys(p.errMsgs)) {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d publishes failed: %s", p.errMsgs[msg], msg))
	}
	ch.ExactlyOnce = ch.Clients > 0 && ch.CleanClients == ch.Clients
	ch.Failures = chaosFailures(ch, int64(cfg.Conns))
	ch.Pass = len(ch.Failures) == 0
	rep.Chaos = ch
}

// chaosFailures is the verdict on ch: one line per thing wrong.
func chaosFailures(ch *report.Chaos, conns int64) []string {
	var out []string
	fail := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if ch.Subscribed < conns {
		fail("%d of %d clients did not subscribe", conns-ch.Subscribed, conns)
	}
	if ch.Published == 0 {
		fail("nothing was published")
	}
	if ch.NotReconnected > 0 {
		fail("%d clients had not reconnected at the end", ch.NotReconnected)
	}
	if ch.Lost > 0 {
		fail("%d messages lost", ch.Lost)
	}
	if ch.Duplicated > 0 {
		fail("%d messages duplicated", ch.Duplicated)
	}
	if ch.Reordered > 0 {
		fail("%d messages reordered", ch.Reordered)
	}
	if ch.OffsetErrors > 0 {
		fail("%d messages with an offset not above the one before", ch.OffsetErrors)
	}
	if ch.Clients > ch.CleanClients {
		fail("%d of %d clients did not get their stream exactly once", ch.Clients-ch.CleanClients, ch.Clients)
	}
	if ch.RequireRecovered && ch.RecoveredFalse > 0 {
		fail("%d resubscribes answered recovered:false (%d messages unrecoverable)", ch.RecoveredFalse, ch.Unrecoverable)
	}
	if ch.Kill != nil && ch.Kill.Error != "" {
		fail("SIGKILL to pid %d failed: %s", ch.Kill.PID, ch.Kill.Error)
	}
	return out
}
