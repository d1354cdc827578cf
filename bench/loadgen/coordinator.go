package loadgen

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/shardgate/shardgate/bench/client"
	"github.com/shardgate/shardgate/bench/hist"
	"github.com/shardgate/shardgate/bench/promscrape"
	"github.com/shardgate/shardgate/bench/report"
	"github.com/shardgate/shardgate/bench/target"
	"golang.org/x/sys/unix"
)

// Config is one run. The shardbench command fills it from its flags and
// has checked every value; Run checks only what it cannot work without.
type Config struct {
	Scenario      string
	Target        string
	TargetOptions target.Options
	URL           string         // WebSocket URL (the first node's)
	Addr          netip.AddrPort // URL's host, resolved
	// URLs and Addrs list every node of a cluster run (URL and Addr are
	// the first); worker i connects to node i mod len(URLs). Empty: URL.
	URLs     []string
	Addrs    []netip.AddrPort
	AdminURL string // base URL of the server's HTTP API
	// AdminURLs (chaos) lists the API of every node the stream may be
	// published through, AdminURL first; metrics come from AdminURL.
	AdminURLs     []string
	Conns         int
	Procs         int
	SourceIPs     []netip.Addr
	ConnectRate   float64 // connections per second, all workers; 0: unpaced
	Inflight      int     // per worker
	Hold          time.Duration
	Channels      int
	ChannelPrefix string
	Rate          float64 // fanout: messages per second
	Size          int     // bytes of each message's data
	// Payload is what fills a message's data (fanout, echo): PayloadPad
	// (the default) or PayloadJSON.
	Payload  string
	Duration time.Duration
	// Wait is how long fanout waits, after the last publish, for messages
	// still on their way.
	Wait             time.Duration
	HandshakeTimeout time.Duration
	CloseTimeout     time.Duration
	ProgressEvery    time.Duration
	Spawn            Spawner
	// OnProgress, when set, is called on the Run goroutine whenever a
	// worker reports.
	OnProgress func(Progress)
	// Command is the command line, for the report.
	Command string
	// Soak holds the soak scenario's own settings.
	Soak SoakConfig
	// TLS says how workers check the certificate of a wss:// URL.
	TLS *TLSOptions
	// Compress offers permessage-deflate on every connection; the report
	// says how many accepted.
	Compress bool
	// Chaos holds the chaos scenario's own settings.
	Chaos ChaosConfig
}

// isTLS reports a wss:// run.
func (c *Config) isTLS() bool { return strings.HasPrefix(c.URL, "wss://") }

// Progress is a snapshot of a running run.
type Progress struct {
	Phase     string // connecting, holding, publishing, draining, echo, closing
	Elapsed   time.Duration
	Conns     int
	Stats     Stats // summed over the workers' latest reports
	Published int64
	Expected  int64
}

// orDefault sets *d to v unless *d is positive.
func orDefault(d *time.Duration, v time.Duration) {
	if *d <= 0 {
		*d = v
	}
}

// setDefaults fills unset durations, sizes and counts.
func (c *Config) setDefaults() {
	orDefault(&c.HandshakeTimeout, 10*time.Second)
	orDefault(&c.CloseTimeout, 5*time.Second)
	orDefault(&c.ProgressEvery, 250*time.Millisecond)
	orDefault(&c.Wait, 10*time.Second)
	if c.Inflight <= 0 {
		c.Inflight = 1000
	}
	if c.Procs <= 0 {
		c.Procs = 1
	}
	c.Procs = max(min(c.Procs, c.Conns), 1)
	if c.ChannelPrefix == "" {
		c.ChannelPrefix = "bench"
	}
	if c.Channels <= 0 {
		c.Channels = 1
	}
	if c.Spawn == nil {
		c.Spawn = InProcessSpawner()
	}
	if c.Scenario == ScenarioSoak {
		c.Soak.setDefaults()
	}
	if c.Scenario == ScenarioChaos {
		c.Chaos.setDefaults()
	}
}

