package gateway

import (
	"fmt"
	"time"
)

// defaultStallAfter is how long a shard or the acceptor may go without
// completing a loop pass before /healthz reports the process dead. The
// clock wakes every loop at least once a second, so only a loop that is
// stuck (a blocked callback, a deadlock) gets near it.
const defaultStallAfter = 10 * time.Second

// stalled names the first event loop that has not completed a pass within
// the stall limit, or returns "" when all of them are alive.
func (g *Gateway) stalled(now time.Time) string {
	limit := g.cfg.stallAfter
	if limit <= 0 {
		limit = defaultStallAfter
	}
	for _, s := range g.shards {
		if d := now.Sub(s.LastPass()); d > limit {
			return fmt.Sprintf("shard %d loop stalled for %s", s.ID(), d.Round(time.Second))
		}
	}
	// The acceptor's loop ends when draining starts.
	if !g.draining.Load() {
		if d := now.Sub(g.acc.LastPass()); d > limit {
			return fmt.Sprintf("acceptor loop stalled for %s", d.Round(time.Second))
		}
	}
	return ""
}
