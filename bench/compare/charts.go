package main

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// Chart is one SVG file of the results.
type Chart struct {
	File string // name inside the run directory
	Alt  string // the markdown image's alt text
	SVG  []byte
}

// Charts draws the results' charts from d.
func Charts(d *Data) []Chart {
	systems := d.Systems()
	floorUS, haveFloor := d.FloorUS()
	return []Chart{
		{File: "latency.svg", Alt: "fan-out latency percentiles per system", SVG: latencyChart(d, systems, floorUS, haveFloor)},
		{File: "memory.svg", Alt: "memory and goroutines per idle connection per system", SVG: memoryChart(d, systems)},
		{File: "saturation.svg", Alt: "saturation sweep: highest sustained deliveries per second by subscriber count", SVG: saturationChart(d, systems)},
		{File: "shards.svg", Alt: "shardgate -shards sweep", SVG: shardsChart(d, floorUS, haveFloor)},
	}
}

// perSystem collects one figure of each system's main run of scenario,
// NaN where the run failed or has no such figure.
func perSystem(d *Data, systems []string, scenario string, figure func(*Run) float64) []series {
	var out []series
	for _, sys := range systems {
		v := math.NaN()
		if r := d.Find(groupMain, sys, scenario); r != nil && r.OK() {
			v = figure(r)
		}
		out = append(out, series{name: displayName(sys), values: []float64{v}})
	}
	return out
}

func latencyChart(d *Data, systems []string, floorUS float64, haveFloor bool) []byte {
	groups := []string{"p50", "p90", "p99", "p99.9", "max"}
	var ss []series
	subs := 0
	for _, sys := range systems {
		vals := []float64{math.NaN(), math.NaN(), math.NaN(), math.NaN(), math.NaN()}
		if r := d.Find(groupMain, sys, "fanout"); r != nil && r.OK() && r.Report.Fanout != nil {
			l := r.Report.Fanout.Latency
			vals = []float64{l.P50MS, l.P90MS, l.P99MS, l.P999MS, l.MaxMS}
			subs = max(subs, int(r.Report.Fanout.Subscribed))
		}
		ss = append(ss, series{name: displayName(sys), values: vals})
	}
	c := barChart{
		title:  "Fan-out latency, publish to delivery (" + fanoutParams(d) + ")",
		yLabel: "milliseconds (log scale)",
		groups: groups, series: ss, logY: true,
		label: msLabel,
	}
	if haveFloor && subs > 0 {
		limit := targetFloorFactor * FloorTimeMS(floorUS, subs, d.Cores())
		c.ref = &refLine{value: limit, label: fmt.Sprintf("p99 target: %g × floor time = %s", targetFloorFactor, ms(limit))}
	}
	return render(760, 420, 1, c)
}

// msLabel prints a latency on a bar: 3.2, 498, 25,535.
func msLabel(v float64) string {
	if v >= 1000 {
		return countF(v)
	}
	return sig(v)
}

// fanoutParams describes the main fan-out run for a chart title.
func fanoutParams(d *Data) string {
	for _, sys := range d.Systems() {
		if r := d.Find(groupMain, sys, "fanout"); r != nil && r.Report != nil {
			p := r.Report.Params
			return fmt.Sprintf("%s subscribers, %d B at %g/s", count(int64(p.Conns)), p.Size, p.Rate)
		}
	}
	return "no run"
}

func memoryChart(d *Data, systems []string) []byte {
	conns := "idle connections"
	for _, sys := range systems {
		if r := d.Find(groupMain, sys, "connect"); r != nil && r.Report != nil {
			conns = count(int64(r.Report.Params.Conns)) + " idle connections"
			break
		}
	}
	rss := barChart{
		title: "RSS per connection, " + conns, yLabel: "KiB per connection (log scale)",
		groups: []string{"(RSS at the end − RSS before) ÷ connections"},
		series: perSystem(d, systems, "connect", func(r *Run) float64 { return r.Report.Server.RSSPerConnBytes / 1024 }),
		logY:   true,
		ref:    &refLine{value: targetRSSPerConnBytes / 1024.0, label: "target ≤ 1 KiB"},
		label:  func(v float64) string { return bytesIEC(v * 1024) },
	}
	gor := barChart{
		title: "Goroutines, " + conns, yLabel: "goroutines (log scale)",
		groups: []string{"go_goroutines at the end of the hold"},
		series: perSystem(d, systems, "connect", func(r *Run) float64 {
			if r.Report.Server.End == nil {
				return math.NaN()
			}
			return r.Report.Server.End.Goroutines
		}),
		logY:  true,
		ref:   &refLine{value: targetGoroutines, label: fmt.Sprintf("target ≤ %d", targetGoroutines)},
		label: func(v float64) string { return countF(v) },
	}
	return render(480, 400, 2, rss, gor)
}

