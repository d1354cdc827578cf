// Package gwproc builds the shardgate binary and runs it as a child
// process, for tests that need a real gateway on real sockets: client
// libraries, failover, drains.
//
// Build compiles the binary once (call it from TestMain and share the
// result); Binary.Start runs one gateway on kernel-chosen loopback ports
// and stops it when the test ends:
//
//	func TestMain(m *testing.M) {
//		bin, err := gwproc.Build()
//		...
//	}
//
//	g := bin.Start(t, "-history-size", "1000")
//	c := dial(g.WSURL())
//	g.Publish(ctx, "news", json.RawMessage(`{"n":1}`))
//	g.Kill()
//	g.Restart() // same ports
//
// Start, Kill, Term and Restart must be called from the test's own
// goroutine (they may call t.Fatal); Publish and Disconnect return errors
// and may be called from any goroutine.
package gwproc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long a gateway may take to log its addresses
// (a node with history in a cluster checks its JetStream stream first).
const startTimeout = 20 * time.Second

// logTail is how many of a gateway's last log lines a failed test shows.
const logTail = 100

// Binary is a compiled shardgate command.
type Binary struct {
	dir  string // the temporary directory holding it
	path string
}

// Build compiles ./cmd/shardgate of the module this package belongs to
// into a new temporary directory, with the go command of the running
// toolchain. Remove deletes it.
func Build() (*Binary, error) {
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	root, err := moduleRoot(gobin)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "gwproc-")
	if err != nil {
		return nil, fmt.Errorf("gwproc: %w", err)
	}
	path := filepath.Join(dir, "shardgate")
	cmd := exec.Command(gobin, "build", "-o", path, "./cmd/shardgate")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("gwproc: go build ./cmd/shardgate: %w\n%s", err, out)
	}
	return &Binary{dir: dir, path: path}, nil
}

// moduleRoot is the directory of the main module's go.mod, as the go
// command sees it from the working directory (a package of this module
// under test).
func moduleRoot(gobin string) (string, error) {
	out, err := exec.Command(gobin, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("gwproc: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("gwproc: not inside a Go module")
	}
	return filepath.Dir(gomod), nil
}

// Path is the binary's file name.
func (b *Binary) Path() string { return b.path }

// Remove deletes the binary and its directory.
func (b *Binary) Remove() error { return os.RemoveAll(b.dir) }

// Gateway is one running (or stopped) gateway process.
type Gateway struct {
	t     testing.TB
	bin   *Binary
	flags []string // the caller's flags, given again on Restart

	// Fixed at the first start: Restart reuses the ports.
	wsURL, adminURL string
	listen, admin   string // host:port of each listener

	http *http.Client // keeps admin connections alive across a flood

	// Replaced by each start; only the test goroutine touches them.
	proc *process
}

// process is one run of the binary.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd.Wait has returned
	err    error         // cmd.Wait's result, set before exited closes
	log    *tail
}

// Start runs the binary with -listen and -admin on kernel-chosen
// loopback ports, JSON logs, and flags, and waits until it has logged
// its addresses. The process is killed when the test ends, and its last
// log lines are shown if the test failed.
func (b *Binary) Start(t testing.TB, flags ...string) *Gateway {
	t.Helper()
	g := &Gateway{
		t: t, bin: b, flags: flags,
		http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}, Timeout: 30 * time.Second},
	}
	p, rec, err := g.start("127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.proc = p
	g.listen, g.admin = strings.TrimSuffix(rec.WS, rec.path()), rec.Admin
	scheme := "ws://"
	if rec.TLS {
		scheme = "wss://"
	}
	g.wsURL, g.adminURL = scheme+rec.WS, "http://"+rec.Admin
	t.Cleanup(g.cleanup)
	return g
}

// listening is the gateway's "shardgate listening" log record.
type listening struct {
	Msg   string `json:"msg"`
	WS    string `json:"ws"` // host:port/path
	Admin string `json:"admin"`
	TLS   bool   `json:"tls"`
}

func (r listening) path() string {
	if i := strings.IndexByte(r.WS, '/'); i >= 0 {
		return r.WS[i:]
	}
	return ""
}

