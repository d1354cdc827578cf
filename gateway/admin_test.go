package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	promdto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/shardgate/shardgate/internal/wstest"
)

// This file covers the admin listener (SPEC "Ports", admin part, and
// "Metrics"): health, readiness, the exposition, and POST /api/publish.

func TestHealthAndReadiness(t *testing.T) {
	g := startGateway(t, nil)
	for _, path := range []string{"/healthz", "/readyz"} {
		t.Run(path, func(t *testing.T) {
			if code, _, body := adminDo(t, g, http.MethodGet, path, ""); code != http.StatusOK {
				t.Fatalf("GET %s = %d %q, want 200", path, code, body)
			}
		})
	}
}

// TestMetricsExposition checks that /metrics speaks the Prometheus text
// format and carries every metric the SPEC names, with every documented
// label value, per shard where the SPEC says so, before anything happened.
func TestMetricsExposition(t *testing.T) {
	const shards = 3
	g := startGateway(t, func(c *Config) { c.Shards = shards })

	resp, err := http.Get(g.adminURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("Content-Type %q, want the text format", ct)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse exposition: %v", err)
	}

	reasons := []string{"client_close", "idle_timeout", "slow_consumer", "protocol_error", "shutdown", "io_error",
		"rate_limit", "token_expired", "kicked", "insufficient_state"}
	perShard := []struct {
		name string
		typ  promdto.MetricType
	}{
		{"shardgate_connections", promdto.MetricType_GAUGE},
		{"shardgate_subscriptions", promdto.MetricType_GAUGE},
		{"shardgate_messages_received_total", promdto.MetricType_COUNTER},
		{"shardgate_messages_sent_total", promdto.MetricType_COUNTER},
		{"shardgate_bytes_received_total", promdto.MetricType_COUNTER},
		{"shardgate_bytes_sent_total", promdto.MetricType_COUNTER},
		{"shardgate_disconnects_total", promdto.MetricType_COUNTER},
		{"shardgate_broadcast_duration_seconds", promdto.MetricType_HISTOGRAM},
	}
	for _, m := range perShard {
		t.Run(m.name, func(t *testing.T) {
			f := family(t, families, m.name, m.typ)
			want := map[string]bool{}
			for s := range shards {
				if m.name == "shardgate_disconnects_total" {
					for _, r := range reasons {
						want[fmt.Sprintf("shard=%d,reason=%s", s, r)] = true
					}
				} else {
					want[fmt.Sprintf("shard=%d", s)] = true
				}
			}
			got := map[string]bool{}
			for _, metric := range f.Metric {
				got[labelKey(metric, "shard", "reason")] = true
			}
			for k := range want {
				if !got[k] {
					t.Errorf("no series {%s}", k)
				}
			}
			if len(got) != len(want) {
				t.Errorf("series %v, want exactly %v", got, want)
			}
		})
	}

	gatewayWide := []struct {
		name   string
		typ    promdto.MetricType
		label  string
		values []string
	}{
		{"shardgate_upgrades_total", promdto.MetricType_COUNTER, "result",
			[]string{"ok", "bad_request", "unauthorized", "forbidden_origin", "over_capacity", "timeout", "too_many_per_ip", "tls_error"}},
		{"shardgate_publishes_total", promdto.MetricType_COUNTER, "source", []string{"api", "client", "broker"}},
		{"shardgate_broker_connected", promdto.MetricType_GAUGE, "", nil},
		{"go_goroutines", promdto.MetricType_GAUGE, "", nil},
		{"process_resident_memory_bytes", promdto.MetricType_GAUGE, "", nil},
	}
	for _, m := range gatewayWide {
		t.Run(m.name, func(t *testing.T) {
			f := family(t, families, m.name, m.typ)
			got := map[string]bool{}
			for _, metric := range f.Metric {
				if m.label != "" {
					got[labelKey(metric, m.label)] = true
				}
				for _, lp := range metric.Label {
					if lp.GetName() == "shard" {
						t.Errorf("gateway-wide metric has a shard label")
					}
				}
			}
			for _, v := range m.values {
				if !got[m.label+"="+v] {
					t.Errorf("no series {%s=%q}", m.label, v)
				}
			}
		})
	}
	if v := families["shardgate_broker_connected"].Metric[0].GetGauge().GetValue(); v != 1 {
		t.Errorf("shardgate_broker_connected = %v with the memory broker, want 1", v)
	}
}