func saturationChart(d *Data, systems []string) []byte {
	subs, _ := SweepSubs(d.Runs)
	if len(subs) == 0 {
		return render(760, 420, 1, note{title: "Saturation sweep", text: "not run"})
	}
	groups := make([]string, len(subs))
	for i, n := range subs {
		groups[i] = count(int64(n)) + " subscribers"
	}
	var ss []series
	for _, sys := range systems {
		sw := Sweep(d.Runs, sys)
		if len(sw.Points) == 0 {
			continue
		}
		vals := make([]float64, len(subs))
		for i, n := range subs {
			vals[i] = math.NaN()
			if p, ok := sw.Best[n]; ok {
				vals[i] = p.PerSecond
			}
		}
		ss = append(ss, series{name: displayName(sys), values: vals})
	}
	c := barChart{
		title:  fmt.Sprintf("Saturation: highest sustained deliveries/s (100 %% delivered, p99 < %d ms)", sweepP99LimitMS),
		yLabel: "deliveries per second (log scale)",
		groups: groups, series: ss, logY: true,
		label:    func(v float64) string { return short(v) },
		missing:  "none",
		footnote: "none: no rate sustained at that subscriber count (the results file's table says why).",
	}
	return render(760, 420, 1, c)
}

// ShardsRow is one shard count of the -shards sweep.
type ShardsRow struct {
	Shards  int
	Fanout  *Run
	Connect *Run
}

// ShardsSweep returns the -shards sweep's runs by ascending shard count.
func ShardsSweep(d *Data) []ShardsRow {
	var rows []ShardsRow
	index := map[int]int{}
	for _, r := range d.Runs {
		if r.Group != groupShards {
			continue
		}
		i, ok := index[r.Shards]
		if !ok {
			i = len(rows)
			index[r.Shards] = i
			rows = append(rows, ShardsRow{Shards: r.Shards})
		}
		switch r.Scenario {
		case "fanout":
			rows[i].Fanout = r
		case "connect":
			rows[i].Connect = r
		}
	}
	slices.SortFunc(rows, func(a, b ShardsRow) int { return cmp.Compare(a.Shards, b.Shards) })
	return rows
}

func shardsChart(d *Data, floorUS float64, haveFloor bool) []byte {
	rows := ShardsSweep(d)
	if len(rows) == 0 {
		return render(760, 420, 1, note{title: "-shards sweep", text: "not run"})
	}
	x := make([]float64, len(rows))
	labels := make([]string, len(rows))
	fig := func(r *Run, f func(*Run) float64) float64 {
		if r == nil || !r.OK() {
			return math.NaN()
		}
		return f(r)
	}
	p50, p99, cpu, ups, rss := make([]float64, len(rows)), make([]float64, len(rows)), make([]float64, len(rows)),
		make([]float64, len(rows)), make([]float64, len(rows))
	for i, row := range rows {
		x[i] = float64(row.Shards)
		labels[i] = strconv.Itoa(row.Shards)
		fanout := func(f func(*Run) float64) float64 {
			return fig(row.Fanout, func(r *Run) float64 {
				if r.Report.Fanout == nil {
					return math.NaN()
				}
				return f(r)
			})
		}
		p50[i] = fanout(func(r *Run) float64 { return r.Report.Fanout.Latency.P50MS })
		p99[i] = fanout(func(r *Run) float64 { return r.Report.Fanout.Latency.P99MS })
		cpu[i] = fanout(func(r *Run) float64 { return nanIfZero(r.Report.Fanout.ServerCPUPerDeliveryUS) })
		ups[i] = fig(row.Connect, func(r *Run) float64 { return r.Report.Connect.PerSecond })
		rss[i] = fig(row.Connect, func(r *Run) float64 { return r.Report.Server.RSSPerConnBytes })
	}
	lat := lineChart{
		title: "Fan-out latency", xLabel: "-shards", yLabel: "milliseconds",
		x: x, xLabels: labels,
		series: []series{{name: "p50", values: p50}, {name: "p99", values: p99}},
		label:  func(v float64) string { return ms(v) },
	}
	cpuChart := lineChart{
		title: "Server CPU per delivery", xLabel: "-shards", yLabel: "µs per delivery",
		x: x, xLabels: labels, series: []series{{name: "server CPU", values: cpu}},
		label: func(v float64) string { return sig(v) + " µs" },
	}
	if haveFloor {
		cpuChart.ref = &refLine{value: targetFloorFactor * floorUS, label: fmt.Sprintf("%g × floor", targetFloorFactor)}
	}
	upChart := lineChart{
		title: "Upgrades per second (connect)", xLabel: "-shards", yLabel: "upgrades per second",
		x: x, xLabels: labels, series: []series{{name: "upgrades/s", values: ups}},
		ref:   &refLine{value: targetUpgradesPerSec, label: "target"},
		label: func(v float64) string { return countF(v) + "/s" },
	}
	rssChart := lineChart{
		title: "RSS per idle connection (connect)", xLabel: "-shards", yLabel: "bytes per connection",
		x: x, xLabels: labels, series: []series{{name: "RSS/conn", values: rss}},
		ref:   &refLine{value: targetRSSPerConnBytes, label: "target"},
		label: func(v float64) string { return bytesIEC(v) },
	}
	return render(480, 360, 2, lat, cpuChart, upChart, rssChart)
}

func nanIfZero(v float64) float64 {
	if v == 0 {
		return math.NaN()
	}
	return v
}
