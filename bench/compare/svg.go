package main

import (
	"encoding/xml"
	"fmt"
	"math"
	"strings"
)

// This file draws the results' charts as plain SVG: bar and line charts
// with linear or logarithmic value axes, a legend and an optional
// reference line, laid out one or more to a document. Every text node goes
// through xml.EscapeText, so the output is well-formed whatever the labels.

// series is one system's (or one measure's) values; NaN marks a value that
// is missing, which is left out of the chart rather than drawn as zero.
type series struct {
	name   string
	color  string
	values []float64
}

// refLine is a horizontal line at value, such as a target.
type refLine struct {
	value float64
	label string
}

// panel is one chart, drawn into the box at x, y of size w × h.
type panel interface {
	draw(s *svgDoc, x, y, w, h float64)
}

// palette gives the systems fixed colours across charts.
var palette = map[string]string{
	sysShardgate:  "#1f6fb2",
	sysGorillahub: "#d9661f",
	sysCentrifugo: "#2a9d6e",
}

// extraColors colour series that are not systems, in order.
var extraColors = []string{"#1f6fb2", "#c0392b", "#7d5ba6", "#8c8c1a"}

func colorOf(name string, i int) string {
	if c, ok := palette[strings.ToLower(name)]; ok {
		return c
	}
	return extraColors[i%len(extraColors)]
}

// render lays panels out cols to a row, each pw × ph, and returns the SVG
// document.
func render(pw, ph float64, cols int, panels ...panel) []byte {
	rows := (len(panels) + cols - 1) / cols
	s := &svgDoc{}
	w, h := pw*float64(min(cols, len(panels))), ph*float64(rows)
	fmt.Fprintf(&s.b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	s.rect(0, 0, w, h, "#ffffff", "")
	for i, p := range panels {
		p.draw(s, pw*float64(i%cols), ph*float64(i/cols), pw, ph)
	}
	s.b.WriteString("</svg>\n")
	return []byte(s.b.String())
}

// svgDoc accumulates SVG elements.
type svgDoc struct {
	b strings.Builder
}

func escape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s)) // writes to a strings.Builder cannot fail
	return b.String()
}

func (s *svgDoc) text(x, y float64, anchor string, size float64, bold bool, txt string) {
	weight := ""
	if bold {
		weight = ` font-weight="bold"`
	}
	fmt.Fprintf(&s.b, `<text x="%.1f" y="%.1f" text-anchor="%s" font-size="%g"%s>%s</text>`+"\n", x, y, anchor, size, weight, escape(txt))
}

func (s *svgDoc) rotatedText(x, y float64, size float64, txt string) {
	fmt.Fprintf(&s.b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="%g" transform="rotate(-90 %.1f %.1f)">%s</text>`+"\n",
		x, y, size, x, y, escape(txt))
}

func (s *svgDoc) line(x1, y1, x2, y2 float64, stroke string, width float64, dash string) {
	d := ""
	if dash != "" {
		d = fmt.Sprintf(` stroke-dasharray="%s"`, dash)
	}
	fmt.Fprintf(&s.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%g"%s/>`+"\n", x1, y1, x2, y2, stroke, width, d)
}

