package main

import (
	"math"
	"strings"
	"testing"

	"github.com/shardgate/shardgate/bench/report"
)

// fanoutReport is a fanout report of subs subscribers at rate messages per
// second, every message delivered, with p99 latency p99 ms; edit tweaks it.
func fanoutReport(subs int, rate, p99 float64, edit func(*report.Report)) *report.Report {
	published := int64(8 * rate)
	r := &report.Report{
		Scenario: "fanout", Target: sysShardgate,
		Params:  report.Params{Conns: subs, Procs: 2, Channels: 1, Rate: rate, Size: 256, DurationS: 8},
		Connect: report.Connect{Attempted: int64(subs), Opened: int64(subs), PerSecond: 10000},
		Fanout: &report.Fanout{
			Channels: 1, Subscribed: int64(subs), Published: published, PublishS: 8 - 1/rate,
			Expected: published * int64(subs), Delivered: published * int64(subs), DeliveredPct: 100,
			DeliveriesPerSecond:    rate * float64(subs),
			Latency:                report.Latency{P50MS: p99 / 2, P90MS: p99 * 0.8, P99MS: p99, P999MS: p99 * 1.1, MaxMS: p99 * 1.2},
			ServerCPUPerDeliveryUS: 6,
		},
		Server: report.Server{
			Baseline: &report.ServerSample{RSSBytes: 10 << 20, Goroutines: 12},
			End:      &report.ServerSample{RSSBytes: 30 << 20, Goroutines: 12},
		},
	}
	if edit != nil {
		edit(r)
	}
	return r
}

