package main

import (
	"fmt"
	"io"
	"math"
	"path"
	"strings"
)

// Markdown writes the results file for d. chartDir is the charts' and raw
// reports' directory relative to the results file (links are relative, so
// the file reads the same on GitHub and on disk).
func Markdown(w io.Writer, d *Data, chartDir string, charts []Chart) error {
	m := &mdWriter{w: w}
	systems := d.Systems()
	host, date := "?", d.InfoValue("date")
	if d.Machine != nil {
		host = d.Machine.Hostname
	}
	m.printf("# shardgate compared with %s — %s, host %s\n\n", peerList(systems), date, host)
	m.printf("Written by `bench/compare` from one run of `scripts/compare.sh`; the raw shardbench reports, server logs and floor results are in [`%s/raw/`](%s/raw/). "+
		"Every figure comes from this one run on this one machine. Timings on this machine move from run to run with the host's load, "+
		"so compare figures within this file only. The load generator (shardbench) runs on the same cores as the server under test; "+
		"its own CPU cost is in each report.\n\n", chartDir, chartDir)

	writeMachine(m, d)
	floorUS, haveFloor := d.FloorUS()
	writeFloor(m, d, floorUS, haveFloor)
	writeTargets(m, d)
	if d.Notes != "" {
		m.printf("## Notes\n\n%s\n\n", d.Notes)
	}
	chart := func(file string) {
		for _, c := range charts {
			if c.File == file {
				m.printf("![%s](%s)\n\n", c.Alt, path.Join(chartDir, c.File))
			}
		}
	}
	writeConnect(m, d, systems)
	chart("memory.svg")
	writeFanout(m, d, systems, floorUS, haveFloor)
	chart("latency.svg")
	writeEcho(m, d, systems)
	writeSaturation(m, d, systems)
	chart("saturation.svg")
	writeShards(m, d, floorUS, haveFloor)
	chart("shards.svg")
	writeProblems(m, d)
	writeCommands(m, d)
	return m.err
}

// mdWriter remembers the first write error, so the writers above read as
// a document.
type mdWriter struct {
	w   io.Writer
	err error
}

func (m *mdWriter) printf(format string, args ...any) {
	if m.err == nil {
		_, m.err = fmt.Fprintf(m.w, format, args...)
	}
}

// table writes a markdown table; a cell's "|" is escaped.
func (m *mdWriter) table(head []string, rows [][]string) {
	cell := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	line := func(cells []string) {
		parts := make([]string, len(cells))
		for i, c := range cells {
			parts[i] = cell(c)
		}
		m.printf("| %s |\n", strings.Join(parts, " | "))
	}
	line(head)
	sep := make([]string, len(head))
	for i := range sep {
		sep[i] = "---"
	}
	m.printf("|%s|\n", strings.Join(sep, "|"))
	for _, r := range rows {
		line(r)
	}
	m.printf("\n")
}

func peerList(systems []string) string {
	var peers []string
	for _, s := range systems {
		if s != sysShardgate {
			peers = append(peers, displayName(s))
		}
	}
	if len(peers) == 0 {
		return "itself"
	}
	return strings.Join(peers, " and ")
}

func writeMachine(m *mdWriter, d *Data) {
	m.printf("## Machine and run\n\n")
	var rows [][]string
	if mc := d.Machine; mc != nil {
		rows = append(rows,
			[]string{"Host", mc.Hostname},
			[]string{"CPU", fmt.Sprintf("%d × %s (nproc %d)", mc.CPUs, mc.CPUModel, mc.CPUs)},
			[]string{"Memory", bytesIEC(float64(mc.MemTotalBytes))},
			[]string{"Kernel", mc.Kernel},
			[]string{"Go", mc.GoVersion},
			[]string{"Open-file limit", count(int64(mc.OpenFileLimit)) + " per process"},
		)
	} else {
		rows = append(rows, []string{"Machine", "not recorded (" + machineFile + " missing)"})
	}
	for _, kv := range d.Info {
		switch kv.Key {
		case "date", "floor command": // in the title and under Commands
			continue
		}
		rows = append(rows, []string{kv.Key, kv.Value})
	}
	m.table([]string{"", ""}, rows)
}

