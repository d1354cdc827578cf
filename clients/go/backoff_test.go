package shardgate

import (
	"testing"
	"time"
)

// TestBackoffDelayBounds: after the n-th failure the delay is within
// [min, min(max, min·2ⁿ⁺¹)], reaches both ends of that range over many
// draws, and never overflows for large n.
func TestBackoffDelayBounds(t *testing.T) {
	const lo, hi = 500 * time.Millisecond, 20 * time.Second
	for _, tc := range []struct {
		n       int
		ceiling time.Duration
	}{
		{0, 2 * lo}, {1, 4 * lo}, {2, 8 * lo}, {4, 16 * time.Second}, {5, hi}, {61, hi}, {62, hi}, {63, hi}, {1000, hi},
	} {
		least, most := hi, time.Duration(0)
		for range 2000 {
			d := backoffDelay(tc.n, lo, hi)
			if d < lo || d > tc.ceiling {
				t.Fatalf("n=%d: delay %v outside [%v, %v]", tc.n, d, lo, tc.ceiling)
			}
			least, most = min(least, d), max(most, d)
		}
		// Full jitter: the draws cover the range (within a tenth at each end).
		if slack := (tc.ceiling - lo) / 10; least > lo+slack || most < tc.ceiling-slack {
			t.Errorf("n=%d: 2000 delays span only [%v, %v] of [%v, %v]", tc.n, least, most, lo, tc.ceiling)
		}
	}
	if d := backoffDelay(3, time.Second, time.Second); d != time.Second {
		t.Errorf("min = max: %v", d)
	}
}
