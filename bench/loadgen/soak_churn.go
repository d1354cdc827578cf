package loadgen

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/shardgate/shardgate/bench/client"
	"github.com/shardgate/shardgate/bench/target"
)

// The churn of a soak: connections that come and go beside the steady
// subscribers, most of them misbehaving, each expecting one particular
// answer of the server. An operation is one connection from dial to end;
// it is done when the server answered as the contract says, failed
// otherwise (with a reason). Everything here runs on the worker's loop
// goroutine.

// behaviour is what one churn connection does.
type behaviour uint8

const (
	// behClean subscribes to a stream channel, reads for Hold, and closes
	// with a close frame: the server must answer it.
	behClean behaviour = iota
	// behAbrupt subscribes, reads for Hold, and drops the socket without a
	// close frame: a TCP reset or a FIN, in turn.
	behAbrupt
	// behStalled connects and sends half an upgrade request, then waits:
	// the server must hang up within its handshake timeout.
	behStalled
	// behSilent upgrades and then sends nothing at all (not even pongs) for
	// Hold: the server must keep it until then. It leaves with a FIN.
	behSilent
	// behMalformed sends one frame the protocol forbids (unmasked, RSV
	// bits, a reserved opcode, a fragmented ping, in turn): the server
	// must close with 1002.
	behMalformed
	// behPingFlood sends PingFlood pings without reading for Hold, then
	// reads and closes: the server must answer the close (pongs are
	// coalesced, so the flood must not make it a slow consumer).
	behPingFlood
	// behStopReading subscribes to a stream channel and to the ballast
	// channel, then stops reading for Stall: the server must close it as a
	// slow consumer (what it sends after that is seen once reading
	// resumes: close 1008, or the end of the stream).
	behStopReading
	numBehaviours
)

var behaviourNames = [numBehaviours]string{
	behClean:       "clean-close",
	behAbrupt:      "abrupt-close",
	behStalled:     "stalled-handshake",
	behSilent:      "silent",
	behMalformed:   "malformed-frame",
	behPingFlood:   "ping-flood",
	behStopReading: "stop-reading",
}

// Behaviours lists the churn behaviours by name, in the order of the
// report.
func Behaviours() []string { return behaviourNames[:] }

func behaviourByName(name string) (behaviour, bool) {
	for b, n := range behaviourNames {
		if n == name {
			return behaviour(b), true
		}
	}
	return 0, false
}

// SoakPlan is one worker's share of a soak's churn.
type SoakPlan struct {
	// Rate is this worker's churn operations per second; Behaviours the
	// names they take in turn: operation k of worker Offset (of Stride
	// workers) is Behaviours[(k*Stride+Offset) mod len(Behaviours)], so
	// the run as a whole goes round them.
	Rate       float64  `json:"rate"`
	Behaviours []string `json:"behaviours"`
	Offset     int      `json:"offset"`
	Stride     int      `json:"stride"`
	// For is how long operations are started, from the "go" command.
	For time.Duration `json:"for"`
	// Hold is how long a clean, abrupt, silent or flooding connection lives
	// before its ending; Stall how long a stopped reader does not read.
	Hold  time.Duration `json:"hold"`
	Stall time.Duration `json:"stall"`
	// ServerTimeout is how long an operation waits for the server's part:
	// hanging up a stalled handshake, closing after a malformed frame,
	// closing a stopped reader once it reads again.
	ServerTimeout time.Duration `json:"server_timeout"`
	// PingFlood is the number of pings a flooding connection sends.
	PingFlood int `json:"ping_flood"`
	// BallastChannel is where the coordinator publishes the large
	// messages that fill a stopped reader's queue.
	BallastChannel string `json:"ballast_channel"`
}

// turn is the index in Behaviours of operation k.
func (p *SoakPlan) turn(k int) int { return (k*p.Stride + p.Offset) % len(p.Behaviours) }

// churnTally counts one behaviour's operations. Outcomes says how done
// ones ended, Failures why failed ones failed.
type churnTally struct {
	Started  int64            `json:"started"`
	Done     int64            `json:"done"`
	Failed   int64            `json:"failed"`
	Outcomes map[string]int64 `json:"outcomes,omitempty"`
	Failures map[string]int64 `json:"failures,omitempty"`
}

func (t *churnTally) add(o *churnTally) {
	t.Started += o.Started
	t.Done += o.Done
	t.Failed += o.Failed
	t.Outcomes = addCountsTo(t.Outcomes, o.Outcomes)
	t.Failures = addCountsTo(t.Failures, o.Failures)
}

