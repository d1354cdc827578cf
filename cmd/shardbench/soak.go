package main

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/shardgate/shardgate/bench/loadgen"
)

// soakUsage is what "shardbench soak -h" prints before the flags.
const soakUsage = `Proves a build before a rollout. -conns steady connections (over -procs
workers and -source-ips, as in fanout) subscribe to -channels channels. For
-duration the coordinator publishes a numbered stream through the admin API
(POST /api/publish, data {"t":<unix ns>,"s":<number>,...}) at -rate per
second, and every steady connection checks its channel's numbers: lost (a
gap still open after -settle), duplicated, reordered. Meanwhile -churn
connections per second come and go, round the -behaviours:

  clean-close        subscribe, read for -churn-hold, close frame: answered
  abrupt-close       subscribe, read for -churn-hold, then a TCP reset or a
                     FIN without a close frame
  stalled-handshake  half an upgrade request, then nothing: the server must
                     hang up (within -server-timeout)
  silent             upgrade, send nothing (no pongs) for -churn-hold: the
                     server must keep it; then a FIN
  malformed-frame    unmasked frame, RSV bits, opcode 3 or a fragmented
                     ping, in turn: the server must close with 1002
  ping-flood         -ping-flood pings without reading for -churn-hold,
                     then read and close: the server must answer the close
  stop-reading       subscribe to a stream channel and to a ballast channel
                     (-ballast-rate messages/s of -ballast-size bytes), stop
                     reading for -stall: the server must close it as a slow
                     consumer (1008, or the end of the stream). -stall must
                     let the ballast fill the server's queue and its socket
                     buffer (about 5 MB on Linux defaults: 3 s of the
                     default ballast)

The server's /metrics is sampled every -sample-interval: process_open_fds,
go_goroutines, process_resident_memory_bytes, shardgate_connections.

Verdict, after the churn stopped and up to -settle for the server to settle:
FAIL (exit status 3, one "FAIL: ..." line each) when a steady connection did
not subscribe or was dropped, a publish failed, a message was lost,
duplicated or reordered, a churn connection did not get the server's answer
above, or the server leaked: open fds more than -fd-slack or goroutines more
than -goroutine-slack above the start sample (steady connections up, before
the stream and the churn), or RSS above the baseline + -rss-slack-pct % +
-rss-slack-mib MiB. The RSS baseline is the largest RSS from the start to the
end of the first 20 % of -duration: the working set the run settles into;
memory that keeps growing after it is a leak. Otherwise PASS, exit status 0.

`

// checkSoak checks the soak flags and fills what they decide.
func checkSoak(o *options, behaviours string, rssSlackMiB float64, bad func(string, any, string) error) error {
	c := &o.cfg
	s := &c.Soak
	s.Behaviours = nil
	for _, name := range strings.Split(behaviours, ",") {
		name = strings.TrimSpace(name)
		if !slices.Contains(loadgen.Behaviours(), name) {
			return bad("behaviours", fmt.Sprintf("%q", behaviours), fmt.Sprintf("%q is not one of %s", name, strings.Join(loadgen.Behaviours(), ", ")))
		}
		if !slices.Contains(s.Behaviours, name) {
			s.Behaviours = append(s.Behaviours, name)
		}
	}
	s.Limits.RSSSlackBytes = rssSlackMiB * (1 << 20)
	switch {
	case c.Channels < 1:
		return bad("channels", c.Channels, "must be at least 1")
	case c.Rate <= 0:
		return bad("rate", c.Rate, "must be positive")
	case c.Duration > 0 && c.Duration.Seconds()*c.Rate < float64(c.Channels):
		return bad("duration", c.Duration, fmt.Sprintf("publishes less than one message per channel at -rate %g", c.Rate))
	case s.Churn < 0:
		return bad("churn", s.Churn, "must not be negative")
	case s.Hold <= 0:
		return bad("churn-hold", s.Hold, "must be positive")
	case s.Stall <= 0:
		return bad("stall", s.Stall, "must be positive")
	case s.ServerTimeout <= 0:
		return bad("server-timeout", s.ServerTimeout, "must be positive")
	case s.PingFlood < 1:
		return bad("ping-flood", s.PingFlood, "must be at least 1")
	case s.BallastRate <= 0:
		return bad("ballast-rate", s.BallastRate, "must be positive")
	case s.BallastSize < 1 || s.BallastSize > 16<<20:
		return bad("ballast-size", s.BallastSize, "must be between 1 and 16777216")
	case s.SampleInterval <= 0:
		return bad("sample-interval", s.SampleInterval, "must be positive")
	case s.Settle <= 0:
		return bad("settle", s.Settle, "must be positive")
	case s.Limits.OpenFDs < 0:
		return bad("fd-slack", s.Limits.OpenFDs, "must not be negative")
	case s.Limits.Goroutines < 0:
		return bad("goroutine-slack", s.Limits.Goroutines, "must not be negative")
	case s.Limits.RSSPct < 0:
		return bad("rss-slack-pct", s.Limits.RSSPct, "must not be negative")
	case rssSlackMiB < 0:
		return bad("rss-slack-mib", rssSlackMiB, "must not be negative")
	}
	return nil
}

// churnFDs estimates the sockets a soak's churn holds at once, over all
// workers: each operation lives about as long as its longest part, plus a
// few seconds for the server's part (a stalled handshake lasts the
// server's handshake timeout, 5 s by default).
func churnFDs(c *loadgen.Config) int {
	if c.Scenario != loadgen.ScenarioSoak {
		return 0
	}
	const serverPartS = 5
	return int(math.Ceil(c.Soak.Churn * (max(c.Soak.Hold, c.Soak.Stall).Seconds() + serverPartS)))
}
