package shardgate

import (
	"encoding/base64"
	"strconv"
	"testing"
	"time"
)

func jwtWith(payload string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"HS256"}`)) + "." + enc([]byte(payload)) + ".c2ln"
}

// TestTokenExpiry: exp is read from the payload without verification;
// anything that is not a JWT with a numeric exp has none.
func TestTokenExpiry(t *testing.T) {
	for _, tc := range []struct {
		name  string
		token string
		exp   time.Time // zero: none
	}{
		{"integer", jwtWith(`{"sub":"a","exp":1767225600}`), time.Unix(1767225600, 0)},
		{"fractional", jwtWith(`{"exp":1767225600.5}`), time.Unix(1767225600, 5e8)},
		{"padded", "e30." + base64.URLEncoding.EncodeToString([]byte(`{"exp": 1767225600}`)) + ".c2ln", time.Unix(1767225600, 0)},
		{"no exp", jwtWith(`{"sub":"a"}`), time.Time{}},
		{"string exp", jwtWith(`{"exp":"soon"}`), time.Time{}},
		{"negative", jwtWith(`{"exp":-5}`), time.Time{}},
		{"not JSON", jwtWith(`exp`), time.Time{}},
		{"two parts", "abc.def", time.Time{}},
		{"bad base64", "a.!!!.c", time.Time{}},
		{"opaque", "an-opaque-token", time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exp, ok := tokenExpiry(tc.token)
			if ok != !tc.exp.IsZero() || !exp.Equal(tc.exp) {
				t.Fatalf("tokenExpiry = %v, %v; want %v", exp, ok, tc.exp)
			}
		})
	}
}

// TestTokenRefreshMargin: a token is refreshed when min(30 s,
// lifetime/2) is left, and is stale from then on.
func TestTokenRefreshMargin(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		lifetime, margin time.Duration
	}{
		{2 * time.Second, time.Second},
		{time.Minute, 30 * time.Second},
		{time.Hour, 30 * time.Second},
		{-time.Second, 0}, // expired already: refresh now
	} {
		exp := now.Add(tc.lifetime)
		tok := newToken(jwtWith(`{"exp":`+strconv.FormatInt(exp.Unix(), 10)+`}`), now)
		if want := exp.Add(-tc.margin); !tok.refreshAt.Equal(want) {
			t.Errorf("lifetime %v: refresh at %v, want %v", tc.lifetime, tok.refreshAt, want)
		}
		if tok.stale(tok.refreshAt.Add(-time.Millisecond)) || !tok.stale(tok.refreshAt) {
			t.Errorf("lifetime %v: stale around the refresh time is wrong", tc.lifetime)
		}
	}
	if tok := newToken("opaque", now); tok.expires() || tok.stale(now.Add(1000*time.Hour)) {
		t.Error("a token without exp expires")
	}
}
