// Package hist is a log-linear latency histogram in the style of
// HdrHistogram: constant memory, O(1) recording, mergeable, with a bounded
// relative error on every percentile it reports.
//
// Values are non-negative int64s (shardbench records nanoseconds). Values
// below 2^SubBits are counted exactly. Above that, each power-of-two range
// [2^e, 2^(e+1)) is split into 2^SubBits equal buckets, so a bucket is never
// wider than 2^-SubBits of the values it holds. A percentile is answered
// with the middle of the bucket that holds the value of that rank, which is
// off from the exact value by at most half a bucket:
//
//	|Percentile(p) - exact(p)| <= exact(p) * RelativeError
//
// where exact(p) is the nearest-rank percentile of the recorded values (the
// value at 1-based rank ceil(p/100*n) in sorted order), and RelativeError
// is 2^-(SubBits+1), about 0.2 %. Min and Max are tracked exactly, and
// Percentile never answers outside [Min, Max].
//
// A Histogram is not safe for concurrent use: give each goroutine its own
// and Merge them.
package hist

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// SubBits is log2 of the number of buckets per power of two.
const SubBits = 8

// RelativeError bounds |Percentile(p)-exact(p)|/exact(p) (see the package doc).
const RelativeError = 1.0 / (1 << (SubBits + 1))

const (
	subCount   = 1 << SubBits
	numBuckets = (64 - SubBits) * subCount // covers every non-negative int64
)

// Histogram counts values into log-linear buckets. The zero value is not
// usable; call New.
type Histogram struct {
	counts []uint64
	n      uint64
	sum    float64
	min    int64
	max    int64
}

// New returns an empty histogram (about 112 KiB of counters).
func New() *Histogram {
	return &Histogram{counts: make([]uint64, numBuckets), min: math.MaxInt64}
}

// bucketOf returns the index of the bucket that holds v (v >= 0).
func bucketOf(v int64) int {
	u := uint64(v)
	if u < subCount {
		return int(u)
	}
	shift := bits.Len64(u) - 1 - SubBits // u>>shift is in [subCount, 2*subCount)
	return (shift+1)*subCount + int(u>>shift) - subCount
}

// bucketRange returns the smallest value of bucket i and its width.
func bucketRange(i int) (lo int64, width int64) {
	if i < subCount {
		return int64(i), 1
	}
	shift := i/subCount - 1
	mant := int64(i%subCount + subCount)
	return mant << shift, int64(1) << shift
}

// Record counts one value. Negative values count as 0: a clock that steps
// back between two processes must not corrupt the histogram.
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)]++
	h.n++
	h.sum += float64(v)
	if v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n }

// Min is the smallest recorded value, or 0 when empty.
func (h *Histogram) Min() int64 {
	if h.n == 0 {
		return 0
	}
	return h.min
}

// Max is the largest recorded value, or 0 when empty.
func (h *Histogram) Max() int64 { return h.max }

// Mean is the exact arithmetic mean, or 0 when empty.
func (h *Histogram) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}

// Percentile returns the value at percentile p (0 < p <= 100) within
// RelativeError of the nearest-rank percentile; 0 when empty. p <= 0
// answers Min and p >= 100 answers Max, both exact.
func (h *Histogram) Percentile(p float64) int64 {
	if h.n == 0 {
		return 0
	}
	if p <= 0 {
		return h.min
	}
	if p >= 100 {
		return h.max
	}
	rank := uint64(math.Ceil(p / 100 * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, w := bucketRange(i)
			v := lo + (w-1)/2
			return min(max(v, h.min), h.max)
		}
	}
	return h.max // unreachable while counts and n agree
}

// Merge adds every value counted in o to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.mergeTotals(o.n, o.sum, o.min, o.max)
}

func (h *Histogram) mergeTotals(n uint64, sum float64, lo, hi int64) {
	if n == 0 {
		return
	}
	h.n += n
	h.sum += sum
	h.min = min(h.min, lo)
	h.max = max(h.max, hi)
}

// Reset empties h, keeping its memory.
func (h *Histogram) Reset() {
	clear(h.counts)
	h.n, h.sum, h.min, h.max = 0, 0, math.MaxInt64, 0
}

// Snapshot is a compact, JSON-friendly copy of a histogram: only non-empty
// buckets, as pairs of bucket index and count. It is how shardbench workers
// send their histograms to the parent process.
type Snapshot struct {
	Buckets [][2]uint64 `json:"buckets"`
	Count   uint64      `json:"count"`
	Sum     float64     `json:"sum"`
	Min     int64       `json:"min"`
	Max     int64       `json:"max"`
}

// Snapshot returns h in compact form.
func (h *Histogram) Snapshot() Snapshot {
	s := Snapshot{Count: h.n, Sum: h.sum, Min: h.Min(), Max: h.max}
	for i, c := range h.counts {
		if c != 0 {
			s.Buckets = append(s.Buckets, [2]uint64{uint64(i), c})
		}
	}
	return s
}

// ErrBadSnapshot is returned by MergeSnapshot for a snapshot that does not
// describe a histogram of this layout.
var ErrBadSnapshot = errors.New("hist: bad snapshot")

// MergeSnapshot adds the values of s to h. It checks s before changing h.
func (h *Histogram) MergeSnapshot(s Snapshot) error {
	var total uint64
	for _, b := range s.Buckets {
		if b[0] >= numBuckets {
			return fmt.Errorf("%w: bucket %d out of range", ErrBadSnapshot, b[0])
		}
		total += b[1]
	}
	if total != s.Count || (s.Count > 0 && (s.Min < 0 || s.Min > s.Max)) {
		return fmt.Errorf("%w: counts add up to %d, header says %d", ErrBadSnapshot, total, s.Count)
	}
	for _, b := range s.Buckets {
		h.counts[b[0]] += b[1]
	}
	h.mergeTotals(s.Count, s.Sum, s.Min, s.Max)
	return nil
}
