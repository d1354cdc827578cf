package main

import (
	"fmt"
	"math"
	"slices"

	"github.com/shardgate/shardgate/bench/report"
)

// The systems compared, in the order tables list them when present.
const (
	sysShardgate  = "shardgate"
	sysGorillahub = "gorillahub"
	sysCentrifugo = "centrifugo"
)

// sweepP99LimitMS is the saturation sweep's latency bound: a point counts
// only if its p99 stays under it (issue 3, "Targets").
const sweepP99LimitMS = 100

// Targets of issue 3 for shardgate.
const (
	targetRSSPerConnBytes  = 1024  // at 19,000 idle connections
	targetGoroutines       = 64    // at 19,000 idle connections
	targetFloorFactor      = 1.5   // CPU per delivery and p99, against the floor
	targetSatVsGorillahub  = 5     // saturation, shardgate ÷ gorillahub
	targetSatVsCentrifugo  = 3     // saturation, shardgate ÷ Centrifugo
	targetUpgradesPerSec   = 15000 // connect
	flatGoroutinesPerConn  = 0.001 // "flat in the connection count": under 1 per 1,000
	fullDeliveryPercentage = 100
)

// Systems returns the systems of d's runs: the known ones in their
// canonical order, then any others in manifest order.
func (d *Data) Systems() []string {
	var seen []string
	for _, r := range d.Runs {
		if !slices.Contains(seen, r.System) {
			seen = append(seen, r.System)
		}
	}
	var out []string
	for _, s := range []string{sysShardgate, sysGorillahub, sysCentrifugo} {
		if slices.Contains(seen, s) {
			out = append(out, s)
		}
	}
	for _, s := range seen {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// Find returns the last run of group, system and scenario, or nil.
func (d *Data) Find(group, system, scenario string) *Run {
	var found *Run
	for _, r := range d.Runs {
		if r.Group == group && r.System == system && r.Scenario == scenario {
			found = r
		}
	}
	return found
}

// FloorUS is the reference floor: the CPU time of one loopback write(2)
// of a frame, in µs, the mean of the runs at the start and the end of the
// comparison (the cost moves with the host's load). ok is false when
// neither floor run left a result.
func (d *Data) FloorUS() (us float64, ok bool) {
	var sum float64
	var n int
	for _, f := range []*Floor{d.FloorStart, d.FloorEnd} {
		if f != nil && f.WriterCPUus > 0 {
			sum += f.WriterCPUus
			n++
		}
	}
	if n == 0 {
		return 0, false
	}
	return sum / float64(n), true
}

// Cores is the number of cores the floor time is spread over.
func (d *Data) Cores() int {
	for _, f := range []*Floor{d.FloorStart, d.FloorEnd} {
		if f != nil && f.Cores > 0 {
			return f.Cores
		}
	}
	if d.Machine != nil && d.Machine.CPUs > 0 {
		return d.Machine.CPUs
	}
	return 1
}

// FloorTimeMS is the least time, in milliseconds, to write one frame to
// each of subscribers connections when every one of cores writes at the
// floor cost of floorUS µs per write.
func FloorTimeMS(floorUS float64, subscribers, cores int) float64 {
	if cores < 1 {
		cores = 1
	}
	return floorUS * float64(subscribers) / float64(cores) / 1000
}

// Ratio is a ÷ b; ok is false when either side is missing (NaN) or b is
// not positive.
func Ratio(a, b float64) (r float64, ok bool) {
	if math.IsNaN(a) || math.IsNaN(b) || b <= 0 {
		return 0, false
	}
	return a / b, true
}

// Sustained applies the saturation sweep's rule to one fanout report: the
// point counts when every connection opened and subscribed and stayed,
// every publish was accepted, 100 % of the expected messages arrived and
// p99 latency is under 100 ms. reason says why not.
func Sustained(rep *report.Report) (ok bool, reason string) {
	switch {
	case rep == nil:
		return false, "no report"
	case rep.Fanout == nil:
		return false, "not a fanout report"
	}
	f := rep.Fanout
	want := int64(rep.Params.Conns)
	switch {
	case rep.Connect.Opened < want:
		return false, fmt.Sprintf("%s of %s connections opened", count(rep.Connect.Opened), count(want))
	case f.Subscribed < want:
		return false, fmt.Sprintf("%s of %s subscribed", count(f.Subscribed), count(want))
	case rep.Connect.Dropped > 0:
		return false, fmt.Sprintf("server closed %s connections", count(rep.Connect.Dropped))
	case f.Published == 0:
		return false, "nothing published"
	case f.PublishErrors > 0:
		return false, fmt.Sprintf("%s publishes failed", count(f.PublishErrors))
	case f.Delivered < f.Expected:
		return false, fmt.Sprintf("%s %% delivered", pct(100*float64(f.Delivered)/float64(f.Expected)))
	case f.Latency.P99MS >= sweepP99LimitMS:
		return false, fmt.Sprintf("p99 %s ≥ %d ms", ms(f.Latency.P99MS), sweepP99LimitMS)
	}
	return true, ""
}

// SweepPoint is one point of the saturation sweep.
type SweepPoint struct {
	Subs      int
	Rate      float64
	Run       *Run
	Sustained bool
	Reason    string  // why the point does not count
	PerSecond float64 // deliveries per second measured
}

// SweepResult is one system's saturation sweep.
type SweepResult struct {
	System string
	Points []SweepPoint
	// Best holds, per subscriber count, the sustained point with the most
	// deliveries per second; a count without one is absent.
	Best map[int]SweepPoint
	// Max is the best of Best: the system's saturation figure. HasMax is
	// false when no point was sustained.
	Max    SweepPoint
	HasMax bool
}

// Sweep collects system's saturation sweep from runs.
func Sweep(runs []*Run, system string) SweepResult {
	res := SweepResult{System: system, Best: map[int]SweepPoint{}}
	for _, r := range runs {
		if r.Group != groupSweep || r.System != system {
			continue
		}
		p := SweepPoint{Subs: r.Conns, Rate: r.Rate, Run: r}
		if fail := r.Failure(); fail != "" {
			p.Reason = fail
		} else {
			p.Sustained, p.Reason = Sustained(r.Report)
			p.PerSecond = r.Report.Fanout.DeliveriesPerSecond
		}
		res.Points = append(res.Points, p)
		if !p.Sustained {
			continue
		}
		if b, ok := res.Best[p.Subs]; !ok || p.PerSecond > b.PerSecond {
			res.Best[p.Subs] = p
		}
		if !res.HasMax || p.PerSecond > res.Max.PerSecond {
			res.Max, res.HasMax = p, true
		}
	}
	return res
}

// SweepSubs returns the subscriber counts and rates of the sweep runs, in
// ascending order.
func SweepSubs(runs []*Run) (subs []int, rates []float64) {
	for _, r := range runs {
		if r.Group != groupSweep {
			continue
		}
		if !slices.Contains(subs, r.Conns) {
			subs = append(subs, r.Conns)
		}
		if !slices.Contains(rates, r.Rate) {
			rates = append(rates, r.Rate)
		}
	}
	slices.Sort(subs)
	slices.Sort(rates)
	return subs, rates
}

// Verdict is a target's outcome.
type Verdict int

const (
	// NotMeasured: the run that would measure the target failed or did not
	// take place.
	NotMeasured Verdict = iota
	Pass
	Miss
)

func (v Verdict) String() string {
	switch v {
	case Pass:
		return "pass"
	case Miss:
		return "**miss**"
	}
	return "not measured"
}

func verdict(ok bool) Verdict {
	if ok {
		return Pass
	}
	return Miss
}

// Target is one of issue 3's targets, read against this run.
type Target struct {
	Name     string
	Limit    string
	Measured string
	Verdict  Verdict
}

// Targets reads shardgate's figures in d against issue 3's targets.
func Targets(d *Data) []Target {
	var out []Target
	add := func(name, limit string, measure func() (string, Verdict)) {
		t := Target{Name: name, Limit: limit, Measured: "—"}
		t.Measured, t.Verdict = measure()
		out = append(out, t)
	}
	conn := d.Find(groupMain, sysShardgate, "connect")
	fan := d.Find(groupMain, sysShardgate, "fanout")
	floorUS, haveFloor := d.FloorUS()
	notRun := func(r *Run) (string, Verdict) {
		if r == nil {
			return "not run", NotMeasured
		}
		return "failed: " + r.Failure(), NotMeasured
	}

	add("RSS per idle connection (connect)", fmt.Sprintf("≤ %s", bytesIEC(targetRSSPerConnBytes)), func() (string, Verdict) {
		if conn == nil || !conn.OK() {
			return notRun(conn)
		}
		rep := conn.Report
		all := rep.Connect.Opened >= int64(rep.Params.Conns)
		m := fmt.Sprintf("%s at %s open", bytesIEC(rep.Server.RSSPerConnBytes), count(rep.Connect.Opened))
		if !all {
			m += fmt.Sprintf(" of %s", count(int64(rep.Params.Conns)))
		}
		return m, verdict(all && rep.Server.RSSPerConnBytes <= targetRSSPerConnBytes)
	})
	add("Goroutines, flat in the connection count (connect)", fmt.Sprintf("≤ %d", targetGoroutines), func() (string, Verdict) {
		if conn == nil || !conn.OK() {
			return notRun(conn)
		}
		s := conn.Report.Server
		if s.Baseline == nil || s.End == nil {
			return "no metrics", NotMeasured
		}
		m := fmt.Sprintf("%.0f → %.0f at %s open (%.4f per connection)", s.Baseline.Goroutines, s.End.Goroutines,
			count(conn.Report.Connect.Opened), s.GoroutinesPerConn)
		return m, verdict(s.End.Goroutines <= targetGoroutines && s.GoroutinesPerConn < flatGoroutinesPerConn)
	})
	add("Fan-out delivered", "100 %", func() (string, Verdict) {
		if fan == nil || !fan.OK() || fan.Report.Fanout == nil {
			return notRun(fan)
		}
		f := fan.Report.Fanout
		return fmt.Sprintf("%s / %s (%s %%)", count(f.Delivered), count(f.Expected), pct(f.DeliveredPct)),
			verdict(f.Expected > 0 && f.Delivered >= f.Expected && f.Subscribed >= int64(fan.Report.Params.Conns))
	})
	add("Server CPU per delivery (fan-out)", fmt.Sprintf("≤ %.1f × floor", targetFloorFactor), func() (string, Verdict) {
		if fan == nil || !fan.OK() || fan.Report.Fanout == nil {
			return notRun(fan)
		}
		cpu := fan.Report.Fanout.ServerCPUPerDeliveryUS
		switch {
		case cpu <= 0:
			return "server CPU time too small to measure", NotMeasured
		case !haveFloor:
			return fmt.Sprintf("%s µs (floor not measured)", us(cpu)), NotMeasured
		}
		r := cpu / floorUS
		return fmt.Sprintf("%s µs = %s × floor (%s µs)", us(cpu), factor(r), us(floorUS)), verdict(r <= targetFloorFactor)
	})
	add("p99 latency (fan-out)", fmt.Sprintf("≤ %.1f × floor time", targetFloorFactor), func() (string, Verdict) {
		if fan == nil || !fan.OK() || fan.Report.Fanout == nil {
			return notRun(fan)
		}
		f := fan.Report.Fanout
		if !haveFloor {
			return ms(f.Latency.P99MS) + " (floor not measured)", NotMeasured
		}
		ft := FloorTimeMS(floorUS, int(f.Subscribed), d.Cores())
		r := f.Latency.P99MS / ft
		return fmt.Sprintf("%s = %s × floor time (%s for %s subscribers on %d cores)",
			ms(f.Latency.P99MS), factor(r), ms(ft), count(f.Subscribed), d.Cores()), verdict(r <= targetFloorFactor)
	})
	sg := Sweep(d.Runs, sysShardgate)
	for _, peer := range []struct {
		system string
		want   float64
	}{{sysGorillahub, targetSatVsGorillahub}, {sysCentrifugo, targetSatVsCentrifugo}} {
		add("Saturation, shardgate ÷ "+displayName(peer.system), fmt.Sprintf("≥ %g ×", peer.want), func() (string, Verdict) {
			return satRatio(sg, Sweep(d.Runs, peer.system), peer.want)
		})
	}
	add("Upgrades per second (connect)", fmt.Sprintf("≥ %s", count(targetUpgradesPerSec)), func() (string, Verdict) {
		if conn == nil || !conn.OK() {
			return notRun(conn)
		}
		ps := conn.Report.Connect.PerSecond
		return fmt.Sprintf("%s/s", count(int64(ps))), verdict(ps >= targetUpgradesPerSec)
	})
	return out
}

// satRatio compares shardgate's saturation figure with a peer's: a peer
// with runs but no sustained point loses to any sustained shardgate point.
func satRatio(sg, peer SweepResult, want float64) (string, Verdict) {
	switch {
	case len(sg.Points) == 0:
		return "sweep not run", NotMeasured
	case len(peer.Points) == 0:
		return displayName(peer.System) + " not run", NotMeasured
	case !sg.HasMax:
		return "shardgate sustained no point", Miss
	case !peer.HasMax:
		if allFailed(peer.Points) {
			return displayName(peer.System) + " runs failed: " + peer.Points[0].Reason, NotMeasured
		}
		return fmt.Sprintf("%s/s against none sustained", count(int64(sg.Max.PerSecond))), Pass
	}
	r := sg.Max.PerSecond / peer.Max.PerSecond
	return fmt.Sprintf("%s = %s/s ÷ %s/s", factor(r), count(int64(sg.Max.PerSecond)), count(int64(peer.Max.PerSecond))),
		verdict(r >= want)
}

// allFailed reports whether no point of a sweep produced figures (the
// system could not be run, as opposed to not keeping up).
func allFailed(points []SweepPoint) bool {
	for _, p := range points {
		if p.Run.Failure() == "" {
			return false
		}
	}
	return true
}