func writeFloor(m *mdWriter, d *Data, floorUS float64, haveFloor bool) {
	m.printf("## Floor\n\n")
	m.printf("`bench/floor` writes a 260-byte frame (a 256-byte message and its header) to loopback TCP sockets and reads the writing thread's CPU time. " +
		"On loopback the receiver's side of TCP runs in the sender's context, so any gateway pays about this much per delivery, whatever its design. " +
		"It ran at the start and at the end of the comparison; the reference is their mean. " +
		"The floor time is the least time to write one frame to every subscriber with all cores writing at that cost.\n\n")
	cell := func(f *Floor, get func(*Floor) string) string {
		if f == nil {
			return "not run"
		}
		return get(f)
	}
	ref := "—"
	refTime := "—"
	if haveFloor {
		ref = us(floorUS) + " µs"
		refTime = ms(FloorTimeMS(floorUS, 15000, d.Cores()))
	}
	m.table([]string{"", "start", "end", "reference"}, [][]string{
		{"CPU per write(2), writing thread",
			cell(d.FloorStart, func(f *Floor) string { return us(f.WriterCPUus) + " µs" }),
			cell(d.FloorEnd, func(f *Floor) string { return us(f.WriterCPUus) + " µs" }), ref},
		{"CPU per write(2), whole process (draining readers included)",
			cell(d.FloorStart, func(f *Floor) string { return us(f.ProcessCPUus) + " µs" }),
			cell(d.FloorEnd, func(f *Floor) string { return us(f.ProcessCPUus) + " µs" }), ""},
		{fmt.Sprintf("floor time, one frame to 15,000 subscribers on %d cores", d.Cores()),
			cell(d.FloorStart, func(f *Floor) string { return ms(FloorTimeMS(f.WriterCPUus, 15000, d.Cores())) }),
			cell(d.FloorEnd, func(f *Floor) string { return ms(FloorTimeMS(f.WriterCPUus, 15000, d.Cores())) }), refTime},
	})
}

func writeTargets(m *mdWriter, d *Data) {
	m.printf("## Targets (issue 3)\n\n")
	var rows [][]string
	for _, t := range Targets(d) {
		rows = append(rows, []string{t.Name, t.Limit, t.Measured, t.Verdict.String()})
	}
	m.table([]string{"Target", "Limit", "shardgate, measured", "Result"}, rows)
}

// failedRow is a table row for a run without figures: the system, then
// the reason across the remaining cells.
func failedRow(sys string, r *Run, cells int) []string {
	why := "not run"
	if r != nil {
		why = "failed: " + r.Failure()
	}
	row := []string{displayName(sys), why}
	for len(row) < cells {
		row = append(row, "")
	}
	return row
}

// ratioRows compares shardgate's figures with each peer's: one row per
// figure, a column per peer.
type ratioFigure struct {
	name, better string
	get          func(*Run) float64
}

func writeRatios(m *mdWriter, d *Data, systems []string, scenario string, figs []ratioFigure) {
	sg := d.Find(groupMain, sysShardgate, scenario)
	var peers []string
	for _, s := range systems {
		if s != sysShardgate {
			peers = append(peers, s)
		}
	}
	if len(peers) == 0 {
		return
	}
	head := []string{"Ratio shardgate ÷ peer", "better"}
	for _, p := range peers {
		head = append(head, "÷ "+displayName(p))
	}
	var rows [][]string
	for _, f := range figs {
		row := []string{f.name, f.better}
		for _, p := range peers {
			pr := d.Find(groupMain, p, scenario)
			if sg == nil || !sg.OK() || pr == nil || !pr.OK() {
				row = append(row, "—")
				continue
			}
			if r, ok := Ratio(f.get(sg), f.get(pr)); ok {
				row = append(row, factor(r))
			} else {
				row = append(row, "—")
			}
		}
		rows = append(rows, row)
	}
	m.table(head, rows)
}

