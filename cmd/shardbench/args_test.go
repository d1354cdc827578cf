package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/shardgate/shardgate/internal/wstest"
)

func TestArgumentErrors(t *testing.T) {
	cases := []struct {
		args []string
		flag string // the flag the message must name ("" when it is about the scenario)
	}{
		{[]string{}, ""},
		{[]string{"blast"}, ""},
		{[]string{"connect", "extra"}, ""},
		{[]string{"connect", "-foo"}, "-foo"},
		{[]string{"connect", "-url", "ws://127.0.0.1:8081/ws,ws://127.0.0.1:8082/ws", "-procs", "1"}, "-procs"},
		{[]string{"connect", "-url", "ws://127.0.0.1:8081/ws,http://127.0.0.1:8082/ws"}, "-url"},
		{[]string{"connect", "-conns"}, "-conns"},
		{[]string{"connect", "-conns", "many"}, "-conns"},
		{[]string{"connect", "-conns", "0"}, "-conns"},
		{[]string{"connect", "-procs", "-1"}, "-procs"},
		{[]string{"connect", "-conns", "100000", "-procs", "1"}, "-procs"},
		{[]string{"connect", "-rate", "-5"}, "-rate"},
		{[]string{"connect", "-hold", "-1s"}, "-hold"},
		{[]string{"connect", "-hold", "soon"}, "-hold"},
		{[]string{"connect", "-inflight", "0"}, "-inflight"},
		{[]string{"connect", "-timeout", "0s"}, "-timeout"},
		{[]string{"connect", "-target", "nginx"}, "-target"},
		{[]string{"connect", "-channels", "2"}, "-channels"}, // not a flag of connect
		{[]string{"connect", "-url", "http://127.0.0.1:8080/ws"}, "-url"},
		{[]string{"connect", "-url", "ws://"}, "-url"},
		{[]string{"connect", "-url", "ws://10.1.2.3:8080/ws"}, "-url"},
		{[]string{"connect", "-admin-url", "http://10.1.2.3:9090"}, "-admin-url"},
		{[]string{"connect", "-admin-url", "ftp://127.0.0.1"}, "-admin-url"},
		{[]string{"connect", "-source-ips", "127.0.0.9-127.0.0.2"}, "-source-ips"},
		{[]string{"connect", "-source-ips", "localhost"}, "-source-ips"},
		{[]string{"connect", "-source-ips", "10.0.0.1"}, "-source-ips"},
		{[]string{"connect", "-source-ips", "::1"}, "-source-ips"},
		{[]string{"connect", "-channel-prefix", "no spaces"}, "-channel-prefix"},
		{[]string{"fanout", "-rate", "0"}, "-rate"},
		{[]string{"fanout", "-channels", "0"}, "-channels"},
		{[]string{"fanout", "-size", "-1"}, "-size"},
		{[]string{"fanout", "-duration", "0s"}, "-duration"},
		{[]string{"fanout", "-duration", "10ms", "-rate", "1"}, "-duration"},
		{[]string{"fanout", "-wait", "-1s"}, "-wait"},
		{[]string{"fanout", "-connect-rate", "-1"}, "-connect-rate"},
		{[]string{"fanout", "-hold", "1s"}, "-hold"}, // not a flag of fanout
		{[]string{"echo", "-duration", "-1s"}, "-duration"},
		{[]string{"echo", "-rate", "5"}, "-rate"}, // not a flag of echo
		{[]string{"soak", "-rate", "0"}, "-rate"},
		{[]string{"soak", "-channels", "0"}, "-channels"},
		{[]string{"soak", "-duration", "1s", "-rate", "1", "-channels", "4"}, "-duration"},
		{[]string{"soak", "-churn", "-1"}, "-churn"},
		{[]string{"soak", "-behaviours", "clean-close,teleport"}, "-behaviours"},
		{[]string{"soak", "-churn-hold", "0s"}, "-churn-hold"},
		{[]string{"soak", "-stall", "0s"}, "-stall"},
		{[]string{"soak", "-server-timeout", "0s"}, "-server-timeout"},
		{[]string{"soak", "-ping-flood", "0"}, "-ping-flood"},
		{[]string{"soak", "-ballast-size", "0"}, "-ballast-size"},
		{[]string{"soak", "-sample-interval", "0s"}, "-sample-interval"},
		{[]string{"soak", "-settle", "0s"}, "-settle"},
		{[]string{"soak", "-fd-slack", "-1"}, "-fd-slack"},
		{[]string{"soak", "-rss-slack-mib", "-1"}, "-rss-slack-mib"},
		{[]string{"soak", "-conns", "19900", "-churn", "100", "-procs", "1"}, "-procs"}, // the churn needs sockets too
		{[]string{"soak", "-hold", "1s"}, "-hold"},                                      // connect's; soak has -churn-hold
		{[]string{"fanout", "-churn", "1"}, "-churn"},                                   // not a flag of fanout
		{[]string{"fanout", "-payload", "xml"}, "-payload"},
		{[]string{"connect", "-payload", "json"}, "-payload"}, // connect sends no messages
		{[]string{"fanout", "-compress=maybe"}, "-compress"},
		{[]string{"connect", "-url", "ws://127.0.0.1:8080/ws", "-insecure"}, "-insecure"},
		{[]string{"connect", "-url", "ws://127.0.0.1:8080/ws", "-ca", "testdata/none.pem"}, "-ca"},
		{[]string{"connect", "-ca", "testdata/missing.pem"}, "-ca"},
		{[]string{"connect", "-ca", "args_test.go"}, "-ca"}, // no PEM certificate in it
		{[]string{"connect", "-ca", "x.pem", "-insecure"}, "-insecure"},
		{[]string{"connect", "-url", "wss://127.0.0.1:8081/ws,ws://127.0.0.1:8082/ws", "-procs", "2"}, "-url"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, &stdout, &stderr)
			msg := stderr.String()
			if code != 2 {
				t.Fatalf("exit %d, want 2 (stderr %q)", code, msg)
			}
			if strings.Count(msg, "\n") != 1 || !strings.HasSuffix(msg, "\n") || !strings.HasPrefix(msg, "shardbench: ") {
				t.Fatalf("stderr %q: want one line starting with shardbench:", msg)
			}
			if tc.flag != "" && !strings.Contains(msg, tc.flag) {
				t.Fatalf("stderr %q does not name %s", msg, tc.flag)
			}
			if tc.flag == "" && !strings.Contains(msg, "scenario") && !strings.Contains(msg, "argument") {
				t.Fatalf("stderr %q: want it to say what is wrong with the scenario or argument", msg)
			}
			if stdout.Len() != 0 {
				t.Fatalf("stdout %q: want nothing", stdout.String())
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"help"}, {"fanout", "-h"}, {"soak", "-h"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 0 || stderr.Len() != 0 || !strings.Contains(stdout.String(), "usage: shardbench") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, stdout.String(), stderr.String())
		}
	}
	var stdout bytes.Buffer
	run([]string{"fanout", "-h"}, &stdout, &bytes.Buffer{})
	for _, flag := range []string{"-url", "-admin-url", "-target", "-source-ips", "-procs", "-json", "-channels", "-rate", "-size", "-duration", "-compress", "-payload"} {
		if !strings.Contains(stdout.String(), flag+" ") && !strings.Contains(stdout.String(), flag+"\n") {
			t.Errorf("fanout -h does not list %s", flag)
		}
	}
	stdout.Reset()
	run([]string{"soak", "-h"}, &stdout, &bytes.Buffer{})
	for _, want := range []string{"-churn ", "-behaviours ", "-sample-interval ", "-settle ", "-fd-slack ", "-rss-slack-pct ",
		"stop-reading", "FAIL (exit status 3"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("soak -h does not mention %q", want)
		}
	}
}

