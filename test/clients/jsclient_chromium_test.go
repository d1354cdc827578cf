package clients

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shardgate/shardgate/gateway"
	"github.com/shardgate/shardgate/internal/natstest"
)

// The client library's recovery scenario (issue 10) in a real browser:
// headless Chromium loads clients/js's built ESM file in a page served
// here and subscribes through a TCP proxy that the test cuts every 250 ms
// while a publisher floods the channel through the admin API. The page
// must hand the application every message exactly once and in order, and
// every resubscribe must recover.

const (
	recoveryChannel  = "js-recovery"
	recoveryMessages = 3000
	recoveryCutEvery = 250 * time.Millisecond
	// The publisher's pace: 3,000 messages over ~3 s, so the flood spans
	// about a dozen cuts.
	recoveryBatch      = 10
	recoveryBatchEvery = 10 * time.Millisecond
)

// recoveryEvent is what the page reports to /event.
type recoveryEvent struct {
	Step       string `json:"step"` // subscribed, done or failed
	Error      string `json:"error"`
	Received   int    `json:"received"`
	Connects   int    `json:"connects"`
	Subscribes []struct {
		Recovered *bool  `json:"recovered"`
		Epoch     string `json:"epoch"`
		Offset    uint64 `json:"offset"`
	} `json:"subscribes"`
	States []string `json:"states"`
}

func TestChromiumJSClientRecoversEveryMessageInOrderAcrossCuts(t *testing.T) {
	browser := findChromium()
	if browser == "" {
		missing(t, "no chromium, chromium-browser or google-chrome on PATH (.ci/run installs the Debian chromium package)")
	}
	dist := filepath.Join(repoRoot(t), "clients", "js", "dist")
	if _, err := os.Stat(filepath.Join(dist, "index.js")); err != nil {
		missing(t, "clients/js is not built (`make js`, which `make test` runs first): %v", err)
	}

	events := make(chan recoveryEvent, 16)
	page := httptest.NewUnstartedServer(nil)
	origin := "http://" + page.Listener.Addr().String()
	g := startGateway(t, func(c *gateway.Config) {
		c.AllowedOrigins = origin
		c.HistorySize = 2 * recoveryMessages
	})
	proxy := natstest.NewProxy(t, g.Addr().String())
	page.Config.Handler = recoveryPageHandler(t, dist, "ws://"+proxy.Addr()+g.cfg.Path, events)
	page.Start()
	t.Cleanup(page.Close)

	proc := startChromium(t, browser, page.URL+"/")

	// The flood and the cuts start once the page has subscribed, and stop
	// when the test ends.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { close(stop); wg.Wait() })
	publishErr := make(chan error, 1)
	cuts := 0
	var cutsMu sync.Mutex

	deadline := time.NewTimer(90 * time.Second)
	defer deadline.Stop()
	var final recoveryEvent
wait:
	for {
		select {
		case ev := <-events:
			switch ev.Step {
			case "subscribed":
				t.Log("page subscribed: flooding and cutting")
				wg.Add(2)
				go func() {
					defer wg.Done()
					publishErr <- floodChannel(g, stop)
				}()
				go func() {
					defer wg.Done()
					tick := time.NewTicker(recoveryCutEvery)
					defer tick.Stop()
					for {
						select {
						case <-stop:
							return
						case <-tick.C:
							proxy.Cut()
							cutsMu.Lock()
							cuts++
							cutsMu.Unlock()
						}
					}
				}()
			case "done":
				final = ev
				break wait
			case "failed":
				t.Fatalf("page failed after %d messages, %d connects: %s", ev.Received, ev.Connects, ev.Error)
			default:
				t.Fatalf("page sent unknown step %q", ev.Step)
			}
		case err := <-publishErr:
			if err != nil {
				t.Fatalf("publisher: %v", err)
			}
		case <-proc.exited:
			t.Fatalf("chromium exited before the page finished: %v", proc.waitErr)
		case <-deadline.C:
			t.Fatalf("no result from the page within 90s")
		}
	}
	cutsMu.Lock()
	t.Logf("page received %d messages over %d connections; the test cut the link %d times", final.Received, final.Connects, cuts)
	cutsMu.Unlock()

	if final.Received != recoveryMessages {
		t.Errorf("page received %d messages, want %d", final.Received, recoveryMessages)
	}
	// The page checked 1..N itself (it fails on a gap or a duplicate);
	// here: the cuts really happened mid-flood, and every resubscribe
	// recovered.
	// A cut can land between the open and the subscribed reply, so there
	// may be fewer replies than connections, never more.
	if len(final.Subscribes) < 4 {
		t.Errorf("%d subscribed replies over %d connections: the cuts did not interrupt the flood enough to prove anything (states %v)", len(final.Subscribes), final.Connects, final.States)
	}
	if len(final.Subscribes) > final.Connects {
		t.Errorf("%d subscribed replies for %d connections", len(final.Subscribes), final.Connects)
	}
	for i, s := range final.Subscribes {
		switch {
		case i == 0 && s.Recovered != nil:
			t.Errorf("first subscribe: recovered=%v, want no recovery asked", *s.Recovered)
		case i > 0 && (s.Recovered == nil || !*s.Recovered):
			t.Errorf("subscribe %d after a reconnect: recovered=%v (epoch %q offset %d), want true", i, s.Recovered, s.Epoch, s.Offset)
		}
	}
	// A cut can also land between the gateway's 101 and the browser's
	// open event: the gateway may count more upgrades, never fewer.
	if n := g.metricSum("shardgate_upgrades_total", "result", "ok"); int(n) < final.Connects {
		t.Errorf("gateway counted %v upgrades, page %d connections", n, final.Connects)
	}
}

