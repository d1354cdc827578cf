package jshistory

import (
	"strings"

	"github.com/shardgate/shardgate/shard/protocol"
)

// Subjects. A channel's messages are stored under
//
//	<prefix>.ch.<token>    what the stream captures (publishes go here)
//	<prefix>.live.<token>  the stream's republish of each stored message,
//	                       with its sequence and its channel predecessor
//
// <token> is the channel with '.' written as '~', the same one-to-one
// mapping natsbroker uses (see natsbroker/subject.go for why it is safe),
// so both packages name a channel by the same subject. "live" is a second
// token natsbroker does not use ("all", "ch", "ctl"), so nodes of either
// kind never take each other's control or broadcast subjects.
const (
	dotEscape    = '~'
	channelToken = "ch"
	liveToken    = "live"
)

type subjects struct {
	prefix   string
	chPrefix string // <prefix>.ch.
	lvPrefix string // <prefix>.live.
}

func newSubjects(prefix string) subjects {
	return subjects{
		prefix:   prefix,
		chPrefix: prefix + "." + channelToken + ".",
		lvPrefix: prefix + "." + liveToken + ".",
	}
}

// validPrefix reports whether prefix is one or more literal NATS tokens.
func validPrefix(prefix string) bool {
	for _, tok := range strings.Split(prefix, ".") {
		if tok == "" || strings.ContainsAny(tok, "*> \t\r\n") {
			return false
		}
	}
	return true
}

// token is channel's subject token, or false for a name that is not a
// channel (the empty "everyone" channel has no history).
func token(channel string) (string, bool) {
	if !protocol.ValidChannel(channel) {
		return "", false
	}
	return strings.ReplaceAll(channel, ".", string(dotEscape)), true
}

func (s subjects) stored(tok string) string { return s.chPrefix + tok }
func (s subjects) live(tok string) string   { return s.lvPrefix + tok }

// streamFilter and republish source/destination of the stream.
func (s subjects) streamFilter() string { return s.chPrefix + "*" }
func (s subjects) republishTo() string  { return s.lvPrefix + "{{wildcard(1)}}" }

// liveToken returns the token of a republished subject.
func (s subjects) liveTok(subject string) (string, bool) {
	tok, ok := strings.CutPrefix(subject, s.lvPrefix)
	if !ok || tok == "" || strings.IndexByte(tok, '.') >= 0 {
		return "", false
	}
	return tok, true
}