func addCountsTo(dst, src map[string]int64) map[string]int64 {
	if len(src) > 0 && dst == nil {
		dst = map[string]int64{}
	}
	addCounts(dst, src)
	return dst
}

// hostileRecvBuffer is the receive buffer of connections that stop
// reading: a small window, so that the server's queue, not this side's
// kernel, takes what they do not read.
const hostileRecvBuffer = 4096

// pingPayload fills each flood ping to the control-frame maximum, so that
// pongs that are not coalesced add up fast.
const pingPayload = 125

// malformedFrames are the frames behMalformed sends in turn; each must get
// close 1002. Their masks are zero: the server does not care.
var malformedFrames = []struct {
	name  string
	frame []byte
}{
	{"unmasked", client.AppendFrame(nil, 0x81, []byte(`{}`), false, 0)},
	{"rsv2", client.AppendFrame(nil, 0xa1, []byte(`{}`), true, 0)},
	{"opcode3", client.AppendFrame(nil, 0x83, nil, true, 0)},
	{"fragmented-ping", client.AppendFrame(nil, 0x09, nil, true, 0)},
}

// churnStep is where an operation is.
type churnStep uint8

const (
	stepFree    churnStep = iota // slot unused
	stepSetup                    // dialing, upgrading, saying hello, subscribing
	stepActing                   // doing its part; the server's part follows
	stepClosing                  // this side closed; waiting for OnClose
)

// churnOp is one operation, in a slot of the churner's table; its
// connection's Tag is -(slot+1).
type churnOp struct {
	conn     *client.Conn
	beh      behaviour
	step     churnStep
	subsLeft uint8  // subscribe replies still awaited
	variant  int    // the operation's number: picks a frame, reset or FIN
	gen      uint32 // tells this operation's timers from a later one's in the slot
	// failed, when set, is why this side gave up on the operation: its
	// OnClose counts that.
	failed string
}

// churner runs a worker's churn.
type churner struct {
	w     *worker
	plan  SoakPlan
	behs  []behaviour
	ops   []churnOp
	free  []int
	gen   uint32
	k     int // operations started
	start time.Duration
	until time.Duration

	running  bool // between begin and the end of the churn period
	ended    bool // the period is over: no operation starts any more
	doneSent bool
	active   int
	tally    [numBehaviours]churnTally

	partial []byte // behStalled's half request
	flood   []byte // behPingFlood's pings, all in one write
}

func newChurner(w *worker, p SoakPlan, host, path string) (*churner, error) {
	c := &churner{w: w, plan: p}
	for _, name := range p.Behaviours {
		b, ok := behaviourByName(name)
		if !ok {
			return nil, fmt.Errorf("loadgen: unknown churn behaviour %q", name)
		}
		c.behs = append(c.behs, b)
	}
	if c.plan.Stride < 1 {
		c.plan.Stride = 1
	}
	c.partial = fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n", path, host)
	payload := make([]byte, pingPayload)
	for i := range payload {
		payload[i] = 'p'
	}
	for range p.PingFlood {
		c.flood = client.AppendFrame(c.flood, 0x80|byte(client.OpPing), payload, true, 0)
	}
	return c, nil
}

// begin starts the churn period (the "go" command).
func (c *churner) begin() {
	if c.running || c.ended || c.w.stopping {
		return
	}
	c.start = c.w.loop.Now()
	c.until = c.start + c.plan.For
	if c.plan.Rate <= 0 || len(c.behs) == 0 {
		c.ended = true
		c.checkDone()
		return
	}
	c.running = true
	c.pump()
}

// pump starts the operations due by now and schedules itself for the next.
func (c *churner) pump() {
	if !c.running || c.w.stopping {
		return
	}
	now := c.w.loop.Now()
	if now >= c.until {
		c.running, c.ended = false, true
		c.checkDone()
		return
	}
	due := int(c.plan.Rate*(now-c.start).Seconds()) + 1
	for c.k < due {
		c.launch()
	}
	next := c.start + time.Duration(float64(c.k)/c.plan.Rate*float64(time.Second))
	c.w.loop.After(max(min(next, c.until)-now, 0), c.pump)
}

