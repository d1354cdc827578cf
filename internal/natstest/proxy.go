package natstest

import (
	"net"
	"sync"
	"testing"
)

// ProxyMode is what a proxy does with the bytes of its connections.
type ProxyMode int

const (
	// Flowing: a plain TCP proxy.
	Flowing ProxyMode = iota
	// Dropping: read and discard both ways, as a crashed host or a
	// partition would; the peer's writes never block.
	Dropping
	// Stalled: stop reading from the client (the broker) while keeping
	// every connection open, as a frozen server process would: once the
	// socket buffers are full the broker's writes block. What was sent
	// meanwhile flows on when the proxy flows again.
	Stalled
)

// Proxy is a TCP proxy (to a NATS server, or any TCP server) whose
// connections can be frozen or cut.
// While it is not Flowing, new connections are accepted and left silent
// (a NATS client then waits for the server's INFO until its timeout).
type Proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu      sync.Mutex
	mode    ProxyMode
	changed chan struct{} // closed and replaced when mode changes or on close
	closed  bool
	conns   []net.Conn
}

func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, changed: make(chan struct{})}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *Proxy) URL() string { return "nats://" + p.ln.Addr().String() }

// Addr is the proxy's listening address, host:port: the proxy forwards any
// TCP protocol (the WebSocket client tests cut links through it too).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) SetMode(m ProxyMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *Proxy) currentMode() ProxyMode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// waitUnstalled blocks while the proxy is Stalled; false once it closes.
func (p *Proxy) waitUnstalled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.mode == Stalled && !p.closed {
		ch := p.changed
		p.mu.Unlock()
		<-ch
		p.mu.Lock()
	}
	return !p.closed
}

// track remembers c for close, or closes it if close has run.
func (p *Proxy) track(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return
	}
	p.conns = append(p.conns, c)
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.track(c)
		if p.currentMode() != Flowing {
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

func (p *Proxy) pipe(dst, src net.Conn, fromClient bool) {
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
		if p.currentMode() == Dropping {
			continue
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			src.Close()
			return
		}
	}
}

func (p *Proxy) close() {
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

// Cut closes every connection the proxy holds, both sides, as a broken
// link would; the mode is kept, so with Flowing the client's next dial
// gets through at once, and with Dropping it gets a silent connection.
func (p *Proxy) Cut() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		// No lingering: unread bytes are discarded, as on a dead host.
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
	}
}