// family returns the named metric family, checking its type.
func family(t testing.TB, families map[string]*promdto.MetricFamily, name string, typ promdto.MetricType) *promdto.MetricFamily {
	t.Helper()
	f := families[name]
	if f == nil {
		t.Fatalf("metric %s missing", name)
	}
	if f.GetType() != typ {
		t.Fatalf("metric %s is a %v, want a %v", name, f.GetType(), typ)
	}
	if len(f.Metric) == 0 {
		t.Fatalf("metric %s has no series", name)
	}
	return f
}

// labelKey spells a series' values of the given labels as "a=1,b=2",
// skipping labels it does not carry.
func labelKey(m *promdto.Metric, names ...string) string {
	var parts []string
	for _, n := range names {
		for _, lp := range m.Label {
			if lp.GetName() == n {
				parts = append(parts, n+"="+lp.GetValue())
			}
		}
	}
	return strings.Join(parts, ",")
}

// TestMetricsCount checks that the counters named in the SPEC move with
// traffic: upgrades, API and client publishes, per-shard connections.
func TestMetricsCount(t *testing.T) {
	g := startGateway(t, nil)
	c := wstest.Dial(t, g.wsURL(), nil)
	c.Subscribe("m")
	g.waitMetric(1, "shardgate_upgrades_total", "result", "ok")
	g.waitMetric(1, "shardgate_connections")
	g.waitMetric(1, "shardgate_subscriptions")
	g.mustPublish("m", "1")
	c.Expect("message")
	c.Send(`{"type":"publish","channel":"m","data":2}`)
	c.Expect("published")
	c.Expect("message")
	g.waitMetric(1, "shardgate_publishes_total", "source", "api")
	g.waitMetric(1, "shardgate_publishes_total", "source", "client")
	g.waitMetric(0, "shardgate_publishes_total", "source", "broker")
	if n := g.metricSum("shardgate_messages_received_total"); n != 2 {
		t.Errorf("messages_received_total = %v, want 2", n)
	}
	if n := g.metricSum("shardgate_broadcast_duration_seconds_count"); n < 2 {
		t.Errorf("broadcast_duration_seconds_count = %v, want at least 2", n)
	}
}