// launch starts operation number k.
func (c *churner) launch() {
	k := c.k
	c.k++
	beh := c.behs[c.plan.turn(k)]
	t := &c.tally[beh]
	t.Started++
	c.w.stats.ChurnStarted++

	var opts client.DialOptions
	switch beh {
	case behStalled:
		opts.Request, opts.Timeout = c.partial, c.plan.ServerTimeout
	case behStopReading, behPingFlood:
		opts.RecvBuffer = hostileRecvBuffer
	}
	var src netip.Addr
	if len(c.w.sources) > 0 {
		src = c.w.sources[k%len(c.w.sources)]
	}
	conn, err := c.w.loop.DialWith(src, opts)
	if err != nil {
		c.count(beh, false, "dial_"+client.Reason(err))
		return
	}
	slot := c.slot()
	c.gen++
	c.ops[slot] = churnOp{conn: conn, beh: beh, step: stepSetup, variant: k, gen: c.gen}
	conn.Tag = -(slot + 1)
	c.active++
	if beh == behStalled {
		c.ops[slot].step = stepActing // its act is the half request, sent on connect
	}
}

func (c *churner) slot() int {
	if n := len(c.free); n > 0 {
		s := c.free[n-1]
		c.free = c.free[:n-1]
		return s
	}
	c.ops = append(c.ops, churnOp{})
	return len(c.ops) - 1
}

func (c *churner) op(conn *client.Conn) *churnOp { return &c.ops[-conn.Tag-1] }

// later runs fn on op after d, unless op has ended (or its slot moved on
// to another operation) by then.
func (c *churner) later(op *churnOp, d time.Duration, fn func(op *churnOp)) {
	slot, gen := -op.conn.Tag-1, op.gen
	c.w.loop.After(d, func() {
		if o := &c.ops[slot]; o.gen == gen && o.step != stepFree {
			fn(o)
		}
	})
}

// count records the end of one operation of beh.
func (c *churner) count(beh behaviour, done bool, why string) {
	t := &c.tally[beh]
	bump := func(m *map[string]int64) {
		if *m == nil {
			*m = map[string]int64{}
		}
		(*m)[why]++
	}
	if done {
		t.Done++
		c.w.stats.ChurnDone++
		bump(&t.Outcomes)
	} else {
		t.Failed++
		c.w.stats.ChurnFailed++
		bump(&t.Failures)
	}
}

// end records op's end and frees its slot.
func (c *churner) end(op *churnOp, done bool, why string) {
	c.count(op.beh, done, why)
	slot := -op.conn.Tag - 1
	*op = churnOp{}
	c.free = append(c.free, slot)
	c.active--
	c.checkDone()
}

// checkDone tells the coordinator, once, that the period is over and
// every operation has ended.
func (c *churner) checkDone() {
	if !c.ended || c.active > 0 || c.doneSent || c.w.stopping {
		return
	}
	c.doneSent = true
	c.w.em.emit(event{Ev: evChurnDone, Stats: c.w.stats})
}

func (c *churner) onOpen(conn *client.Conn) {
	op := c.op(conn)
	if op.beh == behStalled {
		// Not possible with a half request; if it happens, the server
		// upgraded something that was not a request.
		op.failed = "upgraded"
		conn.Abort(true)
		return
	}
	w := c.w
	hello, ready := w.tgt.AppendHello(w.msg[:0])
	w.msg = hello
	if len(hello) > 0 {
		_ = conn.Send(hello)
	}
	if ready {
		c.afterHello(op)
	}
}

func (c *churner) afterHello(op *churnOp) {
	w := c.w
	subscribe := func(channel string) {
		w.id++
		w.msg = w.tgt.AppendSubscribe(w.msg[:0], channel, w.id)
		_ = op.conn.Send(w.msg)
		op.subsLeft++
	}
	stream := w.chans[op.variant%len(w.chans)]
	switch op.beh {
	case behClean, behAbrupt:
		subscribe(stream)
	case behStopReading:
		subscribe(stream)
		subscribe(c.plan.BallastChannel)
	default:
		c.act(op)
	}
}

func (c *churner) onMessage(conn *client.Conn, msg []byte) {
	op := c.op(conn)
	w := c.w
	var err error
	w.evs, err = w.tgt.Parse(msg, w.evs[:0])
	if err != nil {
		return
	}
	for i := range w.evs {
		if op.step == stepFree {
			return // ended by an earlier event of this message
		}
		ev := &w.evs[i]
		switch ev.Kind {
		case target.KindReady:
			if op.step == stepSetup && op.subsLeft == 0 {
				c.afterHello(op)
			}
		case target.KindSubscribed:
			if op.step == stepSetup && op.subsLeft > 0 {
				if op.subsLeft--; op.subsLeft == 0 {
					c.act(op)
				}
			}
		case target.KindError:
			if op.step == stepSetup {
				code := ev.Code
				if code == "" {
					code = "unknown"
				}
				op.failed = "subscribe_" + code
				conn.Abort(true)
			}
		case target.KindReply:
			_ = conn.Send(ev.Reply)
		}
	}
}

