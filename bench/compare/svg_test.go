package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
)

// wellFormed fails the test unless doc is well-formed XML whose root is an
// svg element, and returns how many elements it holds by name.
func wellFormed(t *testing.T, name string, doc []byte) map[string]int {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(doc))
	elems := map[string]int{}
	depth := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: not well-formed XML: %v\n%s", name, err, doc)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			if depth == 0 && (e.Name.Local != "svg" || e.Name.Space != "http://www.w3.org/2000/svg") {
				t.Fatalf("%s: root element %v, want svg in the SVG namespace", name, e.Name)
			}
			elems[e.Name.Local]++
			depth++
		case xml.EndElement:
			depth--
		}
	}
	if depth != 0 || elems["svg"] != 1 {
		t.Fatalf("%s: unbalanced document (depth %d, %d svg elements)", name, depth, elems["svg"])
	}
	return elems
}

func TestChartsWellFormed(t *testing.T) {
	for _, tc := range []struct {
		name string
		data *Data
	}{
		{"full", sampleData()},
		{"passing", passingData()},
		{"empty", &Data{}},
		{"every run failed", failedData()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			charts := Charts(tc.data)
			if len(charts) != 4 {
				t.Fatalf("%d charts, want 4", len(charts))
			}
			for _, c := range charts {
				wellFormed(t, c.File, c.SVG)
				if strings.Contains(string(c.SVG), "NaN") || strings.Contains(string(c.SVG), "Inf") {
					t.Errorf("%s: a missing value reached the drawing:\n%s", c.File, c.SVG)
				}
			}
		})
	}
}

func TestChartTextEscaped(t *testing.T) {
	c := barChart{
		title: `p99 < 100 ms & "quoted"`, yLabel: "<y>",
		groups: []string{"a&b", "<c>"},
		series: []series{{name: "x<y", values: []float64{1, math.NaN()}}, {name: "z>&", values: []float64{2, 3}}},
		ref:    &refLine{value: 2, label: "≤ 1 KiB & more"},
	}
	l := lineChart{
		title: "<line>", x: []float64{1, 2, 3}, xLabels: []string{"<1>", "2", "3"},
		series: []series{{name: "&", values: []float64{1, math.NaN(), 3}}}, logY: true,
	}
	doc := render(400, 300, 2, c, l, note{title: "<note>", text: "a & b"})
	elems := wellFormed(t, "escaped", doc)
	if elems["rect"] < 4 { // background, legend, bars
		t.Errorf("%d rect elements, want bars drawn", elems["rect"])
	}
	if elems["polyline"] != 0 {
		t.Errorf("%d polylines, want none: a line is broken where a value is missing", elems["polyline"])
	}
	if elems["circle"] != 2 {
		t.Errorf("%d points, want 2 (the missing one left out)", elems["circle"])
	}
}

func TestValueScale(t *testing.T) {
	for _, tc := range []struct {
		name      string
		vals      []float64
		log       bool
		lo, hi    float64
		wantTicks []float64
	}{
		{"linear from zero", []float64{3, 17}, false, 0, 20, []float64{0, 5, 10, 15, 20}},
		{"log decades", []float64{3, 170}, true, 1, 1000, []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000}},
		{"log many decades", []float64{0.5, 2e6}, true, 0.1, 1e7, []float64{0.1, 1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7}},
		{"log ignores zero and NaN", []float64{0, math.NaN(), 20}, true, 10, 100, []float64{10, 20, 50, 100}},
		{"nothing to show", []float64{math.NaN()}, false, 0, 1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := valueScale(tc.vals, tc.log)
			if math.Abs(sc.lo-tc.lo) > 1e-9 || math.Abs(sc.hi-tc.hi) > 1e-6 {
				t.Errorf("scale [%g, %g], want [%g, %g]", sc.lo, sc.hi, tc.lo, tc.hi)
			}
			if tc.wantTicks == nil {
				return
			}
			ticks := sc.ticks()
			if len(ticks) != len(tc.wantTicks) {
				t.Fatalf("ticks %v, want %v", ticks, tc.wantTicks)
			}
			for i := range ticks {
				if math.Abs(ticks[i]-tc.wantTicks[i]) > 1e-6*tc.wantTicks[i]+1e-9 {
					t.Errorf("ticks %v, want %v", ticks, tc.wantTicks)
					break
				}
			}
		})
	}
	sc := scale{lo: 1, hi: 100, log: true, p0: 200, p1: 0}
	if got := sc.at(10); got != 100 {
		t.Errorf("log scale: 10 at %g, want 100 (mid-way)", got)
	}
	if got := sc.at(0); got != 200 {
		t.Errorf("log scale: 0 at %g, want the axis end 200", got)
	}
	if got := sc.at(1e6); got != 0 {
		t.Errorf("log scale: 1e6 at %g, want clamped to 0", got)
	}
}
