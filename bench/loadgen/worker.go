package loadgen

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"sync"
	"time"

	"github.com/shardgate/shardgate/bench/client"
	"github.com/shardgate/shardgate/bench/hist"
	"github.com/shardgate/shardgate/bench/target"
	"golang.org/x/sys/unix"
)

// RunWorker is the worker side of the parent/worker protocol (see the
// package doc): it reads commands from in and writes events to out until
// it has reported its result and in is closed. shardbench's hidden
// "worker" command calls it with stdin and stdout.
func RunWorker(in io.Reader, out io.Writer) error {
	dec := json.NewDecoder(in)
	em := &emitter{enc: json.NewEncoder(out)}
	var cmd command
	if err := dec.Decode(&cmd); err != nil {
		return fmt.Errorf("loadgen: worker: read plan: %w", err)
	}
	if cmd.Cmd != cmdStart || cmd.Plan == nil {
		return fmt.Errorf("loadgen: worker: first command is %q, want %q with a plan", cmd.Cmd, cmdStart)
	}
	w, err := newWorker(*cmd.Plan, em)
	if err != nil {
		em.emit(event{Ev: evError, Err: err.Error()})
		return err
	}
	runDone := make(chan error, 1)
	go func() { runDone <- w.loop.Run() }()
	w.loop.Do(w.start)

	// Commands arrive on their own goroutine, which ends when in is closed:
	// the parent closes it after the result, or by dying.
	cmds := make(chan command)
	go func() {
		defer close(cmds)
		for {
			var c command
			if err := dec.Decode(&c); err != nil {
				return
			}
			cmds <- c
		}
	}()
	var runErr error
	running := true
	for running || cmds != nil {
		select {
		case c, ok := <-cmds:
			switch {
			case !ok:
				cmds = nil
				w.loop.Stop() // no-op after a normal end
			case c.Cmd == cmdGo:
				w.loop.Do(w.begin)
			case c.Cmd == cmdStop:
				w.loop.Do(func() { w.stop(c.Stream) })
			}
		case runErr = <-runDone:
			running = false
		}
	}
	return runErr
}

// emitter writes events; the loop goroutine and RunWorker share it.
type emitter struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (e *emitter) emit(ev event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	_ = e.enc.Encode(ev) // a parent that stopped reading is a parent that died
}

// Connection phases, as the worker sees them.
const (
	phaseNew         uint8 = iota // not dialed yet
	phaseConnecting               // dialed, upgrade pending
	phaseHello                    // upgraded; waiting for the answer to the hello
	phaseSubscribing              // subscribe sent
	phaseReady                    // set up: counted in Opened (and Subscribed)
	phaseGone                     // failed or closed
)

// connRec is what the worker keeps per connection.
type connRec struct {
	conn    *client.Conn
	phase   uint8
	waiting bool // echo: a publish is out, its message not back yet
	// subscribed: the subscribe succeeded (the connection may have been
	// dropped since); a soak counts what it lost.
	subscribed bool
	lastSeq    uint64 // highest sequence number seen, for reorder detection
	sentSeq    uint64 // echo: sequence number of the publish out
	// openedAt is the loop clock at the upgrade: hello and subscribe get
	// Plan.HandshakeTimeout from there.
	openedAt time.Duration
}

// worker runs one Plan on one client loop. Everything below runs on the
// loop goroutine.
type worker struct {
	plan    Plan
	tgt     target.Target
	loop    *client.Loop
	em      *emitter
	sources []netip.Addr
	recs    []connRec
	chans   []string // fanout and soak channel names, by index
	// Soak: runs of numbers missing on steady connections, only for
	// connections that have some (see soak_seq.go), and the churn.
	gaps  map[int][]seqRange
	churn *churner
	// chaos: the clients' recovery state (chaos_worker.go).
	chaos *chaosWorker

	stats      Stats
	perChannel []int64
	failures   map[string]int64
	drops      map[string]int64
	errs       map[string]int64
	latency    *hist.Histogram
	handshake  *hist.Histogram

	dialStart time.Duration // loop clock
	dialed    int
	inflight  int
	resolved  int
	pumpArmed bool
	readySent bool

	// wireAtReady: the client counters when every connection was set up.
	wireAtReady client.Counters

	echoRunning bool
	echoStart   int64
	echoEnd     int64
	stopping    bool

	evs  []target.Event
	data []byte
	msg  []byte
	id   int64
}

