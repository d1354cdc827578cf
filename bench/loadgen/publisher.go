package loadgen

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/shardgate/shardgate/bench/target"
)

// publisher sends the fanout scenario's messages through the server's
// HTTP API, one at a time so that each channel's messages leave in order,
// on a fixed schedule: message k is due at start + k/rate. A message sent
// more than one interval after its time counts as late: the schedule was
// not kept, and the rate the report states was not the rate offered.
type publisher struct {
	pubState
	cfg   Config
	tgt   target.Target
	httpc *http.Client
	subs  []int64 // subscribers per channel: what each publish should deliver
}

type pubResult struct {
	published, errors, late, expected int64
	first, last                       time.Time
	window                            time.Duration // first to last publish
	errMsgs                           map[string]int64
}

// accepted counts a publish the server accepted at now, which should reach
// subs subscribers.
func (r *pubResult) accepted(now time.Time, subs int64) {
	r.published++
	r.expected += subs
	if r.first.IsZero() {
		r.first = now
	}
	r.last = now
	r.window = r.last.Sub(r.first)
}

func newPublisher(cfg Config, tgt target.Target, httpc *http.Client, subs []int64) *publisher {
	return &publisher{pubState: newPubState(), cfg: cfg, tgt: tgt, httpc: httpc, subs: subs}
}

func (p *publisher) run(ctx context.Context) {
	defer p.finish()
	seq := make([]uint64, p.cfg.Channels)
	var data []byte
	sched := newSchedule(p.cfg)
	defer sched.stop()
	for k := range sched.n {
		if !p.await(ctx, sched, k) {
			return
		}
		ch := k % p.cfg.Channels
		seq[ch]++
		now := time.Now()
		data = AppendPayload(data[:0], p.cfg.Payload, now.UnixNano(), seq[ch], p.cfg.Size)
		err := p.publish(ctx, sched.chans[ch], data)
		if ctx.Err() != nil {
			return
		}
		p.count(func(r *pubResult) {
			if err != nil {
				r.errors++
				r.errMsgs[err.Error()]++
				return
			}
			r.accepted(now, p.subs[ch])
		})
	}
}

func (p *publisher) publish(ctx context.Context, channel string, data []byte) error {
	return publishOnce(ctx, p.httpc, p.tgt, p.cfg.AdminURL, channel, data)
}

// statusError is a publish the server answered with an error: the message
// was not accepted. Any other publish error leaves the outcome unknown.
type statusError struct {
	code int
	body []byte
}

func (e *statusError) Error() string { return fmt.Sprintf("HTTP %d: %.100s", e.code, e.body) }

// publishOnce publishes data to channel through the server's HTTP API.
func publishOnce(ctx context.Context, httpc *http.Client, tgt target.Target, adminURL, channel string, data []byte) error {
	req, err := tgt.NewPublishRequest(adminURL, channel, data)
	if err != nil {
		return err
	}
	resp, err := httpc.Do(req.WithContext(ctx))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return &statusError{code: resp.StatusCode, body: body}
	}
	return nil
}

// pubState is what a paced publisher (publisher, stream) shares with the
// coordinator while it runs: its counts, and whether it has stopped.
type pubState struct {
	done chan struct{} // closed when run returns

	// mu guards res and stopped, and whatever the embedding type says.
	mu      sync.Mutex
	res     pubResult
	stopped bool
}

func newPubState() pubState {
	return pubState{done: make(chan struct{}), res: pubResult{errMsgs: map[string]int64{}}}
}

// finish marks the publisher stopped and closes done: the last thing its
// run does.
func (p *pubState) finish() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	close(p.done)
}

func (p *pubState) count(f func(*pubResult)) {
	p.mu.Lock()
	f(&p.res)
	p.mu.Unlock()
}

// counts returns messages published and deliveries expected so far.
func (p *pubState) counts() (published, expected int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.res.published, p.res.expected
}

func (p *pubState) finished() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopped
}

// await waits until message k of sched is due, counting it late if it is
// already more than one interval past its time. It returns false if ctx
// ended first.
func (p *pubState) await(ctx context.Context, sched *schedule, k int) bool {
	late, ok := sched.wait(ctx, k)
	if late {
		p.count(func(r *pubResult) { r.late++ })
	}
	return ok
}

// schedule paces a stream of n messages over cfg.Channels: message k is due
// at start + k/rate and goes to channel k mod Channels. One goroutine uses
// it; stop releases its timer.
type schedule struct {
	interval time.Duration
	n        int
	chans    []string // channel names by index
	timer    *time.Timer
	start    time.Time
}

// newSchedule starts the schedule: message 0 is due now.
func newSchedule(cfg Config) *schedule {
	s := &schedule{
		interval: time.Duration(float64(time.Second) / cfg.Rate),
		n:        max(int(cfg.Duration.Seconds()*cfg.Rate), 1),
		chans:    make([]string, cfg.Channels),
	}
	for i := range s.chans {
		s.chans[i] = fanoutChannel(cfg.ChannelPrefix, i)
	}
	s.timer = time.NewTimer(time.Hour)
	s.start = time.Now()
	return s
}

// wait blocks until message k is due, or ctx ends (ok false). late reports
// that the message is already more than one interval past its time: the
// schedule was not kept, and the rate the report states was not the rate
// offered.
func (s *schedule) wait(ctx context.Context, k int) (late, ok bool) {
	d := time.Until(s.start.Add(time.Duration(k) * s.interval))
	if d <= 0 {
		return -d > s.interval, true
	}
	s.timer.Reset(d)
	select {
	case <-s.timer.C:
		return false, true
	case <-ctx.Done():
		return false, false
	}
}

func (s *schedule) stop() { s.timer.Stop() }

func (p *publisher) result() pubResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.res
}