// start runs the binary on the given listen and admin addresses and
// returns once it has logged them.
func (g *Gateway) start(listen, admin string) (*process, listening, error) {
	args := append([]string{"-listen", listen, "-admin", admin, "-log-format", "json"}, g.flags...)
	cmd := exec.Command(g.bin.path, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, listening{}, fmt.Errorf("gwproc: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, listening{}, fmt.Errorf("gwproc: start %s: %w", g.bin.path, err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{}), log: newTail(logTail)}
	addrs := make(chan listening, 1)
	go func() {
		lines := bufio.NewScanner(stderr)
		lines.Buffer(make([]byte, 64<<10), 1<<20)
		found := false
		for lines.Scan() {
			p.log.add(lines.Text())
			var rec listening
			if !found && json.Unmarshal(lines.Bytes(), &rec) == nil && rec.Msg == "shardgate listening" {
				found = true
				addrs <- rec
			}
		}
		// The pipe is read to its end before Wait, as os/exec requires.
		p.err = cmd.Wait()
		close(p.exited)
	}()
	select {
	case rec := <-addrs:
		return p, rec, nil
	case <-p.exited:
		return nil, listening{}, fmt.Errorf("gwproc: gateway %v exited before listening: %v\n%s", args, p.err, p.log)
	case <-time.After(startTimeout):
		cmd.Process.Kill()
		<-p.exited
		return nil, listening{}, fmt.Errorf("gwproc: gateway %v did not log its addresses within %v\n%s", args, startTimeout, p.log)
	}
}

func (g *Gateway) cleanup() {
	if p := g.proc; p != nil {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
		if g.t.Failed() {
			g.t.Logf("gateway %s log (last %d lines):\n%s", g.wsURL, logTail, p.log)
		}
	}
	g.http.CloseIdleConnections()
}

// WSURL is the WebSocket URL clients dial, ws://127.0.0.1:PORT/ws
// (wss:// with -tls-cert).
func (g *Gateway) WSURL() string { return g.wsURL }

// Addr is the public listener's host:port (for a proxy in front of it).
func (g *Gateway) Addr() string { return g.listen }

// AdminURL is the admin listener's base URL, http://127.0.0.1:PORT.
func (g *Gateway) AdminURL() string { return g.adminURL }

// Running reports whether the process is alive.
func (g *Gateway) Running() bool {
	select {
	case <-g.proc.exited:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL, as a crash would, and waits until the process is
// gone.
func (g *Gateway) Kill() {
	g.t.Helper()
	if !g.Running() {
		return
	}
	if err := g.proc.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		g.t.Fatalf("gwproc: kill: %v", err)
	}
	<-g.proc.exited
	// Its admin connections are dead: do not reuse them after a restart.
	g.http.CloseIdleConnections()
}

// Term sends SIGTERM (a drain: close 1001 to every client) and waits up
// to timeout for the process to exit; it returns the exit status error
// (nil for exit 0). The process is killed if it does not exit in time.
func (g *Gateway) Term(timeout time.Duration) error {
	g.t.Helper()
	if err := g.proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		g.t.Fatalf("gwproc: SIGTERM: %v", err)
	}
	select {
	case <-g.proc.exited:
	case <-time.After(timeout):
		g.proc.cmd.Process.Kill()
		<-g.proc.exited
		return fmt.Errorf("gwproc: gateway did not exit within %v of SIGTERM", timeout)
	}
	g.http.CloseIdleConnections()
	return g.proc.err
}

// Exited is closed once the process has exited (after Kill, Term, or on
// its own).
func (g *Gateway) Exited() <-chan struct{} { return g.proc.exited }

// Restart starts the gateway again, after Kill or Term, with the same
// flags on the same public and admin addresses, so WSURL and AdminURL
// stay valid.
func (g *Gateway) Restart() {
	g.t.Helper()
	if g.Running() {
		g.t.Fatal("gwproc: Restart of a running gateway")
	}
	if g.t.Failed() {
		g.t.Logf("gateway %s log before restart (last %d lines):\n%s", g.wsURL, logTail, g.proc.log)
	}
	p, _, err := g.start(g.listen, g.admin)
	if err != nil {
		g.t.Fatal(err)
	}
	g.proc = p
}

// tail keeps the last lines of a log.
type tail struct {
	mu    sync.Mutex
	lines []string
	next  int
	full  bool
}

func newTail(n int) *tail { return &tail{lines: make([]string, n)} }

func (l *tail) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines[l.next] = s
	l.next = (l.next + 1) % len(l.lines)
	if l.next == 0 {
		l.full = true
	}
}

func (l *tail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b bytes.Buffer
	if l.full {
		for _, s := range l.lines[l.next:] {
			b.WriteString(s)
			b.WriteByte('\n')
		}
	}
	for _, s := range l.lines[:l.next] {
		b.WriteString(s)
		b.WriteByte('\n')
	}
	return b.String()
}

// adminPost posts body as JSON to the admin API path and decodes the
// answer into out (when not nil); a status other than 200 is an error
// carrying the answer.
func (g *Gateway) adminPost(ctx context.Context, path string, body any, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("gwproc: %s: %w", path, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.adminURL+path, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("gwproc: %s: %w", path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := g.http.Do(req)
	if err != nil {
		return fmt.Errorf("gwproc: %s: %w", path, err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return fmt.Errorf("gwproc: %s: reading the answer: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return &StatusError{Path: path, Status: resp.StatusCode, Body: strings.TrimSpace(buf.String())}
	}
	if out != nil {
		if err := json.Unmarshal(buf.Bytes(), out); err != nil {
			return fmt.Errorf("gwproc: %s: answer %q: %w", path, buf.String(), err)
		}
	}
	return nil
}

// StatusError is an admin API answer other than 200.
type StatusError struct {
	Path   string
	Status int
	Body   string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("gwproc: %s: status %d: %s", e.Path, e.Status, e.Body)
}

// Published is the publish API's answer: the message's offset and the
// channel's epoch (zero values with history off).
type Published struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

// Publish sends data (any JSON value, as raw JSON) to channel through
// POST /api/publish; an empty channel publishes to every connection.
func (g *Gateway) Publish(ctx context.Context, channel string, data json.RawMessage) (Published, error) {
	body := struct {
		Channel string          `json:"channel,omitempty"`
		Data    json.RawMessage `json:"data"`
	}{channel, data}
	var out Published
	err := g.adminPost(ctx, "/api/publish", body, &out)
	return out, err
}

// Disconnect closes every connection whose token names sub, on every
// node, with 4003 (POST /api/disconnect).
func (g *Gateway) Disconnect(ctx context.Context, sub string) error {
	return g.adminPost(ctx, "/api/disconnect", map[string]string{"sub": sub}, nil)
}
