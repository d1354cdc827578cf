package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shardgate/shardgate/shard"
	"github.com/shardgate/shardgate/shard/tlsfd"
	"golang.org/x/sys/unix"
)

// certStore holds the public listener's certificate and key, swapped
// whole on reload: a handshake reads one pair, never half of each.
type certStore struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
	expiry            prometheus.Gauge // shardgate_tls_cert_expiry_timestamp_seconds
}

// load reads the pair from its files and serves it from now on. A pair
// that fails to load leaves the current one in place.
func (cs *certStore) load() error {
	pair, err := tls.LoadX509KeyPair(cs.certFile, cs.keyFile)
	if err != nil {
		return fmt.Errorf("load TLS certificate %s and key %s: %w", cs.certFile, cs.keyFile, err)
	}
	if pair.Leaf == nil {
		return fmt.Errorf("load TLS certificate %s: no leaf certificate", cs.certFile)
	}
	cs.cur.Store(&pair)
	cs.expiry.Set(float64(pair.Leaf.NotAfter.Unix()))
	return nil
}

// serverConfig is the public listener's TLS configuration: TLS 1.2 or
// 1.3 and up, Go's default cipher suites, ALPN http/1.1, the current pair
// for every handshake.
func (cs *certStore) serverConfig(minVersion string) *tls.Config {
	v := uint16(tls.VersionTLS12)
	if minVersion == "1.3" {
		v = tls.VersionTLS13
	}
	return &tls.Config{
		MinVersion: v,
		NextProtos: []string{"http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return cs.cur.Load(), nil
		},
		// Full-size records from the first byte: a gateway's writes are
		// batches of frames, and fewer records cost less CPU.
		DynamicRecordSizingDisabled: true,
	}
}

// responseHTTPOnTLS answers a client that spoke plain HTTP to the TLS
// port, as net/http does, so a curl user sees why.
var responseHTTPOnTLS = cannedResponse(400, "", "client sent an HTTP request to the wss:// port\n")

// tlsHandshakes runs the TLS side of the acceptor: each connection whose
// first bytes have arrived gets a goroutine for its TLS handshake and its
// HTTP upgrade (crypto/tls cannot suspend a handshake), bounded in number
// by -max-handshakes and in time by -handshake-timeout; the upgraded
// connection then goes to a shard and holds no goroutine.
type tlsHandshakes struct {
	config   *tls.Config
	ctx      context.Context // cancelled by the acceptor's Stop
	cancel   context.CancelFunc
	inFlight atomic.Int64 // handshakes on goroutines, counted in -max-handshakes

	// After a burst of handshakes, the heap they grew is given back to
	// the OS (releaseAfterBursts).
	done         atomic.Int64  // handshakes finished since the last release
	idle         chan struct{} // kicked when inFlight drops to zero
	releaserDone chan struct{}
	burst        int           // handshakes that make a burst worth a release
	quiet        time.Duration // how long no handshake must run before it
	release      func()        // debug.FreeOSMemory; tests count calls instead
}

func newTLSHandshakes(config *tls.Config) *tlsHandshakes {
	ctx, cancel := context.WithCancel(context.Background())
	t := &tlsHandshakes{
		config: config, ctx: ctx, cancel: cancel,
		idle:         make(chan struct{}, 1),
		releaserDone: make(chan struct{}),
		burst:        releaseBurst,
		quiet:        time.Second,
		release:      debug.FreeOSMemory,
	}
	return t
}

// start runs the releaser; the acceptor calls it once nothing in its
// construction can fail any more.
func (t *tlsHandshakes) start() { go t.releaseAfterBursts() }

// releaseBurst is how many TLS handshakes make a burst whose memory is
// worth returning to the OS once it is over.
const releaseBurst = 1000

// releaseAfterBursts returns to the OS the memory a burst of TLS
// handshakes left behind. Each handshake in flight holds tens of KiB
// (key shares, certificate messages, a grown goroutine stack) that are
// garbage a moment later, but the heap grew to hold them and the runtime
// keeps the pages: after a reconnect storm of thousands of clients, a
// node would otherwise keep the storm's peak as resident memory while
// its connections sit idle. Once no handshake has run for a quiet
// second after at least releaseBurst of them, one collection hands the
// free pages back (debug.FreeOSMemory): a cost paid once per storm, not
// per connection, and never while handshakes are running.
func (t *tlsHandshakes) releaseAfterBursts() {
	defer close(t.releaserDone)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-t.idle:
		}
		timer.Reset(t.quiet)
		select {
		case <-t.ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		if t.inFlight.Load() > 0 || t.done.Load() < int64(t.burst) {
			continue // the burst goes on (its end kicks again), or was small
		}
		t.done.Store(0)
		t.release()
	}
}

