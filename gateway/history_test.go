package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/shardgate/shardgate/internal/wstest"
)

// SPEC "History and recovery" on one node (the memory broker).

// histMsg is a gateway message with the history members.
type histMsg struct {
	Type      string          `json:"type"`
	Channel   string          `json:"channel"`
	ID        json.RawMessage `json:"id"`
	Code      string          `json:"code"`
	Data      json.RawMessage `json:"data"`
	Epoch     *string         `json:"epoch"`
	Offset    *uint64         `json:"offset"`
	Recovered *bool           `json:"recovered"`
}

// readHist reads the next text message of c (answering pings).
func readHist(t testing.TB, c *wstest.Client) histMsg {
	t.Helper()
	for {
		h, p, err := c.ReadFrame(wstest.DefaultTimeout)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if h.OpCode == ws.OpPing {
			c.WriteFrame(ws.MaskFrame(ws.NewPongFrame(p)))
			continue
		}
		if h.OpCode != ws.OpText {
			t.Fatalf("opcode %v %q", h.OpCode, p)
		}
		var m histMsg
		if err := json.Unmarshal(p, &m); err != nil {
			t.Fatalf("invalid JSON %q: %v", p, err)
		}
		return m
	}
}

// subscribeHist subscribes, recovering from (epoch, offset) when epoch is
// not empty, and returns the subscribed reply.
func subscribeHist(t testing.TB, c *wstest.Client, channel, epoch string, offset uint64) histMsg {
	t.Helper()
	req := map[string]any{"type": "subscribe", "channel": channel}
	if epoch != "" {
		req["recover"] = map[string]any{"epoch": epoch, "offset": offset}
	}
	c.Send(req)
	m := readHist(t, c)
	if m.Type != "subscribed" || m.Channel != channel || m.Epoch == nil || m.Offset == nil {
		t.Fatalf("subscribe reply %+v", m)
	}
	if (epoch != "") != (m.Recovered != nil) {
		t.Fatalf("recovered member %v for a subscribe with epoch %q", m.Recovered, epoch)
	}
	return m
}

// expectData reads n messages of channel and checks their data and that
// offsets grow, returning the last offset.
func expectData(t testing.TB, c *wstest.Client, channel string, after uint64, data ...string) uint64 {
	t.Helper()
	for _, want := range data {
		m := readHist(t, c)
		if m.Type != "message" || m.Channel != channel || m.Offset == nil || string(m.Data) != want {
			t.Fatalf("got %+v (data %s), want message %s on %s", m, m.Data, want, channel)
		}
		if *m.Offset <= after {
			t.Fatalf("offset %d after %d", *m.Offset, after)
		}
		after = *m.Offset
	}
	return after
}

// publishOffset publishes through the API and returns the receipt.
func (g *testGateway) publishOffset(channel, data string) (uint64, string) {
	g.t.Helper()
	code, body := g.publish(fmt.Sprintf(`{"channel":%q,"data":%s}`, channel, data))
	var r struct {
		OK     bool    `json:"ok"`
		Offset *uint64 `json:"offset"`
		Epoch  string  `json:"epoch"`
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &r) != nil || !r.OK || r.Offset == nil || r.Epoch == "" {
		g.t.Fatalf("publish: %d %s", code, body)
	}
	return *r.Offset, r.Epoch
}

func withHistory(size int) func(*Config) {
	return func(c *Config) { c.HistorySize = size }
}

