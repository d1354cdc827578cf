package loadgen

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/shardgate/shardgate/bench/client"
	"github.com/shardgate/shardgate/bench/hist"
	"github.com/shardgate/shardgate/bench/target"
)

// The worker's side of a chaos run. Its connections are a soak's steady
// subscribers (one channel each, a numbered stream) that do what a client
// library must do when it loses its node:
//
//   - on any end of a live connection (a close frame such as 1001 or 4010,
//     a reset, an EOF) it dials again at once, to the next node of the
//     list, skipping nodes that refused a connection in the last second;
//     a failed attempt goes on to the next node after a backoff (full
//     jitter between BackoffMin and a doubling bound up to BackoffMax);
//   - it subscribes again with "recover": the epoch it was told and the
//     offset of the last message it took;
//   - recovered:true: the missed messages must follow, each once, in
//     order; recovered:false is counted, and the messages between the last
//     one taken and the first one after it are counted unrecoverable (not
//     lost): a client would reload its state from the backend there.
//
// Every message is checked twice: by the number in its data (the soak's
// trackSeq: lost, duplicated, reordered) and by its offset, which must be
// above the offset of the message before it on the connection (within an
// epoch: a recovered:false resets it to the subscribed offset).

// ChaosPlan is how a chaos worker's clients reconnect.
type ChaosPlan struct {
	BackoffMin time.Duration `json:"backoff_min"`
	BackoffMax time.Duration `json:"backoff_max"`
}

// deadFor is how long a node that refused a connection is skipped.
const deadFor = time.Second

// chaosRec is a chaos connection's recovery state, beside its connRec.
type chaosRec struct {
	epoch      string
	offset     uint64        // offset of the last message taken, or of the subscribed reply
	droppedAt  time.Duration // loop clock at the drop
	attempts   uint32        // failed attempts since the drop
	node       uint16        // node of the current (or last) connection
	reconnects uint32        // resubscribed after a drop
	// The last resubscribe: the offset it asked to recover after, and the
	// subscribed reply's (the channel's latest when it took effect).
	recoverFrom  uint64
	subscribedAt uint64
	lastAnswer   uint8 // 0 none, 1 recovered:true, 2 recovered:false
	reconnecting bool  // between a drop and the resubscription
	resync       bool  // recovered:false; the next message restarts the count
	bad          bool  // saw a duplicate, a reorder or an offset error
}

type chaosNode struct {
	addr      netip.AddrPort
	host      string
	deadUntil time.Duration // loop clock
}

// chaosWorker is the chaos part of a worker.
type chaosWorker struct {
	plan            ChaosPlan
	nodes           []chaosNode
	recs            []chaosRec
	reconnect       *hist.Histogram // drop to resubscribed
	attemptFailures map[string]int64
	rng             *rand.Rand
}

// chaosResult is a worker's count of its clients' streams.
type chaosResult struct {
	Clients         int64            `json:"clients"`
	CleanClients    int64            `json:"clean_clients"` // every message once, in order, nothing lost
	NotReconnected  int64            `json:"not_reconnected"`
	Lost            int64            `json:"lost"`
	Duplicated      int64            `json:"duplicated"`
	Reordered       int64            `json:"reordered"`
	OffsetErrors    int64            `json:"offset_errors"`
	Unrecoverable   int64            `json:"unrecoverable"`
	AttemptFailures map[string]int64 `json:"attempt_failures,omitempty"`
	// Examples describe a few clients that lost messages.
	Examples  []string      `json:"examples,omitempty"`
	Reconnect hist.Snapshot `json:"reconnect"`
}

func newChaosWorker(p Plan) (*chaosWorker, error) {
	if p.Chaos == nil || len(p.Nodes) == 0 {
		return nil, errors.New("loadgen: worker: chaos plan without nodes")
	}
	cw := &chaosWorker{plan: *p.Chaos, recs: make([]chaosRec, p.Conns), reconnect: hist.New(),
		attemptFailures: map[string]int64{}, rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(p.First)))}
	for _, n := range p.Nodes {
		a, err := netip.ParseAddrPort(n.Addr)
		if err != nil {
			return nil, err
		}
		host := a.String()
		if u, err := url.Parse(n.URL); err == nil && u.Host != "" {
			host = u.Host
		}
		cw.nodes = append(cw.nodes, chaosNode{addr: a, host: host})
	}
	return cw, nil
}

// dialChaos dials connection idx to node n.
func (w *worker) dialChaos(idx int, n int) (*client.Conn, error) {
	var src netip.Addr
	if len(w.sources) > 0 {
		src = w.sources[idx%len(w.sources)]
	}
	node := &w.chaos.nodes[n]
	w.chaos.recs[idx].node = uint16(n)
	return w.loop.DialWith(src, client.DialOptions{Addr: node.addr, Host: node.host})
}

// firstNode is where connection idx starts: the run-wide index spread
// over the nodes.
func (w *worker) firstNode(idx int) int { return (w.plan.First + idx) % len(w.chaos.nodes) }

