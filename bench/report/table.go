package report

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// WriteTable writes r for a person: one labelled line per fact, in the
// order a reader checks them (did everything connect, did everything
// arrive, how fast, at what cost).
func WriteTable(w io.Writer, r *Report) error {
	t := &table{w: w}
	t.printf("", "shardbench %s: %s at %s (admin %s)", r.Scenario, r.Target, r.URL, r.AdminURL)
	m := r.Machine
	t.printf("machine", "%d × %s, %s, %s, host %s", m.CPUs, m.CPUModel, m.Kernel, m.GoVersion, m.Hostname)
	t.printf("params", "%s", params(r))
	rate := "%s/s"
	if s := r.TLS; s != nil {
		t.printf("tls", "%s, %s, %s, ALPN %q; certificate: %s; full handshakes (no resumption)",
			orNone(s.Version), orNone(s.CipherSuite), orNone(s.Group), s.ALPN, s.Verify)
		rate = "%s TLS upgrades/s"
	}
	t.blank()

	c := r.Connect
	t.printf("connections", "%s opened, %s failed%s, %s dropped%s in %.2f s ("+rate+")",
		num(c.Opened), num(c.Failed), reasons(c.Failures), num(c.Dropped), reasons(c.DropReasons), c.Seconds, num(int64(c.PerSecond)))
	t.printf("handshake", "%s", latency(c.Handshake))
	if z := r.Compression; z != nil {
		t.printf("compression", "%s", compression(z, c.Opened))
	}
	if c.ServerCPUPerConnUS > 0 {
		t.printf("server CPU", "%.1f µs per upgrade", c.ServerCPUPerConnUS)
	}
	if f := r.Fanout; f != nil {
		t.printf("subscribed", "%s on %d channel(s)", num(f.Subscribed), f.Channels)
		t.printf("published", "%s (%s errors, %s late) in %.2f s", num(f.Published), num(f.PublishErrors), num(f.PublishLate), f.PublishS)
		t.printf("delivered", "%s / %s (%.2f %%), %s reordered%s", num(f.Delivered), num(f.Expected), f.DeliveredPct, num(f.Reordered), errorsOf(f.Errors))
		t.printf("deliveries/s", "%s", num(int64(f.DeliveriesPerSecond)))
		t.printf("latency", "%s", latency(f.Latency))
		if f.Wire.Bytes > 0 {
			t.printf("wire", "%s", wire(f.Wire, "delivery", r.Compression))
		}
	}
	if e := r.Echo; e != nil {
		t.printf("round trips", "%s in %.2f s (%s/s)%s", num(e.RoundTrips), e.Seconds, num(int64(e.PerSecond)), errorsOf(e.Errors))
		t.printf("latency", "%s", latency(e.Latency))
		if e.Wire.Bytes > 0 {
			t.printf("wire", "%s", wire(e.Wire, "round trip", r.Compression))
		}
	}
	t.blank()
	if r.Soak != nil {
		writeSoak(t, r.Soak)
	}
	if r.Chaos != nil {
		writeChaos(t, r.Chaos)
	}

	s := r.Server
	switch {
	case s.Baseline != nil && s.End != nil:
		t.printf("server", "RSS %s → %s (%s/conn), goroutines %.0f → %.0f (%.4f/conn)",
			bytesOf(s.Baseline.RSSBytes), bytesOf(s.End.RSSBytes), bytesOf(s.RSSPerConnBytes),
			s.Baseline.Goroutines, s.End.Goroutines, s.GoroutinesPerConn)
		perDelivery := ""
		if r.Fanout != nil && r.Fanout.ServerCPUPerDeliveryUS > 0 {
			perDelivery = fmt.Sprintf(" (%.2f µs/delivery)", r.Fanout.ServerCPUPerDeliveryUS)
		}
		t.printf("server CPU", "%.2f s in the measured phase%s", s.CPUSeconds, perDelivery)
	case s.ScrapeError != "":
		t.printf("server", "no metrics: %s", s.ScrapeError)
	}
	g := r.Generator
	t.printf("generator", "CPU %.2f s (user %.2f, sys %.2f; %.0f %% of a core), max RSS %s, %d worker(s)",
		g.UserS+g.SysS, g.UserS, g.SysS, g.CPUPercent, bytesOf(float64(g.MaxRSSBytes)), g.Procs)
	perDelivery := ""
	if g.PerDeliveryUS > 0 {
		perDelivery = fmt.Sprintf(" (%.2f µs/delivery)", g.PerDeliveryUS)
	}
	t.printf("generator CPU", "%.2f s in the measured phase, %.0f %% of a core%s", g.MeasuredCPUS, g.MeasuredCPUPercent, perDelivery)
	if h := r.HostCPU; h != nil {
		t.printf("machine CPU", "%.0f %% busy in the measured phase (user %.0f, sys %.0f, irq %.0f, steal %.0f)",
			h.BusyPct, h.UserPct, h.SysPct, h.IRQPct, h.StealPct)
	}
	for _, warn := range r.Warnings {
		t.printf("warning", "%s", warn)
	}
	if r.Soak != nil {
		t.blank()
		writeVerdict(t, r.Soak)
	}
	if r.Chaos != nil {
		t.blank()
		writeChaosVerdict(t, r.Chaos)
	}
	return t.err
}

