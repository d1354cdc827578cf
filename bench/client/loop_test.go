package client

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitTimeout bounds every wait of these tests for an event.
const waitTimeout = 10 * time.Second

// testServer is a gorilla/websocket server on 127.0.0.1:0 that echoes text
// messages and obeys a few commands:
//
//	"frag"     answer with a 100-byte message split into several frames
//	"ping"     send a ping "p1"; its pong is answered with "pong:p1"
//	"close-me" start the closing handshake with 4000 "bye"
type testServer struct {
	*httptest.Server
	wg sync.WaitGroup // handlers, which outlive their hijacked requests
}

func startServer(t *testing.T) *testServer {
	t.Helper()
	s := newTestServer()
	s.Start()
	t.Cleanup(s.stop)
	return s
}

// startTLSServer is startServer over TLS (httptest's certificate, valid
// for 127.0.0.1 and example.com).
func startTLSServer(t *testing.T) *testServer {
	t.Helper()
	s := newTestServer()
	s.StartTLS()
	t.Cleanup(s.stop)
	return s
}

func (s *testServer) stop() {
	s.Close()
	s.wg.Wait()
}

func newTestServer() *testServer {
	s := &testServer{}
	up := websocket.Upgrader{WriteBufferSize: 32}
	mux := http.NewServeMux()
	mux.HandleFunc("/reject", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "busy", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		s.wg.Add(1)
		defer s.wg.Done()
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		ws.SetPongHandler(func(p string) error {
			return ws.WriteMessage(websocket.TextMessage, []byte("pong:"+p))
		})
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				return
			}
			switch string(msg) {
			case "frag":
				err = ws.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("0123456789", 10)))
			case "ping":
				err = ws.WriteControl(websocket.PingMessage, []byte("p1"), time.Now().Add(time.Second))
			case "close-me":
				err = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4000, "bye"), time.Now().Add(time.Second))
			default:
				err = ws.WriteMessage(websocket.TextMessage, msg)
			}
			if err != nil {
				return
			}
		}
	})
	s.Server = httptest.NewUnstartedServer(mux)
	return s
}

func (s *testServer) addr(t *testing.T) netip.AddrPort {
	t.Helper()
	return netip.MustParseAddrPort(s.Listener.Addr().String())
}

// event is one Handler call, as seen by the test goroutine.
type event struct {
	kind string // "open", "msg", "close"
	tag  int
	msg  string
	err  error
}

// recorder forwards Handler calls to the test and lets the test script
// reactions to them (on the loop goroutine).
type recorder struct {
	events chan event
	onOpen func(c *Conn)
}

func newRecorder() *recorder { return &recorder{events: make(chan event, 1024)} }

func (r *recorder) OnOpen(c *Conn) {
	r.events <- event{kind: "open", tag: c.Tag}
	if r.onOpen != nil {
		r.onOpen(c)
	}
}
func (r *recorder) OnMessage(c *Conn, msg []byte) {
	r.events <- event{kind: "msg", tag: c.Tag, msg: string(msg)}
}
func (r *recorder) OnClose(c *Conn, err error) {
	r.events <- event{kind: "close", tag: c.Tag, err: err}
}

// next waits for the next event of the given kind, failing on a timeout.
func (r *recorder) next(t *testing.T, kind string) event {
	t.Helper()
	timeout := time.NewTimer(waitTimeout)
	defer timeout.Stop()
	for {
		select {
		case ev := <-r.events:
			if ev.kind == kind {
				return ev
			}
		case <-timeout.C:
			t.Fatalf("no %s event within %v", kind, waitTimeout)
		}
	}
}