func newWorker(p Plan, em *emitter) (*worker, error) {
	tgt, err := target.New(p.Target, p.TargetOptions)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(p.URL)
	if err != nil {
		return nil, fmt.Errorf("loadgen: worker: url: %w", err)
	}
	addr, err := netip.ParseAddrPort(p.Addr)
	if err != nil {
		return nil, fmt.Errorf("loadgen: worker: addr: %w", err)
	}
	w := &worker{
		plan:      p,
		tgt:       tgt,
		em:        em,
		recs:      make([]connRec, p.Conns),
		failures:  map[string]int64{},
		drops:     map[string]int64{},
		errs:      map[string]int64{},
		latency:   hist.New(),
		handshake: hist.New(),
	}
	for _, s := range p.SourceIPs {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("loadgen: worker: source address: %w", err)
		}
		w.sources = append(w.sources, a)
	}
	if p.Scenario == ScenarioFanout || p.Scenario == ScenarioSoak || p.Scenario == ScenarioChaos {
		w.perChannel = make([]int64, p.Channels)
		for i := range p.Channels {
			w.chans = append(w.chans, fanoutChannel(p.ChannelPrefix, i))
		}
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	if u.RawQuery != "" {
		path += "?" + u.RawQuery
	}
	if p.Scenario == ScenarioSoak {
		if p.Soak == nil {
			return nil, fmt.Errorf("loadgen: worker: soak plan without churn settings")
		}
		w.gaps = map[int][]seqRange{}
		if w.churn, err = newChurner(w, *p.Soak, u.Host, path); err != nil {
			return nil, err
		}
	}
	if p.Scenario == ScenarioChaos {
		w.gaps = map[int][]seqRange{}
		if w.chaos, err = newChaosWorker(p); err != nil {
			return nil, err
		}
	}
	var tlsCfg *tls.Config
	if u.Scheme == "wss" {
		if tlsCfg, err = p.TLS.clientConfig(u.Hostname()); err != nil {
			return nil, err
		}
	}
	w.loop, err = client.New(client.Options{
		Addr:             addr,
		Host:             u.Host,
		Path:             path,
		Header:           tgt.HandshakeHeader(),
		HandshakeTimeout: p.HandshakeTimeout,
		CloseTimeout:     p.CloseTimeout,
		Seed:             uint64(time.Now().UnixNano()) ^ uint64(p.First)<<32,
		TLS:              tlsCfg,
		Compress:         p.Compress,
	}, w)
	if err != nil {
		return nil, err
	}
	return w, nil
}

func (w *worker) start() {
	w.dialStart = w.loop.Now()
	w.stats.FirstDial = time.Now().UnixNano()
	w.loop.After(w.plan.ProgressEvery, w.progress)
	w.loop.After(time.Second, w.expireSetups)
	if w.chaos != nil {
		w.loop.After(time.Second, w.expireChaos)
	}
	w.pump()
	w.checkReady()
}

// expireSetups fails connections whose hello or subscribe has gone
// unanswered for the handshake timeout: the engine bounds connect and
// upgrade, the worker bounds the rest of the setup. It runs every second
// until every connection is resolved.
func (w *worker) expireSetups() {
	if w.readySent || w.stopping {
		return
	}
	now := w.loop.Now()
	for i := range w.recs {
		r := &w.recs[i]
		if (r.phase == phaseHello || r.phase == phaseSubscribing) && now-r.openedAt > w.plan.HandshakeTimeout {
			w.fail(i, "subscribe_timeout")
			r.conn.Close()
		}
	}
	w.loop.After(time.Second, w.expireSetups)
}

func (w *worker) progress() {
	if w.stopping {
		return
	}
	w.em.emit(event{Ev: evProgress, Stats: w.stats})
	w.loop.After(w.plan.ProgressEvery, w.progress)
}

// pump dials as many connections as the connect rate and the in-flight
// bound allow, and schedules itself for the next one the rate allows.
func (w *worker) pump() {
	w.pumpArmed = false
	if w.stopping {
		return
	}
	allowed := w.plan.Conns
	rate := w.plan.ConnectRate
	if rate > 0 {
		elapsed := (w.loop.Now() - w.dialStart).Seconds()
		allowed = min(allowed, int(rate*elapsed)+1)
	}
	for w.dialed < allowed && w.inflight < w.plan.Inflight {
		idx := w.dialed
		w.dialed++
		var src netip.Addr
		if len(w.sources) > 0 {
			src = w.sources[idx%len(w.sources)]
		}
		var c *client.Conn
		var err error
		if w.chaos != nil {
			c, err = w.dialChaos(idx, w.firstNode(idx))
		} else {
			c, err = w.loop.Dial(src)
		}
		if err != nil {
			w.fail(idx, client.Reason(err))
			continue
		}
		c.Tag = idx
		w.recs[idx] = connRec{conn: c, phase: phaseConnecting}
		w.inflight++
	}
	if rate > 0 && w.dialed < w.plan.Conns && w.inflight < w.plan.Inflight {
		due := w.dialStart + time.Duration(float64(w.dialed)/rate*float64(time.Second))
		w.pumpArmed = true
		w.loop.After(max(due-w.loop.Now(), 0), w.pump)
	}
}