// plans splits the run over the workers: connections in contiguous
// ranges, source addresses dealt out like cards.
func (c *Config) plans() []Plan {
	plans := make([]Plan, c.Procs)
	first := 0
	for i := range plans {
		n := c.Conns / c.Procs
		if i < c.Conns%c.Procs {
			n++
		}
		rate := 0.0
		if c.ConnectRate > 0 {
			rate = c.ConnectRate * float64(n) / float64(c.Conns)
		}
		url, addr := c.URL, c.Addr.String()
		if len(c.URLs) > 0 {
			url, addr = c.URLs[i%len(c.URLs)], c.Addrs[i%len(c.Addrs)].String()
		}
		plans[i] = Plan{
			Scenario: c.Scenario, Target: c.Target, TargetOptions: c.TargetOptions,
			URL: url, Addr: addr,
			Conns: n, First: first, SourceIPs: sourcesFor(c.SourceIPs, i, c.Procs),
			ConnectRate: rate, Inflight: c.Inflight,
			Channels: c.Channels, ChannelPrefix: c.ChannelPrefix, Size: c.Size, Payload: c.Payload,
			HandshakeTimeout: c.HandshakeTimeout, CloseTimeout: c.CloseTimeout, ProgressEvery: c.ProgressEvery,
			TLS: c.TLS, Compress: c.Compress,
		}
		if c.Scenario == ScenarioSoak {
			plans[i].Soak = c.soakPlan(i)
		}
		if c.Scenario == ScenarioChaos {
			plans[i].Chaos = &ChaosPlan{BackoffMin: c.Chaos.BackoffMin, BackoffMax: c.Chaos.BackoffMax}
			plans[i].Nodes = c.nodes()
		}
		first += n
	}
	return plans
}

// sourcesFor deals the source addresses to worker i of procs: every
// procs-th one, or one shared address when there are fewer than workers.
func sourcesFor(all []netip.Addr, i, procs int) []string {
	if len(all) == 0 {
		return nil
	}
	if len(all) < procs {
		return []string{all[i%len(all)].String()}
	}
	var out []string
	for j := i; j < len(all); j += procs {
		out = append(out, all[j].String())
	}
	return out
}

// workerState is the coordinator's view of one worker.
type workerState struct {
	w          *Worker
	enc        *json.Encoder
	stats      Stats // latest report
	ready      bool
	atReady    Usage
	perChannel []int64
	tls        *tlsInfo
	wire       client.Counters // at ready
	deflate    string          // the server's answer to the offer (ready)
	result     *result
	churnDone  bool          // soak: its churn is over
	ended      bool          // its event stream ended
	readerDone chan struct{} // closed when the event reader returns
}

type workerEvent struct {
	i   int
	ev  event
	end error // non-nil: the stream ended (io.EOF or a decode error)
}

type coordinator struct {
	cfg     Config
	tgt     target.Target
	httpc   *http.Client
	start   time.Time
	phase   string
	workers []*workerState
	events  chan workerEvent

	pub   *publisher
	soak  *soakState
	chaos *chaosState
	// The parent's usage when the measured phase began and ended.
	selfLoaded, selfEnd Usage
	loadedAt, endAt     time.Time
}

