package natsbroker

import (
	"strings"

	"github.com/shardgate/shardgate/shard/protocol"
)

// Subjects. Every message travels on one of three kinds of subject:
//
//	<prefix>.all             messages to every connection (channel "")
//	<prefix>.ch.<token>      messages to one channel
//	<prefix>.ctl.disconnect  requests to close the connections of a sub
//
// The second token tells them apart: "all", "ch" and "ctl" are distinct,
// and a channel always sits under "ch", so no channel name can reach the
// control subject (or the reverse).
//
// A channel becomes exactly one NATS token. Channel names are 1–128 bytes
// of A-Z a-z 0-9 . _ : @ -, and of these only '.' means something to NATS
// (it separates tokens; "a..b" or ".a" would even be invalid subjects).
// So '.' is written as '~', a byte no channel may contain: the mapping is
// one-to-one and reversible, and "a.b" cannot collide with "a~b" (which is
// not a channel) or with any other name. '*', '>', whitespace and every
// other byte NATS treats specially are outside the channel alphabet
// (shard/protocol.ValidChannel, the one definition of it), and
// subjects.channel refuses any name that is not a valid channel, so no
// wildcard or extra token can be injected through a channel name.
//
// A subscriber can still follow every channel with "<prefix>.ch.>" (nats
// sub 'shardgate.ch.>'), which is how to watch a cluster's traffic by hand.
const (
	dotEscape    = '~'
	allToken     = "all"
	channelToken = "ch"
	controlToken = "ctl"
)

// subjects builds and parses the subjects of one subject prefix.
type subjects struct {
	all        string // <prefix>.all
	chPrefix   string // <prefix>.ch.
	disconnect string // <prefix>.ctl.disconnect
}

// validPrefix reports whether prefix is one or more literal NATS tokens.
func validPrefix(prefix string) bool {
	for _, tok := range strings.Split(prefix, ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n") {
			return false
		}
	}
	return true
}

func newSubjects(prefix string) subjects {
	return subjects{
		all:        prefix + "." + allToken,
		chPrefix:   prefix + "." + channelToken + ".",
		disconnect: prefix + "." + controlToken + ".disconnect",
	}
}

// channel returns the subject of channel, or false for a name that is not
// a valid channel. The empty channel is the "everyone" subject.
func (s subjects) channel(channel string) (string, bool) {
	if channel == "" {
		return s.all, true
	}
	if !protocol.ValidChannel(channel) {
		return "", false
	}
	return s.chPrefix + strings.ReplaceAll(channel, ".", string(dotEscape)), true
}

// parse returns the channel a subject carries ("" for everyone), or false
// for a subject that is not one of ours.
func (s subjects) parse(subject string) (string, bool) {
	if subject == s.all {
		return "", true
	}
	tok, ok := strings.CutPrefix(subject, s.chPrefix)
	if !ok || tok == "" || strings.IndexByte(tok, '.') >= 0 {
		return "", false
	}
	return strings.ReplaceAll(tok, string(dotEscape), "."), true
}