// chaosSubscribe sends r's subscribe: with recover once it has an epoch.
func (w *worker) chaosSubscribe(r *connRec, channel string) {
	cr := &w.chaos.recs[r.conn.Tag]
	w.id++
	if cr.epoch == "" {
		w.msg = w.tgt.AppendSubscribe(w.msg[:0], channel, w.id)
	} else {
		w.msg = target.AppendSubscribeRecover(w.msg[:0], channel, w.id, cr.epoch, cr.offset)
	}
	_ = r.conn.Send(w.msg)
}

// chaosSubscribed handles the subscribed reply of a subscribing r.
func (w *worker) chaosSubscribed(r *connRec, ev *target.Event) {
	cr := &w.chaos.recs[r.conn.Tag]
	if !cr.reconnecting {
		if len(ev.Epoch) == 0 || !ev.HasOffset {
			w.errs["no_history"]++ // the server has no history: nothing to recover from
		}
		cr.epoch, cr.offset = string(ev.Epoch), ev.Offset
		w.stats.Subscribed++
		r.subscribed = true
		w.perChannel[(w.plan.First+r.conn.Tag)%w.plan.Channels]++
		w.ready(r)
		return
	}
	w.chaos.reconnect.Record(int64(w.loop.Now() - cr.droppedAt))
	cr.reconnects++
	cr.recoverFrom, cr.subscribedAt = cr.offset, ev.Offset
	cr.reconnecting = false
	cr.attempts = 0
	w.stats.Reconnecting--
	w.stats.Reconnects++
	r.phase = phaseReady
	if string(ev.Recovered) == "true" && string(ev.Epoch) == cr.epoch {
		w.stats.RecoveredTrue++
		cr.lastAnswer = 1
		return
	}
	w.stats.RecoveredFalse++
	cr.lastAnswer = 2
	cr.resync = true
	cr.epoch, cr.offset = string(ev.Epoch), ev.Offset
}

// chaosMessage checks one stream message on r.
func (w *worker) chaosMessage(r *connRec, ev *target.Event) {
	sent, seq, ok := ParseData(ev.Data)
	if !ok {
		w.errs["foreign_message"]++
		return
	}
	cr := &w.chaos.recs[r.conn.Tag]
	if cr.resync {
		cr.resync = false
		if seq > r.lastSeq+1 {
			w.stats.Unrecoverable += int64(seq - r.lastSeq - 1)
			r.lastSeq = seq - 1
		}
	}
	if !ev.HasOffset {
		w.errs["no_offset"]++
	} else if ev.Offset <= cr.offset {
		w.stats.OffsetErrors++
		cr.bad = true
	} else {
		cr.offset = ev.Offset
	}
	dup, reord := w.stats.Duplicated, w.stats.Reordered
	w.onStream(r, time.Now().UnixNano()-sent, seq)
	if w.stats.Duplicated != dup || w.stats.Reordered != reord {
		cr.bad = true
	}
}

// chaosClosed handles the end of chaos connection r; false leaves it to
// the setup's accounting (a connection that never was set up).
func (w *worker) chaosClosed(r *connRec, err error) bool {
	idx := r.conn.Tag
	cr := &w.chaos.recs[idx]
	if w.stopping {
		if r.phase == phaseReady || cr.reconnecting {
			r.phase = phaseGone
			return true
		}
		return false
	}
	now := w.loop.Now()
	switch {
	case r.phase == phaseReady:
		w.stats.Dropped++
		w.drops[client.Reason(err)]++
		r.phase = phaseGone
		cr.reconnecting = true
		cr.droppedAt = now
		cr.attempts = 0
		w.stats.Reconnecting++
		w.chaosReconnect(idx, true)
		return true
	case cr.reconnecting:
		reason := client.Reason(err)
		w.chaos.attemptFailures[reason]++
		var de *client.DialError
		if errors.As(err, &de) || errors.Is(err, syscall.ECONNREFUSED) {
			w.chaos.nodes[cr.node].deadUntil = now + deadFor
		}
		r.phase = phaseGone
		cr.attempts++
		w.loop.After(w.backoff(cr.attempts), func() { w.chaosReconnect(idx, true) })
		return true
	}
	return false
}

// backoff is the wait before attempt n+1 after n failures: full jitter
// up to min(BackoffMin × 2^(n-1), BackoffMax).
func (w *worker) backoff(n uint32) time.Duration {
	p := w.chaos.plan
	bound := p.BackoffMax
	if n < 30 {
		bound = min(p.BackoffMin<<(n-1), p.BackoffMax)
	}
	return time.Duration(w.chaos.rng.Int64N(int64(bound)) + 1)
}

