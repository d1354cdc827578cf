package loadgen

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/shardgate/shardgate/bench/promscrape"
	"github.com/shardgate/shardgate/bench/report"
)

// Metrics a soak follows over time, besides promscrape's RSS and
// goroutines.
const (
	metricOpenFDs     = "process_open_fds"
	metricConnections = "shardgate_connections"
)

// sampler scrapes the server's /metrics on a period and keeps the samples
// with the phase of the run they were taken in. Its methods are safe from
// any goroutine.
type sampler struct {
	httpc *http.Client
	url   string
	t0    time.Time // sample times count from here

	mu      sync.Mutex
	phase   string
	samples []report.Resources
	err     string // the first scrape error
}

func newSampler(httpc *http.Client, url string, t0 time.Time, phase string) *sampler {
	return &sampler{httpc: httpc, url: url, t0: t0, phase: phase}
}

func (s *sampler) setPhase(p string) {
	s.mu.Lock()
	s.phase = p
	s.mu.Unlock()
}

// scrape takes one sample without keeping it. A failed scrape is noted.
func (s *sampler) scrape(ctx context.Context) (report.Resources, bool) {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := promscrape.Scrape(sctx, s.httpc, s.url)
	at := time.Since(s.t0)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.err == "" && ctx.Err() == nil {
			s.err = err.Error()
		}
		return report.Resources{}, false
	}
	get := func(name string) float64 {
		if !m.Has(name) {
			return -1
		}
		return m[name]
	}
	return report.Resources{
		AtS: round3(at.Seconds()), Phase: s.phase,
		OpenFDs: get(metricOpenFDs), Goroutines: get(promscrape.Goroutines),
		RSSBytes: get(promscrape.RSS), Connections: get(metricConnections),
	}, true
}

// take scrapes and keeps the sample.
func (s *sampler) take(ctx context.Context) (report.Resources, bool) {
	r, ok := s.scrape(ctx)
	if ok {
		s.keep(r)
	}
	return r, ok
}

func (s *sampler) keep(r report.Resources) {
	s.mu.Lock()
	s.samples = append(s.samples, r)
	s.mu.Unlock()
}

// run takes a sample every period until ctx ends, then closes done.
func (s *sampler) run(ctx context.Context, every time.Duration, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.take(ctx)
		case <-ctx.Done():
			return
		}
	}
}

// result returns a copy of the samples and the first scrape error.
func (s *sampler) result() ([]report.Resources, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]report.Resources(nil), s.samples...), s.err
}
