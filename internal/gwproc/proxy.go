package gwproc

import (
	"net"
	"sync"
	"testing"
)

// Proxy is a TCP proxy in front of a gateway whose connections a test can
// cut (as a broken network path would) or make swallow what clients send
// (as a path that lost its way would). It knows nothing of WebSocket:
// WSURL assumes the gateway's default path.
type Proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup // the accept loop and every pipe

	mu       sync.Mutex
	closed   bool
	dropping bool
	dropped  int64             // client bytes swallowed so far
	conns    map[net.Conn]bool // true: a client's side
}

// NewProxy listens on a kernel-chosen loopback port and forwards each
// connection to target (host:port) until the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, conns: make(map[net.Conn]bool)}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// WSURL is ws://<Addr>/ws.
func (p *Proxy) WSURL() string { return "ws://" + p.Addr() + "/ws" }

// Cut closes every connection the proxy holds, both sides, with a reset
// (unread bytes are discarded, as on a dead path), and returns how many
// client connections it cut. New connections go through as before.
func (p *Proxy) Cut() int {
	p.mu.Lock()
	conns := p.conns
	p.conns = make(map[net.Conn]bool)
	p.mu.Unlock()
	n := 0
	for c, client := range conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
		if client {
			n++
		}
	}
	return n
}

// Drop makes the proxy read and discard what clients send (the gateway's
// bytes still reach them) until Flow: a request sent meanwhile is never
// answered. A connection that lost bytes this way is broken (a frame may
// have been cut in two): Cut it before Flow.
func (p *Proxy) Drop() { p.setDropping(true) }

// Flow forwards clients' bytes again.
func (p *Proxy) Flow() { p.setDropping(false) }

// Dropped is how many bytes from clients Drop has discarded so far.
func (p *Proxy) Dropped() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dropped
}

func (p *Proxy) setDropping(d bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropping = d
}

// drop reports whether n bytes just read from a client are to be
// discarded, and counts them if so.
func (p *Proxy) drop(n int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dropping {
		p.dropped += int64(n)
	}
	return p.dropping
}

// track remembers c for Cut and close; false (c closed) once the proxy
// is closed.
func (p *Proxy) track(c net.Conn, client bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = client
	return true
}

// forget drops c from the connections Cut and close will close.
func (p *Proxy) forget(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c, true) {
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		if !p.track(up, false) {
			c.Close()
			continue
		}
		p.wg.Add(2)
		go p.pipe(up, c, true)
		go p.pipe(c, up, false)
	}
}

// pipe copies src to dst until either fails, then closes both ends.
// Bytes from a client are discarded while the proxy drops.
func (p *Proxy) pipe(dst, src net.Conn, fromClient bool) {
	defer p.wg.Done()
	defer func() {
		src.Close()
		dst.Close()
		p.forget(src)
		p.forget(dst)
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !(fromClient && p.drop(n)) {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *Proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	p.closed = true
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for c := range conns {
		c.Close()
	}
	p.wg.Wait()
}