func TestRecoverGetsExactlyTheMissedMessagesInOrderThenLiveOnes(t *testing.T) {
	g := startGateway(t, withHistory(100))
	c := wstest.Dial(t, g.wsURL(), nil)
	sub := subscribeHist(t, c, "news", "", 0)
	if *sub.Offset != 0 {
		t.Fatalf("a channel without messages is at offset %d", *sub.Offset)
	}
	g.mustPublish("news", `"a"`)
	g.mustPublish("news", `"b"`)
	last := expectData(t, c, "news", 0, `"a"`, `"b"`)
	c.Conn.Close() // dropped, no close frame

	missed := []string{`1`, `2`, `3`, `{"x":[4]}`, `"5"`}
	for _, d := range missed {
		g.mustPublish("news", d)
		g.mustPublish("other", d) // interleaved offsets of another channel
	}
	c2 := wstest.Dial(t, g.wsURL(), nil)
	rec := subscribeHist(t, c2, "news", *sub.Epoch, last)
	if !*rec.Recovered || *rec.Epoch != *sub.Epoch {
		t.Fatalf("recovery reply %+v", rec)
	}
	got := expectData(t, c2, "news", last, missed...)
	if got != *rec.Offset {
		t.Fatalf("last replayed offset %d, subscribed said %d", got, *rec.Offset)
	}
	g.mustPublish("news", `"live"`)
	expectData(t, c2, "news", got, `"live"`)
}

func TestRecoveredFalse(t *testing.T) {
	t.Run("wrong epoch", func(t *testing.T) {
		g := startGateway(t, withHistory(100))
		off, _ := g.publishOffset("news", `1`)
		c := wstest.Dial(t, g.wsURL(), nil)
		m := subscribeHist(t, c, "news", "0123456789abcdef", off-1)
		if *m.Recovered {
			t.Fatalf("recovered across epochs: %+v", m)
		}
		g.mustPublish("news", `2`)
		expectData(t, c, "news", off, `2`) // only new messages
	})
	t.Run("more than recover-max missed", func(t *testing.T) {
		g := startGateway(t, func(c *Config) { c.HistorySize = 100; c.RecoverMax = 3 })
		first, epoch := g.publishOffset("news", `0`)
		for i := 1; i <= 4; i++ {
			g.mustPublish("news", fmt.Sprint(i))
		}
		c := wstest.Dial(t, g.wsURL(), nil)
		if m := subscribeHist(t, c, "news", epoch, first); *m.Recovered {
			t.Fatalf("recovered 4 messages with -recover-max 3: %+v", m)
		}
		// Exactly recover-max is still recovered.
		c2 := wstest.Dial(t, g.wsURL(), nil)
		if m := subscribeHist(t, c2, "news", epoch, first+1); !*m.Recovered {
			t.Fatalf("3 missed with -recover-max 3: %+v", m)
		}
		expectData(t, c2, "news", first+1, `2`, `3`, `4`)
	})
	t.Run("past history-ttl", func(t *testing.T) {
		g := startGateway(t, func(c *Config) { c.HistorySize = 100; c.HistoryTTL = 50 * time.Millisecond })
		first, epoch := g.publishOffset("news", `0`)
		g.mustPublish("news", `1`)
		waitFor(t, "history to expire", func() bool { return len(g.history("channel=news").Messages) == 0 })
		c := wstest.Dial(t, g.wsURL(), nil)
		if m := subscribeHist(t, c, "news", epoch, first); *m.Recovered {
			t.Fatalf("recovered expired messages: %+v", m)
		}
	})
	t.Run("more than history-size ago", func(t *testing.T) {
		g := startGateway(t, withHistory(2))
		first, epoch := g.publishOffset("news", `0`)
		for i := 1; i <= 3; i++ {
			g.mustPublish("news", fmt.Sprint(i))
		}
		c := wstest.Dial(t, g.wsURL(), nil)
		if m := subscribeHist(t, c, "news", epoch, first); *m.Recovered {
			t.Fatalf("recovered past the ring: %+v", m)
		}
	})
}

