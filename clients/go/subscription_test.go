package shardgate

import (
	"testing"
)

func u64(v uint64) *uint64 { return &v }
func boolp(v bool) *bool   { return &v }

// TestSubscriptionHandsEachMessageOnceInOrder drives one subscription
// through subscribes and messages and checks the invariant recovery
// rests on: the position is the last message handed over (or the reply's
// when none came after it), a resubscribe recovers from it, a recovered
// reply keeps it (the replay follows), and nothing at or below it is
// handed over again.
func TestSubscriptionHandsEachMessageOnceInOrder(t *testing.T) {
	type step struct {
		r         reply
		delivered bool      // for a message: handed over
		recover   *position // the subscribe request sent after this step (nil: none)
	}
	msg := func(off uint64) reply { return reply{Type: "message", Channel: "c", Offset: u64(off)} }
	sub := func(epoch string, off uint64, recovered *bool) reply {
		return reply{Type: "subscribed", Channel: "c", Epoch: epoch, Offset: u64(off), Recovered: recovered}
	}
	steps := []step{
		{r: sub("e1", 10, nil), recover: &position{"e1", 10}},
		{r: msg(10), delivered: false}, // at the reply's offset: not after it
		{r: msg(11), delivered: true},
		{r: msg(13), delivered: true, recover: &position{"e1", 13}},
		// reconnect: recovered, the replay (11..15) overlaps what was had
		{r: sub("e1", 15, boolp(true)), recover: &position{"e1", 13}},
		{r: msg(12), delivered: false},
		{r: msg(13), delivered: false},
		{r: msg(14), delivered: true},
		{r: msg(15), delivered: true},
		{r: msg(15), delivered: false},
		// reconnect: the epoch changed, offsets start over
		{r: sub("e2", 3, boolp(false)), recover: &position{"e2", 3}},
		{r: msg(2), delivered: false},
		{r: msg(4), delivered: true, recover: &position{"e2", 4}},
		// history turned off: no position, everything delivered
		{r: reply{Type: "subscribed", Channel: "c"}},
		{r: reply{Type: "message", Channel: "c"}, delivered: true},
		{r: reply{Type: "message", Channel: "c"}, delivered: true},
	}
	s := &Subscription{channel: "c"}
	if r := s.subscribeRequest(1); r.Recover != nil {
		t.Fatalf("first subscribe recovers from %+v", r.Recover)
	}
	for i, st := range steps {
		switch st.r.Type {
		case "subscribed":
			ev := s.subscribed(st.r)
			if ev.Recovering != (st.r.Recovered != nil) {
				t.Fatalf("step %d: %+v", i, ev)
			}
		case "message":
			if _, ok := s.accept(st.r); ok != st.delivered {
				t.Fatalf("step %d: message at %v handed over: %v, want %v", i, st.r.Offset, ok, st.delivered)
			}
		}
		if st.recover != nil || st.r.Type == "subscribed" {
			got := s.subscribeRequest(2).Recover
			if (got == nil) != (st.recover == nil) || (got != nil && *got != *st.recover) {
				t.Fatalf("step %d: would recover from %+v, want %+v", i, got, st.recover)
			}
		}
	}
}

// TestValidChannel follows the gateway's rule: 1-128 bytes of
// A-Z a-z 0-9 . _ : @ -.
func TestValidChannel(t *testing.T) {
	long := make([]byte, 129)
	for i := range long {
		long[i] = 'a'
	}
	for name, want := range map[string]bool{
		"news": true, "a.b_c:d@e-F9": true, string(long[:128]): true,
		"": false, string(long): false, "a b": false, "a/b": false, "a*": false, "é": false,
	} {
		if got := validChannel(name); got != want {
			t.Errorf("validChannel(%q) = %v", name, got)
		}
	}
}
