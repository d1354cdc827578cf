package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shardgate/shardgate/bench/report"
)

// connectReport is a connect report of conns connections at rssPerConn
// bytes each, with goroutines at the end.
func connectReport(system string, conns int, rssPerConn, goroutines, perSecond float64) *report.Report {
	return &report.Report{
		Scenario: "connect", Target: system,
		Params:  report.Params{Conns: conns, Procs: 2, Inflight: 1000, HoldS: 5},
		Connect: report.Connect{Attempted: int64(conns), Opened: int64(conns), PerSecond: perSecond, Handshake: report.Latency{P99MS: 900}},
		Server: report.Server{
			Baseline:        &report.ServerSample{RSSBytes: 10 << 20, Goroutines: 12},
			End:             &report.ServerSample{RSSBytes: 10<<20 + rssPerConn*float64(conns), Goroutines: goroutines},
			RSSPerConnBytes: rssPerConn, GoroutinesPerConn: (goroutines - 12) / float64(conns),
		},
	}
}

func echoReport(system string, perSecond float64) *report.Report {
	return &report.Report{
		Scenario: "echo", Target: system,
		Params:  report.Params{Conns: 1000, Procs: 1, Size: 64, DurationS: 10},
		Connect: report.Connect{Attempted: 1000, Opened: 1000},
		Echo:    &report.Echo{RoundTrips: int64(perSecond * 10), Seconds: 10, PerSecond: perSecond, Latency: report.Latency{P50MS: 2, P99MS: 9}},
	}
}

// sampleData is a whole comparison: three systems, both sweeps, floors.
func sampleData() *Data {
	d := &Data{
		Info: []Info{
			{"date", "2026-11-25"}, {"invocation", "scripts/compare.sh"}, {"shardgate commit", "abc1234"},
			{"floor command", "bin/floor -json raw/floor-{start,end}.json"}, {"wall time", "24 min 3 s (120 runs)"},
		},
		Machine:    &Machine{Hostname: "vm", CPUs: 2, CPUModel: "AMD EPYC", Kernel: "Linux 6.18", GoVersion: "go1.26.8", MemTotalBytes: 24 << 30, OpenFileLimit: 20000},
		FloorStart: &Floor{WriterCPUus: 4.5, ProcessCPUus: 7, Cores: 2},
		FloorEnd:   &Floor{WriterCPUus: 5.5, ProcessCPUus: 8, Cores: 2},
		Notes:      "Profiled the fan-out: most time is in `writev`.",
	}
	add := func(r *Run) {
		r.ServerCommand = "bin/" + r.System
		r.BenchCommand = fmt.Sprintf("bin/shardbench %s -target %s -conns %d", r.Scenario, r.System, r.Conns)
		d.Runs = append(d.Runs, r)
	}
	for i, sys := range []string{sysShardgate, sysGorillahub, sysCentrifugo} {
		f := float64(i + 1)
		add(&Run{Group: groupMain, System: sys, Scenario: "connect", Conns: 19000, Status: "ok",
			Report: connectReport(sys, 19000, 600*f*f, 13+19000*2*float64(min(i, 1)), 16000/f)})
		add(&Run{Group: groupMain, System: sys, Scenario: "fanout", Conns: 15000, Rate: 10, Status: "ok",
			Report: fanoutReport(15000, 10, 30*f, func(r *report.Report) {
				r.Target = sys
				r.Fanout.ServerCPUPerDeliveryUS = 6 * f
				switch sys {
				case sysShardgate:
					r.HostCPU = &report.HostCPU{BusyPct: 97}
					r.Warnings = []string{"the machine was 97 % busy in the measured phase: latency includes waiting for a CPU"}
				case sysGorillahub:
					r.HostCPU = &report.HostCPU{BusyPct: 99}
					r.Warnings = []string{"3 of 4 messages not delivered within -wait 10s",
						"the machine was 99 % busy in the measured phase: latency includes waiting for a CPU"}
				}
			})})
		add(&Run{Group: groupMain, System: sys, Scenario: "echo", Conns: 1000, Status: "ok", Report: echoReport(sys, 40000/f)})
		for _, subs := range []int{1000, 5000, 10000, 19000} {
			for _, rate := range []float64{1, 10, 50, 100} {
				p99 := float64(subs) * rate * f / 5000 // slower with load, and per system
				r := sweepRun(sys, subs, rate, p99, nil)
				add(r)
				if p99 >= sweepP99LimitMS {
					break
				}
			}
		}
	}
	for _, shards := range []int{1, 2, 4, 8, 16} {
		add(&Run{Group: groupShards, System: sysShardgate, Scenario: "fanout", Shards: shards, Conns: 15000, Rate: 10, Status: "ok",
			Report: fanoutReport(15000, 10, 30+float64(shards), nil)})
		add(&Run{Group: groupShards, System: sysShardgate, Scenario: "connect", Shards: shards, Conns: 19000, Status: "ok",
			Report: connectReport(sysShardgate, 19000, 600+float64(shards)*10, 12+float64(shards), 16000)})
	}
	return d
}

