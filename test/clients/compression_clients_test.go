package clients

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/shardgate/shardgate/gateway"
	"github.com/shardgate/shardgate/internal/wstest"
)

// permessage-deflate (RFC 7692) with clients nobody here wrote: Node's ws
// with perMessageDeflate, Python's websockets, and headless Chromium, which
// always offers the extension. Each negotiates it, receives a broadcast
// large enough to be compressed and one too small to be, intact, and
// publishes a large message of its own, compressed by the client and
// inflated by the gateway. A plain client subscribed to the same channel
// gets the same broadcast as an uncompressed frame.

const deflateChannel = "deflate-test"

// deflateMessages are the two broadcasts: JSON that compresses like real
// payloads (repeated keys, similar values), above -compression-min-bytes,
// and one below it.
func deflateMessages() (big, small string) {
	var items []string
	for i := range 40 {
		items = append(items, fmt.Sprintf(`{"id":%d,"symbol":"SG%03d","price":%d.25,"currency":"EUR","exchange":"XPAR","status":"open"}`, i, i%7, 100+i))
	}
	return `{"quotes":[` + strings.Join(items, ",") + `]}`, `{"tick":1}`
}

func startDeflateGateway(t *testing.T, mutate func(*gateway.Config)) *testGateway {
	return startGateway(t, func(c *gateway.Config) {
		c.Compression = true
		if mutate != nil {
			mutate(c)
		}
	})
}

// plainWitness subscribes a client that offers no extension; after the
// broadcasts it must read both as uncompressed frames.
func plainWitness(t *testing.T, g *testGateway) *wstest.Client {
	t.Helper()
	w := wstest.Dial(t, g.wsURL(), nil)
	w.Subscribe(deflateChannel)
	return w
}

func checkPlainWitness(t *testing.T, w *wstest.Client, big, small string) {
	t.Helper()
	for _, want := range []string{big, small} {
		h, payload, err := w.ReadFrame(10 * time.Second)
		if err != nil {
			t.Fatalf("plain witness: %v", err)
		}
		if h.Rsv != 0 || h.OpCode != ws.OpText {
			t.Errorf("plain witness got opcode %v rsv %03b, want an uncompressed text frame", h.OpCode, h.Rsv)
		}
		var m struct {
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(payload, &m); err != nil {
			t.Fatalf("plain witness: %q: %v", payload, err)
		}
		checkJSON(t, "plain witness message", m.Data, want)
	}
}

// runScriptClient runs a client script that prints "subscribed" once it
// is, publishes the two broadcasts then, and returns its final JSON line.
func runScriptClient(t *testing.T, g *testGateway, name string, argv []string, env ...string) []byte {
	t.Helper()
	big, small := deflateMessages()
	witness := plainWitness(t, g)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), append(env, "WS_URL="+g.wsURL(), "CHANNEL="+deflateChannel, "BIG="+big, "SMALL="+small)...)
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	var last []byte
	lines := bufio.NewScanner(out)
	lines.Buffer(nil, 1<<20)
	for lines.Scan() {
		line := bytes.TrimSpace(lines.Bytes())
		if string(line) == "subscribed" {
			g.mustPublish(deflateChannel, big)
			g.mustPublish(deflateChannel, small)
			continue
		}
		last = append(last[:0], line...)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%s: %v\nlast line: %s\nstderr: %s", name, err, last, stderr.String())
	}
	checkPlainWitness(t, witness, big, small)
	return last
}

func TestNodeWSPerMessageDeflate(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		missing(t, "node is not on PATH: %v", err)
	}
	nodeDir := filepath.Join(repoRoot(t), "test", "node")
	if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", "ws", "package.json")); err != nil {
		missing(t, "the ws package is not installed in %s (`make node-deps`): %v", nodeDir, err)
	}
	g := startDeflateGateway(t, nil)
	line := runScriptClient(t, g, "node deflate_client.mjs", []string{node, filepath.Join(nodeDir, "deflate_client.mjs")})

	var res struct {
		OK           bool     `json:"ok"`
		Error        string   `json:"error"`
		Steps        []string `json:"steps"`
		Extensions   string   `json:"extensions"`
		BigWireBytes int      `json:"big_wire_bytes"`
	}
	if err := json.Unmarshal(line, &res); err != nil || !res.OK {
		t.Fatalf("node client: %s (%v)", line, err)
	}
	t.Logf("negotiated %q; the big broadcast took %d bytes on the wire", res.Extensions, res.BigWireBytes)
	checkDeflateResponse(t, res.Extensions)
	big, _ := deflateMessages()
	if res.BigWireBytes <= 0 || res.BigWireBytes > len(big)/2 {
		t.Errorf("the %d-byte broadcast took %d bytes on the wire, want a compressed frame under half", len(big), res.BigWireBytes)
	}
	if got, want := strings.Join(res.Steps, " "), "negotiated subscribed received published"; got != want {
		t.Errorf("steps %q, want %q", got, want)
	}
}

func TestPythonWebsocketsPerMessageDeflate(t *testing.T) {
	python := filepath.Join(repoRoot(t), "bin", "python-venv", "bin", "python")
	if _, err := os.Stat(python); err != nil {
		missing(t, "no %s (`make py-deps` installs test/python/requirements.txt there): %v", python, err)
	}
	g := startDeflateGateway(t, nil)
	script := filepath.Join(repoRoot(t), "test", "python", "deflate_client.py")
	line := runScriptClient(t, g, "python deflate_client.py", []string{python, "-I", script})

	var res struct {
		OK                      bool     `json:"ok"`
		Error                   string   `json:"error"`
		Steps                   []string `json:"steps"`
		Header                  string   `json:"extensions_header"`
		ServerNoContextTakeover bool     `json:"server_no_context_takeover"`
		ClientNoContextTakeover bool     `json:"client_no_context_takeover"`
	}
	if err := json.Unmarshal(line, &res); err != nil || !res.OK {
		t.Fatalf("python client: %s (%v)", line, err)
	}
	t.Logf("negotiated %q", res.Header)
	checkDeflateResponse(t, res.Header)
	if !res.ServerNoContextTakeover || !res.ClientNoContextTakeover {
		t.Errorf("websockets applied server_no_context_takeover=%v client_no_context_takeover=%v, want both", res.ServerNoContextTakeover, res.ClientNoContextTakeover)
	}
	if got, want := strings.Join(res.Steps, " "), "negotiated subscribed received published"; got != want {
		t.Errorf("steps %q, want %q", got, want)
	}
}