func writeConnect(m *mdWriter, d *Data, systems []string) {
	m.printf("## Idle connections (connect)\n\n")
	if r := firstReport(d, systems, "connect"); r != nil {
		p := r.Report.Params
		m.printf("%s connections opened as fast as %d in flight per worker allow, over %d shardbench worker processes, then held %g s. "+
			"RSS and goroutines are the server's own `/metrics` before the first connection and at the end of the hold.\n\n",
			count(int64(p.Conns)), p.Inflight, p.Procs, p.HoldS)
	}
	head := []string{"System", "Opened", "Upgrades/s", "Handshake p99", "RSS before → after", "RSS per connection",
		"Goroutines before → after", "Server CPU per upgrade"}
	var rows [][]string
	for _, sys := range systems {
		r := d.Find(groupMain, sys, "connect")
		if r == nil || !r.OK() {
			rows = append(rows, failedRow(sys, r, len(head)))
			continue
		}
		rep := r.Report
		s := rep.Server
		rss, gor := "—", "—"
		if s.Baseline != nil && s.End != nil {
			rss = bytesIEC(s.Baseline.RSSBytes) + " → " + bytesIEC(s.End.RSSBytes)
			gor = countF(s.Baseline.Goroutines) + " → " + countF(s.End.Goroutines)
		}
		rows = append(rows, []string{displayName(sys),
			opened(rep.Connect.Opened, int64(rep.Params.Conns)),
			countF(rep.Connect.PerSecond), ms(rep.Connect.Handshake.P99MS), rss, bytesIEC(s.RSSPerConnBytes), gor,
			usOrDash(rep.Connect.ServerCPUPerConnUS)})
	}
	m.table(head, rows)
	writeRatios(m, d, systems, "connect", []ratioFigure{
		{"RSS per connection", "lower", func(r *Run) float64 { return r.Report.Server.RSSPerConnBytes }},
		{"Goroutines at the end", "lower", func(r *Run) float64 {
			if r.Report.Server.End == nil {
				return math.NaN()
			}
			return r.Report.Server.End.Goroutines
		}},
		{"Upgrades per second", "higher", func(r *Run) float64 { return r.Report.Connect.PerSecond }},
	})
}

func writeFanout(m *mdWriter, d *Data, systems []string, floorUS float64, haveFloor bool) {
	m.printf("## Fan-out\n\n")
	if r := firstReport(d, systems, "fanout"); r != nil {
		p := r.Report.Params
		channels := "one channel"
		if p.Channels != 1 {
			channels = fmt.Sprintf("%d channels", p.Channels)
		}
		m.printf("%s subscribers of %s, %d-byte messages published through the server's HTTP API at %g/s for %g s. "+
			"Latency runs from the publish request to the message read by a subscriber. "+
			"Server CPU per delivery is the server's CPU time from the first publish until every message was in, per delivered message; "+
			"it is read against the floor (÷ floor), and p99 against the floor time for one frame to every subscriber on %d cores. "+
			"The publisher sends one request at a time: a server that answers a publish only once it has fanned the message out "+
			"holds the publisher back (late publishes), so its publish rate and deliveries/s fall below the rate asked for, "+
			"and its latency is measured at that lower load.\n\n",
			count(int64(p.Conns)), channels, p.Size, p.Rate, p.DurationS, d.Cores())
	}
	head := append([]string{"System"}, fanoutHead...)
	var rows [][]string
	for _, sys := range systems {
		r := d.Find(groupMain, sys, "fanout")
		if r == nil || !r.OK() || r.Report.Fanout == nil {
			rows = append(rows, failedRow(sys, r, len(head)))
			continue
		}
		rows = append(rows, fanoutCells(displayName(sys), r, d, floorUS, haveFloor))
	}
	m.table(head, rows)
	writeRatios(m, d, systems, "fanout", []ratioFigure{
		{"p50 latency", "lower", func(r *Run) float64 { return fanoutOr(r, func(f fanoutFigs) float64 { return f.p50 }) }},
		{"p99 latency", "lower", func(r *Run) float64 { return fanoutOr(r, func(f fanoutFigs) float64 { return f.p99 }) }},
		{"Server CPU per delivery", "lower", func(r *Run) float64 { return fanoutOr(r, func(f fanoutFigs) float64 { return f.cpu }) }},
		{"Server RSS at the end", "lower", func(r *Run) float64 {
			if r.Report.Server.End == nil {
				return math.NaN()
			}
			return r.Report.Server.End.RSSBytes
		}},
	})
}

// fanoutFigs are the figures of a fanout report the ratios compare.
type fanoutFigs struct{ p50, p99, cpu float64 }

func fanoutOr(r *Run, get func(fanoutFigs) float64) float64 {
	f := r.Report.Fanout
	if f == nil {
		return math.NaN()
	}
	return get(fanoutFigs{p50: f.Latency.P50MS, p99: f.Latency.P99MS, cpu: nanIfZero(f.ServerCPUPerDeliveryUS)})
}

