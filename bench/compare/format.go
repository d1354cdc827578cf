package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// displayName is how prose and tables name a system.
func displayName(system string) string {
	if system == sysCentrifugo {
		return "Centrifugo"
	}
	return system
}

// count formats n with comma thousands separators: 19,000.
func count(n int64) string {
	if n < 0 {
		return "-" + count(-n)
	}
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// countF formats a rate or other float as a whole number with separators.
func countF(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	return count(int64(math.Round(v)))
}

// bytesIEC formats a byte count: 597 B, 24.8 KiB, 212 MiB.
func bytesIEC(v float64) string {
	switch {
	case math.IsNaN(v):
		return "—"
	case v < 1024:
		return fmt.Sprintf("%.0f B", v)
	case v < 1<<20:
		return sig(v/1024) + " KiB"
	case v < 1<<30:
		return sig(v/(1<<20)) + " MiB"
	}
	return sig(v/(1<<30)) + " GiB"
}

// ms formats milliseconds with three significant digits, or as a whole
// number with separators from a second up: 4.2 ms, 498 ms, 25,535 ms.
func ms(v float64) string {
	switch {
	case math.IsNaN(v):
		return "—"
	case v >= 1000:
		return countF(v) + " ms"
	}
	return sig(v) + " ms"
}

// us formats microseconds with three significant digits (no unit).
func us(v float64) string { return sig(v) }

// factor formats a ratio: 0.42, 1.3, 27.
func factor(v float64) string { return sig(v) }

// pct formats a percentage, keeping the decimals that tell 99.99 from 100.
func pct(v float64) string {
	if v == 100 {
		return "100"
	}
	return strconv.FormatFloat(math.Floor(v*100)/100, 'f', -1, 64)
}

// sig formats v with three significant digits, without exponent and
// without trailing zeros past the decimal point.
func sig(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "—"
	}
	a := math.Abs(v)
	var digits int
	switch {
	case a == 0:
		return "0"
	case a >= 100:
		digits = 0
	case a >= 10:
		digits = 1
	case a >= 1:
		digits = 2
	default:
		digits = 2 - int(math.Floor(math.Log10(a)))
	}
	s := strconv.FormatFloat(v, 'f', digits, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}
