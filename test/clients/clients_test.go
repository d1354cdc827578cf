// Package clients runs real third-party WebSocket clients against a gateway
// started in-process: Node.js with the `ws` package (test/node/client.mjs)
// and headless Chromium's own WebSocket. They catch what a hand-written
// test client cannot: a handshake, framing or close sequence that gobwas/ws
// accepts but a browser or a popular library does not, and a browser's
// real Origin header against -allowed-origins.
//
// The tools are installed by .ci/run (Chromium) and `make test` (node_modules).
// When one is missing a test is skipped, unless CI is set: there a missing
// tool means the CI script is broken, so the test fails.
package clients

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"github.com/shardgate/shardgate/gateway"
)

// TestMain checks that the gateway, the HTTP servers and clients, and the
// child-process plumbing leave no goroutine behind. No stacks are ignored:
// every HTTP client here has its own transport whose idle connections are
// closed when its test ends.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const channel = "clients-test"

func TestNodeWSClient(t *testing.T) {
	root := repoRoot(t)
	node, err := exec.LookPath("node")
	if err != nil {
		missing(t, "node is not on PATH: %v", err)
	}
	nodeDir := filepath.Join(root, "test", "node")
	if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", "ws", "package.json")); err != nil {
		missing(t, "the ws package is not installed in %s (run `npm ci` there, or `make test`): %v", nodeDir, err)
	}

	g := startGateway(t, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(nodeDir, "client.mjs"))
	cmd.Dir = nodeDir
	cmd.Env = append(os.Environ(), "WS_URL="+g.wsURL(), "ADMIN_URL="+g.adminURL())
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	if runErr != nil {
		t.Fatalf("node client.mjs: %v\nstdout: %s\nstderr: %s", runErr, stdout.String(), stderr.String())
	}

	var res struct {
		OK         bool            `json:"ok"`
		Error      string          `json:"error"`
		Steps      []string        `json:"steps"`
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
	wantSteps := "open subscribed api_published api_message published closed"
	if got := strings.Join(res.Steps, " "); got != wantSteps {
		t.Errorf("steps %q, want %q", got, wantSteps)
	}
	checkJSON(t, "api message", res.APIMessage, `{"type":"message","channel":"node-test","data":{"from":"admin"}}`)
	checkJSON(t, "published ack", res.Published, `{"type":"published","channel":"node-test","id":"n1"}`)
	checkJSON(t, "own message", res.OwnMessage, `{"type":"message","channel":"node-test","data":{"from":"node"}}`)
	if res.Close.Code != 1000 {
		t.Errorf("close code %d, want 1000", res.Close.Code)
	}

	g.waitMetric(1, "shardgate_disconnects_total", "reason", "client_close")
	g.waitMetric(1, "shardgate_publishes_total", "source", "client")
	g.waitMetric(1, "shardgate_publishes_total", "source", "api")
}

// pageEvent is what the Chromium page POSTs to /event as it goes.
type pageEvent struct {
	Step       string          `json:"step"`
	Steps      []string        `json:"steps"`
	Error      string          `json:"error"`
	OK         bool            `json:"ok"`
	WasClean   bool            `json:"wasClean"`
	Code       int             `json:"code"`
	Reason     string          `json:"reason"`
	Message    json.RawMessage `json:"message"`
	Published  json.RawMessage `json:"published"`
	OwnMessage json.RawMessage `json:"own_message"`
}

func TestChromiumClient(t *testing.T) {
	browser := findChromium()
	if browser == "" {
		missing(t, "no chromium, chromium-browser or google-chrome on PATH (.ci/run installs the Debian chromium package)")
	}

	// The page server's listener exists before the gateway starts, so its
	// origin can go into -allowed-origins; it serves only after Start.
	events := make(chan pageEvent, 16)
	page := httptest.NewUnstartedServer(nil)
	origin := "http://" + page.Listener.Addr().String()
	g := startGateway(t, func(c *gateway.Config) { c.AllowedOrigins = origin })
	page.Config.Handler = pageHandler(t, g.wsURL(), events)
	page.Start()
	t.Cleanup(page.Close) // runs after Chromium is stopped (cleanups are LIFO)

	proc := startChromium(t, browser, page.URL+"/")

	checkPageRun(t, awaitPage(t, proc, events, func() { g.mustPublish(channel, `{"from":"admin"}`) }))

	if ok := g.metricSum("shardgate_upgrades_total", "result", "ok"); ok < 1 {
		t.Errorf("shardgate_upgrades_total{result=ok} = %v, want >= 1", ok)
	}
	g.waitMetric(1, "shardgate_disconnects_total", "reason", "client_close")
	g.waitMetric(1, "shardgate_publishes_total", "source", "client")
	g.waitMetric(1, "shardgate_publishes_total", "source", "api")

	// The policy that let the browser in is really enforced: the same
	// upgrade from another origin is refused.
	if code := g.upgradeStatus("http://evil.example"); code != http.StatusForbidden {
		t.Errorf("upgrade with Origin http://evil.example: HTTP %d, want 403", code)
	}
	g.waitMetric(1, "shardgate_upgrades_total", "result", "forbidden_origin")
}

