package loadgen

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/shardgate/shardgate/bench/report"
)

// The soak scenario, for proving a build before a rollout:
//
//	connecting  -Conns steady connections subscribe, connection i to
//	            channel i mod Channels (as fanout).
//	start       one sample of the server's /metrics: the start values.
//	soak        for Duration, the coordinator publishes the numbered
//	            stream (soak_stream.go) and the workers churn
//	            (soak_churn.go); the ballast feeds stopped readers;
//	            /metrics is sampled every SampleInterval.
//	drain       the churn's last operations end.
//	settle      up to Settle: the last messages arrive, and the server's
//	            fds, goroutines and RSS come back within Limits.
//	end         the last sample; the workers count what was lost.
//
// The verdict (soak_verdict.go) reads the counts and the samples.

// SoakConfig is a soak's own settings; Config's Conns, Channels, Rate,
// Size and Duration give its steady load and stream.
type SoakConfig struct {
	// Churn is churn operations per second over all workers; Behaviours
	// the names they go round (empty: all of Behaviours()).
	Churn      float64
	Behaviours []string
	// Hold, Stall, ServerTimeout and PingFlood: see SoakPlan.
	Hold          time.Duration
	Stall         time.Duration
	ServerTimeout time.Duration
	PingFlood     int
	// BallastRate messages per second of BallastSize bytes go to the
	// channel of stopped readers while they churn.
	BallastRate float64
	BallastSize int
	// SampleInterval is the period of /metrics samples; Settle how long
	// the run waits, after the churn, for deliveries and resources.
	SampleInterval time.Duration
	Settle         time.Duration
	// Limits bound the leak check (zero values: no growth allowed).
	Limits report.SoakLimits
}

func (s *SoakConfig) setDefaults() {
	orDefault(&s.Hold, 2*time.Second)
	orDefault(&s.Stall, 10*time.Second)
	orDefault(&s.ServerTimeout, 20*time.Second)
	orDefault(&s.SampleInterval, 10*time.Second)
	orDefault(&s.Settle, 15*time.Second)
	if len(s.Behaviours) == 0 {
		s.Behaviours = Behaviours()
	}
	if s.PingFlood <= 0 {
		s.PingFlood = 1000
	}
	if s.BallastRate <= 0 {
		s.BallastRate = 50
	}
	if s.BallastSize <= 0 {
		s.BallastSize = 32 << 10
	}
}

// ballastChannel names the channel of stopped readers.
func ballastChannel(prefix string) string { return prefix + ".ballast" }

// soakPlan is worker i's share of the churn.
func (c *Config) soakPlan(i int) *SoakPlan {
	s := c.Soak
	return &SoakPlan{
		Rate: s.Churn / float64(c.Procs), Behaviours: s.Behaviours, Offset: i, Stride: c.Procs,
		For: c.Duration, Hold: s.Hold, Stall: s.Stall, ServerTimeout: s.ServerTimeout,
		PingFlood: s.PingFlood, BallastChannel: ballastChannel(c.ChannelPrefix),
	}
}

// churnLifetime bounds how long one churn operation can last: its setup,
// the longest of its parts, the server's part, and a closing handshake.
func (c *Config) churnLifetime() time.Duration {
	s := c.Soak
	return c.HandshakeTimeout + max(s.Hold, s.Stall) + s.ServerTimeout + c.CloseTimeout
}

// soakState is the coordinator's side of a running soak.
type soakState struct {
	stream     *stream
	ballast    *ballast
	sampler    *sampler
	start      *report.Resources
	end        *report.Resources
	unended    int64 // churn operations not ended when the wait gave up
	warmupEndS float64
}

func (c *coordinator) allChurnDone() bool {
	for _, w := range c.workers {
		if !w.churnDone {
			return false
		}
	}
	return true
}

// runSoak runs everything between the connections being up and the stop.
func (c *coordinator) runSoak(ctx context.Context, rep *report.Report) error {
	cfg := c.cfg
	subs := make([]int64, cfg.Channels)
	for _, w := range c.workers {
		for ch, n := range w.perChannel {
			subs[ch] += n
		}
	}
	st := &soakState{warmupEndS: warmupShare * cfg.Duration.Seconds()}
	c.soak = st

	st.sampler = newSampler(c.httpc, rep.Server.MetricsURL, time.Now(), phaseStart)
	if r, ok := st.sampler.take(ctx); ok {
		st.start = &r
	}
	sctx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go st.sampler.run(sctx, cfg.Soak.SampleInterval, sampled)

	// Publishes get a client of their own, whose connections are closed
	// before the end sample: the server's count of fds and goroutines
	// then holds nothing of the run's own making.
	pubTransport := &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}
	pubHTTP := &http.Client{Timeout: 10 * time.Second, Transport: pubTransport}
	pctx, stopPublishing := context.WithCancel(ctx)
	st.stream = newStream(cfg, c.tgt, pubHTTP, subs)
	go st.stream.run(pctx)
	if cfg.Soak.Churn > 0 && slices.Contains(cfg.Soak.Behaviours, behaviourNames[behStopReading]) {
		st.ballast = runBallast(pctx, pubHTTP, c.tgt, cfg.AdminURL, ballastChannel(cfg.ChannelPrefix), cfg.Soak.BallastRate, cfg.Soak.BallastSize)
	}
	defer func() {
		stopPublishing()
		<-st.stream.done
		if st.ballast != nil {
			<-st.ballast.done
		}
		pubTransport.CloseIdleConnections()
		stopSampling()
		<-sampled
	}()

	st.sampler.setPhase(phaseSoak)
	c.phase = "soaking"
	if err := c.sendAll(command{Cmd: cmdGo}); err != nil {
		return err
	}
	if _, err := c.waitUntil(ctx, time.Time{}, st.stream.done, st.stream.finished); err != nil {
		return err
	}

	st.sampler.setPhase(phaseDrain)
	c.phase = "draining churn"
	ok, err := c.waitUntil(ctx, time.Now().Add(cfg.churnLifetime()+5*time.Second), nil, c.allChurnDone)
	if err != nil {
		return err
	}
	if !ok {
		t := c.total()
		st.unended = t.ChurnStarted - t.ChurnDone - t.ChurnFailed
	}
	stopPublishing()
	if st.ballast != nil {
		<-st.ballast.done
	}
	pubTransport.CloseIdleConnections()

	st.sampler.setPhase(phaseSettle)
	c.phase = "settling"
	settleBy := time.Now().Add(cfg.Soak.Settle)
	_, expected := st.stream.counts()
	if _, err := c.waitUntil(ctx, settleBy, nil, func() bool { return c.total().Delivered >= expected }); err != nil {
		return err
	}
	// The server settles on its own time: poll until it is back within
	// the limits or the settle period is over, handling worker events
	// meanwhile.
	settled := make(chan struct{})
	go func() {
		defer close(settled)
		st.end = c.settle(ctx, settleBy)
	}()
	if _, err := c.waitUntil(ctx, time.Time{}, settled, func() bool { return isClosed(settled) }); err != nil {
		<-settled
		return err
	}
	return nil
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// settlePoll is how often the settle phase looks at the server.
const settlePoll = 250 * time.Millisecond