func TestRestartGivesANewEpochAndOldPositionsDoNotRecover(t *testing.T) {
	g1 := startGateway(t, withHistory(100))
	off, epoch1 := g1.publishOffset("news", `1`)
	if err := g1.Shutdown(); err != nil { // the process ends; its history with it
		t.Fatal(err)
	}
	g2 := startGateway(t, withHistory(100))
	_, epoch2 := g2.publishOffset("news", `1`)
	if epoch1 == epoch2 {
		t.Fatalf("epoch %q survived a restart", epoch1)
	}
	c := wstest.Dial(t, g2.wsURL(), nil)
	if m := subscribeHist(t, c, "news", epoch1, off-1); *m.Recovered || *m.Epoch != epoch2 {
		t.Fatalf("old epoch after a restart: %+v", m)
	}
}

func TestHistoryMaxBytesEvictsOldestFirst(t *testing.T) {
	g := startGateway(t, func(c *Config) { c.HistorySize = 1000; c.HistoryMaxBytes = 1 << 20 })
	data := `"` + strings.Repeat("x", 30000) + `"`
	var offs []uint64
	for i := range 60 { // ~1.8 MB: about half must go
		off, _ := g.publishOffset([]string{"a", "b", "c"}[i%3], data)
		offs = append(offs, off)
	}
	_, held := g.hist.Stats()
	if held > 1<<20 {
		t.Fatalf("history holds %d bytes, over -history-max-bytes", held)
	}
	var kept []uint64
	for _, ch := range []string{"a", "b", "c"} {
		for _, m := range g.history("channel=" + ch + "&limit=1000").Messages {
			kept = append(kept, m.Offset)
		}
	}
	if len(kept) < 20 || len(kept) >= 60 {
		t.Fatalf("%d of 60 messages kept in 1 MiB", len(kept))
	}
	oldestKept := offs[len(offs)-len(kept)]
	for _, o := range kept {
		if o < oldestKept {
			t.Fatalf("kept offset %d, but the newest %d start at %d", o, len(kept), oldestKept)
		}
	}
}

func TestPublishAPIReturnsOffsets(t *testing.T) {
	g := startGateway(t, withHistory(10))
	o1, e1 := g.publishOffset("news", `1`)
	o2, e2 := g.publishOffset("news", `2`)
	if o1 == 0 || o2 <= o1 || e1 != e2 {
		t.Fatalf("offsets %d then %d, epochs %q %q", o1, o2, e1, e2)
	}
	if code, body := g.publish(`{"data":1}`); code != 200 || strings.TrimSpace(body) != `{"ok":true}` {
		t.Fatalf("message to everyone: %d %s", code, body)
	}
	off := startGateway(t, nil)
	if code, body := off.publish(`{"channel":"news","data":1}`); code != 200 || strings.TrimSpace(body) != `{"ok":true}` {
		t.Fatalf("history off: %d %s", code, body)
	}
}

func TestHistoryOffMessagesCarryNoOffset(t *testing.T) {
	g := startGateway(t, nil)
	c := wstest.Dial(t, g.wsURL(), nil)
	c.Send(`{"type":"subscribe","channel":"news","recover":{"epoch":"e","offset":1}}`)
	if m := readHist(t, c); m.Type != "subscribed" || m.Epoch != nil || m.Offset != nil || m.Recovered != nil {
		t.Fatalf("history off: %+v", m)
	}
	g.mustPublish("news", `1`)
	if m := readHist(t, c); m.Offset != nil {
		t.Fatalf("history off: message with offset %+v", m)
	}
}

// historyPage is a /api/history answer.
type historyPage struct {
	OK       bool   `json:"ok"`
	Epoch    string `json:"epoch"`
	Offset   uint64 `json:"offset"`
	Messages []struct {
		Offset uint64          `json:"offset"`
		Data   json.RawMessage `json:"data"`
	} `json:"messages"`
}

