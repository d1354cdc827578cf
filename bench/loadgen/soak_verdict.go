package loadgen

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/shardgate/shardgate/bench/report"
)

// A soak passes when nothing went wrong that a rollout should worry about:
//
//   - Delivery: every steady connection subscribed and stayed up; every
//     publish was accepted; no stream message was lost, duplicated or
//     reordered on any steady connection.
//   - Churn: every churn operation got the answer the server's contract
//     promises (see the behaviours in soak_churn.go), and all of them
//     ended.
//   - Leaks: once the churn has stopped and the server has settled, open
//     fds and goroutines are back to where they were with only the steady
//     connections up (the start sample), within Limits.OpenFDs and
//     Limits.Goroutines; and RSS is within Limits.RSSPct percent plus
//     Limits.RSSSlackBytes of the RSS baseline.
//
// Why the RSS baseline is not simply the start sample: the churn and the
// stream give the server a working set it did not have at the start
// (buffers of pooled queues, the heap the collector lets grow to twice the
// live data, the queue of every stopped reader before it is closed), and
// Go returns freed memory to the system only gradually. So the baseline is
// the largest RSS sampled from the start to the end of a warm-up, the
// first warmupShare of the churn period: the working set the run settles
// into. A leak grows with the operations of the rest of the run, which is
// most of it, and shows against that baseline; the allowance keeps a
// heap's normal swing from failing a healthy build. fds and goroutines
// have no working set to allow for: each churn connection holds one fd
// and no goroutine while it lives, and none after it.

// warmupShare is the part of the churn period that sets the RSS baseline.
const warmupShare = 0.2

// Sample phases.
const (
	phaseStart  = "start"  // steady connections up; no stream, no churn yet
	phaseSoak   = "soak"   // stream and churn running
	phaseDrain  = "drain"  // churn period over; its last operations ending
	phaseSettle = "settle" // waiting for deliveries and resources to settle
	phaseEnd    = "end"    // the sample the verdict reads
)

// rssBaseline is the largest RSS among the start sample and the soak
// samples taken up to warmupEnd seconds; -1 when there is none.
func rssBaseline(samples []report.Resources, warmupEnd float64) float64 {
	base := -1.0
	for _, s := range samples {
		if s.Phase == phaseStart || s.Phase == phaseSoak && s.AtS <= warmupEnd {
			base = max(base, s.RSSBytes)
		}
	}
	return base
}

// resourceFailures compares end with start and the RSS baseline.
func resourceFailures(start, end *report.Resources, rssBase float64, lim report.SoakLimits) []string {
	if start == nil || end == nil {
		return []string{"no server metrics: leaks cannot be checked"}
	}
	var out []string
	grew := func(what string, a, b, slack float64) {
		switch {
		case a < 0 || b < 0:
			out = append(out, fmt.Sprintf("the server's metrics lack %s: leaks cannot be checked", what))
		case b-a > slack:
			out = append(out, fmt.Sprintf("leak: %s %.0f at the end, %.0f at the start (%+.0f, limit +%g)", what, b, a, b-a, slack))
		}
	}
	grew("open fds", start.OpenFDs, end.OpenFDs, lim.OpenFDs)
	grew("goroutines", start.Goroutines, end.Goroutines, lim.Goroutines)
	switch limit := rssBase*(1+lim.RSSPct/100) + lim.RSSSlackBytes; {
	case rssBase < 0 || end.RSSBytes < 0:
		out = append(out, "the server's metrics lack RSS: leaks cannot be checked")
	case end.RSSBytes > limit:
		out = append(out, fmt.Sprintf("leak: RSS %.1f MiB at the end, over %.1f MiB (baseline %.1f MiB + %g %% + %.0f MiB)",
			end.RSSBytes/(1<<20), limit/(1<<20), rssBase/(1<<20), lim.RSSPct, lim.RSSSlackBytes/(1<<20)))
	}
	return out
}

// soakFailures is the verdict on s: one line per thing wrong, none when
// the run passes. conns is the number of steady connections asked for.
func soakFailures(s *report.Soak, conns int64) []string {
	var out []string
	fail := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if s.Subscribed < conns {
		fail("%d of %d steady connections did not subscribe", conns-s.Subscribed, conns)
	}
	if s.SteadyDropped > 0 {
		fail("the server dropped %d steady connections", s.SteadyDropped)
	}
	if s.Published == 0 {
		fail("nothing was published")
	}
	if n := s.PublishErrors + s.PublishUnknown; n > 0 {
		fail("%d publishes failed (%d refused, %d unanswered)", n, s.PublishErrors, s.PublishUnknown)
	}
	if s.Lost > 0 {
		fail("%d messages lost", s.Lost)
	}
	if s.Duplicated > 0 {
		fail("%d messages duplicated", s.Duplicated)
	}
	if s.Reordered > 0 {
		fail("%d messages reordered", s.Reordered)
	}
	for _, c := range s.Churn {
		if c.Failed > 0 {
			fail("churn %s: %d of %d failed (%s)", c.Behaviour, c.Failed, c.Started, countsText(c.Failures))
		}
	}
	if s.ChurnUnended > 0 {
		fail("%d churn operations had not ended when the run stopped waiting for them", s.ChurnUnended)
	}
	return append(out, resourceFailures(s.Start, s.End, s.RSSBaselineBytes, s.Limits)...)
}

func countsText(m map[string]int64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
