package clients

import (
	"bytes"
	"context"
	"encoding/json"
	"math/big"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shardgate/shardgate/gateway"
	"github.com/shardgate/shardgate/internal/wstest"
)

// The wss:// half of the cross-client tests: the same third-party clients
// (Node's ws, headless Chromium) and Python's standard ssl module
// (tls_python_test.go) talk to a gateway serving -tls-cert/-tls-key from a
// throwaway CA, each trusting it the way its users would: Node through
// `ca`, Python through `cafile`, Chromium through the leaf's public key
// pinned with --ignore-certificate-errors-spki-list (which, unlike
// --ignore-certificate-errors, accepts that one key only).

// tlsGateway is a test gateway speaking wss:// only.
type tlsGateway struct {
	*testGateway
	ca     *wstest.CA
	leaf   *wstest.Leaf
	caFile string
}

func startTLSGateway(t *testing.T, mutate func(*gateway.Config)) *tlsGateway {
	t.Helper()
	dir := t.TempDir()
	ca := wstest.NewCA(t)
	leaf := ca.Issue(t, time.Now().Add(2*time.Hour))
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	leaf.WritePair(t, certFile, keyFile)
	g := startGateway(t, func(c *gateway.Config) {
		c.TLSCert, c.TLSKey = certFile, keyFile
		if mutate != nil {
			mutate(c)
		}
	})
	return &tlsGateway{testGateway: g, ca: ca, leaf: leaf, caFile: ca.WriteCA(t, dir)}
}

func (g *tlsGateway) wssURL() string { return "wss://" + g.Addr().String() + g.cfg.Path }

// tlsSeen is what a client reports of its TLS session.
type tlsSeen struct {
	Protocol string `json:"protocol"` // Node: "TLSv1.3"
	Version  string `json:"version"`  // Python: "TLSv1.3"
	ALPN     string `json:"alpn"`
	Serial   string `json:"serial"` // hex, as the client's library prints it
}

// check verifies that the client negotiated TLS 1.2+, ALPN http/1.1 and
// saw the gateway's leaf certificate.
func (s tlsSeen) check(t *testing.T, g *tlsGateway) {
	t.Helper()
	version := s.Protocol + s.Version
	if version != "TLSv1.3" && version != "TLSv1.2" {
		t.Errorf("client negotiated %q, want TLSv1.3 or TLSv1.2", version)
	}
	if s.ALPN != "http/1.1" {
		t.Errorf("client negotiated ALPN %q, want http/1.1", s.ALPN)
	}
	serial, ok := new(big.Int).SetString(strings.ReplaceAll(s.Serial, ":", ""), 16)
	if !ok || serial.Cmp(g.leaf.Cert.SerialNumber) != 0 {
		t.Errorf("client saw certificate serial %q, want %X", s.Serial, g.leaf.Cert.SerialNumber)
	}
}

func TestNodeWSClientOverTLS(t *testing.T) {
	root := repoRoot(t)
	node, err := exec.LookPath("node")
	if err != nil {
		missing(t, "node is not on PATH: %v", err)
	}
	nodeDir := filepath.Join(root, "test", "node")
	if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", "ws", "package.json")); err != nil {
		missing(t, "the ws package is not installed in %s (run `npm ci` there, or `make test`): %v", nodeDir, err)
	}

	g := startTLSGateway(t, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(nodeDir, "tls_client.mjs"))
	cmd.Dir = nodeDir
	// NODE_EXTRA_CA_CERTS and NODE_TLS_REJECT_UNAUTHORIZED are cleared: the
	// script must trust the CA through its own `ca` option and nothing else.
	cmd.Env = append(withoutEnv(os.Environ(), "NODE_EXTRA_CA_CERTS", "NODE_TLS_REJECT_UNAUTHORIZED"),
		"WSS_URL="+g.wssURL(), "ADMIN_URL="+g.adminURL(), "CA_FILE="+g.caFile)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node tls_client.mjs: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}

	var res struct {
		OK         bool            `json:"ok"`
		Error      string          `json:"error"`
		Steps      []string        `json:"steps"`
		TLS        tlsSeen         `json:"tls"`
		APIMessage json.RawMessage `json:"api_message"`
		Published  json.RawMessage `json:"published"`
		OwnMessage json.RawMessage `json:"own_message"`
		Close      struct {
			Code int `json:"code"`
		} `json:"close"`
	}
	line := lastLine(stdout.String())
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		t.Fatalf("node client printed %q, not a JSON result: %v\nstderr: %s", stdout.String(), err, stderr.String())
	}
	if !res.OK || res.Error != "" {
		t.Fatalf("node client failed: %s", line)
	}
	if got, want := strings.Join(res.Steps, " "), "open subscribed api_message published pong closed"; got != want {
		t.Errorf("steps %q, want %q", got, want)
	}
	res.TLS.check(t, g)
	checkJSON(t, "api message", res.APIMessage, `{"type":"message","channel":"node-tls","data":{"from":"admin"}}`)
	checkJSON(t, "published ack", res.Published, `{"type":"published","channel":"node-tls","id":"t1"}`)
	checkJSON(t, "own message", res.OwnMessage, `{"type":"message","channel":"node-tls","data":{"from":"node-tls"}}`)
	if res.Close.Code != 1000 {
		t.Errorf("close code %d, want 1000", res.Close.Code)
	}
	g.waitMetric(1, "shardgate_upgrades_total", "result", "ok")
	g.waitMetric(1, "shardgate_disconnects_total", "reason", "client_close")
	g.waitMetric(0, "shardgate_upgrades_total", "result", "tls_error")
}

func TestChromiumClientOverTLS(t *testing.T) {
	browser := findChromium()
	if browser == "" {
		missing(t, "no chromium, chromium-browser or google-chrome on PATH (.ci/run installs the Debian chromium package)")
	}

	// The page is served over plain http; only the WebSocket is wss://.
	events := make(chan pageEvent, 16)
	g := startTLSGateway(t, nil)
	page := httptest.NewServer(pageHandler(t, g.wssURL(), events))
	t.Cleanup(page.Close) // after Chromium is stopped (cleanups are LIFO)

	proc := startChromium(t, browser, page.URL+"/",
		"--ignore-certificate-errors-spki-list="+g.leaf.SPKIHash())

	checkPageRun(t, awaitPage(t, proc, events, func() { g.mustPublish(channel, `{"from":"admin"}`) }))
	g.waitMetric(1, "shardgate_upgrades_total", "result", "ok")
	g.waitMetric(1, "shardgate_disconnects_total", "reason", "client_close")
}

// withoutEnv is env less the named variables.
func withoutEnv(env []string, names ...string) []string {
	out := env[:0:0]
next:
	for _, kv := range env {
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}