// chaosReconnect dials connection idx again, to the node after its last
// one that is not known dead (its last one too when every node is).
func (w *worker) chaosReconnect(idx int, advance bool) {
	if w.stopping {
		return
	}
	cw := w.chaos
	cr := &cw.recs[idx]
	r := &w.recs[idx]
	now := w.loop.Now()
	n := int(cr.node)
	if advance {
		n = (n + 1) % len(cw.nodes)
	}
	for range cw.nodes {
		if cw.nodes[n].deadUntil <= now {
			break
		}
		n = (n + 1) % len(cw.nodes)
	}
	c, err := w.dialChaos(idx, n)
	if err != nil {
		cw.attemptFailures[client.Reason(err)]++
		cr.attempts++
		w.loop.After(w.backoff(cr.attempts), func() { w.chaosReconnect(idx, true) })
		return
	}
	c.Tag = idx
	r.conn = c
	r.phase = phaseConnecting
}

// expireChaos ends reconnections whose hello or subscribe has gone
// unanswered for the handshake timeout (the engine bounds connect and
// upgrade). It runs every second until the stop.
func (w *worker) expireChaos() {
	if w.stopping {
		return
	}
	now := w.loop.Now()
	for i := range w.recs {
		r := &w.recs[i]
		if w.chaos.recs[i].reconnecting && (r.phase == phaseHello || r.phase == phaseSubscribing) && now-r.openedAt > w.plan.HandshakeTimeout {
			r.conn.Abort(true) // OnClose: a failed attempt
		}
	}
	w.loop.After(time.Second, w.expireChaos)
}

// chaosResult counts, at the stop, what each client lost against what was
// published, and which clients saw their whole stream once and in order.
// A client whose last answer was recovered:false with no message after it
// counts what it missed as unrecoverable when the last publish was at or
// below the offset it was told, and as lost otherwise.
func (w *worker) chaosResult(end *streamEnd) *chaosResult {
	res := &chaosResult{Reconnect: w.chaos.reconnect.Snapshot(), AttemptFailures: w.chaos.attemptFailures,
		Duplicated: w.stats.Duplicated, Reordered: w.stats.Reordered, OffsetErrors: w.stats.OffsetErrors}
	for i := range w.recs {
		r := &w.recs[i]
		if !r.subscribed {
			continue
		}
		res.Clients++
		cr := &w.chaos.recs[i]
		if cr.reconnecting {
			res.NotReconnected++
			cr.bad = true
		}
		if end == nil {
			continue
		}
		ch := (w.plan.First + i) % w.plan.Channels
		if ch >= len(end.Last) {
			continue
		}
		if cr.resync && r.lastSeq < end.Last[ch] && ch < len(end.LastOffset) &&
			end.LastEpoch[ch] == cr.epoch && end.LastOffset[ch] <= cr.offset {
			w.stats.Unrecoverable += int64(end.Last[ch] - r.lastSeq)
			r.lastSeq = end.Last[ch]
		}
		var unknown []uint64
		if ch < len(end.Unknown) {
			unknown = end.Unknown[ch]
		}
		if lost := missingSeqs(r.lastSeq, w.gaps[i], end.Last[ch], unknown); lost > 0 {
			if len(res.Examples) < maxChaosExamples {
				res.Examples = append(res.Examples, w.chaosExample(i, lost, end.Last[ch], unknown))
			}
			res.Lost += lost
			cr.bad = true
		}
		if !cr.bad {
			res.CleanClients++
		}
	}
	res.Unrecoverable = w.stats.Unrecoverable
	return res
}

// maxChaosExamples bounds the clients a worker describes.
const maxChaosExamples = 5

// chaosExample describes client i, which lost n of the numbers up to last.
// Numbers whose publish went unanswered are left out (they may never
// have been stored).
func (w *worker) chaosExample(i int, n int64, last uint64, unknown []uint64) string {
	r, cr := &w.recs[i], &w.chaos.recs[i]
	var missing []string
	for _, g := range w.gaps[i] {
		if len(missing) == 4 {
			missing = append(missing, "...")
			break
		}
		if g.lo == g.hi && slices.Contains(unknown, g.lo) {
			continue
		}
		if g.lo == g.hi {
			missing = append(missing, fmt.Sprint(g.lo))
		} else {
			missing = append(missing, fmt.Sprintf("%d-%d", g.lo, g.hi))
		}
	}
	if r.lastSeq < last {
		missing = append(missing, fmt.Sprintf("%d-%d", r.lastSeq+1, last))
	}
	b := fmt.Sprintf("client %d (started on node %d, now node %d, %d reconnects): %d lost, numbers missing %s",
		w.plan.First+i, w.firstNode(i)+1, int(cr.node)+1, cr.reconnects, n, strings.Join(missing, ","))
	if cr.reconnects > 0 {
		answer := map[uint8]string{0: "none", 1: "recovered:true", 2: "recovered:false"}[cr.lastAnswer]
		b += fmt.Sprintf("; last resubscribe: recover after offset %d, answered %s with offset %d", cr.recoverFrom, answer, cr.subscribedAt)
	}
	return b
}