// rect draws a filled rectangle; a title becomes its tooltip.
func (s *svgDoc) rect(x, y, w, h float64, fill, title string) {
	if title == "" {
		fmt.Fprintf(&s.b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", x, y, w, h, fill)
		return
	}
	fmt.Fprintf(&s.b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s</title></rect>`+"\n", x, y, w, h, fill, escape(title))
}

func (s *svgDoc) polyline(xs, ys []float64, stroke, dash string) {
	var pts strings.Builder
	for i := range xs {
		fmt.Fprintf(&pts, "%.1f,%.1f ", xs[i], ys[i])
	}
	d := ""
	if dash != "" {
		d = fmt.Sprintf(` stroke-dasharray="%s"`, dash)
	}
	fmt.Fprintf(&s.b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.TrimSpace(pts.String()), stroke, d)
}

// lineDashes and markerRadii tell lines apart where they lie on top of
// each other (two systems with the same figures).
var (
	lineDashes  = []string{"", "8 4", "2 3", "12 3 2 3"}
	markerRadii = []float64{5.5, 4, 2.5, 4}
)

func (s *svgDoc) circle(x, y, r float64, fill, title string) {
	fmt.Fprintf(&s.b, `<circle cx="%.1f" cy="%.1f" r="%g" fill="%s"><title>%s</title></circle>`+"\n", x, y, r, fill, escape(title))
}

// scale maps values to pixels along one axis: [lo, hi] onto [p0, p1].
type scale struct {
	lo, hi float64
	log    bool
	p0, p1 float64
}

// valueScale fits a value axis to vals (NaN and, on a log axis,
// non-positive values ignored), from zero on a linear axis and from the
// decade below the least value on a log axis, up to a tick (a decade on a
// log axis) far enough above the most for a label.
func valueScale(vals []float64, log bool, extra ...float64) scale {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range append(vals, extra...) {
		if math.IsNaN(v) || math.IsInf(v, 0) || (log && v <= 0) {
			continue
		}
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	if math.IsInf(lo, 1) { // no values
		if log {
			return scale{lo: 1, hi: 10, log: true}
		}
		return scale{lo: 0, hi: 1}
	}
	if log {
		lo = math.Pow(10, math.Floor(math.Log10(lo)))
		hi = math.Pow(10, math.Ceil(math.Log10(hi*1.3))) // room for the labels above the highest value
		if hi <= lo {
			hi = lo * 10
		}
		return scale{lo: lo, hi: hi, log: true}
	}
	if hi <= 0 {
		hi = 1
	}
	step := niceStep(hi / 5)
	return scale{lo: 0, hi: math.Ceil(hi*1.05/step) * step}
}

// at returns the pixel position of v, clamped to the axis.
func (sc scale) at(v float64) float64 {
	var t float64
	if sc.log {
		if v <= 0 {
			return sc.p0
		}
		t = (math.Log10(v) - math.Log10(sc.lo)) / (math.Log10(sc.hi) - math.Log10(sc.lo))
	} else {
		t = (v - sc.lo) / (sc.hi - sc.lo)
	}
	t = math.Max(0, math.Min(1, t))
	return sc.p0 + t*(sc.p1-sc.p0)
}

// ticks returns the values to label: nice steps on a linear axis; powers of
// ten on a log axis, with 2 and 5 between them when it spans few decades.
func (sc scale) ticks() []float64 {
	var out []float64
	if !sc.log {
		step := niceStep((sc.hi - sc.lo) / 5)
		for v := sc.lo; v <= sc.hi+step/1e6; v += step {
			out = append(out, v)
		}
		return out
	}
	decades := math.Log10(sc.hi) - math.Log10(sc.lo)
	for d := sc.lo; d <= sc.hi*1.0001; d *= 10 {
		out = append(out, d)
		if decades <= 3 && d*10 <= sc.hi*1.0001 {
			out = append(out, 2*d, 5*d)
		}
	}
	return out
}

// niceStep rounds a raw step up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// short formats an axis label compactly: 0.5, 20, 1.5k, 2M.
func short(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e6:
		return sig(v/1e6) + "M"
	case a >= 1e3:
		return sig(v/1e3) + "k"
	}
	return sig(v)
}

// plotBox is the area of a panel inside its margins, with the title,
// legend and value axis drawn around it.
type plotBox struct {
	x0, y0, x1, y1 float64 // left, top, right, bottom
}

func frame(s *svgDoc, x, y, w, h float64, title, yLabel string, legend []series) plotBox {
	b := plotBox{x0: x + 72, y0: y + 58, x1: x + w - 24, y1: y + h - 52}
	s.text(x+w/2, y+20, "middle", 14, true, title)
	lx := b.x0
	for i, se := range legend {
		s.rect(lx, y+32, 12, 12, colorOf(se.name, i), "")
		s.text(lx+16, y+42, "start", 12, false, se.name)
		lx += 28 + 7*float64(len([]rune(se.name)))
	}
	s.rotatedText(x+16, (b.y0+b.y1)/2, 12, yLabel)
	return b
}

// valueAxis draws the value axis's ticks and grid lines across the box.
func valueAxis(s *svgDoc, b plotBox, sc scale) {
	for _, t := range sc.ticks() {
		py := sc.at(t)
		s.line(b.x0, py, b.x1, py, "#e3e3e3", 1, "")
		s.text(b.x0-6, py+4, "end", 11, false, short(t))
	}
	s.line(b.x0, b.y0, b.x0, b.y1, "#333333", 1, "")
	s.line(b.x0, b.y1, b.x1, b.y1, "#333333", 1, "")
}

func drawRef(s *svgDoc, b plotBox, sc scale, ref *refLine) {
	if ref == nil {
		return
	}
	py := sc.at(ref.value)
	s.line(b.x0, py, b.x1, py, "#b22222", 1.5, "6 4")
	s.text(b.x1-4, py-5, "end", 11, false, ref.label)
}

// barChart draws groups of bars, one bar per series in each group.
type barChart struct {
	title, yLabel string
	groups        []string
	series        []series
	logY          bool
	ref           *refLine
	label         func(float64) string // the value printed above a bar
	missing       string               // printed where a bar has no value ("" prints nothing)
	footnote      string               // a line of text under the chart
}

func (c barChart) draw(s *svgDoc, x, y, w, h float64) {
	b, sc := valueFrame(s, x, y, w, h, c.title, c.yLabel, c.series, c.logY, c.ref)
	if len(c.groups) == 0 || len(c.series) == 0 {
		drawRef(s, b, sc, c.ref)
		return
	}
	gw := (b.x1 - b.x0) / float64(len(c.groups))
	bw := gw * 0.8 / float64(len(c.series))
	for g, name := range c.groups {
		gx := b.x0 + gw*float64(g) + gw*0.1
		s.text(b.x0+gw*(float64(g)+0.5), b.y1+18, "middle", 12, false, name)
		for i, se := range c.series {
			if g >= len(se.values) || math.IsNaN(se.values[g]) {
				if c.missing != "" {
					s.text(gx+bw*(float64(i)+0.46), b.y1-4, "middle", 10, false, c.missing)
				}
				continue
			}
			v := se.values[g]
			top := sc.at(v)
			label := sig(v)
			if c.label != nil {
				label = c.label(v)
			}
			s.rect(gx+bw*float64(i), top, bw*0.92, b.y1-top, colorOf(se.name, i), se.name+" "+name+": "+label)
			s.text(gx+bw*(float64(i)+0.46), top-4, "middle", 10, false, label)
		}
	}
	drawRef(s, b, sc, c.ref)
	footnote(s, x, y, h, c.footnote)
}

// footnote writes a line of small text along the bottom of a panel.
func footnote(s *svgDoc, x, y, h float64, text string) {
	if text != "" {
		s.text(x+8, y+h-3, "start", 10, false, text)
	}
}

// lineChart draws one line per series over x positions; with xLabels the
// positions are evenly spaced categories, otherwise x is a linear axis.
type lineChart struct {
	title, xLabel, yLabel string
	x                     []float64
	xLabels               []string
	series                []series
	logY                  bool
	ref                   *refLine
	label                 func(float64) string // a point's tooltip value
	footnote              string               // a line of text under the chart
}

func (c lineChart) draw(s *svgDoc, x, y, w, h float64) {
	b, sc := valueFrame(s, x, y, w, h, c.title, c.yLabel, c.series, c.logY, c.ref)
	s.text((b.x0+b.x1)/2, b.y1+34, "middle", 12, false, c.xLabel)
	footnote(s, x, y, h, c.footnote)

	xAt := func(i int) float64 { // evenly spaced categories
		return b.x0 + (b.x1-b.x0)*(float64(i)+0.5)/float64(max(len(c.x), 1))
	}
	if c.xLabels == nil {
		xs := valueScale(c.x, false)
		xs.p0, xs.p1 = b.x0, b.x1
		for _, t := range xs.ticks() {
			s.text(xs.at(t), b.y1+18, "middle", 11, false, short(t))
		}
		xAt = func(i int) float64 { return xs.at(c.x[i]) }
	} else {
		for i, l := range c.xLabels {
			s.text(xAt(i), b.y1+18, "middle", 11, false, l)
		}
	}
	for i, se := range c.series {
		color := colorOf(se.name, i)
		dash, radius := lineDashes[i%len(lineDashes)], markerRadii[i%len(markerRadii)]
		var px, py []float64
		flush := func() {
			if len(px) > 1 {
				s.polyline(px, py, color, dash)
			}
			px, py = nil, nil
		}
		for j, v := range se.values {
			if j >= len(c.x) {
				break
			}
			if math.IsNaN(v) || (c.logY && v <= 0) {
				flush()
				continue
			}
			label := sig(v)
			if c.label != nil {
				label = c.label(v)
			}
			px, py = append(px, xAt(j)), append(py, sc.at(v))
			s.circle(xAt(j), sc.at(v), radius, color, fmt.Sprintf("%s at %s: %s", se.name, short(c.x[j]), label))
		}
		flush()
	}
	drawRef(s, b, sc, c.ref)
}

// note is a panel that holds a sentence instead of a chart, for a chart
// whose runs all failed.
type note struct {
	title, text string
}

func (n note) draw(s *svgDoc, x, y, w, h float64) {
	s.text(x+w/2, y+20, "middle", 14, true, n.title)
	s.text(x+w/2, y+h/2, "middle", 12, false, n.text)
}

// valueFrame draws a chart's frame and value axis, scaled to every
// series' values and the reference line, and returns the plot box and
// the value scale.
func valueFrame(s *svgDoc, x, y, w, h float64, title, yLabel string, ss []series, logY bool, ref *refLine) (plotBox, scale) {
	b := frame(s, x, y, w, h, title, yLabel, ss)
	var all []float64
	for _, se := range ss {
		all = append(all, se.values...)
	}
	var extra []float64
	if ref != nil {
		extra = append(extra, ref.value)
	}
	sc := valueScale(all, logY, extra...)
	sc.p0, sc.p1 = b.y1, b.y0
	valueAxis(s, b, sc)
	return b, sc
}
