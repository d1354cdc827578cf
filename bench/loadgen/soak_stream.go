package loadgen

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/shardgate/shardgate/bench/target"
)

// stream publishes a soak's numbered messages through the server's HTTP
// API, one at a time so that each channel's messages leave in order:
// message k is due at start + k/rate and goes to channel k mod Channels
// with that channel's next number. A publish the server refuses (an HTTP
// error: not accepted) is sent again with the same number at the
// channel's next turn, so the numbers a channel carries have no holes
// unless messages are lost. A publish with no answer keeps its number,
// listed as unknown: whether it went out cannot be told.
type stream struct {
	pubState // its mu also guards end and unknownN
	cfg      Config
	tgt      target.Target
	httpc    *http.Client
	subs     []int64 // steady subscribers per channel

	end      streamEnd
	unknownN int64
}

func newStream(cfg Config, tgt target.Target, httpc *http.Client, subs []int64) *stream {
	return &stream{pubState: newPubState(), cfg: cfg, tgt: tgt, httpc: httpc, subs: subs,
		end: streamEnd{Last: make([]uint64, cfg.Channels), Unknown: make([][]uint64, cfg.Channels)}}
}

// run publishes the stream; s.res counts published, errors (refused), late,
// expected and errMsgs.
func (s *stream) run(ctx context.Context) {
	defer s.finish()
	next := make([]uint64, s.cfg.Channels)
	for i := range next {
		next[i] = 1
	}
	var data []byte
	sched := newSchedule(s.cfg)
	defer sched.stop()
	for k := range sched.n {
		if !s.await(ctx, sched, k) {
			return
		}
		ch := k % s.cfg.Channels
		seq := next[ch]
		now := time.Now()
		data = AppendData(data[:0], now.UnixNano(), seq, s.cfg.Size)
		err := publishOnce(ctx, s.httpc, s.tgt, s.cfg.AdminURL, sched.chans[ch], data)
		if ctx.Err() != nil {
			return
		}
		var refused *statusError
		s.mu.Lock()
		switch {
		case err == nil:
			next[ch]++
			s.end.Last[ch] = seq
			s.res.accepted(now, s.subs[ch])
		case errors.As(err, &refused):
			s.res.errors++
			s.res.errMsgs[err.Error()]++
		default:
			next[ch]++
			s.end.Last[ch] = seq
			s.end.Unknown[ch] = append(s.end.Unknown[ch], seq)
			s.unknownN++
			s.res.errMsgs[err.Error()]++
		}
		s.mu.Unlock()
	}
}

// result returns the counts and what was published, for the workers.
func (s *stream) result() (pubResult, int64, *streamEnd) {
	s.mu.Lock()
	defer s.mu.Unlock()
	end := streamEnd{Last: append([]uint64(nil), s.end.Last...), Unknown: make([][]uint64, len(s.end.Unknown))}
	for i, u := range s.end.Unknown {
		end.Unknown[i] = append([]uint64(nil), u...)
	}
	return s.res, s.unknownN, &end
}

// ballast publishes large messages to the channel that stopped readers
// subscribe to, at rate per second until ctx ends, so that a reader that
// stops fills its queue on the server in seconds whatever the stream's
// own rate. Only stopped readers subscribe to it.
type ballast struct {
	published, failed atomic.Int64
	done              chan struct{}
}

func runBallast(ctx context.Context, httpc *http.Client, tgt target.Target, adminURL, channel string, rate float64, size int) *ballast {
	b := &ballast{done: make(chan struct{})}
	go func() {
		defer close(b.done)
		interval := time.Duration(float64(time.Second) / rate)
		timer := time.NewTimer(0)
		defer timer.Stop()
		var data []byte
		start := time.Now()
		for k := 0; ; k++ {
			if d := time.Until(start.Add(time.Duration(k) * interval)); d > 0 {
				timer.Reset(d)
				select {
				case <-timer.C:
				case <-ctx.Done():
					return
				}
			}
			if ctx.Err() != nil {
				return
			}
			data = AppendData(data[:0], time.Now().UnixNano(), uint64(k+1), size)
			if err := publishOnce(ctx, httpc, tgt, adminURL, channel, data); err != nil {
				if ctx.Err() != nil {
					return
				}
				b.failed.Add(1)
				continue
			}
			b.published.Add(1)
		}
	}()
	return b
}