// checkDeflateResponse checks the gateway's answer as a client saw it:
// permessage-deflate with no context kept on either side, so that a
// connection holds no compressor or decompressor between messages.
func checkDeflateResponse(t *testing.T, header string) {
	t.Helper()
	params := map[string]bool{}
	for i, p := range strings.Split(header, ";") {
		p = strings.TrimSpace(p)
		if i == 0 {
			if p != "permessage-deflate" {
				t.Errorf("extension %q, want permessage-deflate", header)
			}
			continue
		}
		params[p] = true
	}
	for _, want := range []string{"server_no_context_takeover", "client_no_context_takeover"} {
		if !params[want] {
			t.Errorf("response %q lacks %s", header, want)
		}
	}
}

// deflatePage subscribes with the browser's own WebSocket, which offers
// permessage-deflate on every connection, and reports what was negotiated
// and what arrived.
var deflatePage = template.Must(template.New("deflate").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>shardgate chromium deflate</title></head>
<body><script>
"use strict";
const wsURL = {{.WSURL}}, channel = {{.Channel}}, big = {{.Big}}, small = {{.Small}};
const own = {from: "chromium", text: "compressed ".repeat(300)};
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const report = (body) => fetch("/event", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
const inbox = []; let waiter = null;
const next = () => new Promise((resolve) => { if (inbox.length) resolve(inbox.shift()); else waiter = () => resolve(inbox.shift()); });
async function run() {
  const ws = new WebSocket(wsURL);
  ws.onmessage = (e) => { inbox.push(JSON.parse(e.data)); if (waiter) { const w = waiter; waiter = null; w(); } };
  ws.onclose = (e) => report({step: "closed", code: e.code});
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = () => reject(new Error("websocket error")); });
  const extensions = ws.extensions;
  ws.send(JSON.stringify({type: "subscribe", channel, id: 1}));
  const sub = await next();
  if (sub.type !== "subscribed") throw new Error("subscribe reply " + JSON.stringify(sub));
  await report({step: "subscribed"});
  const m1 = await next(), m2 = await next();
  if (!same(m1.data, JSON.parse(big)) || !same(m2.data, JSON.parse(small))) throw new Error("messages " + JSON.stringify([m1, m2]).slice(0, 300));
  ws.send(JSON.stringify({type: "publish", channel, data: own, id: "c"}));
  let acked = false, echoed = false;
  while (!(acked && echoed)) {
    const m = await next();
    if (m.type === "published" && m.id === "c") acked = true;
    else if (m.type === "message" && same(m.data, own)) echoed = true;
    else throw new Error("unexpected " + JSON.stringify(m).slice(0, 200));
  }
  ws.onclose = null;
  ws.close(1000);
  await report({step: "done", extensions});
}
run().catch((err) => report({step: "failed", error: String(err && err.message || err)}));
</script></body></html>
`))

func TestChromiumPerMessageDeflate(t *testing.T) {
	browser := findChromium()
	if browser == "" {
		missing(t, "no chromium, chromium-browser or google-chrome on PATH (.ci/run installs the Debian chromium package)")
	}
	big, small := deflateMessages()
	type event struct {
		Step       string `json:"step"`
		Error      string `json:"error"`
		Extensions string `json:"extensions"`
		Code       int    `json:"code"`
	}
	events := make(chan event, 8)
	page := httptest.NewUnstartedServer(nil)
	origin := "http://" + page.Listener.Addr().String()
	g := startDeflateGateway(t, func(c *gateway.Config) { c.AllowedOrigins = origin })
	witness := plainWitness(t, g)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := deflatePage.Execute(w, map[string]string{"WSURL": g.wsURL(), "Channel": deflateChannel, "Big": big, "Small": small}); err != nil {
			t.Logf("render page: %v", err)
		}
	})
	mux.HandleFunc("POST /event", func(w http.ResponseWriter, r *http.Request) {
		var ev event
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			ev = event{Step: "failed", Error: "decode event: " + err.Error()}
		}
		select {
		case events <- ev:
			w.WriteHeader(http.StatusNoContent)
		case <-r.Context().Done():
		}
	})
	page.Config.Handler = mux
	page.Start()
	t.Cleanup(page.Close)
	proc := startChromium(t, browser, page.URL+"/")

	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	for {
		select {
		case ev := <-events:
			switch ev.Step {
			case "subscribed":
				g.mustPublish(deflateChannel, big)
				g.mustPublish(deflateChannel, small)
			case "done":
				t.Logf("chromium negotiated %q", ev.Extensions)
				checkDeflateResponse(t, ev.Extensions)
				checkPlainWitness(t, witness, big, small)
				return
			case "failed":
				t.Fatalf("page failed: %s", ev.Error)
			case "closed":
				t.Fatalf("page's connection closed early with %d", ev.Code)
			}
		case <-proc.exited:
			t.Fatalf("chromium exited before the page finished: %v", proc.waitErr)
		case <-deadline.C:
			t.Fatal("no result from the page within 60s")
		}
	}
}