// Run runs cfg.Scenario and returns its report. It stops early, with an
// error, when ctx ends or a worker fails.
func Run(ctx context.Context, cfg Config) (*report.Report, error) {
	cfg.setDefaults()
	if cfg.Conns < 1 {
		return nil, errors.New("loadgen: no connections to open")
	}
	tgt, err := target.New(cfg.Target, cfg.TargetOptions)
	if err != nil {
		return nil, err
	}
	// An https:// admin URL is trusted the way the wss:// URL is.
	var adminTLS *tls.Config
	if cfg.TLS != nil {
		if adminTLS, err = cfg.TLS.clientConfig(""); err != nil {
			return nil, err
		}
		adminTLS.NextProtos = nil
	}
	c := &coordinator{
		cfg:    cfg,
		tgt:    tgt,
		httpc:  &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2, DisableCompression: true, TLSClientConfig: adminTLS}},
		start:  time.Now(),
		events: make(chan workerEvent, 16),
	}
	defer c.httpc.CloseIdleConnections()
	selfBefore, childrenBefore := getUsage(unix.RUSAGE_SELF), getUsage(unix.RUSAGE_CHILDREN)

	rep := c.newReport()
	rep.Server.Baseline = c.scrape(ctx, rep)

	if err := c.spawn(); err != nil {
		c.closeWorkers()
		return nil, err
	}
	defer c.closeWorkers()
	for i, p := range cfg.plans() {
		if err := c.send(i, command{Cmd: cmdStart, Plan: &p}); err != nil {
			return nil, err
		}
	}

	c.phase = "connecting"
	if _, err := c.waitUntil(ctx, time.Time{}, nil, c.allReady); err != nil {
		return nil, err
	}
	rep.Server.Loaded = c.scrape(ctx, rep)
	c.selfLoaded, c.loadedAt = getUsage(unix.RUSAGE_SELF), time.Now()
	cpuLoaded, cpuOK := readCPUTimes()

	switch cfg.Scenario {
	case ScenarioConnect:
		c.phase = "holding"
		_, err = c.waitUntil(ctx, time.Now().Add(cfg.Hold), nil, never)
	case ScenarioFanout:
		err = c.runFanout(ctx)
	case ScenarioEcho:
		c.phase = "echo"
		if err = c.sendAll(command{Cmd: cmdGo}); err == nil {
			_, err = c.waitUntil(ctx, time.Now().Add(cfg.Duration), nil, never)
		}
	case ScenarioSoak:
		err = c.runSoak(ctx, rep)
	case ScenarioChaos:
		err = c.runChaos(ctx)
	default:
		err = fmt.Errorf("loadgen: unknown scenario %q", cfg.Scenario)
	}
	if err != nil {
		return nil, err
	}
	rep.Server.End = c.scrape(ctx, rep)
	c.selfEnd, c.endAt = getUsage(unix.RUSAGE_SELF), time.Now()
	if cpuEnd, ok := readCPUTimes(); ok && cpuOK {
		rep.HostCPU = hostCPU(cpuLoaded, cpuEnd)
	}

	c.phase = "closing"
	if err := c.sendAll(command{Cmd: cmdStop, Stream: c.streamEnd()}); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(cfg.CloseTimeout + 30*time.Second)
	if ok, err := c.waitUntil(ctx, deadline, nil, c.allResults); err != nil || !ok {
		return nil, errors.Join(err, errors.New("loadgen: workers did not report in time"))
	}
	c.closeWorkers()

	self := getUsage(unix.RUSAGE_SELF).sub(selfBefore)
	children := getUsage(unix.RUSAGE_CHILDREN).sub(childrenBefore)
	c.fill(rep, self, children)
	return rep, nil
}

// errWorkerExited: a worker ended before its result.
var errWorkerExited = errors.New("loadgen: worker exited early")

func never() bool { return false }

func (c *coordinator) allReady() bool {
	for _, w := range c.workers {
		if !w.ready {
			return false
		}
	}
	return true
}

func (c *coordinator) allResults() bool {
	for _, w := range c.workers {
		if w.result == nil {
			return false
		}
	}
	return true
}

func (c *coordinator) spawn() error {
	for i := range c.cfg.Procs {
		w, err := c.cfg.Spawn(i)
		if err != nil {
			return err
		}
		ws := &workerState{w: w, enc: json.NewEncoder(w.In), readerDone: make(chan struct{})}
		c.workers = append(c.workers, ws)
		go c.readEvents(i, ws)
	}
	return nil
}

// readEvents forwards worker i's events until its output ends.
func (c *coordinator) readEvents(i int, ws *workerState) {
	defer close(ws.readerDone)
	dec := json.NewDecoder(bufio.NewReader(ws.w.Out))
	for {
		var ev event
		if err := dec.Decode(&ev); err != nil {
			c.events <- workerEvent{i: i, end: err}
			return
		}
		c.events <- workerEvent{i: i, ev: ev}
	}
}

func (c *coordinator) send(i int, cmd command) error {
	if err := c.workers[i].enc.Encode(cmd); err != nil {
		return fmt.Errorf("loadgen: worker %d: %w", i, err)
	}
	return nil
}

