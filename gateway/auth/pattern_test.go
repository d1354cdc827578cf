package auth

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestPatternsMatch(t *testing.T) {
	cases := []struct {
		pattern string
		yes     []string
		no      []string
	}{
		{"news", []string{"news"}, []string{"new", "newss", "news.x", "News", ""}},
		{"news.*", []string{"news.x", "news.a.b", "news.-", "news.:@_"}, []string{"news.", "news", "xnews.a", "news.a b", "news.a/b"}},
		{"*", []string{"a", "news.sport", strings.Repeat("z", 128)}, []string{"", "a b", strings.Repeat("z", 129), "é"}},
		{"*.*", []string{"a.b", "a.b.c", "a..b", "...."}, []string{".b", "a.", "ab", "."}},
		{"a*b*c", []string{"axbyc", "axxbyyc", "abbbc", "a.b.c"}, []string{"abc", "axbc", "abyc", "axbycd"}},
		{"**", []string{"ab", "abc"}, []string{"a"}},
		{"*:inbox", []string{"user@x.com:inbox"}, []string{":inbox", "user:inbox2"}},
		{"user.*.msg", []string{"user.1.msg", "user.a.b.msg"}, []string{"user..msg", "user.1.msg.x"}},
		{strings.Repeat("*", 64), []string{strings.Repeat("a", 64), strings.Repeat("a", 128)}, []string{strings.Repeat("a", 63)}},
		{strings.Repeat("*a", 40), []string{strings.Repeat("a", 128)}, []string{strings.Repeat("a", 127) + "b", strings.Repeat("a", 79)}},
		{"*a*a*a*a*a*a*a*a*a*a*b", []string{strings.Repeat("a", 30) + "b"}, []string{strings.Repeat("a", 128)}},
		{"news/x", nil, []string{"news/x", "news.x"}}, // invalid pattern: can only spell an invalid name
	}
	for _, tc := range cases {
		ps := Patterns{tc.pattern}
		for _, ch := range tc.yes {
			if !ps.Match(ch) {
				t.Errorf("%q should match %q", tc.pattern, ch)
			}
		}
		for _, ch := range tc.no {
			if ps.Match(ch) {
				t.Errorf("%q should not match %q", tc.pattern, ch)
			}
		}
	}
	if (Patterns{}).Match("a") || Patterns(nil).Match("a") {
		t.Error("empty Patterns matched")
	}
	if !(Patterns{"x", "y.*"}).Match("y.z") {
		t.Error("second pattern not consulted")
	}
}

func TestValidPattern(t *testing.T) {
	for p, want := range map[string]bool{
		"news": true, "*": true, "news.*": true, "*.*": true, "a*b": true, "AZaz09._:@-*": true,
		strings.Repeat("*", 128): true, strings.Repeat("a", 129): false,
		"": false, "news/*": false, "a b": false, "é": false, "a?": false, "a\x00": false,
	} {
		if got := ValidPattern(p); got != want {
			t.Errorf("ValidPattern(%q) = %v, want %v", p, got, want)
		}
	}
}

// matchReference is the obvious dynamic-programming matcher for "'*' is one
// or more bytes", used to check the greedy one.
func matchReference(p, s string) bool {
	// m[i][j]: p[i:] matches s[j:].
	m := make([][]bool, len(p)+1)
	for i := range m {
		m[i] = make([]bool, len(s)+1)
	}
	m[len(p)][len(s)] = true
	for i := len(p) - 1; i >= 0; i-- {
		for j := len(s) - 1; j >= 0; j-- {
			if p[i] == '*' {
				m[i][j] = m[i+1][j+1] || m[i][j+1]
			} else {
				m[i][j] = p[i] == s[j] && m[i+1][j+1]
			}
		}
	}
	return m[0][0]
}

// TestMatchAgainstReference compares the matcher with the reference over
// many small random patterns and names drawn from a tiny alphabet, where
// stars and literals collide often.
func TestMatchAgainstReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	gen := func(alphabet string, n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		return string(b)
	}
	for range 200_000 {
		p := gen("ab.*", 1+r.IntN(8))
		s := gen("ab.", 1+r.IntN(10))
		if got, want := (Patterns{p}).Match(s), matchReference(p, s); got != want {
			t.Fatalf("Match(%q, %q) = %v, reference says %v", p, s, got, want)
		}
	}
}

// TestMatchManyStarsIsFast guards against exponential backtracking: the
// worst pattern against the longest name must stay in microseconds.
func TestMatchManyStarsIsFast(t *testing.T) {
	p := Patterns{strings.Repeat("*a", 63) + "b"}
	s := strings.Repeat("a", 128)
	start := time.Now()
	for range 1000 {
		if p.Match(s) {
			t.Fatal("matched")
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("1000 worst-case matches took %v", d)
	}
}