// fail counts connection idx as failed during setup.
func (w *worker) fail(idx int, reason string) {
	r := &w.recs[idx]
	if r.phase != phaseNew {
		w.inflight--
	}
	r.phase = phaseGone
	w.stats.Failed++
	w.failures[reason]++
	w.resolve()
}

// resolve notes that one more connection is set up or failed.
func (w *worker) resolve() {
	w.resolved++
	if !w.pumpArmed && w.dialed < w.plan.Conns {
		w.pump()
	}
	w.checkReady()
}

func (w *worker) checkReady() {
	if w.readySent || w.resolved < w.plan.Conns {
		return
	}
	w.readySent = true
	u := getUsage(unix.RUSAGE_SELF)
	w.wireAtReady = w.loop.Counters()
	var deflate string
	if d := w.loop.DeflateAnswer(); d != nil {
		deflate = d.String()
	}
	w.em.emit(event{Ev: evReady, Stats: w.stats, PerChannel: w.perChannel, Usage: &u, TLS: tlsInfoOf(w.loop.TLSState()),
		Wire: &w.wireAtReady, Deflate: deflate})
}

// ready marks connection r as set up.
func (w *worker) ready(r *connRec) {
	r.phase = phaseReady
	w.inflight--
	w.stats.Opened++
	w.resolve()
}

// OnOpen sends the target's hello, or goes on to subscribe.
func (w *worker) OnOpen(c *client.Conn) {
	if c.Tag < 0 {
		w.churn.onOpen(c)
		return
	}
	r := &w.recs[c.Tag]
	// A chaos client's reconnection is timed as a whole (drop to
	// subscribed), not as one more setup.
	if w.chaos == nil || !w.chaos.recs[c.Tag].reconnecting {
		w.handshake.Record(int64(c.HandshakeTime()))
		w.stats.LastOpen = time.Now().UnixNano()
	}
	hello, ready := w.tgt.AppendHello(w.msg[:0])
	w.msg = hello
	r.phase = phaseHello
	r.openedAt = w.loop.Now()
	if len(hello) > 0 {
		_ = c.Send(hello)
	}
	if ready {
		w.afterHello(r)
	}
}

func (w *worker) afterHello(r *connRec) {
	var channel string
	switch w.plan.Scenario {
	case ScenarioFanout, ScenarioSoak:
		channel = w.chans[(w.plan.First+r.conn.Tag)%w.plan.Channels]
	case ScenarioChaos:
		r.phase = phaseSubscribing
		w.chaosSubscribe(r, w.chans[(w.plan.First+r.conn.Tag)%w.plan.Channels])
		return
	case ScenarioEcho:
		channel = echoChannel(w.plan.ChannelPrefix, w.plan.First+r.conn.Tag)
	default:
		w.ready(r)
		return
	}
	r.phase = phaseSubscribing
	w.id++
	w.msg = w.tgt.AppendSubscribe(w.msg[:0], channel, w.id)
	_ = r.conn.Send(w.msg)
}

func (w *worker) OnMessage(c *client.Conn, msg []byte) {
	if c.Tag < 0 {
		w.churn.onMessage(c, msg)
		return
	}
	r := &w.recs[c.Tag]
	var err error
	w.evs, err = w.tgt.Parse(msg, w.evs[:0])
	if err != nil {
		w.errs["unparsable_message"]++
		return
	}
	for i := range w.evs {
		ev := &w.evs[i]
		switch ev.Kind {
		case target.KindReady:
			if r.phase == phaseHello {
				w.afterHello(r)
			}
		case target.KindSubscribed:
			if r.phase == phaseSubscribing && w.chaos != nil {
				w.chaosSubscribed(r, ev)
			} else if r.phase == phaseSubscribing {
				w.stats.Subscribed++
				r.subscribed = true
				if w.perChannel != nil {
					w.perChannel[(w.plan.First+c.Tag)%w.plan.Channels]++
				}
				w.ready(r)
			}
		case target.KindMessage:
			if w.chaos != nil {
				w.chaosMessage(r, ev)
			} else {
				w.onData(r, ev.Data)
			}
		case target.KindError:
			w.onError(r, ev.Code)
		case target.KindReply:
			_ = c.Send(ev.Reply)
		}
	}
}

