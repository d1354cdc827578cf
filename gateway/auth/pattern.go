package auth

import "github.com/shardgate/shardgate/shard/protocol"

// Patterns is a list of channel patterns, as carried by a token's "channels"
// and "publish" claims. In a pattern, '*' matches one or more channel-name
// bytes (A-Z a-z 0-9 . _ : @ -) and every other byte matches itself, so
// "news.*" matches "news.x" and "news.a.b" but not "news." or "news".
//
// Verify only returns valid patterns (ValidPattern); a Patterns built by hand
// may hold invalid ones, which Match tolerates: they never match anything
// beyond what their literal bytes spell.
type Patterns []string

// ValidPattern reports whether p is a pattern a token may carry: 1 to
// protocol.MaxChannelLen bytes of channel-name bytes and '*'. Longer patterns
// are refused because each byte, '*' included, consumes at least one byte of
// the channel, so they could never match a valid name.
func ValidPattern(p string) bool {
	if len(p) == 0 || len(p) > protocol.MaxChannelLen {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] != '*' && !protocol.ChannelByte(p[i]) {
			return false
		}
	}
	return true
}

// Match reports whether channel is a valid channel name matched by at least
// one of the patterns. Each pattern is matched in O(len(pattern) ×
// len(channel)) time at worst, whatever its stars; there is no recursion and
// no exponential backtracking.
func (ps Patterns) Match(channel string) bool {
	// Requiring a valid name first means every channel byte is one a star
	// may consume, which is what makes the greedy matcher below exact.
	if !protocol.ValidChannel(channel) {
		return false
	}
	for _, p := range ps {
		if matchPattern(p, channel) {
			return true
		}
	}
	return false
}

// matchPattern matches pattern p against s, where '*' stands for one or more
// bytes and every byte of s may be consumed by a star.
//
// It is the classic two-pointer wildcard matcher with '*' read as "one byte,
// then zero or more": on a star it consumes the mandatory byte and records a
// restart point; on a mismatch it lets the most recent star swallow one more
// byte and retries the rest of the pattern from there. Only the most recent
// star ever needs to grow — an earlier star growing could only shift the same
// literal run to the right, which the latest star achieves as well — so each
// restart advances the mark and the total work is bounded by len(p)·len(s).
func matchPattern(p, s string) bool {
	pi, si := 0, 0
	star, mark := -1, 0 // last star's index in p; s index where its span ends
	for si < len(s) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star = pi
			pi++
			si++ // the star's mandatory byte
			mark = si
		case pi < len(p) && p[pi] == s[si]:
			pi++
			si++
		case star >= 0:
			mark++ // the star takes one more byte
			si = mark
			pi = star + 1
		default:
			return false
		}
	}
	// s is used up: anything left in p needs at least one more byte.
	return pi == len(p)
}