// fanoutHead names the columns of fanoutCells after the first.
var fanoutHead = []string{"Subscribed", "Publishes/s (late)", "Delivered", "Deliveries/s", "p50", "p90", "p99", "p99.9", "max",
	"Server CPU per delivery", "÷ floor", "p99 ÷ floor time", "Generator CPU per delivery", "Machine busy"}

// fanoutCells is a fan-out table row for r, whose first cell is label.
func fanoutCells(label string, r *Run, d *Data, floorUS float64, haveFloor bool) []string {
	rep := r.Report
	f := rep.Fanout
	l := f.Latency
	cpuFloor, p99Floor := "—", "—"
	if haveFloor {
		if f.ServerCPUPerDeliveryUS > 0 {
			cpuFloor = factor(f.ServerCPUPerDeliveryUS/floorUS) + " ×"
		}
		if ft := FloorTimeMS(floorUS, int(f.Subscribed), d.Cores()); ft > 0 {
			p99Floor = factor(l.P99MS/ft) + " ×"
		}
	}
	busy := "—"
	if rep.HostCPU != nil {
		busy = fmt.Sprintf("%.0f %%", rep.HostCPU.BusyPct)
	}
	published := "—"
	if span := f.PublishS + 1/rep.Params.Rate; f.Published > 0 && rep.Params.Rate > 0 {
		published = fmt.Sprintf("%s (%s)", sig(float64(f.Published)/span), count(f.PublishLate))
	}
	return []string{label,
		opened(f.Subscribed, int64(rep.Params.Conns)),
		published,
		fmt.Sprintf("%s %%", pct(f.DeliveredPct)),
		countF(f.DeliveriesPerSecond),
		ms(l.P50MS), ms(l.P90MS), ms(l.P99MS), ms(l.P999MS), ms(l.MaxMS),
		usOrDash(f.ServerCPUPerDeliveryUS), cpuFloor, p99Floor,
		usOrDash(rep.Generator.PerDeliveryUS), busy}
}

func writeEcho(m *mdWriter, d *Data, systems []string) {
	m.printf("## Echo\n\n")
	if r := firstReport(d, systems, "echo"); r != nil {
		p := r.Report.Params
		m.printf("%s connections, each publishing %d-byte messages to its own channel through the client protocol and waiting for its own message, for %g s. "+
			"shardgate runs with `-client-rate 0` here (no per-connection request limit), so the figure measures the gateway rather than its rate limiter; "+
			"the peers have no such limit.\n\n", count(int64(p.Conns)), p.Size, p.DurationS)
	}
	head := []string{"System", "Connections", "Round trips/s", "p50", "p90", "p99", "max", "Errors"}
	var rows [][]string
	for _, sys := range systems {
		r := d.Find(groupMain, sys, "echo")
		if r == nil || !r.OK() || r.Report.Echo == nil {
			rows = append(rows, failedRow(sys, r, len(head)))
			continue
		}
		e := r.Report.Echo
		errs := "0"
		if len(e.Errors) > 0 {
			errs = fmt.Sprint(e.Errors)
		}
		rows = append(rows, []string{displayName(sys), opened(r.Report.Connect.Opened, int64(r.Report.Params.Conns)),
			countF(e.PerSecond), ms(e.Latency.P50MS), ms(e.Latency.P90MS), ms(e.Latency.P99MS), ms(e.Latency.MaxMS), errs})
	}
	m.table(head, rows)
	writeRatios(m, d, systems, "echo", []ratioFigure{
		{"Round trips per second", "higher", func(r *Run) float64 {
			if r.Report.Echo == nil {
				return math.NaN()
			}
			return r.Report.Echo.PerSecond
		}},
		{"p99 latency", "lower", func(r *Run) float64 {
			if r.Report.Echo == nil {
				return math.NaN()
			}
			return r.Report.Echo.Latency.P99MS
		}},
	})
}

