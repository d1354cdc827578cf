package hub

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func startHub(t *testing.T, opts Options) *Server {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := Start(opts, "127.0.0.1:0", "127.0.0.1:0", reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s
}

func dial(t *testing.T, s *Server) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws://"+s.Addr().String()+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends req and returns the next message, within 5 s.
func roundTrip(t *testing.T, c *websocket.Conn, req string) string {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(req)); err != nil {
		t.Fatal(err)
	}
	return next(t, c)
}

func next(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, msg, err := c.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	return string(msg)
}

func publish(t *testing.T, s *Server, body string) (int, string) {
	t.Helper()
	resp, err := http.Post("http://"+s.AdminAddr().String()+"/api/publish", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func TestProtocol(t *testing.T) {
	s := startHub(t, Options{})
	defer http.DefaultClient.CloseIdleConnections()
	c := dial(t, s)
	cases := []struct{ req, want string }{
		{`{"type":"subscribe","channel":"a","id":1}`, `{"type":"subscribed","channel":"a","id":1}`},
		{`{"type":"subscribe","channel":"b","id":"x"}`, `{"type":"subscribed","channel":"b","id":"x"}`},
		{`{"type":"subscribe","channel":"bad name","id":2}`, `{"type":"error","id":2,"code":"bad_channel","message":"bad channel name"}`},
		{`{"type":"dance","id":3}`, `{"type":"error","id":3,"code":"bad_request","message":"unknown type"}`},
		{`not json`, `{"type":"error","code":"bad_json","message":"invalid JSON"}`},
		{`{"type":"publish","channel":"a","id":4}`, `{"type":"error","id":4,"code":"bad_request","message":"missing \"data\""}`},
		{`{"type":"unsubscribe","channel":"a","id":5}`, `{"type":"unsubscribed","channel":"a","id":5}`},
	}
	for _, tc := range cases {
		if got := roundTrip(t, c, tc.req); got != tc.want {
			t.Errorf("%s\n got %s\nwant %s", tc.req, got, tc.want)
		}
	}
	// Unsubscribed from a: a message to a is not delivered, one to b is.
	for _, body := range []string{`{"channel":"a","data":1}`, `{"channel":"b","data":{"n":2}}`} {
		if code, resp := publish(t, s, body); code != 200 || resp != `{"ok":true}` {
			t.Fatalf("publish %s: %d %s", body, code, resp)
		}
	}
	if got := next(t, c); got != `{"type":"message","channel":"b","data":{"n":2}}` {
		t.Fatalf("got %s, want the message to b", got)
	}
	// A client publish reaches its own subscription, and is acknowledged.
	if err := c.WriteMessage(websocket.TextMessage, []byte(`{"type":"publish","channel":"b","data":[3],"id":6}`)); err != nil {
		t.Fatal(err)
	}
	got := []string{next(t, c), next(t, c)}
	want := map[string]bool{`{"type":"published","channel":"b","id":6}`: true, `{"type":"message","channel":"b","data":[3]}`: true}
	if !want[got[0]] || !want[got[1]] || got[0] == got[1] {
		t.Fatalf("after a client publish got %q", got)
	}
	// Without a channel: everyone.
	publish(t, s, `{"data":"all"}`)
	if got := next(t, c); got != `{"type":"message","data":"all"}` {
		t.Fatalf("broadcast to everyone: %s", got)
	}
}

func TestPublishAPIErrors(t *testing.T) {
	s := startHub(t, Options{MaxMessageBytes: 100})
	defer http.DefaultClient.CloseIdleConnections()
	cases := []struct {
		body string
		code int
	}{
		{`{"channel":"a"}`, 400},
		{`{"channel":"a b","data":1}`, 400},
		{`nope`, 400},
		{`{"channel":"a","data":"` + strings.Repeat("x", 200) + `"}`, 413},
	}
	for _, tc := range cases {
		if code, resp := publish(t, s, tc.body); code != tc.code || !strings.Contains(resp, `"ok":false`) {
			t.Errorf("%.40s: %d %s, want %d", tc.body, code, resp, tc.code)
		}
	}
	resp, err := http.Get("http://" + s.AdminAddr().String() + "/api/publish")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /api/publish: %d, want 405", resp.StatusCode)
	}
}

func TestSlowConsumerIsDropped(t *testing.T) {
	s := startHub(t, Options{SendQueue: 1, WriteWait: 30 * time.Second})
	defer http.DefaultClient.CloseIdleConnections()
	c := dial(t, s)
	if got := roundTrip(t, c, `{"type":"subscribe","channel":"a"}`); !strings.Contains(got, "subscribed") {
		t.Fatalf("subscribe: %s", got)
	}
	// c reads nothing more: once the kernel's buffers are full its writer
	// blocks, its queue of one fills, and the hub drops it.
	body, _ := json.Marshal(map[string]any{"channel": "a", "data": strings.Repeat("x", 60000)})
	deadline := time.Now().Add(20 * time.Second)
	for value(t, s.metrics.slowConsumers) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the client that reads nothing was never dropped")
		}
		publish(t, s, string(body))
	}
	if n := value(t, s.metrics.connections); n != 0 {
		t.Fatalf("connections gauge %v after the drop, want 0", n)
	}
}

// value reads a gauge's or counter's current value.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Gauge != nil {
		return d.Gauge.GetValue()
	}
	return d.Counter.GetValue()
}

// With Compression the hub accepts a permessage-deflate offer, and
// broadcasts still arrive intact to clients with and without it.
func TestCompression(t *testing.T) {
	for _, on := range []bool{true, false} {
		s := startHub(t, Options{Compression: on})
		d := websocket.Dialer{EnableCompression: true}
		c, resp, err := d.Dial("ws://"+s.Addr().String()+"/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		plain := dial(t, s)
		got := resp.Header.Get("Sec-WebSocket-Extensions")
		if want := map[bool]string{true: "permessage-deflate; server_no_context_takeover; client_no_context_takeover"}[on]; got != want {
			t.Fatalf("compression %v: extensions %q, want %q", on, got, want)
		}
		for _, conn := range []*websocket.Conn{c, plain} {
			if got := roundTrip(t, conn, `{"type":"subscribe","channel":"z","id":1}`); !strings.Contains(got, "subscribed") {
				t.Fatalf("subscribe: %s", got)
			}
		}
		data := `"` + strings.Repeat("compressible ", 100) + `"`
		if code, _ := publish(t, s, `{"channel":"z","data":`+data+`}`); code != 200 {
			t.Fatalf("publish: %d", code)
		}
		for _, conn := range []*websocket.Conn{c, plain} {
			if got := next(t, conn); got != `{"type":"message","channel":"z","data":`+data+`}` {
				t.Fatalf("compression %v: got %.60s...", on, got)
			}
		}
		c.Close()
		http.DefaultClient.CloseIdleConnections()
	}
}
