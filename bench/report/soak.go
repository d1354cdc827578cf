package report

import (
	"fmt"
	"math"
	"strings"
)

// Soak is the outcome of the soak scenario: steady subscribers checking a
// numbered stream while connections churn and misbehave beside them, and
// the server's resources over time.
type Soak struct {
	Channels         int     `json:"channels"`
	Subscribed       int64   `json:"subscribed"`
	Published        int64   `json:"published"`
	PublishErrors    int64   `json:"publish_errors"`  // answered with an error (sent again)
	PublishUnknown   int64   `json:"publish_unknown"` // no answer: outcome unknown
	PublishLate      int64   `json:"publish_late"`
	Expected         int64   `json:"expected"` // published × subscribers of the channel
	Delivered        int64   `json:"delivered"`
	DeliveredPct     float64 `json:"delivered_pct"`
	Lost             int64   `json:"lost"`       // never arrived, settle period included
	Duplicated       int64   `json:"duplicated"` // arrived twice
	Reordered        int64   `json:"reordered"`  // arrived after a later one
	SteadyDropped    int64   `json:"steady_dropped"`
	Latency          Latency `json:"latency"` // publish request sent to message read
	BallastPublished int64   `json:"ballast_published"`

	ChurnPerSecond float64     `json:"churn_per_s"` // asked for
	HoldS          float64     `json:"hold_s"`
	StallS         float64     `json:"stall_s"`
	Churn          []ChurnOps  `json:"churn"`
	ChurnUnended   int64       `json:"churn_unended"` // still running when the run gave up waiting
	SampleEveryS   float64     `json:"sample_interval_s"`
	SettleS        float64     `json:"settle_s"`
	Samples        []Resources `json:"samples"`
	// Start is the sample with the steady connections up, before the
	// stream and the churn; End the last one, after the churn stopped
	// and the server settled.
	Start *Resources `json:"start,omitempty"`
	End   *Resources `json:"end,omitempty"`
	// RSSBaselineBytes is the largest RSS from Start to WarmupEndS (a
	// share of the churn period): the working set the run settled into.
	RSSBaselineBytes float64    `json:"rss_baseline_bytes"`
	WarmupEndS       float64    `json:"warmup_end_s"`
	Limits           SoakLimits `json:"limits"`

	Pass     bool     `json:"pass"`
	Failures []string `json:"failures,omitempty"`
}

// ChurnOps counts one churn behaviour's operations: done ones got the
// answer the server's contract promises, failed ones did not.
type ChurnOps struct {
	Behaviour string           `json:"behaviour"`
	Started   int64            `json:"started"`
	Done      int64            `json:"done"`
	Failed    int64            `json:"failed"`
	Outcomes  map[string]int64 `json:"outcomes,omitempty"` // how done ones ended
	Failures  map[string]int64 `json:"failures,omitempty"` // why failed ones failed
}

// Resources is one sample of the server's /metrics. A metric the server
// does not export is -1.
type Resources struct {
	AtS         float64 `json:"at_s"` // since Start
	Phase       string  `json:"phase"`
	OpenFDs     float64 `json:"open_fds"`
	Goroutines  float64 `json:"goroutines"`
	RSSBytes    float64 `json:"rss_bytes"`
	Connections float64 `json:"connections"`
}

// SoakLimits are how far End may be from Start (fds, goroutines) and from
// the RSS baseline: RSS may grow by RSSPct percent plus RSSSlackBytes.
type SoakLimits struct {
	OpenFDs       float64 `json:"open_fds"`
	Goroutines    float64 `json:"goroutines"`
	RSSPct        float64 `json:"rss_pct"`
	RSSSlackBytes float64 `json:"rss_slack_bytes"`
}

// writeSoak writes the soak section: delivery, churn, resources, verdict.
func writeSoak(t *table, s *Soak) {
	t.printf("subscribed", "%s on %d channel(s)", num(s.Subscribed), s.Channels)
	t.printf("published", "%s (%s errors, %s unanswered, %s late); ballast %s",
		num(s.Published), num(s.PublishErrors), num(s.PublishUnknown), num(s.PublishLate), num(s.BallastPublished))
	// Rounded down: a run that lost one message in millions must not read
	// 100 %.
	pct := math.Floor(s.DeliveredPct*100) / 100
	t.printf("delivered", "%s / %s (%.2f %%): %s lost, %s duplicated, %s reordered; %s steady connections dropped",
		num(s.Delivered), num(s.Expected), pct, num(s.Lost), num(s.Duplicated), num(s.Reordered), num(s.SteadyDropped))
	t.printf("latency", "%s", latency(s.Latency))
	t.blank()

	t.printf("churn", "%g/s asked, hold %gs, stall %gs", s.ChurnPerSecond, s.HoldS, s.StallS)
	for _, c := range s.Churn {
		line := fmt.Sprintf("%s done, %s failed of %s%s", num(c.Done), num(c.Failed), num(c.Started), reasons(c.Outcomes))
		if c.Failed > 0 {
			line += "; failed:" + reasons(c.Failures)
		}
		t.printf("", "  %-18s %s", c.Behaviour, line)
	}
	if s.ChurnUnended > 0 {
		t.printf("", "  %-18s %s operations still running when the run stopped waiting", "unended", num(s.ChurnUnended))
	}
	t.blank()

	t.printf("server", "every %gs; start = steady connections up, end = after the churn and %gs to settle", s.SampleEveryS, s.SettleS)
	t.printf("", "%14s %9s %8s %10s %10s %11s", "time", "phase", "fds", "goroutines", "RSS MiB", "connections")
	for _, r := range s.Samples {
		t.printf("", "%14s %9s %8s %10s %10s %11s", fmt.Sprintf("%.1f s", r.AtS), r.Phase,
			count(r.OpenFDs), count(r.Goroutines), mib(r.RSSBytes), count(r.Connections))
	}
	l := s.Limits
	t.printf("limits", "fds +%g, goroutines +%g from start; RSS %s + %g %% + %s",
		l.OpenFDs, l.Goroutines, bytesOf(s.RSSBaselineBytes), l.RSSPct, bytesOf(l.RSSSlackBytes))
	t.blank()
}

// writeVerdict writes PASS, or one FAIL line per failure.
func writeVerdict(t *table, s *Soak) {
	if s.Pass {
		t.printf("", "PASS: no message lost, duplicated or reordered; churn as expected; no leak")
		return
	}
	for _, f := range s.Failures {
		t.printf("", "FAIL: %s", f)
	}
}

// FailLines are the FAIL lines of a soak verdict, for a caller that prints
// them apart from the table.
func FailLines(s *Soak) string {
	var b strings.Builder
	for _, f := range s.Failures {
		fmt.Fprintf(&b, "FAIL: %s\n", f)
	}
	return b.String()
}

func count(v float64) string {
	if v < 0 {
		return "n/a"
	}
	return num(int64(v))
}

func mib(v float64) string {
	if v < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f", v/(1<<20))
}