// settle scrapes the server until its resources are back within the
// limits or by passes, and returns the last sample, kept as the end one.
func (c *coordinator) settle(ctx context.Context, by time.Time) *report.Resources {
	st := c.soak
	samples, _ := st.sampler.result()
	base := rssBaseline(samples, st.warmupEndS)
	var last *report.Resources
	for {
		if r, ok := st.sampler.scrape(ctx); ok {
			last = &r
			if len(resourceFailures(st.start, last, base, c.cfg.Soak.Limits)) == 0 {
				break
			}
		}
		if ctx.Err() != nil || time.Until(by) < settlePoll {
			break
		}
		t := time.NewTimer(settlePoll)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	if last != nil {
		last.Phase = phaseEnd
		st.sampler.keep(*last)
	}
	return last
}

// streamEnd is what the workers count losses against (soak only).
func (c *coordinator) streamEnd() *streamEnd {
	if c.chaos != nil && c.chaos.stream != nil {
		_, _, _, _, end := c.chaos.stream.result()
		return end
	}
	if c.soak == nil || c.soak.stream == nil {
		return nil
	}
	_, _, end := c.soak.stream.result()
	return end
}

// fillSoak completes the soak section of rep from the workers' results.
func (c *coordinator) fillSoak(rep *report.Report, total Stats, lat *report.Latency) {
	cfg, st := c.cfg, c.soak
	p, unknown, _ := st.stream.result()
	s := &report.Soak{
		Channels: cfg.Channels, Subscribed: total.Subscribed,
		Published: p.published, PublishErrors: p.errors, PublishUnknown: unknown, PublishLate: p.late,
		Expected: p.expected, Delivered: total.Delivered, SteadyDropped: total.Dropped,
		Latency:        *lat,
		ChurnPerSecond: cfg.Soak.Churn, HoldS: cfg.Soak.Hold.Seconds(), StallS: cfg.Soak.Stall.Seconds(),
		ChurnUnended: st.unended,
		SampleEveryS: cfg.Soak.SampleInterval.Seconds(), SettleS: cfg.Soak.Settle.Seconds(),
		Start: st.start, End: st.end, WarmupEndS: round3(st.warmupEndS), Limits: cfg.Soak.Limits,
	}
	if st.ballast != nil {
		s.BallastPublished = st.ballast.published.Load()
		if n := st.ballast.failed.Load(); n > 0 {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d ballast publishes failed", n))
		}
	}
	if s.Expected > 0 {
		s.DeliveredPct = round3(100 * float64(s.Delivered) / float64(s.Expected))
	}
	tallies := map[string]*churnTally{}
	for _, w := range c.workers {
		r := w.result.Soak
		if r == nil {
			continue
		}
		s.Lost += r.Lost
		s.Duplicated += r.Duplicated
		s.Reordered += r.Reordered
		for name, t := range r.Churn {
			if tallies[name] == nil {
				tallies[name] = &churnTally{}
			}
			tallies[name].add(t)
		}
	}
	for _, name := range Behaviours() {
		if t := tallies[name]; t != nil {
			s.Churn = append(s.Churn, report.ChurnOps{Behaviour: name, Started: t.Started, Done: t.Done, Failed: t.Failed,
				Outcomes: t.Outcomes, Failures: t.Failures})
		}
	}
	samples, scrapeErr := st.sampler.result()
	s.Samples = samples
	s.RSSBaselineBytes = rssBaseline(samples, st.warmupEndS)
	if scrapeErr != "" {
		rep.Warnings = append(rep.Warnings, "server metrics during the soak: "+scrapeErr)
	}
	for _, msg := range slices.Sorted(maps.Keys(p.errMsgs)) {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d publishes failed: %s", p.errMsgs[msg], msg))
	}
	s.Failures = soakFailures(s, int64(cfg.Conns))
	s.Pass = len(s.Failures) == 0
	rep.Soak = s
}