func (c *coordinator) sendAll(cmd command) error {
	for i := range c.workers {
		if err := c.send(i, cmd); err != nil {
			return err
		}
	}
	return nil
}

// closeWorkers closes every worker's input, drains its output and waits
// for it. Safe to call twice.
func (c *coordinator) closeWorkers() {
	for _, w := range c.workers {
		w.w.In.Close()
	}
	for _, w := range c.workers {
		for !w.ended {
			c.handle(<-c.events)
		}
		<-w.readerDone
	}
	for _, w := range c.workers {
		if w.w.Wait != nil {
			_ = w.w.Wait()
			w.w.Wait = nil
		}
	}
}

// waitUntil handles worker events until cond holds (true), the deadline
// passes (false; a zero deadline never passes), ctx ends, or a worker
// fails (an error). notify, when not nil, wakes it to check cond again.
func (c *coordinator) waitUntil(ctx context.Context, deadline time.Time, notify <-chan struct{}, cond func() bool) (bool, error) {
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		timeout = t.C
	}
	for !cond() {
		select {
		case we := <-c.events:
			if err := c.handle(we); err != nil {
				return false, err
			}
			c.report()
		case <-notify:
			notify = nil
		case <-timeout:
			return false, nil
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	return true, nil
}

func (c *coordinator) handle(we workerEvent) error {
	w := c.workers[we.i]
	if we.end != nil {
		w.ended = true
		if w.result == nil {
			if errors.Is(we.end, io.EOF) {
				return fmt.Errorf("%w: worker %d", errWorkerExited, we.i)
			}
			return fmt.Errorf("%w: worker %d: %v", errWorkerExited, we.i, we.end)
		}
		return nil
	}
	ev := we.ev
	switch ev.Ev {
	case evProgress:
		w.stats = ev.Stats
	case evReady:
		w.stats = ev.Stats
		w.ready = true
		w.perChannel = ev.PerChannel
		w.tls = ev.TLS
		if ev.Wire != nil {
			w.wire = *ev.Wire
		}
		w.deflate = ev.Deflate
		if ev.Usage != nil {
			w.atReady = *ev.Usage
		}
	case evChurnDone:
		w.stats = ev.Stats
		w.churnDone = true
	case evResult:
		w.stats = ev.Stats
		w.result = ev.Result
	case evError:
		return fmt.Errorf("loadgen: worker %d: %s", we.i, ev.Err)
	}
	return nil
}

func (c *coordinator) total() Stats {
	var s Stats
	for _, w := range c.workers {
		s.add(w.stats)
	}
	return s
}

func (c *coordinator) report() {
	if c.cfg.OnProgress == nil {
		return
	}
	p := Progress{Phase: c.phase, Elapsed: time.Since(c.start), Conns: c.cfg.Conns, Stats: c.total()}
	if c.pub != nil {
		p.Published, p.Expected = c.pub.counts()
	}
	if c.soak != nil && c.soak.stream != nil {
		p.Published, p.Expected = c.soak.stream.counts()
	}
	if c.chaos != nil && c.chaos.stream != nil {
		p.Published, p.Expected = c.chaos.stream.counts()
	}
	c.cfg.OnProgress(p)
}

// runFanout publishes for the configured duration, then waits for the
// messages still on their way.
func (c *coordinator) runFanout(ctx context.Context) error {
	subs := make([]int64, c.cfg.Channels)
	for _, w := range c.workers {
		for ch, n := range w.perChannel {
			subs[ch] += n
		}
	}
	pctx, cancel := context.WithCancel(ctx)
	c.pub = newPublisher(c.cfg, c.tgt, c.httpc, subs)
	go c.pub.run(pctx)
	defer func() {
		cancel()
		<-c.pub.done
	}()

	c.phase = "publishing"
	if _, err := c.waitUntil(ctx, time.Time{}, c.pub.done, c.pub.finished); err != nil {
		return err
	}
	c.phase = "draining"
	_, expected := c.pub.counts()
	_, err := c.waitUntil(ctx, time.Now().Add(c.cfg.Wait), nil, func() bool {
		return c.total().Delivered >= expected
	})
	return err
}

// scrape reads the server's metrics; a failure is noted in the report, not
// fatal: a run against a server without metrics still measures latency.
func (c *coordinator) scrape(ctx context.Context, rep *report.Report) *report.ServerSample {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := promscrape.Scrape(sctx, c.httpc, rep.Server.MetricsURL)
	if err != nil {
		if rep.Server.ScrapeError == "" {
			rep.Server.ScrapeError = err.Error()
		}
		return nil
	}
	return &report.ServerSample{RSSBytes: s[promscrape.RSS], Goroutines: s[promscrape.Goroutines], CPUSeconds: s[promscrape.CPUSeconds]}
}

func (c *coordinator) newReport() *report.Report {
	cfg := c.cfg
	rep := &report.Report{
		Scenario: cfg.Scenario,
		Target:   cfg.Target,
		URL:      cfg.URL,
		AdminURL: cfg.AdminURL,
		Command:  cfg.Command,
		Started:  c.start.UTC().Truncate(time.Second),
		Machine:  machineInfo(),
		Params: report.Params{
			Conns: cfg.Conns, Procs: cfg.Procs, SourceIPs: addrStrings(cfg.SourceIPs),
			ConnectRate: cfg.ConnectRate, Inflight: cfg.Inflight,
		},
	}
	switch cfg.Scenario {
	case ScenarioConnect:
		rep.Params.HoldS = cfg.Hold.Seconds()
	case ScenarioFanout:
		rep.Params.Channels, rep.Params.Rate, rep.Params.Size, rep.Params.DurationS = cfg.Channels, cfg.Rate, cfg.Size, cfg.Duration.Seconds()
		rep.Params.Payload = payloadName(cfg.Payload)
	case ScenarioEcho:
		rep.Params.Size, rep.Params.DurationS = cfg.Size, cfg.Duration.Seconds()
		rep.Params.Payload = payloadName(cfg.Payload)
	case ScenarioSoak, ScenarioChaos:
		rep.Params.Channels, rep.Params.Rate, rep.Params.Size, rep.Params.DurationS = cfg.Channels, cfg.Rate, cfg.Size, cfg.Duration.Seconds()
	}
	rep.Server.MetricsURL = c.tgt.MetricsURL(cfg.AdminURL)
	return rep
}

// payloadName is the report's name of a payload kind.
func payloadName(kind string) string {
	if kind == "" {
		return PayloadPad
	}
	return kind
}

// wireOf sums what the workers' clients read in the measured phase, per
// delivery (deliveries: messages or round trips).
func wireOf(wire client.Counters, deliveries int64) report.Wire {
	w := report.Wire{Bytes: wire.BytesRead}
	if deliveries > 0 {
		w.BytesPerDelivery = round3(float64(wire.BytesRead) / float64(deliveries))
		w.MessageBytesPerDelivery = round3(float64(wire.MessageBytes) / float64(deliveries))
	}
	return w
}

// compression reports what came of the permessage-deflate offer: the
// upgrades as counted when every worker was ready, the messages of the
// measured phase.
func (c *coordinator) compression(measured client.Counters) *report.Compression {
	if !c.cfg.Compress {
		return nil
	}
	r := &report.Compression{Offer: client.DeflateOffer}
	for _, w := range c.workers {
		r.Negotiated += w.wire.Deflate
		r.Declined += w.wire.Plain
		if r.Answer == "" {
			r.Answer = w.deflate
		}
	}
	r.CompressedMessages = measured.Compressed
	r.Inflations = measured.Inflated
	r.PlainMessages = measured.Messages - measured.Compressed
	return r
}

// addrStrings writes addresses compactly: runs of consecutive addresses
// as "first-last".
func addrStrings(as []netip.Addr) []string {
	var out []string
	for i := 0; i < len(as); {
		j := i
		for j+1 < len(as) && as[j].Next() == as[j+1] {
			j++
		}
		if j > i {
			out = append(out, as[i].String()+"-"+as[j].String())
		} else {
			out = append(out, as[i].String())
		}
		i = j + 1
	}
	return out
}

// minCPUDelta is the smallest server CPU time worth dividing: the process
// collector counts in 10 ms ticks.
const minCPUDelta = 0.1

// fill completes rep from the workers' results.
func (c *coordinator) fill(rep *report.Report, self, children Usage) {
	cfg := c.cfg
	elapsed := time.Since(c.start)
	rep.ElapsedS = round3(elapsed.Seconds())

	var total Stats
	var wire client.Counters
	failures, drops, errs := map[string]int64{}, map[string]int64{}, map[string]int64{}
	lat, hs := hist.New(), hist.New()
	var echoRate, echoWindow float64
	for i, w := range c.workers {
		r := w.result
		total.add(r.Stats)
		wire = wire.Add(r.Wire)
		addCounts(failures, r.Failures)
		addCounts(drops, r.Drops)
		addCounts(errs, r.Errors)
		if err := lat.MergeSnapshot(r.Latency); err != nil {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("worker %d latency: %v", i, err))
		}
		if err := hs.MergeSnapshot(r.Handshake); err != nil {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("worker %d handshakes: %v", i, err))
		}
		if r.EchoEnd > r.EchoStart {
			window := float64(r.EchoEnd-r.EchoStart) / 1e9
			echoRate += float64(r.Stats.RoundTrips) / window
			echoWindow = max(echoWindow, window)
		}
	}

	cn := &rep.Connect
	cn.Attempted = int64(cfg.Conns)
	cn.Opened, cn.Failed, cn.Dropped = total.Opened, total.Failed, total.Dropped
	cn.Failures, cn.DropReasons = nonEmpty(failures), nonEmpty(drops)
	if total.LastOpen > total.FirstDial && total.FirstDial > 0 {
		cn.Seconds = round3(float64(total.LastOpen-total.FirstDial) / 1e9)
		cn.PerSecond = round3(float64(total.Opened) / (float64(total.LastOpen-total.FirstDial) / 1e9))
	}
	cn.Handshake = report.LatencyOf(hs)
	rep.Compression = c.compression(wire)
	if cfg.isTLS() {
		var seen *tlsInfo
		for _, w := range c.workers {
			if w.tls != nil {
				seen = w.tls
				break
			}
		}
		rep.TLS = cfg.reportTLS(seen)
	}

	srv := &rep.Server
	if b, l := srv.Baseline, srv.Loaded; b != nil && l != nil && total.Opened > 0 && l.CPUSeconds-b.CPUSeconds >= minCPUDelta {
		cn.ServerCPUPerConnUS = round3((l.CPUSeconds - b.CPUSeconds) * 1e6 / float64(total.Opened))
	}
	if b, e := srv.Baseline, srv.End; b != nil && e != nil && total.Opened > 0 {
		srv.RSSPerConnBytes = round3((e.RSSBytes - b.RSSBytes) / float64(total.Opened))
		srv.GoroutinesPerConn = round3((e.Goroutines - b.Goroutines) / float64(total.Opened))
		if e.RSSBytes < b.RSSBytes {
			rep.Warnings = append(rep.Warnings, "server RSS fell during the run (memory of an earlier run given back): "+
				"RSS per connection is meaningless; start a fresh server for memory figures")
		}
	}
	if l, e := srv.Loaded, srv.End; l != nil && e != nil {
		srv.CPUSeconds = round3(e.CPUSeconds - l.CPUSeconds)
	}

	deliveries := total.Delivered
	switch cfg.Scenario {
	case ScenarioFanout:
		p := c.pub.result()
		f := &report.Fanout{
			Channels: cfg.Channels, Subscribed: total.Subscribed,
			Published: p.published, PublishErrors: p.errors, PublishLate: p.late,
			PublishS: round3(p.window.Seconds()),
			Expected: p.expected, Delivered: total.Delivered, Reordered: total.Reordered,
			Latency: report.LatencyOf(lat), Errors: nonEmpty(errs),
			Wire: wireOf(wire, total.Delivered),
		}
		if f.Expected > 0 {
			f.DeliveredPct = round3(100 * float64(f.Delivered) / float64(f.Expected))
		}
		if span := p.window.Seconds() + 1/cfg.Rate; p.published > 0 {
			f.DeliveriesPerSecond = round3(float64(f.Delivered) / span)
		}
		if srv.Loaded != nil && srv.End != nil && f.Delivered > 0 && srv.CPUSeconds >= minCPUDelta {
			f.ServerCPUPerDeliveryUS = round3(srv.CPUSeconds * 1e6 / float64(f.Delivered))
		}
		for msg, n := range p.errMsgs {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d publishes failed: %s", n, msg))
		}
		if f.Delivered < f.Expected {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d of %d messages not delivered within -wait %s", f.Expected-f.Delivered, f.Expected, cfg.Wait))
		}
		rep.Fanout = f
	case ScenarioSoak:
		l := report.LatencyOf(lat)
		c.fillSoak(rep, total, &l)
		for _, code := range slices.Sorted(maps.Keys(errs)) {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("steady connections got %d messages they could not use (%s)", errs[code], code))
		}
	case ScenarioChaos:
		l := report.LatencyOf(lat)
		c.fillChaos(rep, total, &l)
		for _, code := range slices.Sorted(maps.Keys(errs)) {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("clients got %d messages they could not use (%s)", errs[code], code))
		}
	case ScenarioEcho:
		rep.Echo = &report.Echo{
			RoundTrips: total.RoundTrips, Seconds: round3(echoWindow), PerSecond: round3(echoRate),
			Latency: report.LatencyOf(lat), Errors: nonEmpty(errs),
			Wire: wireOf(wire, total.RoundTrips),
		}
		deliveries = total.RoundTrips
		if n := errs["rate_limited"]; n > 0 {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("the server rate-limited %d publishes: this measures its per-client limit "+
				"(for shardgate, start it with -client-rate 0 to measure the gateway)", n))
		}
	}

	g := &rep.Generator
	g.Procs = cfg.Procs
	g.UserS = round3(self.UserS + children.UserS)
	g.SysS = round3(self.SysS + children.SysS)
	g.CPUPercent = round3(100 * (g.UserS + g.SysS) / elapsed.Seconds())
	g.MaxRSSBytes = self.MaxRSSBytes
	for _, w := range c.workers {
		if !w.w.SharesProcess {
			g.MaxRSSBytes += w.result.Usage.MaxRSSBytes
		}
	}
	phase := c.selfEnd.sub(c.selfLoaded)
	for _, w := range c.workers {
		if !w.w.SharesProcess {
			u := w.result.AtStop.sub(w.atReady)
			phase.UserS += u.UserS
			phase.SysS += u.SysS
		}
	}
	g.MeasuredCPUS = round3(phase.UserS + phase.SysS)
	if span := c.endAt.Sub(c.loadedAt).Seconds(); span > 0 {
		g.MeasuredCPUPercent = round3(100 * g.MeasuredCPUS / span)
	}
	if deliveries > 0 {
		g.PerDeliveryUS = round3(g.MeasuredCPUS * 1e6 / float64(deliveries))
	}

	if cn.Failed > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d of %d connections failed", cn.Failed, cn.Attempted))
	}
	if cn.Dropped > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("the server closed %d connections during the run", cn.Dropped))
	}
	if srv.ScrapeError != "" {
		rep.Warnings = append(rep.Warnings, "server metrics: "+srv.ScrapeError)
	}
	if h := rep.HostCPU; h != nil && h.BusyPct > 90 && cfg.Scenario != ScenarioConnect {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("the machine was %.0f %% busy in the measured phase: "+
			"latency includes waiting for a CPU (server and generator share it)", h.BusyPct))
	}
}

func addCounts(dst, src map[string]int64) {
	for k, v := range src {
		dst[k] += v
	}
}

func nonEmpty(m map[string]int64) map[string]int64 {
	if len(m) == 0 {
		return nil
	}
	return m
}

func round3(v float64) float64 {
	if v < 0 {
		return -round3(-v)
	}
	return float64(int64(v*1000+0.5)) / 1000
}