// TestPublishAPI covers POST /api/publish: the documented answers to good
// and bad bodies, and what a subscriber receives for the good ones.
func TestPublishAPI(t *testing.T) {
	const maxBytes = 1024
	g := startGateway(t, func(c *Config) { c.MaxMessageBytes = maxBytes })
	sub := wstest.Dial(t, g.wsURL(), nil)
	sub.Subscribe("news")
	long := strings.Repeat("a", 128)
	atLimit := `{"channel":"news","data":"` + strings.Repeat("x", maxBytes-len(`{"channel":"news","data":""}`)) + `"}`

	cases := []struct {
		name   string
		body   string
		status int
		want   string // the message frame the subscriber gets, for 200
	}{
		{name: "object", body: `{"channel":"news","data":{"a":1}}`, status: 200,
			want: `{"type":"message","channel":"news","data":{"a":1}}`},
		{name: "data null", body: `{"channel":"news","data":null}`, status: 200,
			want: `{"type":"message","channel":"news","data":null}`},
		{name: "data string", body: `{"channel":"news","data":"hi"}`, status: 200,
			want: `{"type":"message","channel":"news","data":"hi"}`},
		{name: "data number", body: `{"data":42,"channel":"news"}`, status: 200,
			want: `{"type":"message","channel":"news","data":42}`},
		{name: "data list", body: `{"channel":"news","data":[1,"x",null]}`, status: 200,
			want: `{"type":"message","channel":"news","data":[1,"x",null]}`},
		{name: "unknown field ignored", body: `{"channel":"news","data":1,"extra":true}`, status: 200,
			want: `{"type":"message","channel":"news","data":1}`},
		{name: "invalid JSON", body: `{"channel":"news","data":`, status: 400},
		{name: "not JSON", body: `hello`, status: 400},
		{name: "empty body", body: ``, status: 400},
		{name: "JSON array", body: `[1,2]`, status: 400},
		{name: "missing data", body: `{"channel":"news"}`, status: 400},
		{name: "empty channel", body: `{"channel":"","data":1}`, status: 400},
		{name: "channel of 129 bytes", body: `{"channel":"` + long + `b","data":1}`, status: 400},
		{name: "channel with a space", body: `{"channel":"a b","data":1}`, status: 400},
		{name: "channel with a slash", body: `{"channel":"a/b","data":1}`, status: 400},
		{name: "channel not a string", body: `{"channel":7,"data":1}`, status: 400},
		{name: "body of -max-message-bytes", body: atLimit, status: 200,
			want: `{"type":"message","channel":"news","data":"` + atLimit[len(`{"channel":"news","data":"`):len(atLimit)-2] + `"}`},
		{name: "body over -max-message-bytes", body: atLimit + " ", status: 413},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr, body := adminDo(t, g, http.MethodPost, "/api/publish", tc.body, "Content-Type", "application/json")
			if code != tc.status {
				t.Fatalf("status %d %q, want %d", code, body, tc.status)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			var reply struct {
				OK    *bool  `json:"ok"`
				Error string `json:"error"`
			}
			if err := json.Unmarshal([]byte(body), &reply); err != nil || reply.OK == nil {
				t.Fatalf("reply %q is not a JSON object with \"ok\": %v", body, err)
			}
			if tc.status == http.StatusOK {
				if strings.TrimSpace(body) != `{"ok":true}` {
					t.Fatalf("reply %q, want {\"ok\":true}", body)
				}
				if got := readTextFrame(t, sub); got != tc.want {
					t.Fatalf("subscriber got %s, want %s", got, tc.want)
				}
			} else if *reply.OK || reply.Error == "" {
				t.Fatalf("error reply %q, want ok:false and an error text", body)
			}
		})
	}
	// A valid 128-byte channel name of every allowed byte class works, and
	// nothing the bad cases sent reached the subscriber in the meantime.
	edge := "AZaz09._:@-" + long[:128-len("AZaz09._:@-")]
	sub.Subscribe(edge)
	g.mustPublish(edge, `"edge"`)
	if got, want := readTextFrame(t, sub), `{"type":"message","channel":"`+edge+`","data":"edge"}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

// readTextFrame returns the next text frame's payload verbatim (so tests
// can see which fields are present), answering pings on the way.
func readTextFrame(t testing.TB, c *wstest.Client) string {
	t.Helper()
	for {
		h, p, err := c.ReadFrame(wstest.DefaultTimeout)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		switch h.OpCode {
		case ws.OpText:
			return string(p)
		case ws.OpPing:
			if err := ws.WriteFrame(c.Conn, ws.MaskFrame(ws.NewPongFrame(p))); err != nil {
				t.Fatalf("pong: %v", err)
			}
		default:
			t.Fatalf("unexpected opcode %v payload %q", h.OpCode, p)
		}
	}
}

// TestPublishToEveryone: a message without "channel" reaches every
// connection, subscribed or not, and carries no "channel" field.
func TestPublishToEveryone(t *testing.T) {
	g := startGateway(t, func(c *Config) { c.Shards = 3 })
	var clients []*wstest.Client
	for i := range 6 {
		c := wstest.Dial(t, g.wsURL(), nil)
		if i%2 == 0 {
			c.Subscribe("news")
		}
		clients = append(clients, c)
	}
	g.waitMetric(6, "shardgate_connections")
	for _, data := range []string{`{"all":true}`, `null`} {
		g.mustPublish("", data)
		for i, c := range clients {
			got := readTextFrame(t, c)
			if want := `{"type":"message","data":` + data + `}`; got != want {
				t.Fatalf("client %d got %s, want %s", i, got, want)
			}
			var fields map[string]json.RawMessage
			if err := json.Unmarshal([]byte(got), &fields); err != nil {
				t.Fatal(err)
			}
			if _, ok := fields["channel"]; ok {
				t.Fatalf("client %d: broadcast carries a channel field: %s", i, got)
			}
		}
	}
}

func TestPublishMethodNotAllowed(t *testing.T) {
	g := startGateway(t, nil)
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		t.Run(method, func(t *testing.T) {
			code, hdr, body := adminDo(t, g, method, "/api/publish", `{"channel":"news","data":1}`)
			if code != http.StatusMethodNotAllowed {
				t.Fatalf("status %d %q, want 405", code, body)
			}
			if allow := hdr.Get("Allow"); allow != http.MethodPost {
				t.Fatalf("Allow %q, want POST", allow)
			}
		})
	}
	if n := g.metricSum("shardgate_publishes_total", "source", "api"); n != 0 {
		t.Fatalf("publishes_total{source=api} = %v after refused requests", n)
	}
}

// TestAdminToken: with -admin-token, /api/ needs the bearer token while
// the scraper and load-balancer endpoints stay open.
func TestAdminToken(t *testing.T) {
	const token = "s3cret-admin"
	g := startGateway(t, func(c *Config) { c.AdminToken = token })
	sub := wstest.Dial(t, g.wsURL(), nil)
	sub.Subscribe("news")
	body := `{"channel":"news","data":"ok"}`

	cases := []struct {
		name, method, path, auth string
		status                   int
	}{
		{name: "publish without a token", method: "POST", path: "/api/publish", status: 401},
		{name: "publish with a wrong token", method: "POST", path: "/api/publish", auth: "Bearer wrong", status: 401},
		{name: "publish with a token prefix", method: "POST", path: "/api/publish", auth: "Bearer " + token[:4], status: 401},
		{name: "publish with the token as Basic", method: "POST", path: "/api/publish", auth: "Basic " + token, status: 401},
		{name: "publish with the bare token", method: "POST", path: "/api/publish", auth: token, status: 401},
		{name: "other api path without a token", method: "GET", path: "/api/other", status: 401},
		{name: "publish with the token", method: "POST", path: "/api/publish", auth: "Bearer " + token, status: 200},
		{name: "metrics without a token", method: "GET", path: "/metrics", status: 200},
		{name: "healthz without a token", method: "GET", path: "/healthz", status: 200},
		{name: "readyz without a token", method: "GET", path: "/readyz", status: 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hdr := []string{"Content-Type", "application/json"}
			if tc.auth != "" {
				hdr = append(hdr, "Authorization", tc.auth)
			}
			code, _, resp := adminDo(t, g, tc.method, tc.path, body, hdr...)
			if code != tc.status {
				t.Fatalf("status %d %q, want %d", code, resp, tc.status)
			}
		})
	}
	// Exactly one publish went through: the next message after it is the
	// one published now, and the counter saw two.
	if code, _, resp := adminDo(t, g, http.MethodPost, "/api/publish", `{"channel":"news","data":"next"}`,
		"Authorization", "Bearer "+token, "Content-Type", "application/json"); code != http.StatusOK {
		t.Fatalf("publish with the token: %d %q", code, resp)
	}
	for _, data := range []string{`"ok"`, `"next"`} {
		if got, want := readTextFrame(t, sub), `{"type":"message","channel":"news","data":`+data+`}`; got != want {
			t.Fatalf("subscriber got %s, want %s", got, want)
		}
	}
	g.waitMetric(2, "shardgate_publishes_total", "source", "api")
}

// TestDrainingRefusesPublish: once shutdown starts, /readyz and
// /api/publish answer 503 until the node is gone, while /healthz stays 200.
func TestDrainingRefusesPublish(t *testing.T) {
	g := startGateway(t, func(c *Config) { c.DrainTimeout = 30 * time.Second })
	c := wstest.Dial(t, g.wsURL(), nil)
	c.Subscribe("news")

	shutdown := make(chan error, 1)
	go func() { shutdown <- g.Shutdown() }()

	waitFor(t, "/readyz to answer 503", func() bool {
		code, _, _ := adminDo(t, g, http.MethodGet, "/readyz", "")
		return code == http.StatusServiceUnavailable
	})
	code, _, body := adminDo(t, g, http.MethodPost, "/api/publish", `{"channel":"news","data":1}`, "Content-Type", "application/json")
	if code != http.StatusServiceUnavailable {
		t.Fatalf("publish while draining = %d %q, want 503", code, body)
	}
	if code, _, _ := adminDo(t, g, http.MethodGet, "/healthz", ""); code != http.StatusOK {
		t.Fatalf("/healthz while draining = %d, want 200", code)
	}
	// The client has been asked to go and has not answered yet, so the
	// node is still draining: still 503.
	c.ExpectClose(ws.StatusGoingAway)
	for _, path := range []string{"/readyz", "/api/publish"} {
		method := http.MethodGet
		if path == "/api/publish" {
			method = http.MethodPost
		}
		if code, _, _ := adminDo(t, g, method, path, `{"data":1}`, "Content-Type", "application/json"); code != http.StatusServiceUnavailable {
			t.Fatalf("%s with a client still draining = %d, want 503", path, code)
		}
	}
	c.WriteFrame(ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, ""))))
	c.ExpectEOF()
	if err := <-shutdown; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}
