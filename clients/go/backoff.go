package shardgate

import (
	"math/rand/v2"
	"time"
)

// backoffDelay is the wait after the n-th consecutive failure (n = 0,
// 1, ...): drawn uniformly from [lo, min(hi, lo·2ⁿ)], exponential backoff
// with full jitter floored at lo, so that a fleet of clients spreads its
// retries out and none retries in a tight loop.
func backoffDelay(n int, lo, hi time.Duration) time.Duration {
	ceiling := hi
	if n < 63 && lo <= hi>>n {
		ceiling = lo << n // no overflow: at most hi
	}
	if ceiling <= lo {
		return lo
	}
	return lo + rand.N(ceiling-lo+1)
}
