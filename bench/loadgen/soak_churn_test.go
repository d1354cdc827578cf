package loadgen

import (
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/shardgate/shardgate/bench/client"
)

// TestJudge: how each behaviour's end reads, given what this side did
// (the step) and what ended the connection.
func TestJudge(t *testing.T) {
	closeErr := func(code uint16) error { return &client.CloseError{Code: code} }
	reset := &client.DialError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	cases := []struct {
		beh     behaviour
		step    churnStep
		variant int
		err     error
		done    bool
		why     string
	}{
		{behClean, stepClosing, 0, nil, true, "closed"},
		{behClean, stepClosing, 0, client.ErrCloseTimeout, false, "close_timeout"},
		{behClean, stepActing, 0, closeErr(1001), false, "closed_1001"},
		{behAbrupt, stepClosing, 2, client.ErrAborted, true, "reset"},
		{behAbrupt, stepClosing, 3, client.ErrAborted, true, "fin"},
		{behAbrupt, stepActing, 0, client.ErrEOF, false, "eof"},
		{behStalled, stepActing, 0, &client.HandshakeError{Detail: "connection closed before the response"}, true, "dropped"},
		{behStalled, stepActing, 0, &client.HandshakeError{Status: 408}, true, "http_408"},
		{behStalled, stepActing, 0, client.ErrHandshakeTimeout, false, "not_dropped"},
		{behSilent, stepClosing, 0, client.ErrAborted, true, "held"},
		{behSilent, stepActing, 0, closeErr(1001), false, "dropped_early_closed_1001"},
		{behMalformed, stepActing, 0, closeErr(1002), true, "closed_1002"},
		{behMalformed, stepActing, 1, closeErr(1000), false, "rsv2_closed_1000"},
		{behMalformed, stepClosing, 2, client.ErrAborted, false, "opcode3_not_closed"},
		{behPingFlood, stepClosing, 0, nil, true, "closed"},
		{behPingFlood, stepActing, 0, closeErr(1008), false, "closed_1008"},
		{behStopReading, stepActing, 0, closeErr(1008), true, "closed_1008"},
		{behStopReading, stepActing, 0, client.ErrEOF, true, "eof"},
		{behStopReading, stepActing, 0, reset, true, "read_reset"},
		{behStopReading, stepClosing, 0, client.ErrAborted, false, "not_closed"},
		{behStopReading, stepActing, 0, closeErr(1011), false, "closed_1011"},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s %v", behaviourNames[tc.beh], tc.err), func(t *testing.T) {
			done, why := judge(&churnOp{beh: tc.beh, step: tc.step, variant: tc.variant}, tc.err)
			if done != tc.done || why != tc.why {
				t.Fatalf("judge = %v %q, want %v %q", done, why, tc.done, tc.why)
			}
		})
	}
}

func TestBehavioursRoundRobinOverWorkers(t *testing.T) {
	// Two workers, seven behaviours: together their first operations go
	// once round every behaviour.
	seen := map[string]int{}
	for w := range 2 {
		p := SoakPlan{Behaviours: Behaviours(), Offset: w, Stride: 2}
		for k := range 7 {
			seen[p.Behaviours[p.turn(k)]]++
		}
	}
	for _, b := range Behaviours() {
		if seen[b] != 2 {
			t.Errorf("%s: %d operations of 14, want 2", b, seen[b])
		}
	}
}
