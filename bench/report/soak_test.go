package report

import (
	"bytes"
	"encoding/json"
	"testing"
)

// sampleSoak is a soak report with every section filled in and a verdict
// that failed twice.
func sampleSoak() *Report {
	r := sample()
	r.Scenario, r.Fanout, r.Compression = "soak", nil, nil
	r.Command = "shardbench soak -conns 15000 -duration 30m -churn 20 -procs 2"
	r.Params = Params{Conns: 15000, Procs: 2, SourceIPs: []string{"127.0.0.2-127.0.0.9"}, Inflight: 1000,
		Channels: 4, Rate: 10, Size: 64, DurationS: 1800}
	start := Resources{AtS: 0, Phase: "start", OpenFDs: 15022, Goroutines: 14, RSSBytes: 31 << 20, Connections: 15000}
	end := Resources{AtS: 1812.5, Phase: "end", OpenFDs: 15051, Goroutines: 15, RSSBytes: 40 << 20, Connections: 15000}
	r.Soak = &Soak{
		Channels: 4, Subscribed: 15000, Published: 18000, BallastPublished: 90000,
		Expected: 67500000, Delivered: 67499990, DeliveredPct: 99.999, Lost: 10,
		Latency:        r.Connect.Handshake,
		ChurnPerSecond: 20, HoldS: 2, StallS: 10,
		Churn: []ChurnOps{
			{Behaviour: "clean-close", Started: 5143, Done: 5143, Outcomes: map[string]int64{"closed": 5143}},
			{Behaviour: "stop-reading", Started: 5142, Done: 5140, Failed: 2,
				Outcomes: map[string]int64{"closed_1008": 5100, "eof": 40}, Failures: map[string]int64{"not_closed": 2}},
		},
		SampleEveryS: 10, SettleS: 15,
		Samples: []Resources{start, {AtS: 10, Phase: "soak", OpenFDs: 15240, Goroutines: 16, RSSBytes: 38 << 20, Connections: 15150},
			{AtS: 1800, Phase: "drain", OpenFDs: -1, Goroutines: 16, RSSBytes: 41 << 20, Connections: 15090}, end},
		Start: &start, End: &end, RSSBaselineBytes: 38 << 20, WarmupEndS: 360,
		Limits:   SoakLimits{OpenFDs: 20, Goroutines: 10, RSSPct: 25, RSSSlackBytes: 20 << 20},
		Failures: []string{"10 messages lost", "leak: open fds 15051 at the end, 15022 at the start (+29, limit +20)"},
	}
	r.Warnings = nil
	return r
}

func TestSoakTableGolden(t *testing.T) {
	var b bytes.Buffer
	if err := WriteTable(&b, sampleSoak()); err != nil {
		t.Fatal(err)
	}
	golden(t, "soak.txt", b.Bytes())

	r := sampleSoak()
	r.Soak.Pass, r.Soak.Failures = true, nil
	b.Reset()
	if err := WriteTable(&b, r); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\nPASS: no message lost, duplicated or reordered; churn as expected; no leak\n")) {
		t.Fatalf("a passing soak does not end with PASS:\n%s", b.String())
	}
}

func TestSoakJSONGolden(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, sampleSoak()); err != nil {
		t.Fatal(err)
	}
	golden(t, "soak.json", b.Bytes())
	var m struct{ Soak map[string]any }
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"lost", "duplicated", "reordered", "churn", "samples", "pass", "failures"} {
		if _, ok := m.Soak[k]; !ok {
			t.Errorf("JSON soak section has no %q", k)
		}
	}
}

func TestFailLines(t *testing.T) {
	if got, want := FailLines(sampleSoak().Soak), "FAIL: 10 messages lost\nFAIL: leak: open fds 15051 at the end, 15022 at the start (+29, limit +20)\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
