package target

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/golang-jwt/jwt/v5"
)

var captureCentrifugo = flag.Bool("centrifugo.capture", false,
	"rewrite "+centrifugoFramesFile+" from a live Centrifugo (needs bin/centrifugo or CENTRIFUGO_BIN)")

const (
	centrifugoFramesFile  = "testdata/centrifugo_frames.json"
	centrifugoConfigFile  = "../peers/centrifugo/config.json"
	centrifugoBatchedName = "batched_pushes"
)

// capturedFrame is one WebSocket text message a real Centrifugo sent,
// named after the step of TestCentrifugoLive that drew it.
type capturedFrame struct {
	Name  string `json:"name"`
	Frame string `json:"frame"`
}

func loadCentrifugoFrames(t testing.TB) map[string][]byte {
	t.Helper()
	b, err := os.ReadFile(centrifugoFramesFile)
	if err != nil {
		t.Fatal(err)
	}
	var frames []capturedFrame
	if err := json.Unmarshal(b, &frames); err != nil {
		t.Fatalf("%s: %v", centrifugoFramesFile, err)
	}
	m := make(map[string][]byte, len(frames))
	for _, f := range frames {
		m[f.Name] = []byte(f.Frame)
	}
	return m
}

func newTestCentrifugo(t testing.TB, opts Options) Target {
	t.Helper()
	tg, err := New("centrifugo", opts)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func TestCentrifugoRequests(t *testing.T) {
	tg := newTestCentrifugo(t, Options{})
	cases := []struct {
		name string
		got  []byte
		want string
	}{
		{"subscribe", tg.AppendSubscribe(nil, "bench.0", 2), `{"id":2,"subscribe":{"channel":"bench.0"}}`},
		{"publish", tg.AppendPublish(nil, "bench.echo.7", []byte(`{"t":1,"s":2}`), 9), `{"id":9,"publish":{"channel":"bench.echo.7","data":{"t":1,"s":2}}}`},
		{"newlines dropped", tg.AppendPublish(nil, "c", []byte("{\n\"a\":\n[1,\n2]}\n"), 3), `{"id":3,"publish":{"channel":"c","data":{"a":[1,2]}}}`},
		{"escaped channel", tg.AppendSubscribe(nil, "q\"\n", 4), `{"id":4,"subscribe":{"channel":"q\"\u000a"}}`},
		{"largest id", tg.AppendSubscribe(nil, "c", 1<<32-1), `{"id":4294967295,"subscribe":{"channel":"c"}}`},
		{"id wraps past uint32", tg.AppendSubscribe(nil, "c", 1<<32), `{"id":1,"subscribe":{"channel":"c"}}`},
		{"id 0 is never sent", tg.AppendSubscribe(nil, "c", 0), `{"id":1,"subscribe":{"channel":"c"}}`},
		{"appends", tg.AppendSubscribe([]byte("x"), "c", 1), `x{"id":1,"subscribe":{"channel":"c"}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if string(tc.got) != tc.want {
				t.Errorf("got  %s\nwant %s", tc.got, tc.want)
			}
			if got := bytes.TrimPrefix(tc.got, []byte("x")); !json.Valid(got) || bytes.IndexByte(got, '\n') >= 0 {
				t.Errorf("%s is not one line of JSON", got)
			}
		})
	}

	if tg.HandshakeHeader() != nil {
		t.Errorf("handshake header %v: Centrifugo authenticates in the connect command", tg.HandshakeHeader())
	}
	if u := tg.DefaultURL(); u != "ws://127.0.0.1:8000/connection/websocket" {
		t.Errorf("default URL %s", u)
	}
	if u := tg.MetricsURL("http://127.0.0.1:9000/"); u != "http://127.0.0.1:9000/metrics" {
		t.Errorf("metrics URL %s", u)
	}

	req, err := tg.NewPublishRequest(tg.DefaultAdminURL(), "bench.0", []byte(`{"t":1}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(req.Body)
	if req.Method != http.MethodPost || req.URL.String() != "http://127.0.0.1:9000/api/publish" ||
		string(body) != `{"channel":"bench.0","data":{"t":1}}` {
		t.Errorf("publish request %s %s %s", req.Method, req.URL, body)
	}
	for h, want := range map[string]string{"X-API-Key": centrifugoAPIKey, "X-Centrifugo-Error-Mode": "transport", "Content-Type": "application/json"} {
		if got := req.Header.Get(h); got != want {
			t.Errorf("publish header %s = %q, want %q", h, got, want)
		}
	}
	req, _ = newTestCentrifugo(t, Options{APIKey: "other"}).NewPublishRequest("http://h", "c", []byte("1"))
	if got := req.Header.Get("X-API-Key"); got != "other" {
		t.Errorf("Options.APIKey ignored: X-API-Key = %q", got)
	}
}

// helloToken returns the token of tg's connect command, checking the
// command's shape on the way.
func helloToken(t *testing.T, tg Target) string {
	t.Helper()
	hello, ready := tg.AppendHello(nil)
	if ready {
		t.Error("AppendHello reports ready: Centrifugo answers connect")
	}
	var cmd struct {
		ID      int `json:"id"`
		Connect struct {
			Token string `json:"token"`
			Name  string `json:"name"`
		} `json:"connect"`
	}
	if err := json.Unmarshal(hello, &cmd); err != nil || cmd.ID != 1 || bytes.IndexByte(hello, '\n') >= 0 {
		t.Fatalf("hello %s: %v", hello, err)
	}
	return cmd.Connect.Token
}

func TestCentrifugoHelloToken(t *testing.T) {
	token := helloToken(t, newTestCentrifugo(t, Options{}))
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return []byte(centrifugoHMACSecret), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
	if err != nil {
		t.Fatalf("token %s: %v", token, err)
	}
	if claims.Subject != centrifugoUser {
		t.Errorf("sub = %q, want %q", claims.Subject, centrifugoUser)
	}
	if exp := claims.ExpiresAt.Time; time.Until(exp) < 5*365*24*time.Hour {
		t.Errorf("exp %v is too close: a run must never see its token expire", exp)
	}

	if got := helloToken(t, newTestCentrifugo(t, Options{Token: "given.jwt"})); got != "given.jwt" {
		t.Errorf("Options.Token ignored: connect token %q", got)
	}
}

// TestCentrifugoConfig checks that the adapter's built-in credentials and
// addresses are those of the config scripts/bench-centrifugo.sh starts.
func TestCentrifugoConfig(t *testing.T) {
	b, err := os.ReadFile(centrifugoConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		HTTPServer struct {
			Address         string `json:"address"`
			Port            int    `json:"port"`
			InternalAddress string `json:"internal_address"`
			InternalPort    string `json:"internal_port"`
		} `json:"http_server"`
		Client struct {
			Token struct {
				HMACSecretKey string `json:"hmac_secret_key"`
			} `json:"token"`
		} `json:"client"`
		Channel struct {
			WithoutNamespace map[string]bool `json:"without_namespace"`
		} `json:"channel"`
		HTTPAPI struct {
			Key string `json:"key"`
		} `json:"http_api"`
		Prometheus struct {
			Enabled bool `json:"enabled"`
		} `json:"prometheus"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("%s: %v", centrifugoConfigFile, err)
	}
	tg := newTestCentrifugo(t, Options{})
	if got := fmt.Sprintf("ws://%s:%d/connection/websocket", cfg.HTTPServer.Address, cfg.HTTPServer.Port); got != tg.DefaultURL() {
		t.Errorf("config serves WebSocket at %s, adapter dials %s", got, tg.DefaultURL())
	}
	if got := "http://" + net.JoinHostPort(cfg.HTTPServer.InternalAddress, cfg.HTTPServer.InternalPort); got != tg.DefaultAdminURL() {
		t.Errorf("config serves the API at %s, adapter posts to %s", got, tg.DefaultAdminURL())
	}
	if cfg.Client.Token.HMACSecretKey != centrifugoHMACSecret {
		t.Errorf("config HMAC secret %q, adapter signs with %q", cfg.Client.Token.HMACSecretKey, centrifugoHMACSecret)
	}
	if cfg.HTTPAPI.Key != centrifugoAPIKey {
		t.Errorf("config API key %q, adapter sends %q", cfg.HTTPAPI.Key, centrifugoAPIKey)
	}
	for _, k := range []string{"allow_subscribe_for_client", "allow_publish_for_client"} {
		if !cfg.Channel.WithoutNamespace[k] {
			t.Errorf("config lacks channel.without_namespace.%s: the fanout and echo scenarios need it", k)
		}
	}
	if !cfg.Prometheus.Enabled {
		t.Error("config lacks prometheus.enabled: shardbench reads RSS and goroutines from /metrics")
	}
}

// TestCentrifugoParse parses frames captured from Centrifugo v6 by
// TestCentrifugoLive -centrifugo.capture.
func TestCentrifugoParse(t *testing.T) {
	frames := loadCentrifugoFrames(t)
	tg := newTestCentrifugo(t, Options{})
	pong := []byte(`{}`)
	cases := []struct {
		name string
		want []Event
	}{
		{"connect", []Event{{Kind: KindReady, ID: 1}}},
		{"subscribe", []Event{{Kind: KindSubscribed, ID: 2}}},
		{"already_subscribed", []Event{{Kind: KindError, ID: 3, Code: "already_subscribed"}}},
		{"private_channel", []Event{{Kind: KindError, ID: 4, Code: "permission_denied"}}},
		{"client_publish", []Event{{Kind: KindPublished, ID: 5}}},
		{"api_push", []Event{{Kind: KindMessage, Channel: []byte("bench.0"), Data: []byte(`{"t":1,"s":0,"p":"xxxx"}`)}}},
		{"client_push_and_reply", []Event{{Kind: KindMessage, Channel: []byte("bench.0"), Data: []byte(`{"t":2,"s":0}`)}, {Kind: KindPublished, ID: 6}}},
		{"batched_replies", []Event{{Kind: KindReady, ID: 1}, {Kind: KindSubscribed, ID: 2}}},
		{"token_expired", []Event{{Kind: KindError, ID: 1, Code: "token_expired"}}},
		{"ping", []Event{{Kind: KindReply, Reply: pong}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			frame, ok := frames[tc.name]
			if !ok {
				t.Fatalf("%s has no frame %q", centrifugoFramesFile, tc.name)
			}
			evs, err := tg.Parse(frame, nil)
			if err != nil {
				t.Fatalf("%s: %v", frame, err)
			}
			checkEvents(t, frame, evs, tc.want)
		})
	}

	t.Run(centrifugoBatchedName, func(t *testing.T) {
		frame := frames[centrifugoBatchedName]
		lines := bytes.Count(frame, []byte("\n")) + 1
		if lines < 2 {
			t.Fatalf("frame %q is not a batch", frame)
		}
		evs, err := tg.Parse(frame, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkBurst(t, evs, lines)
	})
}

// checkEvents verifies that evs, parsed from frame, are want.
func checkEvents(t *testing.T, frame []byte, evs, want []Event) {
	t.Helper()
	if len(evs) != len(want) {
		t.Fatalf("%s: %d events %+v, want %d", frame, len(evs), evs, len(want))
	}
	for i, ev := range evs {
		w := want[i]
		if ev.Kind != w.Kind || ev.ID != w.ID || ev.Code != w.Code || !bytes.Equal(ev.Channel, w.Channel) ||
			!bytes.Equal(ev.Data, w.Data) || !bytes.Equal(ev.Reply, w.Reply) {
			t.Errorf("%s: event %d\n got  %s\n want %s", frame, i, fmtEvent(ev), fmtEvent(w))
		}
	}
}

func fmtEvent(ev Event) string {
	return fmt.Sprintf("{Kind:%d ID:%d Channel:%q Data:%s Code:%q Reply:%s}", ev.Kind, ev.ID, ev.Channel, ev.Data, ev.Code, ev.Reply)
}

// checkBurst verifies n messages on bench.0 carrying the consecutive
// sequence numbers burstData writes.
func checkBurst(t *testing.T, evs []Event, n int) {
	t.Helper()
	if len(evs) != n {
		t.Fatalf("%d events, want %d", len(evs), n)
	}
	var first int
	for i, ev := range evs {
		if ev.Kind != KindMessage || string(ev.Channel) != "bench.0" {
			t.Fatalf("event %d: %s", i, fmtEvent(ev))
		}
		if i == 0 {
			var d struct{ S int }
			if err := json.Unmarshal(ev.Data, &d); err != nil {
				t.Fatalf("event 0 data %s: %v", ev.Data, err)
			}
			first = d.S
		}
		if want := burstData(first + i); string(ev.Data) != want {
			t.Errorf("event %d data %s, want %s", i, ev.Data, want)
		}
	}
}

func burstData(seq int) string { return `{"t":3,"s":` + strconv.Itoa(seq) + `}` }

// TestCentrifugoPublicationFastPath checks that every captured
// publication takes parsePublication and that the general path agrees.
func TestCentrifugoPublicationFastPath(t *testing.T) {
	tg := newTestCentrifugo(t, Options{}).(*centrifugo)
	pushes := 0
	for name, frame := range loadCentrifugoFrames(t) {
		for line := range bytes.SplitSeq(frame, []byte("\n")) {
			if !bytes.HasPrefix(line, []byte(`{"push":`)) {
				continue
			}
			pushes++
			fast, ok := parsePublication(line)
			slow, err := tg.parseReply(line)
			if !ok || err != nil || fmtEvent(fast) != fmtEvent(slow) {
				t.Errorf("%s: %s: fast path %s (ok %v), general path %s (%v)", name, line, fmtEvent(fast), ok, fmtEvent(slow), err)
			}
		}
	}
	if pushes == 0 {
		t.Fatal("no publication among the captured frames")
	}
}

func TestCentrifugoParseEdges(t *testing.T) {
	tg := newTestCentrifugo(t, Options{})
	cases := []struct {
		name, in string
		want     []Event
	}{
		{"trailing newline", "{}\n", []Event{{Kind: KindReply, Reply: []byte(`{}`)}}},
		{"empty message", "", nil},
		{"ping between replies", "{\"id\":7,\"publish\":{}}\n{}\n{\"id\":8,\"subscribe\":{\"recoverable\":true}}",
			[]Event{{Kind: KindPublished, ID: 7}, {Kind: KindReply, Reply: []byte(`{}`)}, {Kind: KindSubscribed, ID: 8}}},
		{"push id is not the reply id", `{"push":{"id":42,"pub":{"offset":3,"data":[1]}}}`, []Event{{Kind: KindMessage, Data: []byte(`[1]`)}}},
		{"join push", `{"push":{"channel":"c","join":{"info":{"user":"u","client":"x"}}}}`, []Event{{Kind: KindIgnore, Channel: []byte("c")}}},
		{"disconnect push", `{"push":{"disconnect":{"code":3001,"reason":"shutdown"}}}`, []Event{{Kind: KindIgnore}}},
		{"unknown error code", `{"id":6,"error":{"message":"custom","code":4001}}`, []Event{{Kind: KindError, ID: 6, Code: "centrifugo_4001"}}},
		{"unsubscribe reply", `{"id":9,"unsubscribe":{}}`, []Event{{Kind: KindIgnore, ID: 9}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := tg.Parse([]byte(tc.in), nil)
			if err != nil {
				t.Fatal(err)
			}
			checkEvents(t, []byte(tc.in), evs, tc.want)
		})
	}

	for _, bad := range []string{"not json", "{}\n{\"id\":", `{"error":[}`, `{"push":{"pub":1`} {
		evs := []Event{{Kind: KindMessage}}
		got, err := tg.Parse([]byte(bad), evs)
		if err == nil || len(got) != 1 {
			t.Errorf("%q: %d events, err %v; want the events passed in and an error", bad, len(got), err)
		}
	}
}

func FuzzCentrifugoParse(f *testing.F) {
	for _, frame := range loadCentrifugoFrames(f) {
		f.Add(frame)
	}
	f.Add([]byte("{}\n{}\n"))
	tg, err := New("centrifugo", Options{Token: "t"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		evs, err := tg.Parse(msg, make([]Event, 1, 4))
		if err != nil {
			if len(evs) != 1 {
				t.Fatalf("error %v with %d events appended", err, len(evs)-1)
			}
			return
		}
		if max := bytes.Count(msg, []byte("\n")) + 1; len(evs)-1 > max {
			t.Fatalf("%d events from %d lines", len(evs)-1, max)
		}
		// The fast path for publications reads what the general one does.
		for line := range bytes.SplitSeq(msg, []byte("\n")) {
			fast, ok := parsePublication(line)
			if !ok {
				continue
			}
			slow, err := tg.(*centrifugo).parseReply(line)
			if err == nil && fmtEvent(fast) != fmtEvent(slow) {
				t.Fatalf("%s: fast path %s, general path %s", line, fmtEvent(fast), fmtEvent(slow))
			}
		}
	})
}

func BenchmarkCentrifugoParse(b *testing.B) {
	tg, _ := New("centrifugo", Options{Token: "t"})
	push := `{"push":{"channel":"bench.0","pub":{"data":{"t":1732540000123456789,"s":42,"p":"` + strings.Repeat("x", 210) + `"}}}}`
	for _, n := range []int{1, 16} {
		msg := []byte(strings.TrimSuffix(strings.Repeat(push+"\n", n), "\n"))
		b.Run(fmt.Sprintf("pushes=%d", n), func(b *testing.B) {
			evs := make([]Event, 0, n)
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				evs, _ = tg.Parse(msg, evs[:0])
			}
		})
	}
}

// --- Against a real Centrifugo -------------------------------------------

// centrifugoBinary returns the Centrifugo to test against: $CENTRIFUGO_BIN,
// or bin/centrifugo as scripts/bench-centrifugo.sh builds it. The test is
// skipped without one: Centrifugo is not part of make test.
func centrifugoBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("CENTRIFUGO_BIN"); bin != "" {
		return bin
	}
	bin, err := filepath.Abs("../../bin/centrifugo")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		if *captureCentrifugo {
			t.Fatalf("-centrifugo.capture needs a Centrifugo: %v", err)
		}
		t.Skip("no Centrifugo: run scripts/bench-centrifugo.sh once or set CENTRIFUGO_BIN")
	}
	return bin
}

// freePort returns a loopback port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// lockedBuffer collects a child's output, which exec copies from another
// goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startCentrifugo runs bin with the benchmark config moved to free ports
// and a ping every 2 s (so the test sees pings), and returns its WebSocket
// URL and admin base URL once both answer.
func startCentrifugo(t *testing.T, bin string) (wsURL, adminURL string) {
	t.Helper()
	b, err := os.ReadFile(centrifugoConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	port, internal := freePort(t), freePort(t)
	cfg["http_server"]["port"] = port
	cfg["http_server"]["internal_port"] = strconv.Itoa(internal)
	cfg["client"]["ping_interval"] = "2s"
	cfg["client"]["pong_timeout"] = "1s"
	cfg["log"]["level"] = "info"
	b, _ = json.Marshal(cfg)
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}

	var out lockedBuffer
	cmd := exec.Command(bin, "--config", path)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("centrifugo output:\n%s", out.String())
		}
	})

	wsURL = fmt.Sprintf("ws://127.0.0.1:%d/connection/websocket", port)
	adminURL = fmt.Sprintf("http://127.0.0.1:%d", internal)
	eventually(t, 15*time.Second, "centrifugo serving", func() bool {
		resp, err := http.Get(adminURL + "/metrics")
		if err != nil {
			return false
		}
		resp.Body.Close()
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return false
		}
		c.Close()
		return resp.StatusCode == http.StatusOK
	})
	return wsURL, adminURL
}

// eventually polls cond until it holds, failing the test after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wsClient is the smallest client that can hold a Centrifugo session: it
// answers pings as it reads, like the load generator does, and remembers
// the first one for the capture.
type wsClient struct {
	t    *testing.T
	tg   Target
	conn net.Conn
	rw   io.ReadWriter
	ping []byte // the first ping frame seen
}

func dialWS(t *testing.T, tg Target, url string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, br, _, err := ws.Dial(ctx, url)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &wsClient{t: t, tg: tg, conn: conn, rw: conn}
	if br != nil { // the server spoke first: read what is buffered before the socket
		c.rw = struct {
			io.Reader
			io.Writer
		}{io.MultiReader(br, conn), conn}
	}
	return c
}

func (c *wsClient) send(msg []byte) {
	c.t.Helper()
	if err := wsutil.WriteClientText(c.conn, msg); err != nil {
		c.t.Fatalf("send %s: %v", msg, err)
	}
}

// next returns the next text frame that is not a lone ping, and its
// events but the pings; pings (alone or in a batch: a ping can share a
// frame with a push) are answered on the way.
func (c *wsClient) next() ([]byte, []Event) {
	c.t.Helper()
	for {
		_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		frame, err := wsutil.ReadServerText(c.rw)
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		evs, err := c.tg.Parse(frame, nil)
		if err != nil {
			c.t.Fatalf("parse %s: %v", frame, err)
		}
		rest := evs[:0:0]
		for _, ev := range evs {
			if ev.Kind == KindReply {
				c.send(ev.Reply)
				continue
			}
			rest = append(rest, ev)
		}
		if len(rest) < len(evs) && c.ping == nil {
			c.ping = frame
		}
		if len(rest) > 0 {
			return frame, rest
		}
	}
}

// expect reads the next frame and checks it holds exactly want.
func (c *wsClient) expect(want ...Event) []byte {
	c.t.Helper()
	frame, evs := c.next()
	checkEvents(c.t, frame, evs, want)
	return frame
}

// captureShape records frame, a shape of message that Centrifugo sends only
// when its writer's timing allows, as name; a capture cannot do without
// it, a test run can.
func captureShape(t *testing.T, captured *[]capturedFrame, name string, frame []byte) {
	t.Helper()
	switch {
	case frame != nil:
		*captured = append(*captured, capturedFrame{name, string(frame)})
	case *captureCentrifugo:
		t.Errorf("no %s frame to capture: run again", name)
	default:
		t.Logf("Centrifugo sent no %s frame this time", name)
	}
}

// TestCentrifugoLive runs the adapter against a real Centrifugo: connect
// with the generated JWT, subscribe, get pushes from the HTTP API and a
// client publish, batched replies and pushes, errors, and pings answered
// long enough to prove the pongs are accepted. With -centrifugo.capture it
// rewrites the frames TestCentrifugoParse reads.
func TestCentrifugoLive(t *testing.T) {
	bin := centrifugoBinary(t)
	wsURL, adminURL := startCentrifugo(t, bin)
	tg := newTestCentrifugo(t, Options{})
	var captured []capturedFrame
	record := func(name string, frame []byte) { captured = append(captured, capturedFrame{name, string(frame)}) }

	c := dialWS(t, tg, wsURL)
	hello, _ := tg.AppendHello(nil)
	c.send(hello)
	record("connect", c.expect(Event{Kind: KindReady, ID: 1}))
	c.send(tg.AppendSubscribe(nil, "bench.0", 2))
	record("subscribe", c.expect(Event{Kind: KindSubscribed, ID: 2}))
	c.send(tg.AppendSubscribe(nil, "bench.0", 3))
	record("already_subscribed", c.expect(Event{Kind: KindError, ID: 3, Code: "already_subscribed"}))
	// "$" marks a private channel, which takes a subscription token.
	c.send(tg.AppendSubscribe(nil, "$bench.private", 4))
	record("private_channel", c.expect(Event{Kind: KindError, ID: 4, Code: "permission_denied"}))
	// Not subscribed to bench.1: the reply comes alone.
	c.send(tg.AppendPublish(nil, "bench.1", []byte(`{"t":2,"s":0}`), 5))
	record("client_publish", c.expect(Event{Kind: KindPublished, ID: 5}))

	publish := func(data string) {
		t.Helper()
		req, err := tg.NewPublishRequest(adminURL, "bench.0", []byte(data))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != `{"result":{}}` {
			t.Fatalf("publish: HTTP %d %s", resp.StatusCode, body)
		}
	}
	publish(`{"t":1,"s":0,"p":"xxxx"}`)
	record("api_push", c.expect(Event{Kind: KindMessage, Channel: []byte("bench.0"), Data: []byte(`{"t":1,"s":0,"p":"xxxx"}`)}))

	// A client publish into a channel the client is subscribed to: the
	// push (with the publisher's info) is queued during the publish, the
	// reply right after it, and the writer usually sends them together.
	push := Event{Kind: KindMessage, Channel: []byte("bench.0"), Data: []byte(`{"t":2,"s":0}`)}
	var pushAndReply []byte
	for round := 0; round < 10 && pushAndReply == nil; round++ {
		c.send(tg.AppendPublish(nil, "bench.0", []byte(`{"t":2,"s":0}`), 6))
		frame, evs := c.next()
		if len(evs) == 1 {
			checkEvents(t, frame, evs, []Event{push})
			c.expect(Event{Kind: KindPublished, ID: 6})
			continue
		}
		checkEvents(t, frame, evs, []Event{push, {Kind: KindPublished, ID: 6}})
		pushAndReply = frame
	}
	captureShape(t, &captured, "client_push_and_reply", pushAndReply)

	// A burst through the batch API: the writer flushes what queued up
	// while it wrote, several pushes to a frame.
	const burst = 64
	var batched []byte
	for round := 0; round < 5 && batched == nil; round++ {
		var cmds []map[string]any
		for i := range burst {
			cmds = append(cmds, map[string]any{"publish": map[string]any{"channel": "bench.0", "data": json.RawMessage(burstData(round*burst + i))}})
		}
		body, _ := json.Marshal(map[string]any{"commands": cmds})
		req, _ := http.NewRequest(http.MethodPost, adminURL+"/api/batch", bytes.NewReader(body))
		req.Header.Set("X-API-Key", centrifugoAPIKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var evs []Event
		for len(evs) < burst {
			frame, got := c.next()
			if len(got) > 1 && batched == nil {
				batched = frame
			}
			evs = append(evs, got...)
		}
		checkBurst(t, evs, burst)
	}
	captureShape(t, &captured, centrifugoBatchedName, batched)

	// Two commands in one frame: their replies may share one too.
	var repliesTogether []byte
	for round := 0; round < 20 && repliesTogether == nil; round++ {
		c2 := dialWS(t, tg, wsURL)
		c2.send(append(append(hello, '\n'), tg.AppendSubscribe(nil, "bench.0", 2)...))
		frame, evs := c2.next()
		if len(evs) == 1 {
			checkEvents(t, frame, evs, []Event{{Kind: KindReady, ID: 1}})
			c2.expect(Event{Kind: KindSubscribed, ID: 2})
		} else {
			checkEvents(t, frame, evs, []Event{{Kind: KindReady, ID: 1}, {Kind: KindSubscribed, ID: 2}})
			repliesTogether = frame
		}
		c2.conn.Close()
	}
	captureShape(t, &captured, "batched_replies", repliesTogether)

	expired, err := centrifugoToken(centrifugoHMACSecret, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	c3 := dialWS(t, newTestCentrifugo(t, Options{Token: expired}), wsURL)
	hello3, _ := c3.tg.AppendHello(nil)
	c3.send(hello3)
	record("token_expired", c3.expect(Event{Kind: KindError, ID: 1, Code: "token_expired"}))

	// Pings every 2 s, pong timeout 1 s: a push after 4 s or more shows
	// the session outlived at least one answered ping.
	start := time.Now()
	eventually(t, 10*time.Second, "a ping", func() bool {
		if c.ping != nil && time.Since(start) > 4*time.Second {
			return true
		}
		publish(`{"t":4,"s":0}`)
		c.expect(Event{Kind: KindMessage, Channel: []byte("bench.0"), Data: []byte(`{"t":4,"s":0}`)})
		return false
	})
	record("ping", c.ping)

	resp, err := http.Get(tg.MetricsURL(adminURL))
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if !bytes.Contains(metrics, []byte("\n"+name+" ")) {
			t.Errorf("/metrics lacks %s", name)
		}
	}

	if *captureCentrifugo && !t.Failed() {
		b, _ := json.MarshalIndent(captured, "", "\t")
		if err := os.WriteFile(centrifugoFramesFile, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %d frames to %s", len(captured), centrifugoFramesFile)
	}
}