func writeSaturation(m *mdWriter, d *Data, systems []string) {
	m.printf("## Saturation sweep\n\n")
	subs, rates := SweepSubs(d.Runs)
	if len(subs) == 0 {
		m.printf("Not run.\n\n")
		return
	}
	var dur float64
	for _, r := range d.Runs {
		if r.Group == groupSweep && r.Report != nil {
			dur = r.Report.Params.DurationS
			break
		}
	}
	m.printf("Fan-out to one channel at each subscriber count and publish rate (256-byte messages, %g s each, a fresh server for every point). "+
		"A point is sustained when every connection subscribed and stayed, 100 %% of the messages arrived and p99 < %d ms; "+
		"a system's figure is its highest sustained deliveries per second. "+
		"At each subscriber count the rate rises until a point is not sustained; higher rates are then not run (—).\n\n", dur, sweepP99LimitMS)
	var results []SweepResult
	head := []string{"Subscribers", "Rate/s"}
	for _, sys := range systems {
		sw := Sweep(d.Runs, sys)
		if len(sw.Points) == 0 {
			continue
		}
		results = append(results, sw)
		head = append(head, displayName(sys))
	}
	var rows [][]string
	for _, n := range subs {
		for _, rate := range rates {
			row := []string{count(int64(n)), sig(rate)}
			ran := false
			for _, sw := range results {
				c := "—"
				for _, p := range sw.Points {
					if p.Subs != n || p.Rate != rate {
						continue
					}
					ran = true
					switch {
					case p.Sustained:
						c = fmt.Sprintf("✓ %s/s, p99 %s", countF(p.PerSecond), ms(p.Run.Report.Fanout.Latency.P99MS))
					case p.Run.Report != nil && p.Run.Report.Fanout != nil:
						c = fmt.Sprintf("✗ %s (%s/s, p99 %s)", p.Reason, countF(p.Run.Report.Fanout.DeliveriesPerSecond),
							ms(p.Run.Report.Fanout.Latency.P99MS))
					default:
						c = "✗ " + p.Reason
					}
				}
				row = append(row, c)
			}
			if ran {
				rows = append(rows, row)
			}
		}
	}
	m.table(head, rows)

	bestHead := []string{"Highest sustained deliveries/s"}
	for _, sw := range results {
		bestHead = append(bestHead, displayName(sw.System))
	}
	var best [][]string
	top := rates[len(rates)-1]
	topNote := false
	for _, n := range subs {
		row := []string{count(int64(n)) + " subscribers"}
		for _, sw := range results {
			if p, ok := sw.Best[n]; ok {
				mark := ""
				if p.Rate == top {
					mark, topNote = "†", true
				}
				row = append(row, fmt.Sprintf("%s/s (at %s/s)%s", countF(p.PerSecond), sig(p.Rate), mark))
			} else {
				row = append(row, "none sustained")
			}
		}
		best = append(best, row)
	}
	row := []string{"**saturation figure**"}
	for _, sw := range results {
		if sw.HasMax {
			row = append(row, fmt.Sprintf("**%s/s**", countF(sw.Max.PerSecond)))
		} else {
			row = append(row, "none sustained")
		}
	}
	best = append(best, row)
	m.table(bestHead, best)
	if topNote {
		m.printf("† at the sweep's highest rate, %s/s: the sweep went no higher, so the figure is a lower bound.\n\n", sig(top))
	}
}

func writeShards(m *mdWriter, d *Data, floorUS float64, haveFloor bool) {
	m.printf("## -shards sweep (shardgate)\n\n")
	rows := ShardsSweep(d)
	if len(rows) == 0 {
		m.printf("Not run.\n\n")
		return
	}
	m.printf("The same fan-out and connect scenarios against shardgate started with each `-shards` value (default: GOMAXPROCS, %d here).\n\n", d.Cores())
	head := append([]string{"-shards"}, fanoutHead...)
	var fan [][]string
	for _, row := range rows {
		label := fmt.Sprint(row.Shards)
		if r := row.Fanout; r != nil && r.OK() && r.Report.Fanout != nil {
			fan = append(fan, fanoutCells(label, r, d, floorUS, haveFloor))
		} else {
			fan = append(fan, failedRow(label, r, len(head)))
		}
	}
	m.printf("Fan-out:\n\n")
	m.table(head, fan)
	m.printf("Connect:\n\n")
	chead := []string{"-shards", "Opened", "Upgrades/s", "Handshake p99", "RSS per connection", "Goroutines at the end", "Server CPU per upgrade"}
	var conn [][]string
	for _, row := range rows {
		label := fmt.Sprint(row.Shards)
		r := row.Connect
		if r == nil || !r.OK() {
			conn = append(conn, failedRow(label, r, len(chead)))
			continue
		}
		rep := r.Report
		gor := "—"
		if rep.Server.End != nil {
			gor = countF(rep.Server.End.Goroutines)
		}
		conn = append(conn, []string{label, opened(rep.Connect.Opened, int64(rep.Params.Conns)), countF(rep.Connect.PerSecond),
			ms(rep.Connect.Handshake.P99MS), bytesIEC(rep.Server.RSSPerConnBytes), gor, usOrDash(rep.Connect.ServerCPUPerConnUS)})
	}
	m.table(chead, conn)
}

