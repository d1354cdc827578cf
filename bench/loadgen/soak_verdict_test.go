package loadgen

import (
	"strings"
	"testing"

	"github.com/shardgate/shardgate/bench/report"
)

const mib = 1 << 20

// healthySoak is a soak report that passes: 1,000 steady connections,
// nothing lost, churn as expected, resources back where they started.
func healthySoak() *report.Soak {
	start := report.Resources{AtS: 0, Phase: phaseStart, OpenFDs: 1020, Goroutines: 14, RSSBytes: 100 * mib, Connections: 1000}
	end := report.Resources{AtS: 75, Phase: phaseEnd, OpenFDs: 1025, Goroutines: 15, RSSBytes: 150 * mib, Connections: 1000}
	return &report.Soak{
		Channels: 4, Subscribed: 1000, Published: 600, Expected: 150000, Delivered: 150000,
		Churn: []report.ChurnOps{
			{Behaviour: "clean-close", Started: 86, Done: 86},
			{Behaviour: "stop-reading", Started: 85, Done: 85},
		},
		Samples: []report.Resources{
			start,
			{AtS: 10, Phase: phaseSoak, OpenFDs: 1100, Goroutines: 15, RSSBytes: 120 * mib},
			{AtS: 50, Phase: phaseSoak, OpenFDs: 1100, Goroutines: 15, RSSBytes: 200 * mib}, // after the warm-up
			{AtS: 65, Phase: phaseDrain, OpenFDs: 1060, Goroutines: 15, RSSBytes: 210 * mib},
			end,
		},
		Start: &start, End: &end, WarmupEndS: 12,
		RSSBaselineBytes: 120 * mib,
		Limits:           report.SoakLimits{OpenFDs: 20, Goroutines: 10, RSSPct: 25, RSSSlackBytes: 20 * mib},
	}
}

func TestSoakVerdict(t *testing.T) {
	cases := []struct {
		name   string
		change func(s *report.Soak)
		want   []string // substrings of the failures, in order; none: pass
	}{
		{"healthy", func(s *report.Soak) {}, nil},
		{"lost", func(s *report.Soak) { s.Lost = 3 }, []string{"3 messages lost"}},
		{"duplicated", func(s *report.Soak) { s.Duplicated = 1 }, []string{"1 messages duplicated"}},
		{"reordered", func(s *report.Soak) { s.Reordered = 2 }, []string{"2 messages reordered"}},
		{"all three", func(s *report.Soak) { s.Lost, s.Duplicated, s.Reordered = 1, 1, 1 },
			[]string{"lost", "duplicated", "reordered"}},
		{"not all subscribed", func(s *report.Soak) { s.Subscribed = 990 }, []string{"10 of 1000 steady connections did not subscribe"}},
		{"steady dropped", func(s *report.Soak) { s.SteadyDropped = 4 }, []string{"dropped 4 steady connections"}},
		{"nothing published", func(s *report.Soak) { s.Published = 0 }, []string{"nothing was published"}},
		{"publishes failed", func(s *report.Soak) { s.PublishErrors, s.PublishUnknown = 2, 1 }, []string{"3 publishes failed (2 refused, 1 unanswered)"}},
		{"churn failed", func(s *report.Soak) {
			s.Churn[1].Done, s.Churn[1].Failed, s.Churn[1].Failures = 80, 5, map[string]int64{"not_closed": 5}
		}, []string{"churn stop-reading: 5 of 85 failed (not_closed 5)"}},
		{"churn unended", func(s *report.Soak) { s.ChurnUnended = 2 }, []string{"2 churn operations had not ended"}},
		{"fds at the limit", func(s *report.Soak) { s.End.OpenFDs = s.Start.OpenFDs + 20 }, nil},
		{"fds over the limit", func(s *report.Soak) { s.End.OpenFDs = s.Start.OpenFDs + 21 }, []string{"leak: open fds 1041 at the end, 1020 at the start (+21, limit +20)"}},
		{"goroutines at the limit", func(s *report.Soak) { s.End.Goroutines = 24 }, nil},
		{"goroutines over the limit", func(s *report.Soak) { s.End.Goroutines = 25 }, []string{"leak: goroutines 25 at the end, 14 at the start (+11, limit +10)"}},
		// 120 MiB × 1.25 + 20 MiB = 170 MiB.
		{"RSS at the limit", func(s *report.Soak) { s.End.RSSBytes = 170 * mib }, nil},
		{"RSS over the limit", func(s *report.Soak) { s.End.RSSBytes = 171 * mib }, []string{"leak: RSS 171.0 MiB at the end, over 170.0 MiB (baseline 120.0 MiB + 25 % + 20 MiB)"}},
		{"fewer fds than at the start", func(s *report.Soak) { s.End.OpenFDs = 900 }, nil},
		{"no end sample", func(s *report.Soak) { s.End = nil }, []string{"no server metrics"}},
		{"no fd metric", func(s *report.Soak) { s.Start.OpenFDs, s.End.OpenFDs = -1, -1 }, []string{"lack open fds"}},
		{"several at once", func(s *report.Soak) {
			s.Lost = 1
			s.End.Goroutines = 100
		}, []string{"1 messages lost", "leak: goroutines"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := healthySoak()
			tc.change(s)
			got := soakFailures(s, 1000)
			if len(got) != len(tc.want) {
				t.Fatalf("failures %q, want %d matching %q", got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("failure %d is %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

func TestRSSBaselineIsTheWarmedUpWorkingSet(t *testing.T) {
	s := healthySoak()
	// The start and the soak samples up to the end of the warm-up count;
	// later soak samples (a leak's growth) and drain samples do not.
	if got := rssBaseline(s.Samples, s.WarmupEndS); got != 120*mib {
		t.Fatalf("baseline %.1f MiB, want 120", got/mib)
	}
	if got := rssBaseline(s.Samples[:1], 12); got != 100*mib {
		t.Fatalf("baseline of the start sample alone: %.1f MiB, want 100", got/mib)
	}
	if got := rssBaseline(nil, 12); got != -1 {
		t.Fatalf("baseline of no samples: %v, want -1", got)
	}
}
