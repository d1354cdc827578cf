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
	cfg   Config
	tgt   target.Target
	httpc *http.Client
	subs  []int64 // subscribers per channel: what each publish should deliver
	done  chan struct{}

	mu      sync.Mutex
	res     pubResult
	stopped bool
}

type pubResult struct {
	published, errors, late, expected int64
	first, last                       time.Time
	window                            time.Duration // first to last publish
	errMsgs                           map[string]int64
}

func newPublisher(cfg Config, tgt target.Target, httpc *http.Client, subs []int64) *publisher {
	return &publisher{cfg: cfg, tgt: tgt, httpc: httpc, subs: subs, done: make(chan struct{}),
		res: pubResult{errMsgs: map[string]int64{}}}
}

func (p *publisher) run(ctx context.Context) {
	defer func() {
		p.mu.Lock()
		p.stopped = true
		p.mu.Unlock()
		close(p.done)
	}()
	interval := time.Duration(float64(time.Second) / p.cfg.Rate)
	n := max(int(p.cfg.Duration.Seconds()*p.cfg.Rate), 1)
	chans := make([]string, p.cfg.Channels)
	for i := range chans {
		chans[i] = fanoutChannel(p.cfg.ChannelPrefix, i)
	}
	seq := make([]uint64, p.cfg.Channels)
	var data []byte
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	start := time.Now()
	for k := range n {
		due := start.Add(time.Duration(k) * interval)
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return
			}
		} else if -d > interval {
			p.count(func(r *pubResult) { r.late++ })
		}
		ch := k % p.cfg.Channels
		seq[ch]++
		now := time.Now()
		data = AppendData(data[:0], now.UnixNano(), seq[ch], p.cfg.Size)
		err := p.publish(ctx, chans[ch], data)
		if ctx.Err() != nil {
			return
		}
		p.count(func(r *pubResult) {
			if err != nil {
				r.errors++
				r.errMsgs[err.Error()]++
				return
			}
			r.published++
			r.expected += p.subs[ch]
			if r.first.IsZero() {
				r.first = now
			}
			r.last = now
			r.window = r.last.Sub(r.first)
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

func (p *publisher) count(f func(*pubResult)) {
	p.mu.Lock()
	f(&p.res)
	p.mu.Unlock()
}

// counts returns messages published and deliveries expected so far.
func (p *publisher) counts() (published, expected int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.res.published, p.res.expected
}

func (p *publisher) finished() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopped
}

func (p *publisher) result() pubResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.res
}