// floodChannel publishes {"n":1}..{"n":N} to the recovery channel through
// the admin API, recoveryBatch every recoveryBatchEvery, until done or
// stopped. It runs on its own goroutine, so it returns errors instead of
// failing the test.
func floodChannel(g *testGateway, stop <-chan struct{}) error {
	tick := time.NewTicker(recoveryBatchEvery)
	defer tick.Stop()
	for n := 1; n <= recoveryMessages; {
		select {
		case <-stop:
			return nil
		case <-tick.C:
		}
		for end := min(n+recoveryBatch, recoveryMessages+1); n < end; n++ {
			body := fmt.Sprintf(`{"channel":%q,"data":{"n":%d}}`, recoveryChannel, n)
			resp, err := g.client.Post(g.adminURL()+"/api/publish", "application/json", strings.NewReader(body))
			if err != nil {
				return fmt.Errorf("publish %d: %w", n, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("publish %d: HTTP %d", n, resp.StatusCode)
			}
		}
	}
	return nil
}

// recoveryPage imports the built client library as an ES module, as an
// application would, and checks every message against the next expected
// sequence number.
var recoveryPage = template.Must(template.New("recovery").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>shardgate client recovery</title></head>
<body><script type="module">
import { Client } from "/client/index.js";

const wsURL = {{.WSURL}};
const channel = {{.Channel}};
const total = {{.Total}};
let finished = false;
let received = 0, connects = 0;
const subscribes = [], states = [];

function report(step, extra) {
  const body = Object.assign({step, received, connects, subscribes, states}, extra || {});
  return fetch("/event", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
}
function fail(err) {
  if (finished) return;
  finished = true;
  client.disconnect();
  report("failed", {error: String(err && err.message ? err.message : err)});
}
window.addEventListener("error", (e) => fail("page error: " + e.message));
window.addEventListener("unhandledrejection", (e) => fail("unhandled rejection: " + e.reason));

const client = new Client(wsURL, {minReconnectDelay: 20, maxReconnectDelay: 200});
client.on("connecting", (e) => states.push("connecting " + (e.code ?? "") + " " + (e.delay ?? "")));
client.on("connected", () => { connects++; states.push("connected"); });
client.on("disconnected", (e) => { states.push("disconnected " + e.code); fail("disconnected: " + e.code + " " + e.reason); });
client.on("error", (err) => states.push("error " + err.code));

client.subscribe(channel, {
  subscribed(info) {
    subscribes.push({recovered: info.recovered, epoch: info.epoch, offset: info.offset});
    if (subscribes.length === 1) report("subscribed");
  },
  message(data, info) {
    if (finished) return;
    if (!data || data.n !== received + 1) {
      fail("after message " + received + " got " + JSON.stringify(data) + " at offset " + info.offset);
      return;
    }
    received++;
    if (received === total) {
      finished = true;
      client.disconnect();
      report("done");
    }
  },
  unsubscribed(info) { fail("unsubscribed: " + JSON.stringify(info)); },
  error(err) { fail("subscription error: " + err.code + " " + err.message); },
});
client.connect();
</script></body></html>
`))

// recoveryPageHandler serves the page at /, the built library under
// /client/, and forwards the page's reports to events.
func recoveryPageHandler(t *testing.T, dist, wsURL string, events chan<- recoveryEvent) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		err := recoveryPage.Execute(w, map[string]any{"WSURL": wsURL, "Channel": recoveryChannel, "Total": recoveryMessages})
		if err != nil {
			t.Logf("render page: %v", err)
		}
	})
	// Module scripts need a JavaScript MIME type; Go's table has it for .js.
	mux.Handle("GET /client/", http.StripPrefix("/client/", http.FileServer(http.Dir(dist))))
	mux.HandleFunc("POST /event", func(w http.ResponseWriter, r *http.Request) {
		var ev recoveryEvent
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			ev = recoveryEvent{Step: "failed", Error: "test server could not decode an event: " + err.Error()}
		}
		select {
		case events <- ev:
			w.WriteHeader(http.StatusNoContent)
		case <-r.Context().Done():
		}
	})
	return mux
}
