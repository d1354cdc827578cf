package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/shardgate/shardgate/bench/target"
)

// chaosStream publishes a chaos run's numbered stream like a soak's
// (soak_stream.go: message k due at start + k/rate, to channel k mod
// Channels, with that channel's next number), but through the admin APIs
// of several nodes, failing over between them: the node it publishes to
// may be the one that is killed.
//
//   - accepted: the number is used; the answer's offset and epoch are kept
//     as the channel's last (for the end of a client that got
//     recovered:false and no message after it).
//   - not sent (the connection was refused, or the node answered 503):
//     the next node is tried at once with the same number; after every
//     node refused it in a row, the number waits for the channel's next
//     turn. These are failovers, not errors.
//   - refused with another status: an error; the number waits for the
//     channel's next turn.
//   - no answer (the node died while the request was out): the number is
//     listed as unknown (it may or may not be in the stream) and the next
//     publish goes to the next node.
type chaosStream struct {
	pubState // its mu also guards end, unknownN, failovers and perAdmin
	cfg      Config
	tgt      target.Target
	httpc    *http.Client
	admins   []string
	subs     []int64

	end       streamEnd
	unknownN  int64
	failovers int64
	perAdmin  []int64 // accepted publishes per admin URL
}

func newChaosStream(cfg Config, tgt target.Target, httpc *http.Client, subs []int64) *chaosStream {
	admins := cfg.AdminURLs
	if len(admins) == 0 {
		admins = []string{cfg.AdminURL}
	}
	return &chaosStream{pubState: newPubState(), cfg: cfg, tgt: tgt, httpc: httpc, admins: admins, subs: subs,
		perAdmin: make([]int64, len(admins)),
		end: streamEnd{Last: make([]uint64, cfg.Channels), Unknown: make([][]uint64, cfg.Channels),
			LastOffset: make([]uint64, cfg.Channels), LastEpoch: make([]string, cfg.Channels)}}
}

// publishReceipt is the publish API's answer with history:
// {"ok":true,"offset":N,"epoch":"..."}.
type publishReceipt struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

func publishWithReceipt(ctx context.Context, httpc *http.Client, tgt target.Target, adminURL, channel string, data []byte) (publishReceipt, error) {
	var rc publishReceipt
	req, err := tgt.NewPublishRequest(adminURL, channel, data)
	if err != nil {
		return rc, err
	}
	resp, err := httpc.Do(req.WithContext(ctx))
	if err != nil {
		return rc, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return rc, &statusError{code: resp.StatusCode, body: body}
	}
	_ = json.Unmarshal(body, &rc) // without history there is no receipt
	return rc, nil
}

// notSent reports a publish error that proves the message was not taken:
// the connection was refused (a dead node), or the node said 503.
func notSent(err error) bool {
	var se *statusError
	if errors.As(err, &se) {
		return se.code == http.StatusServiceUnavailable
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func (s *chaosStream) run(ctx context.Context) {
	defer s.finish()
	next := make([]uint64, s.cfg.Channels)
	for i := range next {
		next[i] = 1
	}
	var data []byte
	sched := newSchedule(s.cfg)
	defer sched.stop()
	cur := 0
	for k := range sched.n {
		if !s.await(ctx, sched, k) {
			return
		}
		ch := k % s.cfg.Channels
		seq := next[ch]
		now := time.Now()
		data = AppendData(data[:0], now.UnixNano(), seq, s.cfg.Size)
		for tries := 0; ; tries++ {
			rc, err := publishWithReceipt(ctx, s.httpc, s.tgt, s.admins[cur], sched.chans[ch], data)
			if ctx.Err() != nil {
				return
			}
			s.mu.Lock()
			var se *statusError
			switch {
			case err == nil:
				next[ch]++
				s.end.Last[ch] = seq
				s.end.LastOffset[ch], s.end.LastEpoch[ch] = rc.Offset, rc.Epoch
				s.perAdmin[cur]++
				s.res.accepted(now, s.subs[ch])
			case notSent(err):
				s.failovers++
				cur = (cur + 1) % len(s.admins)
				if tries+1 < len(s.admins) {
					s.mu.Unlock()
					continue
				}
				s.res.errors++
				s.res.errMsgs["every node refused: "+err.Error()]++
			case errors.As(err, &se):
				s.res.errors++
				s.res.errMsgs[err.Error()]++
			default:
				next[ch]++
				s.end.Last[ch] = seq
				s.end.Unknown[ch] = append(s.end.Unknown[ch], seq)
				s.unknownN++
				s.res.errMsgs[err.Error()]++
				cur = (cur + 1) % len(s.admins)
			}
			s.mu.Unlock()
			break
		}
	}
}

// result returns the counts and what was published, for the workers.
func (s *chaosStream) result() (res pubResult, unknown, failovers int64, perAdmin []int64, end *streamEnd) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := streamEnd{Last: append([]uint64(nil), s.end.Last...), Unknown: make([][]uint64, len(s.end.Unknown)),
		LastOffset: append([]uint64(nil), s.end.LastOffset...), LastEpoch: append([]string(nil), s.end.LastEpoch...)}
	for i, u := range s.end.Unknown {
		e.Unknown[i] = append([]uint64(nil), u...)
	}
	return s.res, s.unknownN, s.failovers, append([]int64(nil), s.perAdmin...), &e
}