// historyGet does GET /api/history?query and returns the status and body.
func (g *testGateway) historyGet(query string, header ...string) (int, string) {
	g.t.Helper()
	req, err := http.NewRequest(http.MethodGet, g.adminURL()+"/api/history?"+query, nil)
	if err != nil {
		g.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if len(header) >= 2 && header[0] == "Host" {
		req.Host = header[1]
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (g *testGateway) history(query string) historyPage {
	g.t.Helper()
	code, body := g.historyGet(query)
	var p historyPage
	if code != 200 || json.Unmarshal([]byte(body), &p) != nil || !p.OK {
		g.t.Fatalf("history %s: %d %s", query, code, body)
	}
	return p
}

func TestHistoryAPIPagesThroughAChannel(t *testing.T) {
	g := startGateway(t, withHistory(100))
	var offs []uint64
	for i := range 10 {
		off, _ := g.publishOffset("news", fmt.Sprintf(`{"n":%d}`, i))
		offs = append(offs, off)
		g.mustPublish("other", `0`)
	}
	p := g.history("channel=news&limit=3")
	if p.Offset != offs[9] || len(p.Messages) != 3 || p.Messages[0].Offset != offs[7] || string(p.Messages[2].Data) != `{"n":9}` {
		t.Fatalf("latest 3: %+v", p)
	}
	var all []string
	since := uint64(0)
	for {
		p := g.history(fmt.Sprintf("channel=news&limit=4&since=%d", since))
		if len(p.Messages) == 0 {
			break
		}
		for _, m := range p.Messages {
			all = append(all, string(m.Data))
		}
		since = p.Messages[len(p.Messages)-1].Offset
	}
	if len(all) != 10 || all[0] != `{"n":0}` || all[9] != `{"n":9}` {
		t.Fatalf("paged %v", all)
	}
	if p := g.history("channel=empty"); p.Offset != 0 || p.Messages == nil || len(p.Messages) != 0 {
		t.Fatalf("empty channel: %+v", p)
	}
	if p := g.history("channel=news"); len(p.Messages) != 10 {
		t.Fatalf("default limit: %d messages", len(p.Messages))
	}
}

func TestHistoryAPIRefusals(t *testing.T) {
	const token = "s3cret"
	g := startGateway(t, func(c *Config) { c.HistorySize = 10; c.AdminToken = token })
	auth := []string{"Authorization", "Bearer " + token}
	cases := []struct {
		name   string
		query  string
		header []string
		code   int
	}{
		{"no channel", "limit=3", auth, 400},
		{"bad channel", "channel=a/b", auth, 400},
		{"limit 0", "channel=a&limit=0", auth, 400},
		{"limit over the bound", "channel=a&limit=1001", auth, 400},
		{"limit words", "channel=a&limit=many", auth, 400},
		{"since negative", "channel=a&since=-1", auth, 400},
		{"no token", "channel=a", nil, 401},
		{"Origin", "channel=a", append([]string{"Origin", "https://evil.example"}, auth...), 403},
		{"foreign Host", "channel=a", append([]string{"Host", "evil.example"}, auth...), 403},
		{"good", "channel=a&limit=1000&since=0", auth, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := g.in(t).historyGet(tc.query, tc.header...); code != tc.code {
				t.Fatalf("%d %s, want %d", code, body, tc.code)
			}
		})
	}
	req, _ := http.NewRequest(http.MethodPost, g.adminURL()+"/api/history?channel=a", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(auth[0], auth[1])
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 405 {
		t.Fatalf("POST: %v %v", resp, err)
	}
	off := startGateway(t, nil)
	if code, _ := off.historyGet("channel=a"); code != 404 {
		t.Fatalf("history off: %d, want 404", code)
	}
}

// TestFloodWhileClientsDropAndRecover is the race of recovery against live
// delivery: a publisher floods one channel while 100 clients each drop
// their connection (no close frame) after a random number of messages and
// recover from the last offset they got. Every client must end with
// every message after its first subscription, once, in order.
func TestFloodWhileClientsDropAndRecover(t *testing.T) {
	const clients, total = 100, 2000
	g := startGateway(t, func(c *Config) {
		c.HistorySize = total
		c.RecoverMax = total
		c.MaxConns = 1000
	})
	// The first subscriptions come before the flood starts, so every
	// client must end with all of 1..total.
	type result struct {
		id       int
		sessions int
		err      error
	}
	results := make(chan result, clients)
	ready := make(chan struct{}, clients)
	for i := range clients {
		go func() {
			n, err := recoveringClient(g.wsURL(), i, total, ready)
			results <- result{i, n, err}
		}()
	}
	for range clients {
		<-ready
	}
	published := 0
	for published < total {
		_, err := g.publishWait("flood", json.RawMessage(fmt.Sprint(published+1)), sourceAPI)
		switch err {
		case nil:
			published++
		case errOverloaded: // 503: the publisher retries
		default:
			t.Fatalf("publish %d: %v", published+1, err)
		}
	}
	sessions := 0
	for range clients {
		r := <-results
		if r.err != nil {
			t.Errorf("client %d: %v", r.id, r.err)
		}
		sessions += r.sessions
	}
	t.Logf("%d clients, %d sessions, %d messages each", clients, sessions, total)
	if sessions < 2*clients {
		t.Errorf("only %d sessions: clients hardly dropped", sessions)
	}
}

// recoveringClient subscribes to "flood", then reads, drops its
// connection after a few messages and recovers, until it has message
// total. It returns the number of sessions, or what went wrong.
func recoveringClient(url string, id, total int, ready chan<- struct{}) (int, error) {
	var (
		epoch    string
		last     uint64
		next     = 1 // the data the next message must carry
		sessions int
	)
	for next <= total {
		sessions++
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		conn, _, _, err := ws.Dial(ctx, url)
		cancel()
		if err != nil {
			return sessions, fmt.Errorf("dial: %w", err)
		}
		req := map[string]any{"type": "subscribe", "channel": "flood"}
		if epoch != "" {
			req["recover"] = map[string]any{"epoch": epoch, "offset": last}
		}
		b, _ := json.Marshal(req)
		if err := wsutil.WriteClientText(conn, b); err != nil {
			conn.Close()
			return sessions, err
		}
		// Drop after 1 to 150 messages, varied per client and session.
		quota := 1 + (id*37+sessions*101)%150
		err = readSession(conn, &epoch, &last, &next, total, quota, sessions == 1, ready)
		conn.Close()
		if err != nil {
			return sessions, err
		}
	}
	return sessions, nil
}

// readSession reads one session's subscribed reply and up to quota
// messages, checking each against what the client expects next.
func readSession(conn net.Conn, epoch *string, last *uint64, next *int, total, quota int, first bool, ready chan<- struct{}) error {
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	for got := -1; got < quota && *next <= total; {
		p, op, err := wsutil.ReadServerData(conn)
		if err != nil {
			return fmt.Errorf("read (next %d): %w", *next, err)
		}
		if op != ws.OpText {
			continue
		}
		var m histMsg
		if err := json.Unmarshal(p, &m); err != nil {
			return fmt.Errorf("bad JSON %q", p)
		}
		switch {
		case got < 0:
			if m.Type != "subscribed" || m.Epoch == nil || m.Offset == nil {
				return fmt.Errorf("expected subscribed, got %s", p)
			}
			if !first && (m.Recovered == nil || !*m.Recovered || *m.Epoch != *epoch) {
				return fmt.Errorf("not recovered from %s/%d: %s", *epoch, *last, p)
			}
			if first {
				*epoch, *last = *m.Epoch, *m.Offset
				ready <- struct{}{}
			}
		case m.Type != "message" || m.Offset == nil:
			return fmt.Errorf("expected a message, got %s", p)
		case string(m.Data) != fmt.Sprint(*next):
			return fmt.Errorf("got data %s at offset %d, want %d (last offset %d)", m.Data, *m.Offset, *next, *last)
		case *m.Offset <= *last:
			return fmt.Errorf("offset %d after %d", *m.Offset, *last)
		default:
			*last = *m.Offset
			*next++
		}
		got++
	}
	return nil
}
