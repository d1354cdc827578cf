package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestFlagErrors(t *testing.T) {
	cases := []struct {
		args []string
		flag string
	}{
		{[]string{"-nope"}, "-nope"},
		{[]string{"-send-queue", "0"}, "-send-queue"},
		{[]string{"-send-queue", "x"}, "-send-queue"},
		{[]string{"-max-message-bytes", "0"}, "-max-message-bytes"},
		{[]string{"-ping-interval", "0s"}, "-ping-interval"},
		{[]string{"-listen"}, "-listen"},
		{[]string{"extra"}, "extra"},
	}
	for _, tc := range cases {
		var stderr bytes.Buffer
		code := run(tc.args, &stderr)
		msg := stderr.String()
		if code != 2 || strings.Count(msg, "\n") != 1 || !strings.Contains(msg, tc.flag) {
			t.Errorf("%v: exit %d, stderr %q: want exit 2 and one line naming %s", tc.args, code, msg, tc.flag)
		}
	}
}

func TestListenFailure(t *testing.T) {
	var stderr bytes.Buffer
	if code := run([]string{"-listen", "256.0.0.1:1"}, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1 (stderr %q)", code, stderr.String())
	}
}
