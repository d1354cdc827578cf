package natsbroker

import (
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/shardgate/shardgate/shard/protocol"
)

func TestSubjects(t *testing.T) {
	s := newSubjects("shardgate")
	long := strings.Repeat("a", protocol.MaxChannelLen)
	cases := []struct {
		channel string
		subject string // "" when the name must be refused
	}{
		{"", "shardgate.all"},
		{"news", "shardgate.ch.news"},
		{"a.b", "shardgate.ch.a~b"},
		{"a..b", "shardgate.ch.a~~b"},
		{".a.", "shardgate.ch.~a~"},
		{"all", "shardgate.ch.all"},
		{"user:42@eu-west_1", "shardgate.ch.user:42@eu-west_1"},
		{long, "shardgate.ch." + long},
		{long + "a", ""},
		{"a~b", ""},
		{"*", ""},
		{">", ""},
		{"a.*", ""},
		{"a.>", ""},
		{"a b", ""},
		{"a\tb", ""},
		{"a\nb", ""},
		{"$SYS", ""},
		{"é", ""},
	}
	for _, c := range cases {
		t.Run(c.channel, func(t *testing.T) {
			got, ok := s.channel(c.channel)
			if c.subject == "" {
				if ok {
					t.Fatalf("channel(%q) = %q, want refusal", c.channel, got)
				}
				return
			}
			if !ok || got != c.subject {
				t.Fatalf("channel(%q) = %q, %v; want %q", c.channel, got, ok, c.subject)
			}
			back, ok := s.parse(got)
			if !ok || back != c.channel {
				t.Fatalf("parse(%q) = %q, %v; want %q", got, back, ok, c.channel)
			}
		})
	}
}

func TestParseRefusesForeignSubjects(t *testing.T) {
	s := newSubjects("shardgate")
	for _, subj := range []string{"", "shardgate", "shardgate.ch", "shardgate.ch.", "shardgate.ch.a.b",
		"other.ch.a", "other.all", "shardgate.all.x", "shardgatex.all"} {
		if ch, ok := s.parse(subj); ok {
			t.Errorf("parse(%q) = %q, want refusal", subj, ch)
		}
	}
}

func TestValidPrefix(t *testing.T) {
	for prefix, want := range map[string]bool{
		"shardgate": true, "acme.shardgate": true, "a-b_c": true,
		"": false, ".a": false, "a.": false, "a..b": false, "a.*": false, ">": false, "a b": false,
	} {
		if got := validPrefix(prefix); got != want {
			t.Errorf("validPrefix(%q) = %v, want %v", prefix, got, want)
		}
	}
}

// FuzzSubjects: every channel name maps to a literal NATS subject of
// exactly three tokens (so no wildcard and no extra token), the mapping
// reverses, and anything that is not a channel name is refused.
func FuzzSubjects(f *testing.F) {
	for _, seed := range []string{"news", "a.b", "..", "a~b", "*", "a.>", " ", "x:y@z-1_2"} {
		f.Add(seed)
	}
	s := newSubjects("shardgate")
	f.Fuzz(func(t *testing.T, channel string) {
		subj, ok := s.channel(channel)
		if channel == "" {
			return
		}
		if ok != protocol.ValidChannel(channel) {
			t.Fatalf("channel(%q) ok = %v, ValidChannel = %v", channel, ok, !ok)
		}
		if !ok {
			return
		}
		if !server.IsValidLiteralSubject(subj) {
			t.Fatalf("channel(%q) = %q: not a literal subject", channel, subj)
		}
		if n := strings.Count(subj, ".") + 1; n != 3 {
			t.Fatalf("channel(%q) = %q: %d tokens", channel, subj, n)
		}
		back, ok := s.parse(subj)
		if !ok || back != channel {
			t.Fatalf("parse(channel(%q)) = %q, %v", channel, back, ok)
		}
	})
}
