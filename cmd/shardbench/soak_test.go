package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shardgate/shardgate/bench/loadgen"
	"github.com/shardgate/shardgate/bench/report"
)

// A short soak against a real gateway: every steady subscriber gets the
// whole stream, each churn behaviour gets the answer the contract
// promises, and the gateway ends where it started.
func TestSoakPassesAgainstTheGateway(t *testing.T) {
	s := startShardgate(t)
	rep := bench(t, s, "soak", "-conns", "300", "-procs", "2", "-channels", "3", "-rate", "30", "-duration", "3s",
		"-churn", "35", "-churn-hold", "300ms", "-stall", "5s", "-server-timeout", "8s", "-ping-flood", "200",
		"-ballast-rate", "100", "-ballast-size", "60000", "-sample-interval", "500ms", "-settle", "8s")
	sk := rep.Soak
	if sk == nil {
		t.Fatal("no soak section in the report")
	}
	if sk.Subscribed != 300 || sk.Published != 90 || sk.PublishErrors+sk.PublishUnknown != 0 {
		t.Fatalf("stream: %+v", sk)
	}
	if sk.Expected != 90*100 || sk.Delivered != sk.Expected || sk.Lost != 0 || sk.Duplicated != 0 || sk.Reordered != 0 || sk.SteadyDropped != 0 {
		t.Fatalf("delivered %d of %d: lost %d, duplicated %d, reordered %d, dropped %d",
			sk.Delivered, sk.Expected, sk.Lost, sk.Duplicated, sk.Reordered, sk.SteadyDropped)
	}
	if sk.BallastPublished == 0 {
		t.Fatal("no ballast published")
	}
	seen := map[string]bool{}
	for _, c := range sk.Churn {
		seen[c.Behaviour] = true
		if c.Started < 5 || c.Done != c.Started || c.Failed != 0 {
			t.Errorf("churn %s: %+v", c.Behaviour, c)
		}
	}
	for _, b := range loadgen.Behaviours() {
		if !seen[b] {
			t.Errorf("churn %s never ran", b)
		}
	}
	if n := len(sk.Samples); n < 6 || sk.Samples[0].Phase != "start" || sk.Samples[n-1].Phase != "end" {
		t.Fatalf("samples: %+v", sk.Samples)
	}
	if sk.Start.Connections != 300 || sk.End.Connections != 300 || sk.Start.OpenFDs <= 0 || sk.End.Goroutines <= 0 {
		t.Fatalf("start %+v, end %+v", sk.Start, sk.End)
	}
	if !sk.Pass || len(sk.Failures) > 0 {
		t.Fatalf("verdict FAIL: %q", sk.Failures)
	}
}

// Stopped readers that read again before the gateway's queue for them can
// fill are never closed as slow consumers: the soak must say FAIL and exit
// with status 3.
func TestSoakFailsWhenTheServerDoesNotAnswer(t *testing.T) {
	s := startShardgate(t)
	path := filepath.Join(t.TempDir(), "report.json")
	args := []string{"soak", "-conns", "20", "-procs", "1", "-channels", "1", "-rate", "20", "-duration", "1s",
		"-churn", "5", "-behaviours", "stop-reading", "-stall", "50ms", "-server-timeout", "500ms",
		"-sample-interval", "250ms", "-settle", "2s",
		"-target", s.target, "-url", s.url, "-admin-url", s.adminURL, "-json", path}
	var stdout, stderr bytes.Buffer
	if code := run(args, &stdout, &stderr); code != exitSoakFailed {
		t.Fatalf("exit %d, want %d\nstderr: %s\nstdout: %s", code, exitSoakFailed, stderr.String(), stdout.String())
	}
	t.Logf("shardbench %v:\n%s", args, stdout.String())
	if !strings.Contains(stdout.String(), "FAIL: churn stop-reading: ") {
		t.Fatalf("no FAIL line for the stopped readers:\n%s", stdout.String())
	}
	rep := readReport(t, path)
	if sk := rep.Soak; sk == nil || sk.Pass || sk.Lost != 0 || len(sk.Churn) != 1 || sk.Churn[0].Failures["not_closed"] == 0 {
		t.Fatalf("soak: %+v", rep.Soak)
	}
}

func TestVerdictExitStatus(t *testing.T) {
	cases := []struct {
		name       string
		rep        *report.Report
		jsonPath   string
		code       int
		wantStderr string
	}{
		{"not a soak", &report.Report{Scenario: "fanout"}, "", 0, ""},
		{"pass", &report.Report{Soak: &report.Soak{Pass: true}}, "", 0, ""},
		{"fail, table on stdout", &report.Report{Soak: &report.Soak{Failures: []string{"3 messages lost"}}}, "", exitSoakFailed, ""},
		{"fail, JSON on stdout", &report.Report{Soak: &report.Soak{Failures: []string{"3 messages lost", "leak: x"}}}, "-", exitSoakFailed,
			"FAIL: 3 messages lost\nFAIL: leak: x\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := verdict(tc.rep, tc.jsonPath, &stderr); code != tc.code || stderr.String() != tc.wantStderr {
				t.Fatalf("exit %d, stderr %q; want %d, %q", code, stderr.String(), tc.code, tc.wantStderr)
			}
		})
	}
}