func startLoop(t *testing.T, opts Options, h Handler) *Loop {
	t.Helper()
	l, err := New(opts, h)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Run() }()
	t.Cleanup(func() {
		l.Stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return l
}

// onLoop runs fn on l's goroutine and waits for it.
func onLoop(t *testing.T, l *Loop, fn func()) {
	t.Helper()
	done := make(chan struct{})
	if !l.Do(func() { fn(); close(done) }) {
		t.Fatal("loop stopped")
	}
	<-done
}

func TestEchoManyConnectionsAndShutdown(t *testing.T) {
	srv := startServer(t)
	rec := newRecorder()
	rec.onOpen = func(c *Conn) {
		if err := c.Send(fmt.Appendf(nil, "hello %d", c.Tag)); err != nil {
			panic(err)
		}
	}
	l := startLoop(t, Options{Addr: srv.addr(t), Path: "/ws"}, rec)
	const n = 40
	sources := []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")}
	onLoop(t, l, func() {
		for i := range n {
			c, err := l.Dial(sources[i%2])
			if err != nil {
				t.Errorf("dial: %v", err)
				return
			}
			c.Tag = i
		}
	})
	seen := map[int]bool{}
	for range n {
		ev := rec.next(t, "msg")
		if ev.msg != fmt.Sprintf("hello %d", ev.tag) {
			t.Fatalf("conn %d got %q", ev.tag, ev.msg)
		}
		seen[ev.tag] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct connections answered, want %d", len(seen), n)
	}
	drained := make(chan struct{})
	onLoop(t, l, func() { l.Shutdown(5*time.Second, func() { close(drained) }) })
	for range n {
		if ev := rec.next(t, "close"); ev.err != nil {
			t.Fatalf("conn %d closed with %v, want a clean close", ev.tag, ev.err)
		}
	}
	<-drained
}

func TestFragmentsPingsAndServerClose(t *testing.T) {
	srv := startServer(t)
	rec := newRecorder()
	var conn *Conn
	rec.onOpen = func(c *Conn) { conn = c }
	l := startLoop(t, Options{Addr: srv.addr(t), Path: "/ws"}, rec)
	onLoop(t, l, func() {
		if _, err := l.Dial(netip.Addr{}); err != nil {
			t.Errorf("dial: %v", err)
		}
	})
	rec.next(t, "open")
	send := func(msg string) {
		onLoop(t, l, func() {
			if err := conn.Send([]byte(msg)); err != nil {
				t.Errorf("send %q: %v", msg, err)
			}
		})
	}
	send("frag")
	if ev := rec.next(t, "msg"); ev.msg != strings.Repeat("0123456789", 10) {
		t.Fatalf("reassembled %q", ev.msg)
	}
	send("ping")
	if ev := rec.next(t, "msg"); ev.msg != "pong:p1" {
		t.Fatalf("after ping got %q, want the server's report of our pong", ev.msg)
	}
	send("close-me")
	ev := rec.next(t, "close")
	var ce *CloseError
	if !errors.As(ev.err, &ce) || ce.Code != 4000 || ce.Reason != "bye" || Reason(ev.err) != "closed_4000" {
		t.Fatalf("close err = %v (%s), want CloseError 4000 bye", ev.err, Reason(ev.err))
	}
	onLoop(t, l, func() {
		if err := conn.Send([]byte("late")); !errors.Is(err, ErrNotOpen) {
			t.Errorf("send after close: %v, want ErrNotOpen", err)
		}
	})
}

func TestDialFailures(t *testing.T) {
	srv := startServer(t)

	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := netip.MustParseAddrPort(free.Addr().String())
	free.Close()

	// silent accepts connections and never answers the upgrade.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() {
		silent.Close()
		<-accepted
		for _, c := range held {
			c.Close()
		}
	})

	cases := []struct {
		name   string
		opts   Options
		reason string
	}{
		{"http status", Options{Addr: srv.addr(t), Path: "/reject"}, "http_503"},
		{"not found", Options{Addr: srv.addr(t), Path: "/nowhere"}, "http_404"},
		{"refused", Options{Addr: refused}, "refused"},
		{"no answer", Options{Addr: netip.MustParseAddrPort(silent.Addr().String()), HandshakeTimeout: 150 * time.Millisecond}, "handshake_timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder()
			l := startLoop(t, tc.opts, rec)
			onLoop(t, l, func() {
				if _, err := l.Dial(netip.MustParseAddr("127.0.0.4")); err != nil {
					t.Errorf("dial: %v", err)
				}
			})
			if ev := rec.next(t, "close"); Reason(ev.err) != tc.reason {
				t.Fatalf("err = %v (%s), want %s", ev.err, Reason(ev.err), tc.reason)
			}
		})
	}
}

func TestDoAfterStop(t *testing.T) {
	l, err := New(Options{Addr: netip.MustParseAddrPort("127.0.0.1:1")}, newRecorder())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Run() }()
	fired := make(chan struct{})
	l.Do(func() { l.After(time.Millisecond, func() { close(fired) }) })
	<-fired
	l.Stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if l.Do(func() {}) {
		t.Fatal("Do accepted work after Run returned")
	}
}
