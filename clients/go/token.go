package shardgate

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"strings"
	"time"
)

// maxRefreshMargin is the most time left on a token when the client
// refreshes it; shorter tokens are refreshed halfway through their life.
const maxRefreshMargin = 30 * time.Second

// token is a bearer token and when to refresh it.
type token struct {
	raw string
	// exp is the token's "exp"; zero when it has none (it never expires,
	// and is never refreshed).
	exp time.Time
	// refreshAt is when min(30 s, lifetime/2) is left, the lifetime being
	// counted from when the client got the token.
	refreshAt time.Time
}

// newToken reads raw's expiry, as seen at now.
func newToken(raw string, now time.Time) token {
	t := token{raw: raw}
	if exp, ok := tokenExpiry(raw); ok {
		t.setExpiry(exp, now)
	}
	return t
}

// setExpiry arms the refresh for a token expiring at exp: the gateway's
// "refreshed" reply re-arms it from its "expires".
func (t *token) setExpiry(exp, now time.Time) {
	t.exp = exp
	margin := min(maxRefreshMargin, exp.Sub(now)/2)
	t.refreshAt = exp.Add(-max(margin, 0))
}

// expires reports whether the token has an expiry.
func (t token) expires() bool { return !t.exp.IsZero() }

// stale reports whether the token is within its refresh margin at now:
// a connection should not start with it.
func (t token) stale(now time.Time) bool {
	return t.expires() && !now.Before(t.refreshAt)
}

// tokenExpiry reads "exp" (seconds since the epoch) from a JWT's payload
// without verifying anything: that is the gateway's job, and the client
// only needs to know when to refresh.
func tokenExpiry(raw string) (time.Time, bool) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp *float64 `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Exp == nil {
		return time.Time{}, false
	}
	exp := *claims.Exp
	if math.IsNaN(exp) || exp <= 0 || exp > 1<<40 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(exp)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}