// act does op's part, once it is set up.
func (c *churner) act(op *churnOp) {
	op.step = stepActing
	conn := op.conn
	switch op.beh {
	case behClean:
		c.later(op, c.plan.Hold, func(op *churnOp) {
			op.step = stepClosing
			op.conn.Close()
		})
	case behAbrupt:
		c.later(op, c.plan.Hold, func(op *churnOp) {
			op.step = stepClosing
			op.conn.Abort(op.variant%2 == 0)
		})
	case behSilent:
		conn.PauseReading() // no pong either
		c.later(op, c.plan.Hold, func(op *churnOp) {
			op.conn.ResumeReading() // an early close shows now, in OnClose
			if op.step == stepActing {
				op.step = stepClosing
				op.conn.Abort(false)
			}
		})
	case behMalformed:
		_ = conn.SendRaw(malformedFrames[op.variant%len(malformedFrames)].frame)
		c.later(op, c.plan.ServerTimeout, c.notClosed)
	case behPingFlood:
		conn.PauseReading()
		_ = conn.SendRaw(c.flood)
		c.later(op, c.plan.Hold, func(op *churnOp) {
			op.conn.ResumeReading()
			if op.step == stepActing {
				op.step = stepClosing
				op.conn.Close()
			}
		})
	case behStopReading:
		conn.PauseReading()
		c.later(op, c.plan.Stall, func(op *churnOp) {
			op.conn.ResumeReading()
			if op.step == stepActing {
				c.later(op, c.plan.ServerTimeout, c.notClosed)
			}
		})
	}
}

// notClosed ends an operation whose connection the server should have
// closed by now.
func (c *churner) notClosed(op *churnOp) {
	if op.step != stepActing {
		return
	}
	op.step = stepClosing
	op.conn.Abort(true)
}

func (c *churner) onClose(conn *client.Conn, err error) {
	op := c.op(conn)
	if op.failed != "" {
		c.end(op, false, op.failed)
		return
	}
	if c.w.stopping {
		c.end(op, false, "unfinished")
		return
	}
	if op.step == stepSetup {
		c.end(op, false, client.Reason(err))
		return
	}
	done, why := judge(op, err)
	c.end(op, done, why)
}

// judge says whether an operation that got past its setup ended as the
// server's contract says, and how.
func judge(op *churnOp, err error) (done bool, why string) {
	reason := client.Reason(err)
	var (
		ce *client.CloseError
		he *client.HandshakeError
	)
	closedBy := func(code uint16) bool { return errors.As(err, &ce) && ce.Code == code }
	aborted := errors.Is(err, client.ErrAborted)
	switch op.beh {
	case behClean:
		if op.step == stepClosing && err == nil {
			return true, "closed"
		}
	case behAbrupt:
		if op.step == stepClosing && aborted {
			if op.variant%2 == 0 {
				return true, "reset"
			}
			return true, "fin"
		}
	case behStalled:
		switch {
		case aborted:
			return false, "upgraded"
		case errors.As(err, &he) && he.Status == 0:
			return true, "dropped"
		case errors.As(err, &he) && he.Status >= 400 && he.Status < 500:
			return true, fmt.Sprintf("http_%d", he.Status)
		case errors.Is(err, client.ErrHandshakeTimeout):
			return false, "not_dropped"
		}
	case behSilent:
		if op.step == stepClosing && aborted {
			return true, "held"
		}
		return false, "dropped_early_" + reason
	case behMalformed:
		frame := malformedFrames[op.variant%len(malformedFrames)].name
		if closedBy(1002) {
			return true, reason
		}
		if op.step == stepClosing && aborted {
			return false, frame + "_not_closed"
		}
		return false, frame + "_" + reason
	case behPingFlood:
		if op.step == stepClosing && err == nil {
			return true, "closed"
		}
	case behStopReading:
		switch {
		case closedBy(1008):
			return true, reason
		case errors.Is(err, client.ErrEOF), reason == "read_reset":
			// The server gave up on the connection before its close
			// frame could be written: the end of the stream is its close.
			return true, reason
		case op.step == stepClosing && aborted:
			return false, "not_closed"
		}
	}
	return false, reason
}

// result is the churn's share of the worker's result.
func (c *churner) result() map[string]*churnTally {
	out := map[string]*churnTally{}
	for b := range numBehaviours {
		if t := c.tally[b]; t.Started > 0 {
			out[behaviourNames[b]] = &t
		}
	}
	return out
}
