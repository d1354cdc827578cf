package clients

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPythonSSLClientOverTLS runs test/python/wss_client.py: Python 3.11+
// with its standard ssl module trusting the test CA through cafile, the
// WebSocket upgrade and frames written by hand. OpenSSL's TLS stack and a
// framing that shares no code with ours must agree with the gateway.
func TestPythonSSLClientOverTLS(t *testing.T) {
	python := findPython311(t)
	script := filepath.Join(repoRoot(t), "test", "python", "wss_client.py")
	g := startTLSGateway(t, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-I", script) // -I: no user site, no PYTHON* variables
	cmd.Env = append(withoutEnv(os.Environ(), "SSL_CERT_FILE", "SSL_CERT_DIR"),
		"WSS_URL="+g.wssURL(), "CA_FILE="+g.caFile)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s wss_client.py: %v\nstdout: %s\nstderr: %s", python, err, stdout.String(), stderr.String())
	}

	var res struct {
		OK         bool            `json:"ok"`
		Error      string          `json:"error"`
		Steps      []string        `json:"steps"`
		Python     string          `json:"python"`
		OpenSSL    string          `json:"openssl"`
		TLS        tlsSeen         `json:"tls"`
		Published  json.RawMessage `json:"published"`
		OwnMessage json.RawMessage `json:"own_message"`
		Close      struct {
			Code int `json:"code"`
		} `json:"close"`
	}
	line := lastLine(stdout.String())
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		t.Fatalf("python client printed %q, not a JSON result: %v\nstderr: %s", stdout.String(), err, stderr.String())
	}
	t.Logf("Python %s, %s", res.Python, res.OpenSSL)
	if !res.OK || res.Error != "" {
		t.Fatalf("python client failed: %s", line)
	}
	if got, want := strings.Join(res.Steps, " "), "tls upgraded subscribed published pong closed"; got != want {
		t.Errorf("steps %q, want %q", got, want)
	}
	res.TLS.check(t, g)
	checkJSON(t, "published ack", res.Published, `{"type":"published","channel":"python-tls","id":"py2"}`)
	checkJSON(t, "own message", res.OwnMessage, `{"type":"message","channel":"python-tls","data":{"from":"python","text":"h\u00e9llo"}}`)
	if res.Close.Code != 1000 {
		t.Errorf("close code %d, want 1000", res.Close.Code)
	}
	g.waitMetric(1, "shardgate_upgrades_total", "result", "ok")
	g.waitMetric(1, "shardgate_disconnects_total", "reason", "client_close")
	g.waitMetric(1, "shardgate_publishes_total", "source", "client")
}

// findPython311 returns a Python interpreter of version 3.11 or later:
// python3.11 if there is one, else python3 if it is recent enough.
func findPython311(t *testing.T) string {
	t.Helper()
	var seen []string
	for _, name := range []string{"python3.11", "python3"} {
		p, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		out, err := exec.Command(p, "-I", "-c", "import sys, ssl; sys.exit(0 if sys.version_info >= (3, 11) else 1)").CombinedOutput()
		if err == nil {
			return p
		}
		seen = append(seen, p+": "+strings.TrimSpace(string(out))+" "+err.Error())
	}
	missing(t, "no Python 3.11 or later with the ssl module on PATH (looked for python3.11, python3; %s)", strings.Join(seen, "; "))
	return ""
}
