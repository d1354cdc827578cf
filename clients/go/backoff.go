package shardgate

import (
	"math/rand/v2"
	"time"
)

// backoffDelay is the wait after the n-th consecutive failure (n = 0,
// 1, ...): drawn uniformly from [lo, min(hi, lo·2ⁿ⁺¹)], exponential
// backoff with full jitter floored at lo, so that a fleet of clients
// spreads its retries out and none retries in a tight loop. The window is
// already [lo, 2·lo] for the first retry: the clients of a node that
// crashed must not all come back at the same instant.
func backoffDelay(n int, lo, hi time.Duration) time.Duration {
	n++
	ceiling := hi
	if n < 63 && lo <= hi>>n {
		ceiling = lo << n // no overflow: at most hi
	}
	if ceiling <= lo {
		return lo
	}
	return lo + rand.N(ceiling-lo+1)
}