// onData handles a benchmark message delivered to r.
func (w *worker) onData(r *connRec, data []byte) {
	sent, seq, ok := ParseData(data)
	if !ok {
		w.errs["foreign_message"]++
		return
	}
	now := time.Now().UnixNano()
	if w.plan.Scenario == ScenarioSoak {
		w.onStream(r, now-sent, seq)
		return
	}
	if seq <= r.lastSeq {
		w.stats.Reordered++
	} else {
		r.lastSeq = seq
	}
	if w.plan.Scenario != ScenarioEcho {
		w.latency.Record(now - sent)
		w.stats.Delivered++
		return
	}
	if !r.waiting || seq != r.sentSeq {
		return
	}
	r.waiting = false
	if !w.echoRunning {
		return // arrived after the window: not counted
	}
	w.latency.Record(now - sent)
	w.stats.Delivered++
	w.stats.RoundTrips++
	w.echoSend(r)
}

func (w *worker) onError(r *connRec, code string) {
	if code == "" {
		code = "unknown"
	}
	w.errs[code]++
	switch {
	case w.chaos != nil && w.chaos.recs[r.conn.Tag].reconnecting:
		// A resubscribe refused (unavailable while the node catches up,
		// say): this attempt failed; OnClose tries the next node.
		r.conn.Close()
	case r.phase == phaseHello || r.phase == phaseSubscribing:
		w.fail(r.conn.Tag, "subscribe_"+code)
		r.conn.Close()
	case w.plan.Scenario == ScenarioEcho && r.waiting:
		// Typically rate_limited: try again once a token is likely back
		// (the gateway's default is 50 requests/s per connection).
		r.waiting = false
		w.loop.After(25*time.Millisecond, func() {
			if w.echoRunning && r.phase == phaseReady && !r.waiting {
				w.echoSend(r)
			}
		})
	}
}

func (w *worker) OnClose(c *client.Conn, err error) {
	if c.Tag < 0 {
		w.churn.onClose(c, err)
		return
	}
	r := &w.recs[c.Tag]
	if w.chaos != nil {
		if r.conn != c || w.chaosClosed(r, err) {
			return
		}
	}
	switch r.phase {
	case phaseGone:
	case phaseReady:
		r.phase = phaseGone
		if !w.stopping {
			w.stats.Dropped++
			w.drops[client.Reason(err)]++
		}
	default:
		w.fail(c.Tag, client.Reason(err))
	}
}

// begin starts the measured phase where the coordinator says when: echo's
// round trips, a soak's churn.
func (w *worker) begin() {
	switch w.plan.Scenario {
	case ScenarioEcho:
		w.beginEcho()
	case ScenarioSoak:
		w.churn.begin()
	}
}

// beginEcho starts one round trip on every ready connection.
func (w *worker) beginEcho() {
	if w.plan.Scenario != ScenarioEcho || w.stopping {
		return
	}
	w.echoRunning = true
	w.echoStart = time.Now().UnixNano()
	for i := range w.recs {
		if r := &w.recs[i]; r.phase == phaseReady {
			w.echoSend(r)
		}
	}
}

func (w *worker) echoSend(r *connRec) {
	r.sentSeq = r.lastSeq + 1
	r.waiting = true
	w.id++
	w.data = AppendPayload(w.data[:0], w.plan.Payload, time.Now().UnixNano(), r.sentSeq, w.plan.Size)
	w.msg = w.tgt.AppendPublish(w.msg[:0], echoChannel(w.plan.ChannelPrefix, w.plan.First+r.conn.Tag), w.data, w.id)
	_ = r.conn.Send(w.msg)
}

// stop ends the measured phase, closes every connection, reports, and
// stops the loop. A soak's stop says what was published, for the count of
// what was lost.
func (w *worker) stop(stream *streamEnd) {
	if w.stopping {
		return
	}
	var soak *soakResult
	if w.plan.Scenario == ScenarioSoak {
		soak = &soakResult{Lost: w.lost(stream)}
	}
	var chaos *chaosResult
	if w.chaos != nil {
		chaos = w.chaosResult(stream)
	}
	if w.echoRunning {
		w.echoRunning = false
		w.echoEnd = time.Now().UnixNano()
	}
	w.stopping = true
	atStop := getUsage(unix.RUSAGE_SELF)
	w.loop.Shutdown(w.plan.CloseTimeout, func() {
		// Taken with the final stats: messages still on their way at the
		// stop arrive before the server's close frame and are delivered,
		// so their bytes count too (the close frames add a few bytes per
		// connection).
		wire := w.loop.Counters().Sub(w.wireAtReady)
		w.em.emit(event{Ev: evResult, Stats: w.stats, Result: &result{
			Stats:     w.stats,
			Failures:  w.failures,
			Drops:     w.drops,
			Errors:    w.errs,
			Latency:   w.latency.Snapshot(),
			Handshake: w.handshake.Snapshot(),
			EchoStart: w.echoStart,
			EchoEnd:   w.echoEnd,
			AtStop:    atStop,
			Usage:     getUsage(unix.RUSAGE_SELF),
			Wire:      wire,
			Soak:      w.soakResult(soak),
			Chaos:     chaos,
		}})
		w.loop.Stop()
	})
}