// writeProblems lists the runs that failed and the warnings shardbench put
// in its reports.
// shardbench's warning that the machine had no idle CPU starts so; the
// results file gathers those into one line.
const busyWarning = "the machine was "

func writeProblems(m *mdWriter, d *Data) {
	var lines, busy []string
	for _, r := range d.Runs {
		name := runName(r)
		if fail := r.Failure(); fail != "" {
			lines = append(lines, fmt.Sprintf("- %s: **failed**: %s", name, fail))
		}
		if r.Report == nil {
			continue
		}
		for _, w := range r.Report.Warnings {
			if strings.HasPrefix(w, busyWarning) && r.Report.HostCPU != nil {
				busy = append(busy, fmt.Sprintf("%s %.0f %%", name, r.Report.HostCPU.BusyPct))
				continue
			}
			lines = append(lines, fmt.Sprintf("- %s: %s", name, w))
		}
	}
	m.printf("## Failures and warnings\n\n")
	if len(busy) > 0 {
		lines = append(lines, fmt.Sprintf("- The machine had next to no idle CPU in the measured phase of %d runs, "+
			"so their latency includes waiting for a CPU (server and load generator share the cores): %s.",
			len(busy), strings.Join(busy, ", ")))
	}
	if len(lines) == 0 {
		m.printf("None.\n\n")
		return
	}
	m.printf("%s\n\n", strings.Join(lines, "\n"))
}

func runName(r *Run) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", displayName(r.System), r.Scenario)
	switch r.Group {
	case groupSweep:
		fmt.Fprintf(&b, " (sweep: %s subscribers at %s/s)", count(int64(r.Conns)), sig(r.Rate))
	case groupShards:
		fmt.Fprintf(&b, " (-shards %d)", r.Shards)
	}
	return b.String()
}

func writeCommands(m *mdWriter, d *Data) {
	m.printf("## Commands\n\n")
	if inv := d.InfoValue("invocation"); inv != "" {
		m.printf("The whole run:\n\n```sh\n%s\n```\n\n", inv)
	}
	m.printf("Each run started a fresh server, ran shardbench against it, and stopped the server:\n\n")
	write := func(group string) {
		for _, r := range d.Runs {
			if r.Group != group {
				continue
			}
			m.printf("# %s\n%s &\n%s\n", runName(r), r.ServerCommand, r.BenchCommand)
		}
	}
	m.printf("```sh\n")
	if d.FloorStart != nil || d.FloorEnd != nil {
		m.printf("# floor, at the start and at the end\n%s\n", orDefault(d.InfoValue("floor command"), "bin/floor"))
	}
	write(groupMain)
	m.printf("```\n\n")
	for _, g := range []struct{ group, title string }{{groupSweep, "saturation sweep"}, {groupShards, "-shards sweep"}} {
		n := 0
		for _, r := range d.Runs {
			if r.Group == g.group {
				n++
			}
		}
		if n == 0 {
			continue
		}
		m.printf("<details><summary>The %s's %d runs</summary>\n\n```sh\n", g.title, n)
		write(g.group)
		m.printf("```\n\n</details>\n\n")
	}
}

func firstReport(d *Data, systems []string, scenario string) *Run {
	for _, sys := range systems {
		if r := d.Find(groupMain, sys, scenario); r != nil && r.Report != nil {
			return r
		}
	}
	return nil
}

func opened(n, want int64) string {
	if n >= want {
		return count(n)
	}
	return fmt.Sprintf("%s of %s", count(n), count(want))
}

func usOrDash(v float64) string {
	if v <= 0 {
		return "—"
	}
	return us(v) + " µs"
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
