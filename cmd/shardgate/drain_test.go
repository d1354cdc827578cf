package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/shardgate/shardgate/internal/wstest"
)

// buildBinary compiles this command into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "shardgate")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(gobin, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startBinary runs the gateway binary on kernel-chosen loopback ports and
// returns the addresses it logged.
func startBinary(t *testing.T, bin string, args ...string) (cmd *exec.Cmd, wsURL, adminURL string, exited <-chan error) {
	t.Helper()
	args = append([]string{"-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-log-format", "json"}, args...)
	cmd = exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	lines := bufio.NewScanner(stderr)
	for lines.Scan() {
		var rec struct{ Msg, WS, Admin string }
		if json.Unmarshal(lines.Bytes(), &rec) == nil && rec.Msg == "shardgate listening" {
			wsURL, adminURL = "ws://"+rec.WS, "http://"+rec.Admin
			break
		}
	}
	if wsURL == "" {
		cmd.Process.Kill()
		t.Fatalf("gateway did not log its addresses: %v", cmd.Wait())
	}
	go func() {
		io.Copy(logSink(), stderr)
		done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	})
	return cmd, wsURL, adminURL, done
}

// logSink shows the gateway's log in verbose runs only.
func logSink() io.Writer {
	if testing.Verbose() {
		return os.Stderr
	}
	return io.Discard
}

func httpStatus(t *testing.T, method, url, body string) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestDrainOnSIGTERM: SIGTERM turns /readyz to 503, every client gets the
// messages accepted before the signal and then close 1001, a client that
// never answers is cut off at -drain-timeout, and the process exits 0.
func TestDrainOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	cmd, wsURL, adminURL, exited := startBinary(t, bin, "-drain-timeout", "3s", "-shards", "2")

	const nClients, nMsgs = 4, 50
	var clients []*wstest.Client
	for range nClients {
		c := wstest.Dial(t, wsURL, nil)
		c.Subscribe("drain")
		clients = append(clients, c)
	}
	silent := wstest.Dial(t, wsURL, nil) // never answers the close frame
	silent.Subscribe("drain")

	for i := range nMsgs {
		if code := httpStatus(t, http.MethodPost, adminURL+"/api/publish", fmt.Sprintf(`{"channel":"drain","data":%d}`, i)); code != http.StatusOK {
			t.Fatalf("publish %d: status %d", i, code)
		}
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	for ci, c := range clients {
		for i := range nMsgs {
			m := c.Expect("message")
			if string(m.Data) != fmt.Sprint(i) {
				t.Fatalf("client %d: message %s, want %d", ci, m.Data, i)
			}
		}
		c.ExpectClose(ws.StatusGoingAway)
		if ci == 0 {
			// A close frame has arrived, so the signal has been handled;
			// clients have not all answered, so the drain goes on.
			if code := httpStatus(t, http.MethodGet, adminURL+"/readyz", ""); code != http.StatusServiceUnavailable {
				t.Fatalf("/readyz during drain = %d, want 503", code)
			}
			if code := httpStatus(t, http.MethodPost, adminURL+"/api/publish", `{"channel":"drain","data":1}`); code != http.StatusServiceUnavailable {
				t.Fatalf("publish during drain = %d, want 503", code)
			}
		}
		c.WriteFrame(ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, ""))))
		c.ExpectEOF()
	}
	silent.ExpectClose(ws.StatusGoingAway)

	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v, want status 0", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("gateway did not exit after drain")
	}
	if took := time.Since(start); took < 2*time.Second {
		t.Errorf("exited after %v: did not wait for the silent client (drain timeout 3s)", took)
	}
	silent.ExpectEOF()
}