// failedData is a comparison in which every run failed.
func failedData() *Data {
	d := &Data{}
	for _, sys := range []string{sysShardgate, sysGorillahub, sysCentrifugo} {
		for _, sc := range []string{"connect", "fanout", "echo"} {
			d.Runs = append(d.Runs, &Run{Group: groupMain, System: sys, Scenario: sc, Status: "failed: " + sys + " exited at start"})
		}
		d.Runs = append(d.Runs, &Run{Group: groupSweep, System: sys, Scenario: "fanout", Conns: 1000, Rate: 1, Status: "failed: timed out"})
	}
	d.Runs = append(d.Runs, &Run{Group: groupShards, System: sysShardgate, Scenario: "fanout", Shards: 1, Conns: 15000, Status: "failed: x"})
	return d
}

// writeRunDir stores d the way scripts/compare.sh does and returns the
// directory.
func writeRunDir(t *testing.T, d *Data) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "2026-11-25-vm")
	if err := os.MkdirAll(filepath.Join(dir, "raw"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeJSON := func(rel string, v any) {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, rel), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var m strings.Builder
	for _, kv := range d.Info {
		fmt.Fprintf(&m, "# %s: %s\n", kv.Key, kv.Value)
	}
	m.WriteString(strings.Join(manifestColumns, "\t") + "\n")
	for i, r := range d.Runs {
		rel := ""
		if r.Report != nil {
			rel = fmt.Sprintf("raw/run-%d.json", i)
			writeJSON(rel, r.Report)
		}
		fmt.Fprintf(&m, "%s\t%s\t%s\t%d\t%d\t%g\t%s\t%s\t%s\t%s\n",
			r.Group, r.System, r.Scenario, r.Shards, r.Conns, r.Rate, r.Status, rel, r.ServerCommand, r.BenchCommand)
	}
	if err := os.WriteFile(filepath.Join(dir, manifestFile), []byte(m.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if d.FloorStart != nil {
		writeJSON(floorStartFile, d.FloorStart)
	}
	if d.FloorEnd != nil {
		writeJSON(floorEndFile, d.FloorEnd)
	}
	if d.Machine != nil {
		writeJSON(machineFile, d.Machine)
	}
	if d.Notes != "" {
		if err := os.WriteFile(filepath.Join(dir, notesFile), []byte(d.Notes), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestReportEndToEnd(t *testing.T) {
	dir := writeRunDir(t, sampleData())
	var stdout, stderr bytes.Buffer
	if code := run([]string{"report", "-dir", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("compare report: exit %d, stderr %s", code, stderr.String())
	}
	md, err := os.ReadFile(dir + ".md")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# shardgate compared with gorillahub and Centrifugo — 2026-11-25, host vm",
		"| CPU | 2 × AMD EPYC (nproc 2) |",
		"| Memory | 24 GiB |",
		"| CPU per write(2), writing thread | 4.5 µs | 5.5 µs | 5 µs |",
		// 5 µs × 15,000 / 2 cores
		"| floor time, one frame to 15,000 subscribers on 2 cores | 33.8 ms | 41.2 ms | 37.5 ms |",
		"| RSS per idle connection (connect) | ≤ 1 KiB | 600 B at 19,000 open | pass |",
		"| Server CPU per delivery (fan-out) | ≤ 1.5 × floor | 6 µs = 1.2 × floor (5 µs) | pass |",
		"## Notes\n\nProfiled the fan-out",
		"| RSS per connection | lower | 0.25 | 0.111 |",
		"![fan-out latency percentiles per system](2026-11-25-vm/latency.svg)",
		"| shardgate | 15,000 | 10 (0) | 100 % | 150,000 | 15 ms | 24 ms | 30 ms |",
		"| 1,000 subscribers | 100,000/s (at 100/s)† |",
		"† at the sweep's highest rate, 100/s",
		"- gorillahub fanout: 3 of 4 messages not delivered",
		"- The machine had next to no idle CPU in the measured phase of 2 runs, so their latency includes waiting for a CPU " +
			"(server and load generator share the cores): shardgate fanout 97 %, gorillahub fanout 99 %.",
		"| 19,000 | 1 | ✓ 19,000/s, p99 3.8 ms |",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("results file lacks %q", want)
		}
	}
	if !strings.Contains(string(md), "✗ p99") {
		t.Errorf("results file does not say why a sweep point failed")
	}
	if !strings.Contains(string(md), "bin/shardbench fanout -target centrifugo -conns 15000") {
		t.Errorf("results file lacks the commands run")
	}
	for _, c := range []string{"latency.svg", "memory.svg", "saturation.svg", "shards.svg"} {
		b, err := os.ReadFile(filepath.Join(dir, c))
		if err != nil {
			t.Fatal(err)
		}
		wellFormed(t, c, b)
	}
}

func TestReportFailures(t *testing.T) {
	dir := writeRunDir(t, failedData())
	var stdout, stderr bytes.Buffer
	if code := run([]string{"report", "-dir", dir, "-md", filepath.Join(dir, "out.md")}, &stdout, &stderr); code != 0 {
		t.Fatalf("compare report: exit %d, stderr %s", code, stderr.String())
	}
	md, err := os.ReadFile(filepath.Join(dir, "out.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| gorillahub | failed: gorillahub exited at start |",
		"- Centrifugo connect: **failed**: centrifugo exited at start",
		"| Upgrades per second (connect) | ≥ 15,000 | failed: shardgate exited at start | not measured |",
		"| Saturation, shardgate ÷ gorillahub | ≥ 5 × | shardgate sustained no point | **miss** |",
		"| 1 | failed: x |",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("results file lacks %q", want)
		}
	}
}

func TestParseManifest(t *testing.T) {
	header := strings.Join(manifestColumns, "\t") + "\n"
	good := "# date: 2026-11-25\n# invocation: QUICK=1 scripts/compare.sh\n" + header +
		"main\tshardgate\tconnect\t-\t19000\t-\tok\traw/a.json\tbin/shardgate\tbin/shardbench connect -conns 19000\n" +
		"sweep\tgorillahub\tfanout\t-\t5000\t50\tfailed: shardbench exit 1: x\t\tbin/gorillahub\tbin/shardbench fanout\n" +
		"shards\tshardgate\tfanout\t16\t15000\t10\tok\traw/b.json\tbin/shardgate -shards 16\tbin/shardbench fanout\n" +
		"# wall time: 3 min 2 s\n"
	info, runs, err := ParseManifest(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(info) != 3 || info[1].Key != "invocation" || info[1].Value != "QUICK=1 scripts/compare.sh" || info[2].Key != "wall time" {
		t.Errorf("info = %+v", info)
	}
	if len(runs) != 3 {
		t.Fatalf("%d runs, want 3", len(runs))
	}
	if r := runs[0]; r.Shards != 0 || r.Conns != 19000 || r.Rate != 0 || r.ReportPath != "raw/a.json" || r.BenchCommand != "bin/shardbench connect -conns 19000" {
		t.Errorf("run 0 = %+v", r)
	}
	if r := runs[1]; r.Failure() != "shardbench exit 1: x" || r.Rate != 50 {
		t.Errorf("run 1 = %+v, failure %q", r, r.Failure())
	}
	if r := runs[2]; r.Shards != 16 || r.ServerCommand != "bin/shardgate -shards 16" {
		t.Errorf("run 2 = %+v", r)
	}

	for _, tc := range []struct{ name, text, want string }{
		{"no header", "# a: b\n", "no header line"},
		{"wrong header", "group\tsystem\n", "header"},
		{"short line", header + "main\tshardgate\n", "line 2: 2 columns"},
		{"bad conns", header + "main\tshardgate\tconnect\t-\tmany\t-\tok\t\t\t\n", "conns"},
		{"bad rate", header + "main\tshardgate\tfanout\t-\t1\tfast\tok\t\t\t\n", "rate"},
		{"no status", header + "main\tshardgate\tfanout\t-\t1\t1\t\t\t\t\n", "must be set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ParseManifest(strings.NewReader(tc.text))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestLoadMissingReport(t *testing.T) {
	d := sampleData()
	dir := writeRunDir(t, d)
	if err := os.Remove(filepath.Join(dir, "raw", "run-0.json")); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if r := got.Runs[0]; r.Report != nil || r.OK() || !strings.Contains(r.Failure(), "no such file") {
		t.Errorf("run with a missing report: OK %v, failure %q", r.OK(), r.Failure())
	}
	if got.FloorStart == nil || got.FloorStart.WriterCPUus != 4.5 || got.Machine == nil || got.Machine.Hostname != "vm" {
		t.Errorf("floor %+v, machine %+v", got.FloorStart, got.Machine)
	}
	if _, err := Load(t.TempDir()); err == nil {
		t.Errorf("Load of a directory without a manifest: no error")
	}
}

func TestCommandLine(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, r *report.Report) string {
		t.Helper()
		path := filepath.Join(dir, name)
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := write("good.json", fanoutReport(1000, 10, 20, nil))
	slow := write("slow.json", fanoutReport(1000, 10, 150, nil))
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		output string
	}{
		{"no command", nil, 2, "usage"},
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
		{"check sustained", []string{"check", good}, 0, "sustained"},
		{"check not sustained", []string{"check", slow}, 1, "not sustained: p99 150 ms ≥ 100 ms"},
		{"check missing file", []string{"check", filepath.Join(dir, "none.json")}, 1, "no such file"},
		{"check without a file", []string{"check"}, 2, "usage"},
		{"report without -dir", []string{"report"}, 2, "usage"},
		{"report bad flag", []string{"report", "-bogus"}, 2, "bogus"},
		{"report of a directory without manifest", []string{"report", "-dir", dir}, 1, "manifest.tsv"},
		{"machine", []string{"machine", filepath.Join(dir, "m.json")}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, &stdout, &stderr)
			out := stdout.String() + stderr.String()
			if code != tc.code || !strings.Contains(out, tc.output) {
				t.Errorf("exit %d, output %q; want exit %d, output containing %q", code, out, tc.code, tc.output)
			}
		})
	}
	var m Machine
	if err := readJSON(filepath.Join(dir, "m.json"), &m); err != nil {
		t.Fatal(err)
	}
	if m.CPUs < 1 || m.GoVersion == "" || m.Kernel == "" {
		t.Errorf("machine description %+v lacks cores, Go version or kernel", m)
	}
}
