package natsbroker

import (
	"net"
	"sync"
	"testing"
)

// proxyMode is what a proxy does with the bytes of its connections.
type proxyMode int

const (
	// flowing: a plain TCP proxy.
	flowing proxyMode = iota
	// dropping: read and discard both ways, as a crashed host or a
	// partition would; the peer's writes never block.
	dropping
	// stalled: stop reading from the client (the broker) while keeping
	// every connection open, as a frozen server process would: once the
	// socket buffers are full the broker's writes block. What was sent
	// meanwhile flows on when the proxy flows again.
	stalled
)

// proxy is a TCP proxy to a NATS server whose connections can be frozen.
// While it is not flowing, new connections are accepted and left silent
// (a NATS client then waits for the server's INFO until its timeout).
type proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu      sync.Mutex
	mode    proxyMode
	changed chan struct{} // closed and replaced when mode changes or on close
	closed  bool
	conns   []net.Conn
}

func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, changed: make(chan struct{})}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *proxy) setMode(m proxyMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *proxy) currentMode() proxyMode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// waitUnstalled blocks while the proxy is stalled; false once it closes.
func (p *proxy) waitUnstalled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.mode == stalled && !p.closed {
		ch := p.changed
		p.mu.Unlock()
		<-ch
		p.mu.Lock()
	}
	return !p.closed
}

// track remembers c for close, or closes it if close has run.
func (p *proxy) track(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return
	}
	p.conns = append(p.conns, c)
}

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.track(c)
		if p.currentMode() != flowing {
			continue // accepted, never answered
		}
		// A small receive buffer (no autotuning) so that a stall blocks
		// the broker's writes after little data.
		c.(*net.TCPConn).SetReadBuffer(64 << 10)
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.track(up)
		p.wg.Add(2)
		go p.pipe(up, c, true)
		go p.pipe(c, up, false)
	}
}

func (p *proxy) pipe(dst, src net.Conn, fromClient bool) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		if fromClient && !p.waitUnstalled() {
			return
		}
		n, err := src.Read(buf)
		if err != nil {
			dst.Close()
			return
		}
		// A read under way when the stall began: hold its bytes too.
		if fromClient && !p.waitUnstalled() {
			return
		}
		if p.currentMode() == dropping {
			continue
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			src.Close()
			return
		}
	}
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	p.closed = true
	close(p.changed)
	p.changed = make(chan struct{})
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