func TestTLSFlags(t *testing.T) {
	ca := wstest.NewCA(t).WriteCA(t, t.TempDir())
	cases := []struct {
		args            []string
		url             string
		insecure, hasCA bool
	}{
		{[]string{"connect", "-ca", ca}, "wss://127.0.0.1:8080/ws", false, true},
		{[]string{"connect", "-insecure", "-target", "centrifugo"}, "wss://127.0.0.1:8000/connection/websocket", true, false},
		{[]string{"echo", "-url", "wss://localhost:8443/ws", "-admin-url", "http://127.0.0.1:9090"}, "wss://localhost:8443/ws", false, false},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			o, err := parseArgs(tc.args, &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			c := o.cfg
			if c.URL != tc.url || c.TLS == nil || c.TLS.Insecure != tc.insecure || (len(c.TLS.CAPEM) > 0) != tc.hasCA {
				t.Fatalf("url %s, TLS %+v", c.URL, c.TLS)
			}
			if c.Addr.Port() != 8080 && c.Addr.Port() != 8000 && c.Addr.Port() != 8443 {
				t.Fatalf("address %s", c.Addr)
			}
		})
	}
	o, err := parseArgs([]string{"connect"}, &bytes.Buffer{})
	if err != nil || o.cfg.TLS != nil {
		t.Fatalf("a ws:// run has TLS options %+v (%v)", o.cfg.TLS, err)
	}
}

