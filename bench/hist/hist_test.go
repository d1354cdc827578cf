package hist

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// exactPercentile is the nearest-rank percentile of sorted: the value at
// 1-based rank ceil(p/100*n).
func exactPercentile(sorted []int64, p float64) int64 {
	if p <= 0 {
		return sorted[0]
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[max(rank, 1)-1]
}

// checkWithin fails unless got is within RelativeError of want.
func checkWithin(t *testing.T, what string, got, want int64) {
	t.Helper()
	if d := math.Abs(float64(got - want)); d > float64(want)*RelativeError {
		t.Errorf("%s = %d, exact %d: off by %.0f, more than %.4f%%", what, got, want, d, RelativeError*100)
	}
}

var percentiles = []float64{0, 1, 10, 50, 90, 99, 99.9, 99.99, 100}

func TestPercentileWithinRelativeError(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []struct {
		name string
		n    int
		gen  func() int64
	}{
		{"single", 1, func() int64 { return 123456 }},
		{"small exact region", 1000, func() int64 { return rng.Int64N(subCount) }},
		{"uniform 0-1s", 100_000, func() int64 { return rng.Int64N(1e9) }},
		{"exponential 1ms", 100_000, func() int64 { return int64(rng.ExpFloat64() * 1e6) }},
		{"log-uniform ns-hours", 100_000, func() int64 { return int64(math.Exp(rng.Float64() * math.Log(3.6e12))) }},
		{"bimodal", 50_000, func() int64 {
			if rng.IntN(100) == 0 {
				return 5e8 + rng.Int64N(1e6)
			}
			return 2e5 + rng.Int64N(1e4)
		}},
		{"huge", 1000, func() int64 { return math.MaxInt64 - rng.Int64N(1<<40) }},
		{"constant", 777, func() int64 { return 999_999 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := New()
			vals := make([]int64, tc.n)
			for i := range vals {
				vals[i] = tc.gen()
				h.Record(vals[i])
			}
			slices.Sort(vals)
			for _, p := range percentiles {
				checkWithin(t, "p"+ftoa(p), h.Percentile(p), exactPercentile(vals, p))
			}
			if h.Min() != vals[0] || h.Max() != vals[len(vals)-1] {
				t.Errorf("min/max = %d/%d, want %d/%d", h.Min(), h.Max(), vals[0], vals[len(vals)-1])
			}
			if h.Count() != uint64(tc.n) {
				t.Errorf("count = %d, want %d", h.Count(), tc.n)
			}
		})
	}
}

func ftoa(p float64) string {
	b, _ := json.Marshal(p)
	return string(b)
}

// Every bucket boundary: a value and its neighbours land in a bucket whose
// range holds them and whose width respects the error bound.
func TestBucketLayout(t *testing.T) {
	for i := range numBuckets {
		lo, w := bucketRange(i)
		hi := lo + w - 1
		if hi < lo { // the last bucket's end overflows int64
			hi = math.MaxInt64
		}
		for _, v := range []int64{lo, lo + (w-1)/2, hi} {
			if got := bucketOf(v); got != i {
				t.Fatalf("bucketOf(%d) = %d, want %d (range %d+%d)", v, got, i, lo, w)
			}
		}
		if i >= subCount && float64(w)/2 > float64(lo)*RelativeError {
			t.Fatalf("bucket %d: half width %d over %g of %d", i, w/2, RelativeError, lo)
		}
		if i > 0 {
			plo, pw := bucketRange(i - 1)
			if plo+pw != lo {
				t.Fatalf("gap between bucket %d (%d+%d) and %d (%d)", i-1, plo, pw, i, lo)
			}
		}
	}
}

func TestEmptyAndNegative(t *testing.T) {
	h := New()
	if h.Percentile(50) != 0 || h.Min() != 0 || h.Max() != 0 || h.Mean() != 0 {
		t.Fatalf("empty histogram answers non-zero")
	}
	h.Record(-5)
	if h.Count() != 1 || h.Max() != 0 || h.Percentile(99) != 0 {
		t.Fatalf("negative value not counted as 0: count %d max %d", h.Count(), h.Max())
	}
}

func TestMergeEqualsRecordingAll(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	all, a, b := New(), New(), New()
	for i := range 20_000 {
		v := rng.Int64N(1e8)
		all.Record(v)
		if i%3 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	merged := New()
	merged.Merge(a)
	if err := merged.MergeSnapshot(roundTrip(t, b.Snapshot())); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(merged.counts, all.counts) || merged.Min() != all.Min() || merged.Max() != all.Max() || merged.Count() != all.Count() {
		t.Fatalf("merge differs from recording everything in one histogram")
	}
	if math.Abs(merged.Mean()-all.Mean()) > 1e-6*all.Mean() {
		t.Fatalf("mean %f, want %f", merged.Mean(), all.Mean())
	}
	merged.Merge(New()) // merging an empty histogram changes nothing
	if merged.Min() != all.Min() {
		t.Fatalf("empty merge moved min to %d", merged.Min())
	}
}

func roundTrip(t *testing.T, s Snapshot) Snapshot {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var out Snapshot
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestMergeSnapshotRejectsBadInput(t *testing.T) {
	cases := []struct {
		name string
		s    Snapshot
	}{
		{"bucket out of range", Snapshot{Buckets: [][2]uint64{{numBuckets, 1}}, Count: 1, Max: 1}},
		{"count mismatch", Snapshot{Buckets: [][2]uint64{{3, 2}}, Count: 1, Min: 3, Max: 3}},
		{"min over max", Snapshot{Buckets: [][2]uint64{{3, 1}}, Count: 1, Min: 9, Max: 3}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := New()
			if err := h.MergeSnapshot(tc.s); !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("err = %v, want ErrBadSnapshot", err)
			}
			if h.Count() != 0 {
				t.Fatalf("histogram changed by a rejected snapshot")
			}
		})
	}
}

func TestReset(t *testing.T) {
	h := New()
	h.Record(42)
	h.Reset()
	h.Record(7)
	if h.Count() != 1 || h.Min() != 7 || h.Max() != 7 {
		t.Fatalf("after reset: count %d min %d max %d", h.Count(), h.Min(), h.Max())
	}
}

func BenchmarkRecord(b *testing.B) {
	h := New()
	b.ReportAllocs()
	v := int64(1)
	for b.Loop() {
		h.Record(v)
		v = v*31 + 7&(1<<40-1)
	}
}

func BenchmarkPercentile(b *testing.B) {
	h := New()
	for i := range int64(100_000) {
		h.Record(i * 1000)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = h.Percentile(99.9)
	}
}