type table struct {
	w   io.Writer
	err error
}

func (t *table) printf(label, format string, args ...any) {
	if t.err != nil {
		return
	}
	line := fmt.Sprintf(format, args...)
	if label != "" {
		line = fmt.Sprintf("%-14s %s", label, line)
	}
	_, t.err = fmt.Fprintln(t.w, line)
}

func (t *table) blank() {
	if t.err == nil {
		_, t.err = fmt.Fprintln(t.w)
	}
}

func params(r *Report) string {
	p := r.Params
	var b strings.Builder
	fmt.Fprintf(&b, "%s conns over %d worker(s)", num(int64(p.Conns)), p.Procs)
	if len(p.SourceIPs) > 0 {
		fmt.Fprintf(&b, " from %s", strings.Join(p.SourceIPs, ","))
	}
	if p.ConnectRate > 0 {
		fmt.Fprintf(&b, ", %s conn/s", num(int64(p.ConnectRate)))
	}
	fmt.Fprintf(&b, ", %d in flight per worker", p.Inflight)
	switch r.Scenario {
	case "connect":
		fmt.Fprintf(&b, ", hold %gs", p.HoldS)
	case "fanout":
		fmt.Fprintf(&b, "; %d channel(s), %g msg/s × %d B%s for %gs", p.Channels, p.Rate, p.Size, payloadOf(p), p.DurationS)
	case "echo":
		fmt.Fprintf(&b, "; %d B%s for %gs", p.Size, payloadOf(p), p.DurationS)
	case "soak", "chaos":
		fmt.Fprintf(&b, "; %d channel(s), %g msg/s × %d B for %gs", p.Channels, p.Rate, p.Size, p.DurationS)
	}
	return b.String()
}

// compression describes the permessage-deflate offer and its answers.
func compression(z *Compression, opened int64) string {
	switch {
	case z.Negotiated == 0:
		return fmt.Sprintf("permessage-deflate offered, declined by every upgrade (%s)", num(z.Declined))
	case z.Declined == 0:
		return fmt.Sprintf("permessage-deflate on all %s upgrades: %s", num(z.Negotiated), z.Answer)
	}
	return fmt.Sprintf("permessage-deflate on %s of %s upgrades (%s declined): %s", num(z.Negotiated), num(z.Negotiated+z.Declined), num(z.Declined), z.Answer)
}

// wire describes the bytes read per delivery.
func wire(w Wire, per string, z *Compression) string {
	if w.BytesPerDelivery == 0 {
		return fmt.Sprintf("%s read, no %s to divide by", bytesOf(float64(w.Bytes)), per)
	}
	s := fmt.Sprintf("%s B read per %s, frame headers included (messages: %s B", num(int64(w.BytesPerDelivery+0.5)), per, num(int64(w.MessageBytesPerDelivery+0.5)))
	if z != nil {
		s += fmt.Sprintf(" after inflation; %s compressed, %s plain", num(z.CompressedMessages), num(z.PlainMessages))
	}
	return s + ")"
}

// payloadOf names a payload other than the default padding.
func payloadOf(p Params) string {
	if p.Payload == "" || p.Payload == "pad" {
		return ""
	}
	return " " + p.Payload
}

func orNone(s string) string {
	if s == "" {
		return "(no handshake completed)"
	}
	return s
}

func latency(l Latency) string {
	if l.Count == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (mean %s, n=%s)",
		ms(l.P50MS), ms(l.P90MS), ms(l.P99MS), ms(l.P999MS), ms(l.MaxMS), ms(l.MeanMS), num(int64(l.Count)))
}

// ms formats milliseconds with three significant digits or more.
func ms(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	case v >= 1:
		return fmt.Sprintf("%.2f ms", v)
	}
	return fmt.Sprintf("%.3f ms", v)
}

func reasons(m map[string]int64) string {
	if len(m) == 0 {
		return ""
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %s", k, num(m[k])))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func errorsOf(m map[string]int64) string {
	if len(m) == 0 {
		return ""
	}
	return ", errors" + reasons(m)
}

// num formats n with thousands separators.
func num(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// bytesOf formats a byte count in binary units.
func bytesOf(v float64) string {
	neg := v < 0
	if neg {
		v = -v
	}
	unit := "B"
	for _, u := range []string{"KiB", "MiB", "GiB"} {
		if v < 1024 {
			break
		}
		v /= 1024
		unit = u
	}
	s := fmt.Sprintf("%.1f %s", v, unit)
	if unit == "B" {
		s = fmt.Sprintf("%.0f B", v)
	}
	if neg {
		return "-" + s
	}
	return s
}