func TestRemoteNeedsBothURLs(t *testing.T) {
	// Named explicitly, a non-loopback host is accepted (the run itself
	// then fails to connect, which is not an argument error).
	o, err := parseArgs([]string{"connect", "-url", "ws://192.0.2.1:8080/ws", "-admin-url", "http://192.0.2.1:9090"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if len(o.cfg.SourceIPs) != 0 {
		t.Fatalf("loopback source addresses %v used for a remote target", o.cfg.SourceIPs)
	}
}

func TestDefaults(t *testing.T) {
	o, err := parseArgs([]string{"fanout"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	got := fmt.Sprintf("%s %s %s %d %d %g %d %v", c.URL, c.AdminURL, c.Addr, len(c.SourceIPs), c.Channels, c.Rate, c.Size, c.Duration)
	want := "ws://127.0.0.1:8080/ws http://127.0.0.1:9090 127.0.0.1:8080 8 1 10 256 10s"
	if got != want {
		t.Fatalf("defaults %q, want %q", got, want)
	}
	o, err = parseArgs([]string{"soak"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	c = o.cfg
	s := c.Soak
	got = fmt.Sprintf("%d %d %g %v %g %d %v %v %v %v %g %g %g %g", c.Conns, c.Channels, c.Rate, c.Duration, s.Churn, len(s.Behaviours),
		s.Hold, s.Stall, s.SampleInterval, s.Settle, s.Limits.OpenFDs, s.Limits.Goroutines, s.Limits.RSSPct, s.Limits.RSSSlackBytes/(1<<20))
	want = "1000 4 10 1m0s 10 7 2s 10s 10s 15s 20 10 25 20"
	if got != want {
		t.Fatalf("soak defaults %q, want %q", got, want)
	}
	o, err = parseArgs([]string{"fanout", "-compress", "-payload", "json", "-size", "1024"}, &bytes.Buffer{})
	if err != nil || !o.cfg.Compress || o.cfg.Payload != "json" || o.cfg.Size != 1024 {
		t.Fatalf("-compress -payload json: %+v %v", o.cfg, err)
	}
	if o, err = parseArgs([]string{"connect", "-compress"}, &bytes.Buffer{}); err != nil || !o.cfg.Compress || o.cfg.Payload != "" {
		t.Fatalf("connect -compress: %+v %v", o.cfg, err)
	}
	o, err = parseArgs([]string{"connect", "-target", "gorillahub", "-source-ips", "none"}, &bytes.Buffer{})
	if err != nil || o.cfg.URL != "ws://127.0.0.1:8090/ws" || o.cfg.SourceIPs != nil {
		t.Fatalf("gorillahub defaults: %+v %v", o.cfg, err)
	}
}