func TestRatio(t *testing.T) {
	for _, tc := range []struct {
		name   string
		a, b   float64
		want   float64
		wantOK bool
	}{
		{"plain", 30, 10, 3, true},
		{"below one", 1, 4, 0.25, true},
		{"zero numerator", 0, 5, 0, true},
		{"zero denominator", 5, 0, 0, false},
		{"negative denominator", 5, -1, 0, false},
		{"missing numerator", math.NaN(), 5, 0, false},
		{"missing denominator", 5, math.NaN(), 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Ratio(tc.a, tc.b)
			if ok != tc.wantOK || got != tc.want {
				t.Errorf("Ratio(%g, %g) = %g, %v; want %g, %v", tc.a, tc.b, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestFloor(t *testing.T) {
	for _, tc := range []struct {
		name       string
		start, end *Floor
		want       float64
		wantOK     bool
	}{
		{"mean of both", &Floor{WriterCPUus: 4, Cores: 2}, &Floor{WriterCPUus: 6, Cores: 2}, 5, true},
		{"start only", &Floor{WriterCPUus: 4}, nil, 4, true},
		{"end only", nil, &Floor{WriterCPUus: 7}, 7, true},
		{"empty result ignored", &Floor{}, &Floor{WriterCPUus: 3}, 3, true},
		{"neither", nil, nil, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &Data{FloorStart: tc.start, FloorEnd: tc.end}
			got, ok := d.FloorUS()
			if ok != tc.wantOK || got != tc.want {
				t.Errorf("FloorUS() = %g, %v; want %g, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
	// 5 µs per write, 15,000 subscribers, 2 cores: 37.5 ms.
	if got := FloorTimeMS(5, 15000, 2); got != 37.5 {
		t.Errorf("FloorTimeMS(5, 15000, 2) = %g, want 37.5", got)
	}
	if got := FloorTimeMS(5, 1000, 0); got != 5 {
		t.Errorf("FloorTimeMS with 0 cores = %g, want the one-core figure 5", got)
	}
}

func TestSustained(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rep    *report.Report
		want   bool
		reason string // a part of the reason given
	}{
		{"all delivered fast", fanoutReport(1000, 10, 20, nil), true, ""},
		{"p99 just under the bound", fanoutReport(1000, 10, 99.9, nil), true, ""},
		{"p99 at the bound", fanoutReport(1000, 10, 100, nil), false, "p99 100 ms ≥ 100 ms"},
		{"one message missing", fanoutReport(1000, 10, 20, func(r *report.Report) {
			r.Fanout.Delivered--
		}), false, "99.99 % delivered"},
		{"a connection failed", fanoutReport(1000, 10, 20, func(r *report.Report) {
			r.Connect.Opened--
			r.Fanout.Subscribed--
			r.Fanout.Expected = r.Fanout.Published * r.Fanout.Subscribed
			r.Fanout.Delivered = r.Fanout.Expected // 100 % of fewer
		}), false, "999 of 1,000 connections opened"},
		{"a subscribe failed", fanoutReport(1000, 10, 20, func(r *report.Report) {
			r.Fanout.Subscribed--
		}), false, "999 of 1,000 subscribed"},
		{"server dropped a connection", fanoutReport(1000, 10, 20, func(r *report.Report) {
			r.Connect.Dropped = 1
		}), false, "server closed 1 connections"},
		{"publish errors", fanoutReport(1000, 10, 20, func(r *report.Report) {
			r.Fanout.PublishErrors = 3
		}), false, "3 publishes failed"},
		{"nothing published", fanoutReport(1000, 10, 20, func(r *report.Report) {
			r.Fanout.Published, r.Fanout.Expected, r.Fanout.Delivered = 0, 0, 0
		}), false, "nothing published"},
		{"not a fanout report", fanoutReport(1000, 10, 20, func(r *report.Report) { r.Fanout = nil }), false, "not a fanout report"},
		{"no report", nil, false, "no report"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, reason := Sustained(tc.rep)
			if ok != tc.want || !strings.Contains(reason, tc.reason) {
				t.Errorf("Sustained() = %v, %q; want %v, a reason containing %q", ok, reason, tc.want, tc.reason)
			}
		})
	}
}

// sweepRun is a saturation sweep run of system.
func sweepRun(system string, subs int, rate, p99 float64, edit func(*report.Report)) *Run {
	return &Run{Group: groupSweep, System: system, Scenario: "fanout", Conns: subs, Rate: rate, Status: "ok",
		Report: fanoutReport(subs, rate, p99, edit)}
}

func TestSweep(t *testing.T) {
	lost := func(r *report.Report) { r.Fanout.Delivered -= 10 }
	runs := []*Run{
		sweepRun(sysShardgate, 1000, 1, 5, nil),
		sweepRun(sysShardgate, 1000, 10, 8, nil),
		sweepRun(sysShardgate, 1000, 50, 150, nil), // too slow: stops the rate at 1,000
		sweepRun(sysShardgate, 5000, 1, 20, nil),
		sweepRun(sysShardgate, 5000, 10, 40, nil), // 50,000/s: the best
		sweepRun(sysShardgate, 5000, 50, 60, lost),
		sweepRun(sysGorillahub, 1000, 1, 5, nil),
		sweepRun(sysGorillahub, 1000, 10, 90, nil),
		sweepRun(sysGorillahub, 5000, 1, 120, nil), // none sustained at 5,000
		{Group: groupSweep, System: sysCentrifugo, Scenario: "fanout", Conns: 1000, Rate: 1, Status: "failed: not available"},
		{Group: groupMain, System: sysShardgate, Scenario: "fanout", Conns: 15000, Rate: 10, Status: "ok",
			Report: fanoutReport(15000, 10, 30, nil)}, // not part of the sweep
	}

	sg := Sweep(runs, sysShardgate)
	if len(sg.Points) != 6 {
		t.Fatalf("shardgate: %d points, want 6", len(sg.Points))
	}
	if !sg.HasMax || sg.Max.PerSecond != 50000 || sg.Max.Subs != 5000 || sg.Max.Rate != 10 {
		t.Errorf("shardgate Max = %+v (HasMax %v), want 50,000/s at 5,000 × 10/s", sg.Max, sg.HasMax)
	}
	if b := sg.Best[1000]; b.PerSecond != 10000 || b.Rate != 10 {
		t.Errorf("shardgate Best[1000] = %g/s at %g/s, want 10,000/s at 10/s", b.PerSecond, b.Rate)
	}
	if p := sg.Points[2]; p.Sustained || !strings.Contains(p.Reason, "p99") {
		t.Errorf("shardgate 1,000 × 50: sustained %v (%q), want not sustained for p99", p.Sustained, p.Reason)
	}
	if p := sg.Points[5]; p.Sustained || !strings.Contains(p.Reason, "delivered") {
		t.Errorf("shardgate 5,000 × 50: sustained %v (%q), want not sustained for lost messages", p.Sustained, p.Reason)
	}

	gh := Sweep(runs, sysGorillahub)
	if !gh.HasMax || gh.Max.PerSecond != 10000 {
		t.Errorf("gorillahub Max = %g/s, want 10,000/s", gh.Max.PerSecond)
	}
	if _, ok := gh.Best[5000]; ok {
		t.Errorf("gorillahub has a best point at 5,000 subscribers, want none sustained")
	}

	cf := Sweep(runs, sysCentrifugo)
	if cf.HasMax || len(cf.Points) != 1 || cf.Points[0].Reason != "not available" {
		t.Errorf("centrifugo = %+v, want one failed point, no max", cf)
	}

	subs, rates := SweepSubs(runs)
	if len(subs) != 2 || subs[0] != 1000 || subs[1] != 5000 {
		t.Errorf("SweepSubs subs = %v, want [1000 5000]", subs)
	}
	if len(rates) != 3 || rates[0] != 1 || rates[2] != 50 {
		t.Errorf("SweepSubs rates = %v, want [1 10 50]", rates)
	}
}

// passingData is a run in which shardgate meets every target: floor 5 µs
// on 2 cores, so the floor time for 15,000 subscribers is 37.5 ms.
func passingData() *Data {
	connect := &report.Report{
		Scenario: "connect", Target: sysShardgate,
		Params:  report.Params{Conns: 19000, Procs: 2, HoldS: 5},
		Connect: report.Connect{Attempted: 19000, Opened: 19000, PerSecond: 16000},
		Server: report.Server{
			Baseline:        &report.ServerSample{RSSBytes: 10 << 20, Goroutines: 12},
			End:             &report.ServerSample{RSSBytes: 10<<20 + 19000*600, Goroutines: 13},
			RSSPerConnBytes: 600, GoroutinesPerConn: 1.0 / 19000,
		},
	}
	fan := fanoutReport(15000, 10, 40, func(r *report.Report) { r.Fanout.ServerCPUPerDeliveryUS = 7 })
	return &Data{
		FloorStart: &Floor{WriterCPUus: 4, Cores: 2},
		FloorEnd:   &Floor{WriterCPUus: 6, Cores: 2},
		Runs: []*Run{
			{Group: groupMain, System: sysShardgate, Scenario: "connect", Conns: 19000, Status: "ok", Report: connect},
			{Group: groupMain, System: sysShardgate, Scenario: "fanout", Conns: 15000, Rate: 10, Status: "ok", Report: fan},
			sweepRun(sysShardgate, 10000, 10, 50, nil), // 100,000/s
			sweepRun(sysGorillahub, 1000, 10, 50, nil), // 10,000/s
			sweepRun(sysGorillahub, 1000, 50, 500, nil),
			sweepRun(sysCentrifugo, 5000, 5, 50, nil), // 25,000/s
		},
	}
}

func TestTargets(t *testing.T) {
	verdicts := func(d *Data) map[string]Verdict {
		m := map[string]Verdict{}
		for _, tg := range Targets(d) {
			m[tg.Name] = tg.Verdict
		}
		return m
	}
	const (
		rss     = "RSS per idle connection (connect)"
		gor     = "Goroutines, flat in the connection count (connect)"
		deliv   = "Fan-out delivered"
		cpu     = "Server CPU per delivery (fan-out)"
		p99     = "p99 latency (fan-out)"
		satGH   = "Saturation, shardgate ÷ gorillahub"
		satCF   = "Saturation, shardgate ÷ Centrifugo"
		upgrade = "Upgrades per second (connect)"
	)
	all := []string{rss, gor, deliv, cpu, p99, satGH, satCF, upgrade}

	t.Run("all pass", func(t *testing.T) {
		got := verdicts(passingData())
		if len(got) != len(all) {
			t.Fatalf("%d targets, want %d: %v", len(got), len(all), got)
		}
		for _, name := range all {
			if got[name] != Pass {
				t.Errorf("%s: %v, want pass", name, got[name])
			}
		}
	})

	for _, tc := range []struct {
		name   string
		edit   func(d *Data)
		target string
		want   Verdict
	}{
		{"RSS over 1 KiB", func(d *Data) { d.Runs[0].Report.Server.RSSPerConnBytes = 1025 }, rss, Miss},
		{"RSS fine but connections missing", func(d *Data) { d.Runs[0].Report.Connect.Opened = 18000 }, rss, Miss},
		{"goroutines over 64", func(d *Data) { d.Runs[0].Report.Server.End.Goroutines = 65 }, gor, Miss},
		{"goroutines grow with connections", func(d *Data) { d.Runs[0].Report.Server.GoroutinesPerConn = 0.01 }, gor, Miss},
		{"a message lost", func(d *Data) { d.Runs[1].Report.Fanout.Delivered-- }, deliv, Miss},
		// 7.5 µs is 1.5 × the 5 µs floor: on the limit passes, over it misses.
		{"CPU on the limit", func(d *Data) { d.Runs[1].Report.Fanout.ServerCPUPerDeliveryUS = 7.5 }, cpu, Pass},
		{"CPU over the limit", func(d *Data) { d.Runs[1].Report.Fanout.ServerCPUPerDeliveryUS = 7.6 }, cpu, Miss},
		{"CPU without a floor", func(d *Data) { d.FloorStart, d.FloorEnd = nil, nil }, cpu, NotMeasured},
		// 1.5 × 37.5 ms = 56.25 ms.
		{"p99 on the limit", func(d *Data) { d.Runs[1].Report.Fanout.Latency.P99MS = 56.25 }, p99, Pass},
		{"p99 over the limit", func(d *Data) { d.Runs[1].Report.Fanout.Latency.P99MS = 56.3 }, p99, Miss},
		{"saturation under 5 × gorillahub", func(d *Data) { d.Runs[3].Report.Fanout.DeliveriesPerSecond = 20001 }, satGH, Miss},
		{"saturation exactly 5 × gorillahub", func(d *Data) { d.Runs[3].Report.Fanout.DeliveriesPerSecond = 20000 }, satGH, Pass},
		{"gorillahub sustained nothing", func(d *Data) { d.Runs[3].Report.Fanout.Latency.P99MS = 300 }, satGH, Pass},
		{"shardgate sustained nothing", func(d *Data) { d.Runs[2].Report.Fanout.Delivered = 0 }, satGH, Miss},
		{"Centrifugo not available", func(d *Data) {
			d.Runs[5] = &Run{Group: groupSweep, System: sysCentrifugo, Scenario: "fanout", Conns: 5000, Rate: 1, Status: "failed: not available"}
		}, satCF, NotMeasured},
		{"Centrifugo not run", func(d *Data) { d.Runs = d.Runs[:5] }, satCF, NotMeasured},
		{"upgrades too slow", func(d *Data) { d.Runs[0].Report.Connect.PerSecond = 14999 }, upgrade, Miss},
		{"connect failed", func(d *Data) { d.Runs[0].Status, d.Runs[0].Report = "failed: shardbench exit 1", nil }, upgrade, NotMeasured},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := passingData()
			tc.edit(d)
			got := verdicts(d)
			if got[tc.target] != tc.want {
				t.Errorf("%s: %v, want %v", tc.target, got[tc.target], tc.want)
			}
		})
	}
}

func TestSystemsOrder(t *testing.T) {
	d := &Data{Runs: []*Run{
		{System: "other"}, {System: sysCentrifugo}, {System: sysShardgate}, {System: sysGorillahub}, {System: sysShardgate},
	}}
	got := strings.Join(d.Systems(), " ")
	if want := "shardgate gorillahub centrifugo other"; got != want {
		t.Errorf("Systems() = %q, want %q", got, want)
	}
}
