package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// getenvFrom is a getenv over a map.
func getenvFrom(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// TestRunBadFlags: bad flag values (on the command line or in the
// environment) and unknown flags exit 2 with exactly one line on stderr,
// naming the flag, and nothing on stdout.
func TestRunBadFlags(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		flag string
	}{
		{name: "shards 0", args: []string{"-shards", "0"}, flag: "shards"},
		{name: "shards abc", args: []string{"-shards", "abc"}, flag: "shards"},
		{name: "max-message-bytes -1", args: []string{"-max-message-bytes", "-1"}, flag: "max-message-bytes"},
		{name: "ping-interval 5", args: []string{"-ping-interval", "5"}, flag: "ping-interval"},
		{name: "log-format xml", args: []string{"-log-format", "xml"}, flag: "log-format"},
		{name: "log-level loud", args: []string{"-log-level", "loud"}, flag: "log-level"},
		{name: "broker redis", args: []string{"-broker", "redis://x"}, flag: "broker"},
		{name: "allowed-origins malformed", args: []string{"-allowed-origins", "https://app.example.com,https://x.example.com/path"}, flag: "allowed-origins"},
		{name: "allowed-origins bad wildcard", args: []string{"-allowed-origins", "ex*ample.com"}, flag: "allowed-origins"},
		{name: "value missing", args: []string{"-listen"}, flag: "listen"},
		{name: "compression maybe", args: []string{"-compression", "maybe"}, flag: "compression"},
		{name: "compression-min-bytes -1", args: []string{"-compression-min-bytes=-1"}, flag: "compression-min-bytes"},
		{name: "env compression yes", env: map[string]string{"SHARDGATE_COMPRESSION": "yes"}, flag: "compression"},
		{name: "unknown flag", args: []string{"-bogus"}, flag: "bogus"},
		{name: "unknown flag after good ones", args: []string{"-shards", "2", "--bogus=1"}, flag: "bogus"},
		{name: "env shards abc", env: map[string]string{"SHARDGATE_SHARDS": "abc"}, flag: "shards"},
		{name: "env max-message-bytes -1", env: map[string]string{"SHARDGATE_MAX_MESSAGE_BYTES": "-1"}, flag: "max-message-bytes"},
		{name: "env ping-interval 5", env: map[string]string{"SHARDGATE_PING_INTERVAL": "5"}, flag: "ping-interval"},
		{name: "env log-format xml", env: map[string]string{"SHARDGATE_LOG_FORMAT": "xml"}, flag: "log-format"},
		{name: "env allowed-origins malformed", env: map[string]string{"SHARDGATE_ALLOWED_ORIGINS": "https://"}, flag: "allowed-origins"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, getenvFrom(tc.env), &stdout, &stderr)
			if code != 2 {
				t.Fatalf("exit %d, want 2 (stderr %q)", code, stderr.String())
			}
			msg := stderr.String()
			if strings.Count(msg, "\n") != 1 || !strings.HasSuffix(msg, "\n") {
				t.Fatalf("stderr is not exactly one line: %q", msg)
			}
			if !strings.Contains(msg, "-"+tc.flag) {
				t.Fatalf("stderr %q does not name -%s", msg, tc.flag)
			}
			if stdout.Len() != 0 {
				t.Fatalf("stdout %q, want nothing", stdout.String())
			}
		})
	}
}

func TestRunHelp(t *testing.T) {
	for _, arg := range []string{"-h", "-help"} {
		t.Run(arg, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run([]string{arg}, getenvFrom(nil), &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d, want 0 (stderr %q)", code, stderr.String())
			}
			if !strings.Contains(stdout.String(), "-max-message-bytes") {
				t.Fatalf("usage on stdout lacks the flags: %q", stdout.String())
			}
			if stderr.Len() != 0 {
				t.Fatalf("stderr %q, want nothing", stderr.String())
			}
		})
	}
}

// TestRunCannotStart: a listen address in use exits 1, with the reason
// logged.
func TestRunCannotStart(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	var stdout, stderr bytes.Buffer
	code := run([]string{"-listen", busy.Addr().String(), "-admin", "127.0.0.1:0"}, getenvFrom(nil), &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), "cannot start") {
		t.Fatalf("stderr %q does not say why", stderr.String())
	}
}

// lockedBuffer is a bytes.Buffer that run's logger and the test may use
// at the same time. Each write also ticks wrote (when not nil), so the
// test waits for log lines instead of sleeping.
type lockedBuffer struct {
	mu    sync.Mutex
	b     bytes.Buffer
	wrote chan struct{}
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.wrote != nil {
		select {
		case b.wrote <- struct{}{}:
		default: // a tick is already pending
		}
	}
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestRunServesAndExitsOnSIGTERM runs the command in-process with its
// settings from the environment (JSON logs) and from flags, checks the
// startup log (addresses, and the warning that there is no auth secret),
// serves /healthz, and exits 0 on SIGTERM.
func TestRunServesAndExitsOnSIGTERM(t *testing.T) {
	var stdout lockedBuffer
	stderr := lockedBuffer{wrote: make(chan struct{}, 1)}
	vars := map[string]string{
		"SHARDGATE_LOG_FORMAT": "json",
		"SHARDGATE_LISTEN":     ":1", // overridden by the flag
		"SHARDGATE_SHARDS":     "3",
	}
	exited := make(chan int, 1)
	go func() {
		exited <- run([]string{"-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-drain-timeout", "2s"},
			getenvFrom(vars), &stdout, &stderr)
	}()

	type record struct {
		Level, Msg, Admin, WS string
		Shards                int
	}
	var listening record
	warned := false
	timeout := time.After(10 * time.Second)
	for listening.Msg == "" {
		select {
		case code := <-exited:
			t.Fatalf("run exited %d before listening; stderr:\n%s", code, stderr.String())
		case <-timeout:
			t.Fatalf("no startup log; stderr:\n%s", stderr.String())
		case <-stderr.wrote:
		}
		for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
			if line == "" {
				continue
			}
			var r record
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("log line is not JSON (SHARDGATE_LOG_FORMAT=json): %q", line)
			}
			if r.Level == "WARN" && strings.Contains(r.Msg, "auth-secret") {
				warned = true
			}
			if r.Msg == "shardgate listening" {
				listening = r
			}
		}
	}
	if !warned {
		t.Errorf("no warning about running without -auth-secret; stderr:\n%s", stderr.String())
	}
	if listening.Shards != 3 {
		t.Errorf("shards %d, want 3 from SHARDGATE_SHARDS", listening.Shards)
	}
	if !strings.HasPrefix(listening.WS, "127.0.0.1:") {
		t.Errorf("listening on %q: the -listen flag did not win over SHARDGATE_LISTEN", listening.WS)
	}
	resp, err := http.Get("http://" + listening.Admin + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz = %d", resp.StatusCode)
	}

	// run has installed its signal handler (it logs "listening" after
	// that), so SIGTERM reaches run, not the default action.
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-exited:
		if code != 0 {
			t.Fatalf("exit %d after SIGTERM, want 0; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after SIGTERM")
	}
	if stdout.String() != "" {
		t.Errorf("stdout %q, want nothing", stdout.String())
	}
}