// finished records the end of one handshake goroutine.
func (t *tlsHandshakes) finished() {
	t.done.Add(1)
	if t.inFlight.Add(-1) == 0 {
		select {
		case t.idle <- struct{}{}:
		default:
		}
	}
}

// stop cancels the handshakes in flight; the caller waits for their
// goroutines, then for the releaser with wait.
func (t *tlsHandshakes) stop() { t.cancel() }
func (t *tlsHandshakes) wait() { <-t.releaserDone }

// handoffTLS moves a pending connection whose first bytes arrived from the
// acceptor's poller to a handshake goroutine.
func (a *acceptor) handoffTLS(p *pendingConn, from int) {
	prefix := bytes.Clone((*p.buf)[from:p.n])
	a.unregister(p)
	a.pool.Put(p.buf)
	p.buf = nil
	deadline := a.epoch.Add(time.Duration(p.deadline))
	a.tls.inFlight.Add(1)
	a.tlsWG.Add(1)
	go a.serveTLS(p.fd, p.tag, p.client, prefix, deadline)
}

// serveTLS runs one connection's TLS handshake and WebSocket upgrade, and
// hands the result to a shard.
// client is the PROXY header's address, for logs (invalid without one).
func (a *acceptor) serveTLS(fd int, tag uint32, client netip.Addr, prefix []byte, deadline time.Time) {
	defer a.tlsWG.Done()
	defer a.tls.finished()
	fail := func(result string) {
		if result != "" {
			a.hs.count(result)
		}
		unix.Close(fd)
		if a.perIP != nil {
			a.perIP.release(tag)
		}
	}

	link, err := tlsfd.Server(a.tls.ctx, fd, a.tls.config, prefix, deadline)
	if err != nil {
		var rhe tls.RecordHeaderError
		switch {
		case a.tls.ctx.Err() != nil:
			fail("")
		case errors.Is(err, os.ErrDeadlineExceeded):
			fail(upgradeTimeout)
		case errors.As(err, &rhe) && bytes.HasPrefix(prefix, []byte("GET ")):
			a.writeAll(fd, responseHTTPOnTLS)
			fail(upgradeTLSError)
		default:
			a.log.Debug("tls handshake failed", "err", err, "client", client)
			fail(upgradeTLSError)
		}
		return
	}

	req, rest, result := a.readRequestTLS(link)
	if req == nil {
		link.Abandon()
		fail(result)
		return
	}
	var res upgradeResult
	if tag != 0 && a.perIP.over(tag) {
		res = upgradeResult{result: upgradeTooManyPerIP}
		_, err = link.Write(responseTooManyPerIP)
	} else {
		h := a.hsPool.Get().(*handshaker)
		res = h.upgrade(req)
		_, err = link.Write(res.response) // it lives in h: written before h goes back
		a.hsPool.Put(h)
	}
	if err != nil || res.result != upgradeOK {
		if res.result != upgradeOK {
			a.hs.count(res.result)
		}
		link.Abandon()
		fail("")
		return
	}
	a.hs.count(upgradeOK)
	link.Detach(nil)
	s := a.pick()
	a.hs.opened()
	var grants shard.Grants
	if res.grants != nil {
		grants = res.grants
	}
	if err := s.AttachTLSLater(fd, link, rest, grants, tag, res.deflate); err != nil {
		// The shard is closed: we are shutting down.
		a.hs.released()
		unix.Close(fd)
		if a.perIP != nil {
			a.perIP.release(tag)
		}
		return
	}
	s.Wake()
}

// readRequestTLS reads the upgrade request through the TLS layer until
// its header is complete. It returns the header, the bytes after it, or
// nil and the result to count (empty for a client that just went away).
func (a *acceptor) readRequestTLS(link *tlsfd.Conn) (req, rest []byte, result string) {
	buf := make([]byte, handshakeBufSize)
	n := 0
	for {
		if n == len(buf) {
			if len(buf) >= maxHandshakeBytes {
				_, _ = link.Write(responseTooLarge)
				return nil, nil, upgradeBadRequest
			}
			buf = append(buf, make([]byte, maxHandshakeBytes-len(buf))...)
		}
		m, err := link.Read(buf[n:])
		if m > 0 {
			from := max(0, n-3)
			n += m
			if i := bytes.Index(buf[from:n], headerEnd); i >= 0 {
				end := from + i + len(headerEnd)
				return buf[:end], buf[end:n], ""
			}
			continue
		}
		switch {
		case a.tls.ctx.Err() != nil:
			return nil, nil, ""
		case errors.Is(err, os.ErrDeadlineExceeded):
			return nil, nil, upgradeTimeout
		default:
			// EOF or reset before a complete request, as on plain TCP.
			return nil, nil, ""
		}
	}
}