// pageTemplate is the browser client. It reports each step to /event, so
// the test can act on "subscribed" and gets every failure with its cause.
var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>shardgate chromium client</title></head>
<body><script>
"use strict";
const wsURL = {{.WSURL}};
const channel = {{.Channel}};
const steps = [];
let finished = false;

function report(step, extra) {
  if (step !== "failed") steps.push(step);
  const body = Object.assign({step: step, steps: steps.slice()}, extra || {});
  return fetch("/event", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
}
function fail(err) {
  if (finished) return;
  finished = true;
  report("failed", {error: String(err && err.message ? err.message : err)});
}
window.addEventListener("error", (e) => fail("page error: " + e.message));
window.addEventListener("unhandledrejection", (e) => fail("unhandled rejection: " + e.reason));

// Every frame goes through one queue; next() takes the oldest.
const inbox = [];
let waiter = null;
function next() {
  return new Promise((resolve) => {
    if (inbox.length > 0) { resolve(inbox.shift()); return; }
    waiter = () => resolve(inbox.shift());
  });
}
function expect(cond, what, m) {
  if (!cond) throw new Error("unexpected " + what + ": " + JSON.stringify(m));
}
function same(a, b) { return JSON.stringify(a) === JSON.stringify(b); }

async function run() {
  const ws = new WebSocket(wsURL);
  let closing = false;
  const closed = new Promise((resolve) => ws.addEventListener("close", resolve));
  ws.addEventListener("close", (e) => {
    if (!closing) fail("closed early: code " + e.code + " reason " + JSON.stringify(e.reason) + " wasClean " + e.wasClean);
  });
  ws.addEventListener("error", () => { if (!closing) fail("websocket error event (upgrade refused or connection lost)"); });
  ws.addEventListener("message", (e) => {
    let m;
    try { m = JSON.parse(e.data); } catch (err) { m = {type: "<invalid json>", raw: String(e.data)}; }
    inbox.push(m);
    if (waiter) { const w = waiter; waiter = null; w(); }
  });
  await new Promise((resolve) => ws.addEventListener("open", resolve, {once: true}));
  steps.push("open");

  ws.send(JSON.stringify({type: "subscribe", channel: channel, id: 1}));
  const sub = await next();
  expect(sub.type === "subscribed" && sub.channel === channel && sub.id === 1, "subscribe reply", sub);
  await report("subscribed");

  // The test publishes through the admin API when it hears "subscribed".
  const fromAPI = await next();
  expect(fromAPI.type === "message" && fromAPI.channel === channel && same(fromAPI.data, {from: "admin"}), "message from the admin API", fromAPI);
  await report("api_message", {message: fromAPI});

  ws.send(JSON.stringify({type: "publish", channel: channel, data: {from: "chromium"}, id: "c1"}));
  let ack = null, own = null;
  while (ack === null || own === null) {
    const m = await next();
    if (m.type === "published" && ack === null) {
      ack = m;
    } else if (m.type === "message" && own === null) {
      expect(m.channel === channel && same(m.data, {from: "chromium"}), "own message", m);
      own = m;
    } else {
      expect(false, "frame while waiting for the published ack and own message", m);
    }
  }
  steps.push("published");

  closing = true;
  ws.close(1000, "done");
  const ev = await closed;
  steps.push("closed");
  finished = true;
  await report("done", {ok: ev.wasClean && ev.code === 1000, wasClean: ev.wasClean, code: ev.code,
    reason: ev.reason, published: ack, own_message: own});
}
run().catch(fail);
</script></body></html>
`))

// pageHandler serves the page at / and forwards its reports to events.
// It never calls t.Fatal: it runs on the server's goroutines.
func pageHandler(t *testing.T, wsURL string, events chan<- pageEvent) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := pageTemplate.Execute(w, map[string]string{"WSURL": wsURL, "Channel": channel}); err != nil {
			t.Logf("render page: %v", err)
		}
	})
	mux.HandleFunc("POST /event", func(w http.ResponseWriter, r *http.Request) {
		var ev pageEvent
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			ev = pageEvent{Step: "failed", Error: "test server could not decode an event: " + err.Error()}
		}
		select {
		case events <- ev:
			w.WriteHeader(http.StatusNoContent)
		case <-r.Context().Done():
		}
	})
	return mux
}

// chromium is a running headless browser in its own process group.
type chromium struct {
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed when the main process has been waited for
	waitErr error         // set before exited is closed
}

func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// startChromium opens url in a headless browser with a fresh profile and
// stops it, children included, when the test ends. extra flags go before
// the URL (the TLS test adds --ignore-certificate-errors-spki-list).
func startChromium(t *testing.T, browser, url string, extra ...string) *chromium {
	t.Helper()
	// Not t.TempDir: a browser child still exiting can keep writing to
	// the profile, and TempDir fails the test when removal fails.
	profile, err := os.MkdirTemp("", "shardgate-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	logFile, err := os.CreateTemp("", "shardgate-chromium-*.log")
	if err != nil {
		os.RemoveAll(profile)
		t.Fatal(err)
	}
	c := &chromium{logPath: logFile.Name(), exited: make(chan struct{})}
	args := []string{
		"--headless",
		"--no-sandbox",
		"--disable-gpu",
		"--disable-background-networking",
		"--disable-quic",
		"--no-first-run",
		"--no-default-browser-check",
		"--disable-component-update",
		"--disable-sync",
		"--disable-extensions",
		"--disable-dev-shm-usage",
		"--user-data-dir=" + profile, // --ignore-certificate-errors-spki-list needs one too
	}
	c.cmd = exec.Command(browser, append(append(args, extra...), url)...)
	// A file, not a pipe: a pipe held open by a straggling child would
	// keep Wait from returning.
	c.cmd.Stdout, c.cmd.Stderr = logFile, logFile
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		logFile.Close()
		os.Remove(c.logPath)
		os.RemoveAll(profile)
		t.Fatalf("start %s: %v", browser, err)
	}
	logFile.Close()
	go func() {
		c.waitErr = c.cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		c.stop(t)
		if t.Failed() {
			t.Logf("chromium output:\n%s", c.output())
		}
		os.Remove(c.logPath)
		if err := os.RemoveAll(profile); err != nil {
			t.Logf("remove chromium profile: %v", err)
		}
	})
	return c
}

// stop asks the browser to quit (SIGTERM lets it reap its own children),
// kills the whole process group if it has not quit within 10s, and waits
// for the main process.
func (c *chromium) stop(t *testing.T) {
	t.Helper()
	pgid := c.cmd.Process.Pid // Setpgid: the group id is the leader's pid
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	grace := time.NewTimer(10 * time.Second)
	defer grace.Stop()
	select {
	case <-c.exited:
	case <-grace.C:
		t.Logf("chromium did not quit on SIGTERM within 10s: killing its process group")
	}
	// Stragglers in the group (a renderer mid-exit) get SIGKILL; ESRCH
	// means there are none.
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		t.Logf("kill chromium process group %d: %v", pgid, err)
	}
	<-c.exited
}

// output is the browser's stdout and stderr, for failure messages, less
// the complaints about a missing D-Bus that every headless run makes.
func (c *chromium) output() string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return fmt.Sprintf("(no output: %v)", err)
	}
	var out strings.Builder
	for line := range strings.Lines(string(b)) {
		if !strings.Contains(line, ":ERROR:dbus/") {
			out.WriteString(line)
		}
	}
	const max = 16 << 10
	if s := out.String(); len(s) > max {
		return "…" + s[len(s)-max:]
	}
	return out.String()
}

// testGateway is a gateway on kernel-chosen loopback ports, stopped (and
// its Run error checked) when the test ends.
type testGateway struct {
	*gateway.Gateway
	t      *testing.T
	cfg    gateway.Config
	client *http.Client
}

func startGateway(t *testing.T, mutate func(*gateway.Config)) *testGateway {
	t.Helper()
	cfg := gateway.Defaults()
	cfg.Listen = "127.0.0.1:0"
	cfg.Admin = "127.0.0.1:0"
	cfg.Shards = 2
	cfg.DrainTimeout = 2 * time.Second
	if mutate != nil {
		mutate(&cfg)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	gw, err := gateway.New(cfg, log)
	if err != nil {
		t.Fatalf("start gateway: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	transport := &http.Transport{}
	g := &testGateway{Gateway: gw, t: t, cfg: cfg, client: &http.Client{Transport: transport, Timeout: 10 * time.Second}}
	t.Cleanup(func() {
		transport.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway run: %v", err)
		}
	})
	return g
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (g *testGateway) wsURL() string    { return "ws://" + g.Addr().String() + g.cfg.Path }
func (g *testGateway) adminURL() string { return "http://" + g.AdminAddr().String() }

// mustPublish posts to /api/publish and fails the test unless it gets 200.
func (g *testGateway) mustPublish(channel, data string) {
	g.t.Helper()
	body := fmt.Sprintf(`{"channel":%q,"data":%s}`, channel, data)
	resp, err := g.client.Post(g.adminURL()+"/api/publish", "application/json", strings.NewReader(body))
	if err != nil {
		g.t.Fatalf("publish: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		g.t.Fatalf("publish %s: HTTP %d %s", body, resp.StatusCode, b)
	}
}

// upgradeStatus sends a well-formed upgrade request with the given Origin
// and returns the HTTP status of the answer.
func (g *testGateway) upgradeStatus(origin string) int {
	g.t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+g.Addr().String()+g.cfg.Path, nil)
	if err != nil {
		g.t.Fatal(err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("Origin", origin)
	resp, err := g.client.Do(req)
	if err != nil {
		g.t.Fatalf("upgrade request: %v", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// metricSum scrapes /metrics and adds the samples of name whose labels
// include every given pair ("reason", "client_close", ...).
func (g *testGateway) metricSum(name string, labels ...string) float64 {
	g.t.Helper()
	resp, err := g.client.Get(g.adminURL() + "/metrics")
	if err != nil {
		g.t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	dec := expfmt.SampleDecoder{
		Dec:  expfmt.NewDecoder(resp.Body, expfmt.NewFormat(expfmt.TypeTextPlain)),
		Opts: &expfmt.DecodeOptions{Timestamp: model.Now()},
	}
	total := 0.0
	for {
		var v model.Vector
		if err := dec.Decode(&v); err != nil {
			if errors.Is(err, io.EOF) {
				return total
			}
			g.t.Fatalf("decode metrics: %v", err)
		}
	samples:
		for _, s := range v {
			if string(s.Metric[model.MetricNameLabel]) != name {
				continue
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if string(s.Metric[model.LabelName(labels[i])]) != labels[i+1] {
					continue samples
				}
			}
			total += float64(s.Value)
		}
	}
}

// waitMetric polls /metrics (every 10 ms, up to 10 s) until the sum of
// name's matching samples equals want.
func (g *testGateway) waitMetric(want float64, name string, labels ...string) {
	g.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := g.metricSum(name, labels...)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("%s%v = %v, want %v (waited 10s)", name, labels, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// missing skips the test for a tool that is not installed, or fails it
// under CI, where .ci/run is supposed to have installed it.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
		t.Fatalf("%s; CI=%s, so .ci/run should have installed it", msg, ci)
	}
	t.Skip(msg)
}

// repoRoot is the module root: two levels above this file, or failing that
// (a -trimpath build) the nearest parent of the working directory with a
// go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		root := filepath.Dir(filepath.Dir(filepath.Dir(file)))
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			return root
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("cannot find the repository root (no go.mod above the working directory)")
		}
		dir = parent
	}
}

// checkJSON compares got with want as JSON values, ignoring formatting.
func checkJSON(t *testing.T, what string, got json.RawMessage, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Errorf("%s: invalid JSON %q: %v", what, got, err)
		return
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: bad expectation %q: %v", what, want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Errorf("%s: got %s, want %s", what, gb, wb)
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// awaitPage follows the test page's steps until it is done, publishing
// through publish when the page has subscribed, and returns its final
// report. It fails the test when the page fails, Chromium exits, or 60 s
// pass.
func awaitPage(t *testing.T, proc *chromium, events <-chan pageEvent, publish func()) pageEvent {
	t.Helper()
	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	var final pageEvent
wait:
	for {
		select {
		case ev := <-events:
			t.Logf("page: %s", ev.Step)
			switch ev.Step {
			case "subscribed":
				publish()
			case "api_message":
				checkJSON(t, "api message", ev.Message, `{"type":"message","channel":"clients-test","data":{"from":"admin"}}`)
			case "done":
				final = ev
				break wait
			case "failed":
				t.Fatalf("page failed after steps %v: %s", ev.Steps, ev.Error)
			default:
				t.Fatalf("page sent unknown step %q", ev.Step)
			}
		case <-proc.exited:
			t.Fatalf("chromium exited before the page finished: %v", proc.waitErr)
		case <-deadline.C:
			t.Fatalf("no result from the page within 60s")
		}
	}
	return final
}

// checkPageRun checks the page's final report: every step in order, the
// admin's message, the page's own publish acknowledged and echoed, and a
// clean 1000 close.
func checkPageRun(t *testing.T, final pageEvent) {
	t.Helper()
	if !final.OK || !final.WasClean || final.Code != 1000 {
		t.Errorf("close event: wasClean=%v code=%d reason=%q, want a clean 1000", final.WasClean, final.Code, final.Reason)
	}
	checkJSON(t, "published ack", final.Published, `{"type":"published","channel":"clients-test","id":"c1"}`)
	checkJSON(t, "own message", final.OwnMessage, `{"type":"message","channel":"clients-test","data":{"from":"chromium"}}`)
	wantSteps := "open subscribed api_message published closed done"
	if got := strings.Join(final.Steps, " "); got != wantSteps {
		t.Errorf("steps %q, want %q", got, wantSteps)
	}
}
